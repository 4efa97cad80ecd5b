"""Crashes and outages: kill -9 of the node mid-stream, graceful stop
mid-stream, PostgreSQL restarted mid-stream. The sink's tally proves no loss."""
import json
import os
import threading
import time

from harness import IntegrationTest, Postgres, deliveries_by_id, main, wait_until, webhook_observer


def producer(dsn, n, stop_evt=None, pause=0.002):
    import psycopg2
    c = psycopg2.connect(dsn)
    c.autocommit = True
    cur = c.cursor()
    for i in range(n):
        cur.execute("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', %s)", (f"c{i}", i))
        if pause:
            time.sleep(pause)
    c.close()


class RecoveryTest(IntegrationTest):
    def make_node(self, sink, **kw):
        obs = webhook_observer("order-insert", "INSERT", "Order", sink.url + "/hooks",
                               max_attempts=20, initial_delay_ms=20, max_delay_ms=200)
        return self.node(obs, **kw)

    def delivered_ids(self, sink):
        out = []
        for r in sink.delivered():
            try:
                out.append(json.loads(r["body"])["id"])
            except ValueError as e:
                # Seen once and not reproduced: keep the whole record for the report.
                raise AssertionError(f"sink record with a body that is not JSON ({e}): {r!r}") from e
        return out

    def test_kill_9_mid_stream_then_restart_delivers_everything(self):
        sink = self.sink()
        sink.control(delay_ms=3)  # keep events in flight when the kill lands
        node = self.make_node(sink)
        self.setup_orders(node)
        node.start()
        t = threading.Thread(target=producer, args=(self.dsn, 400))
        t.start()
        wait_until(lambda: len(sink.delivered()) >= 100, what="100 deliveries")
        node.kill9()
        t.join()
        # The checkpoint the dead node left: the restarted one resumes after it.
        saved = self.checkpoint()[1]
        restarted_at = time.time()  # every later request comes from the second node
        node.start()  # same config, same listener id: resumes from the checkpoint
        # One writer, one row per transaction: change-log order is read order,
        # so the saved checkpoint covers exactly the first `saved` of these.
        ids = self.change_log_ids()
        self.assertEqual(len(set(ids)), 400)
        wait_until(lambda: set(self.delivered_ids(sink)) >= set(ids), timeout=60,
                   what="all 400 delivered")
        self.assertEqual(node.stop(), 0)
        records = sink.delivered()
        keys = deliveries_by_id(records)
        first_life = deliveries_by_id([r for r in records if r["t"] < restarted_at])
        second_life = deliveries_by_id([r for r in records if r["t"] >= restarted_at])
        again = sorted(set(first_life) & set(second_life))
        print(f"kill -9 after {len(first_life)} events delivered, checkpoint at {saved}: "
              f"{len(records)} deliveries, {len(again)} events redelivered after the restart")
        # Nothing lost, nothing foreign.
        self.assertEqual(set(keys), set(ids))
        self.assertEqual(self.checkpoint()[1], 400)
        # The same documented key on every delivery of an event (retries and
        # redeliveries alike).
        for i, ks in keys.items():
            self.assertEqual(set(ks), {f"{i}:order-insert:0"}, f"event {i}: keys {ks}")
        # Redelivery is bounded by what was in flight at the kill: the events
        # the first life read that its saved checkpoint does not cover. Never
        # an event of the checkpointed prefix comes again.
        # (Not bounded by listener.max_in_flight: credits return per finished
        # event, so one slow event holds the checkpoint back while the listener
        # reads and delivers on behind it; with max_in_flight = 32 this test
        # saw ~100 events redelivered behind one slow first request.)
        covered = sorted(ids.index(i) for i in set(again) & set(ids[:saved]))
        self.assertFalse(covered, f"redelivered events (log positions {covered}) that the saved "
                                  f"checkpoint ({saved} events) covers")
        self.assertLessEqual(len(again), len(first_life) - saved)

    def test_graceful_stop_mid_stream_drains_and_restart_redelivers_nothing(self):
        sink = self.sink()
        sink.control(delay_ms=2)
        node = self.make_node(sink)
        self.setup_orders(node)
        node.start()
        producer(self.dsn, 150, pause=0)
        wait_until(lambda: len(sink.delivered()) >= 20, what="20 deliveries")
        self.assertEqual(node.stop(), 0)
        n_first = len(sink.delivered())
        cp = self.checkpoint()
        # Everything read was drained before the checkpoint flush.
        self.assertEqual(cp[1], n_first)
        node.start()
        ids = set(self.change_log_ids())
        wait_until(lambda: set(self.delivered_ids(sink)) >= ids, timeout=30, what="all delivered")
        node.stop()
        got = self.delivered_ids(sink)
        self.assertEqual(len(got), len(ids), "a graceful stop causes no redelivery")

    def test_postgres_restart_mid_stream_node_reconnects(self):
        pg = Postgres(private_dir=os.path.join(self.workdir, "pg"))
        self.cleanups.append(pg.stop)
        self.dsn = pg.dsn(pg.create_database())
        sink = self.sink()
        node = self.make_node(sink)
        self.setup_orders(node)
        node.start()
        producer(self.dsn, 50, pause=0)
        wait_until(lambda: len(sink.delivered()) >= 50, what="first 50")
        pg.restart()
        producer(self.dsn, 50, pause=0)
        pg.kill()  # crash-like stop while the node is idle-waiting
        time.sleep(0.5)
        pg.restart()
        producer(self.dsn, 50, pause=0)
        ids = set(self.change_log_ids())
        self.assertEqual(len(ids), 150)
        wait_until(lambda: set(self.delivered_ids(sink)) >= ids, timeout=60, what="all 150 delivered")
        self.assertEqual(node.stop(), 0)
        self.assertIn("database unavailable", node.output())
        self.assertEqual(self.checkpoint()[1], 150)

    def test_a_database_outage_longer_than_the_lease_does_not_stop_a_lone_leader(self):
        # The lease (1 s here) expires while PostgreSQL is down: the leader
        # starts nothing meanwhile, and when the database is back nobody took
        # over, so its renewal succeeds and it carries on, without a restart.
        pg = Postgres(private_dir=os.path.join(self.workdir, "pg"))
        self.cleanups.append(pg.stop)
        self.dsn = pg.dsn(pg.create_database())
        sink = self.sink()
        node = self.make_node(sink, extra="[failover]\nhealth_check_interval_ms = 200\n"
                                          "failover_threshold_ms = 1000\n")
        self.setup_orders(node)
        node.start()
        producer(self.dsn, 20, pause=0)
        wait_until(lambda: len(sink.delivered()) >= 20, what="first 20")
        pg.kill()
        wait_until(lambda: "expired before it could be renewed" in node.output(), timeout=20,
                   what="the lease expires during the outage")
        time.sleep(1)
        pg.restart()
        producer(self.dsn, 20, pause=0)
        ids = set(self.change_log_ids())
        self.assertEqual(len(ids), 40)
        wait_until(lambda: set(self.delivered_ids(sink)) >= ids, timeout=60, what="all 40 delivered")
        self.assertIsNone(node.proc.poll(), "the leader kept running")
        self.assertIn("is renewed: nobody took over", node.output())
        self.assertEqual(self.sql("SELECT epoch FROM observer_leases")[0][0], 1)
        self.assertEqual(node.stop(), 0)
        self.assertEqual(self.checkpoint()[1], 40)


if __name__ == "__main__":
    main()
