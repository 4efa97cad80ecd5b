"""End to end on a real PostgreSQL and a real HTTP sink: envelopes, idempotency
keys, per-entity order, and the visibility fence under out-of-order commits."""
import json
import random
import threading
import time

from harness import IntegrationTest, main, wait_until, webhook_observer


class PipelineTest(IntegrationTest):
    def start_node(self, sink, capture_before=True, **kw):
        obs = "".join(webhook_observer(f"order-{t.lower()}", t, "Order", sink.url + "/hooks")
                      for t in ("INSERT", "UPDATE", "DELETE"))
        obs += webhook_observer("custom", "CUSTOM", "Invoice", sink.url + "/custom")
        node = self.node(obs, **kw)
        self.setup_orders(node, capture_before)
        return node.start()

    def test_every_change_becomes_one_webhook_with_its_envelope(self):
        sink = self.sink()
        node = self.start_node(sink)
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 100.00)")
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('bob', 'new', 5), ('cy', 'new', 7)")
        self.sql("UPDATE orders SET status = 'shipped' WHERE customer = 'ada'")
        self.sql("DELETE FROM orders WHERE customer = 'cy'")
        self.sql("SELECT observer_emit('Invoice', 'inv-1', '{\"amount\": 12}'::jsonb)")
        ids = wait_until(lambda: len(self.change_log_ids()) == 6 and self.change_log_ids(), what="6 log rows")
        wait_until(lambda: len(sink.delivered()) >= 6, what="6 deliveries")
        time.sleep(0.3)  # nothing more may arrive
        got = sink.delivered()
        self.assertEqual(len(got), 6, got)
        bodies = [json.loads(r["body"]) for r in got]
        self.assertEqual(sorted(b["id"] for b in bodies), sorted(ids))
        by_type = {}
        for r, b in zip(got, bodies):
            by_type.setdefault(b["event_type"], []).append((r, b))
            obs = {"INSERT": "order-insert", "UPDATE": "order-update", "DELETE": "order-delete",
                   "CUSTOM": "custom"}[b["event_type"]]
            self.assertEqual(r["idempotency_key"], f'{b["id"]}:{obs}:0')
            self.assertEqual(r["headers"].get("Content-Type"), "application/json")
            self.assertEqual(r["headers"].get("X-Fraiseql-Event-Id"), b["id"])
            for k in ("id", "event_type", "entity_type", "entity_id", "data", "old", "timestamp",
                      "tenant_id", "user_id", "trace_id"):
                self.assertIn(k, b)
            self.assertRegex(b["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertEqual(len(by_type["INSERT"]), 3)
        upd = by_type["UPDATE"][0][1]
        self.assertEqual(upd["entity_type"], "Order")
        self.assertEqual(upd["data"]["status"], "shipped")
        self.assertEqual(upd["old"]["status"], "new")
        self.assertEqual(upd["changes"], {"status": {"old": "new", "new": "shipped"}})
        dele = by_type["DELETE"][0][1]
        self.assertEqual(dele["data"]["customer"], "cy")  # before-image for DELETE
        cus = by_type["CUSTOM"][0]
        self.assertEqual(cus[0]["path"], "/custom")
        self.assertEqual(cus[1]["entity_type"], "Invoice")
        self.assertEqual(cus[1]["entity_id"], "inv-1")
        self.assertEqual(cus[1]["data"], {"amount": 12})
        self.assertEqual(node.stop(), 0)
        self.assertEqual(self.checkpoint()[1], 6)

    def test_the_checkpoint_timestamp_the_spec_queries_moves(self):
        # Spec, troubleshooting: SELECT * FROM observer_checkpoints ORDER BY
        # created_at DESC LIMIT 1, wait, run again: a newer timestamp.
        sink = self.sink()
        self.start_node(sink)
        query = "SELECT created_at, events_total FROM observer_checkpoints ORDER BY created_at DESC LIMIT 1"
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1)")
        wait_until(lambda: (self.sql(query) or [(None, 0)])[0][1] >= 1, what="first checkpoint")
        first = self.sql(query)[0][0]
        time.sleep(0.05)
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('bob', 'new', 2)")
        wait_until(lambda: self.sql(query)[0][1] >= 2, what="second checkpoint")
        self.assertGreater(self.sql(query)[0][0], first)

    def test_without_pre_image_update_has_no_old(self):
        sink = self.sink()
        self.start_node(sink, capture_before=False)
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1)")
        self.sql("UPDATE orders SET status = 'paid'")
        wait_until(lambda: len(sink.delivered()) >= 2, what="2 deliveries")
        # INSERT and UPDATE go to different observers (different lanes): their
        # deliveries may arrive in either order.
        upd = [b for b in (json.loads(r["body"]) for r in sink.delivered()) if b["event_type"] == "UPDATE"]
        self.assertEqual(len(upd), 1)
        upd = upd[0]
        self.assertIsNone(upd["old"])
        self.assertNotIn("changes", upd)

    def test_session_settings_are_recorded(self):
        sink = self.sink()
        self.start_node(sink)
        c = self.connect(autocommit=False)
        cur = c.cursor()
        cur.execute("SET LOCAL fraiseql.tenant_id = 'acme'")
        cur.execute("SET LOCAL fraiseql.user_id = 'u-7'")
        cur.execute("SET LOCAL fraiseql.trace_id = 'trace-9'")
        cur.execute("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1)")
        c.commit()
        wait_until(lambda: sink.delivered(), what="delivery")
        b = json.loads(sink.delivered()[0]["body"])
        self.assertEqual((b["tenant_id"], b["user_id"], b["trace_id"]), ("acme", "u-7", "trace-9"))

    def test_transactions_committing_out_of_id_order_lose_nothing(self):
        sink = self.sink()
        self.start_node(sink)
        early = self.connect(autocommit=False)
        late = self.connect(autocommit=False)
        # `early` takes the smaller txid and change-log pk, `late` commits first.
        early.cursor().execute("INSERT INTO orders (customer, status, total) VALUES ('early', 'new', 1)")
        late.cursor().execute("INSERT INTO orders (customer, status, total) VALUES ('late', 'new', 2)")
        late.commit()
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('after', 'new', 3)")
        # The open transaction holds back nobody: committed rows flow at once.
        wait_until(lambda: len(sink.delivered()) >= 2, what="2 deliveries while `early` is open")
        time.sleep(0.3)
        customers = sorted(json.loads(r["body"])["data"]["customer"] for r in sink.delivered())
        self.assertEqual(customers, ["after", "late"])
        early.commit()
        wait_until(lambda: len(sink.delivered()) >= 3, what="3 deliveries")
        time.sleep(0.3)
        customers = sorted(json.loads(r["body"])["data"]["customer"] for r in sink.delivered())
        self.assertEqual(customers, ["after", "early", "late"])

    def test_a_transaction_open_across_a_restart_is_delivered_once(self):
        sink = self.sink()
        node = self.start_node(sink)
        long = self.connect(autocommit=False)
        long.cursor().execute("INSERT INTO orders (customer, status, total) VALUES ('long', 'new', 1)")
        for i in range(20):
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 2)", (f"c{i}",))
        wait_until(lambda: len(sink.delivered()) >= 20, what="20 deliveries while `long` is open")
        self.assertEqual(node.stop(), 0)
        # The checkpoint remembers the running transaction.
        pending = self.sql("SELECT pending_txids FROM observer_checkpoints WHERE listener_id = 'test'")[0][0]
        self.assertNotEqual(pending, "")
        long.cursor().execute("INSERT INTO orders (customer, status, total) VALUES ('long-2', 'new', 1)")
        long.commit()  # while no node runs
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('later', 'new', 3)")
        node.start()
        wait_until(lambda: len(sink.delivered()) >= 23, what="23 deliveries")
        time.sleep(0.5)
        customers = sorted(json.loads(r["body"])["data"]["customer"] for r in sink.delivered())
        self.assertEqual(customers, sorted([f"c{i}" for i in range(20)] + ["long", "long-2", "later"]))
        self.assertEqual(node.stop(), 0)
        self.assertEqual(self.sql("SELECT pending_txids FROM observer_checkpoints WHERE listener_id = 'test'")[0][0], "")
        self.assertEqual(self.checkpoint()[1], 23)

    def test_concurrent_writers_with_random_commit_delays_lose_nothing(self):
        sink = self.sink()
        node = self.start_node(sink, extra='[logging]\nlevel = "debug"\n')
        errors = []

        def writer(k):
            try:
                c = self.connect(autocommit=False)
                cur = c.cursor()
                rnd = random.Random(k)
                for i in range(40):
                    cur.execute("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', %s)",
                                (f"w{k}-{i}", i))
                    if rnd.random() < 0.3:
                        time.sleep(rnd.random() * 0.02)
                    if rnd.random() < 0.1:
                        c.rollback()  # rolled-back rows never become events
                    else:
                        c.commit()
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        ids = set(self.change_log_ids())
        wait_until(lambda: len(sink.delivered()) >= len(ids), timeout=30, what=f"{len(ids)} deliveries")
        node.stop()
        got = [json.loads(r["body"])["id"] for r in sink.delivered()]
        self.assertEqual(set(got), ids)
        # At-least-once: a second delivery is only allowed after a failed attempt
        # (e.g. a timeout on a loaded machine), and it carries the same key.
        log = node.output()
        for eid in {e for e in got if got.count(e) > 1}:
            self.assertRegex(log, eid + r".*attempt \d+ failed", f"duplicate of {eid} without a retry")

    def test_events_of_one_entity_arrive_in_capture_order(self):
        sink = self.sink()
        sink.control(delay_ms=2)
        self.start_node(sink)
        self.sql("INSERT INTO orders (id, customer, status, total) SELECT g, 'c', 'v0', 0 FROM generate_series(1, 5) g")
        for v in range(1, 21):
            self.sql("UPDATE orders SET status = %s", (f"v{v}",))
        wait_until(lambda: len(sink.delivered()) >= 105, timeout=30, what="105 deliveries")
        per_entity = {}
        for r in sink.delivered():
            b = json.loads(r["body"])
            if b["event_type"] == "UPDATE":
                per_entity.setdefault(b["entity_id"], []).append(int(b["data"]["status"][1:]))
        self.assertEqual(len(per_entity), 5)
        for ent, seq in per_entity.items():
            self.assertEqual(seq, list(range(1, 21)), f"entity {ent}")


if __name__ == "__main__":
    main()
