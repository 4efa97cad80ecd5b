"""observerctl replay: retained change-log events re-delivered through the
normal pipeline with their original idempotency keys and a "replay" marker in
the envelope; --observer narrows it, --dry-run delivers nothing, the same
request twice replays once, only the leader delivers it, and bad requests get
clear errors (unknown observer, --from after --to, a pruned range naming the
oldest retained event)."""
import collections
import json
import time

from harness import IntegrationTest, control_port, ctl, main, wait_until, webhook_observer


class ReplayTest(IntegrationTest):
    def start(self, sink, **kw):
        observers = (webhook_observer("inserts", "INSERT", "Order", sink.url + "/ins") +
                     webhook_observer("all-orders", "*", "Order", sink.url + "/all"))
        node = self.node(observers, **kw)
        self.setup_orders(node)
        node.start()
        wait_until(lambda: "leading listener" in node.output(), what="leads")
        return node, control_port(node)

    def write_orders(self):
        for i in range(5):
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 10)",
                     (f"c{i}",))
        self.sql("UPDATE orders SET status = 'paid' WHERE id = 2")
        # 5 inserts x 2 observers + 1 update x 1 observer
        return 11

    def bodies(self, records):
        return [(r["idempotency_key"], json.loads(r["body"])) for r in records]

    def replayed(self, sink):
        return [(k, b) for k, b in self.bodies(sink.delivered()) if "replay" in b]

    def original(self, sink):
        return [(k, b) for k, b in self.bodies(sink.delivered()) if "replay" not in b]

    def first_event(self):
        return self.sql("SELECT id::text, to_char(created_at AT TIME ZONE 'UTC',"
                        " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM core.tb_entity_change_log"
                        " ORDER BY txid, pk_entity_change_log LIMIT 1")[0]

    def test_replay_redelivers_with_the_same_keys_and_a_marker(self):
        sink = self.sink()
        node, port = self.start(sink)
        n = self.write_orders()
        wait_until(lambda: len(sink.delivered()) >= n, what="originals delivered")
        originals = self.original(sink)
        self.assertEqual(len(originals), n)
        first_id, _ = self.first_event()

        r = ctl(port, "replay", "--from", first_id)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertIn("queued: 6 event(s)", r.stdout)
        wait_until(lambda: len(self.replayed(sink)) >= n, what="replayed deliveries")
        time.sleep(0.5)
        replayed = self.replayed(sink)
        self.assertEqual(len(replayed), n, "every original delivery once more, no more")
        # Same idempotency keys, same event ids, same data; the marker names the replay.
        self.assertEqual(sorted(k for k, _ in replayed), sorted(k for k, _ in originals))
        by_key = {k: b for k, b in originals}
        for k, b in replayed:
            o = by_key[k]
            self.assertEqual(b["id"], o["id"])
            self.assertEqual(b["data"], o["data"])
            self.assertEqual(b["timestamp"], o["timestamp"])
            self.assertEqual(b["replay"]["listener_id"], "test")
            self.assertIsNone(b["replay"]["observer"])
            self.assertIsInstance(b["replay"]["id"], int)
            self.assertEqual(k.split(":")[0], b["id"])
        # Per entity, the replay keeps capture order (insert before update of order 2).
        two = [b["event_type"] for k, b in replayed if b["entity_id"] == "2" and ":all-orders:" in k]
        self.assertEqual(two, ["INSERT", "UPDATE"])
        status = ctl(port, "replay", "--status")
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertRegex(status.stdout, r"\n\d+\s+done\s+6\s+6\s")

        # The same request again: found, not replayed a second time.
        again = ctl(port, "replay", "--from", first_id)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("already requested", again.stdout)
        time.sleep(1.5)
        self.assertEqual(len(self.replayed(sink)), n)
        # --again replays once more, with the same keys.
        more = ctl(port, "replay", "--from", first_id, "--again")
        self.assertEqual(more.returncode, 0, more.stderr)
        wait_until(lambda: len(self.replayed(sink)) >= 2 * n, what="second replay")
        keys = collections.Counter(k for k, _ in self.replayed(sink))
        self.assertTrue(all(c == 2 for c in keys.values()), keys)
        self.assertEqual(node.stop(), 0)

    def test_observer_filter_and_time_range(self):
        sink = self.sink()
        node, port = self.start(sink)
        n = self.write_orders()
        wait_until(lambda: len(sink.delivered()) >= n, what="originals delivered")
        _, first_time = self.first_event()
        r = ctl(port, "replay", "--from", first_time, "--observer", "inserts")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertIn("for observer inserts", r.stdout)
        wait_until(lambda: len(self.replayed(sink)) >= 5, what="inserts replayed")
        time.sleep(1.0)
        replayed = self.replayed(sink)
        self.assertEqual(len(replayed), 5)
        self.assertTrue(all(":inserts:0" in k for k, _ in replayed))
        self.assertTrue(all(b["replay"]["observer"] == "inserts" for _, b in replayed))
        # --to bounds it: up to the third event only.
        third = self.sql("SELECT id::text FROM core.tb_entity_change_log"
                         " WHERE extra_metadata IS NULL ORDER BY txid, pk_entity_change_log"
                         " OFFSET 2 LIMIT 1")[0][0]
        r = ctl(port, "replay", "--from", first_time, "--to", third, "--observer", "all-orders")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertIn("queued: 3 event(s)", r.stdout)
        wait_until(lambda: len(self.replayed(sink)) >= 8, what="bounded replay")
        time.sleep(1.0)
        self.assertEqual(len(self.replayed(sink)), 8)

    def test_dry_run_delivers_nothing(self):
        sink = self.sink()
        node, port = self.start(sink)
        n = self.write_orders()
        wait_until(lambda: len(sink.delivered()) >= n, what="originals delivered")
        first_id, _ = self.first_event()
        r = ctl(port, "replay", "--from", first_id, "--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertIn("would replay 6 event(s)", r.stdout)
        self.assertRegex(r.stdout, r"inserts\s+5 event\(s\)")
        self.assertRegex(r.stdout, r"all-orders\s+6 event\(s\)")
        self.assertIn("actions that would run: 11", r.stdout)
        self.assertIn("nothing was delivered", r.stdout)
        j = ctl(port, "--format", "json", "replay", "--from", first_id, "--dry-run",
                "--observer", "inserts")
        self.assertEqual(j.returncode, 0, j.stderr)
        res = json.loads(j.stdout)["result"]
        self.assertEqual(res["observers"], [{"observer": "inserts", "events": 5}])
        time.sleep(1.5)
        self.assertEqual(len(sink.delivered()), n)
        self.assertEqual(self.sql("SELECT count(*) FROM observer_replays")[0][0], 0)
        self.assertEqual(self.sql("SELECT count(*) FROM core.tb_entity_change_log")[0][0], 6)

    def test_clear_errors(self):
        sink = self.sink()
        node, port = self.start(sink)
        n = self.write_orders()
        wait_until(lambda: len(sink.delivered()) >= n, what="originals delivered")
        ids = [r[0] for r in self.sql("SELECT id::text FROM core.tb_entity_change_log"
                                      " ORDER BY txid, pk_entity_change_log")]
        r = ctl(port, "replay", "--from", ids[0], "--observer", "nope")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown observer 'nope'", r.stderr)
        self.assertIn("inserts", r.stderr)
        r = ctl(port, "replay", "--from", ids[3], "--to", ids[1])
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"--from ({ids[3]}", r.stderr)
        self.assertIn(f"is after --to ({ids[1]}", r.stderr)
        r = ctl(port, "replay", "--from", "yesterday-ish")
        self.assertEqual(r.returncode, 2)
        self.assertIn("neither an event id (uuid) nor a time", r.stderr)
        r = ctl(port, "replay")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--from", r.stderr)
        # Pruned: the first two rows are gone (as retention removes them).
        self.sql("DELETE FROM core.tb_entity_change_log WHERE id::text = ANY(%s)", (ids[:2],))
        r = ctl(port, "replay", "--from", ids[0])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(f"event {ids[0]} is not in the change log", r.stderr)
        self.assertIn(f"The oldest retained event is {ids[2]}", r.stderr)
        r = ctl(port, "replay", "--from", "2000-01-01T00:00:00Z")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is before the oldest retained event", r.stderr)
        self.assertIn(ids[2], r.stderr)
        self.assertEqual(self.sql("SELECT count(*) FROM observer_replays")[0][0], 0)

    def test_only_the_leader_delivers_a_replay_asked_of_a_standby(self):
        sink = self.sink()
        leader, port = self.start(sink)
        n = self.write_orders()
        wait_until(lambda: len(sink.delivered()) >= n, what="originals delivered")
        standby = self.node(webhook_observer("inserts", "INSERT", "Order", sink.url + "/ins") +
                            webhook_observer("all-orders", "*", "Order", sink.url + "/all"))
        standby.start()
        wait_until(lambda: "standing by" in standby.output(), what="standby")
        sport = control_port(standby)
        first_id, _ = self.first_event()
        r = ctl(sport, "replay", "--from", first_id)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        wait_until(lambda: len(self.replayed(sink)) >= n, what="replayed by the leader")
        time.sleep(1.5)
        self.assertEqual(len(self.replayed(sink)), n)


if __name__ == "__main__":
    main()
