"""Deduplication on a real redis-server ([performance] enable_dedup), with real
observer-node processes killed with SIGKILL at controlled points:

1. two nodes handed the same events run each side effect once;
2. a node killed after the side effects (confirmed) and before its checkpoint:
   the redelivered events are skipped, nothing runs twice;
3. a node killed before the side effects succeeded: its successor (same
   listener id, the next lease epoch) takes the dead node's claims over at once
   and runs them, without waiting out claim_ttl_secs.
"""
import json
import os
import time

from harness import IntegrationTest, Redis, main, metric, metrics_port, wait_until, webhook_observer


def produce(dsn, n):
    import psycopg2
    c = psycopg2.connect(dsn)
    c.autocommit = True
    cur = c.cursor()
    for i in range(n):
        cur.execute("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', %s)", (f"c{i}", i))
    c.close()


def redis_section(url, claim_ttl=30, policy="fail_open"):
    return f"""
[redis]
url = "{url}"
claim_ttl_secs = {claim_ttl}
failure_policy = "{policy}"
dedup_window_secs = 600

[performance]
enable_dedup = true
"""


class DedupTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.redis = Redis()

    def observers(self, sink, max_attempts=3):
        return webhook_observer("order-insert", "INSERT", "Order", sink.url + "/hooks",
                                max_attempts=max_attempts, initial_delay_ms=50, max_delay_ms=200)

    def delivered_ids(self, sink):
        return [json.loads(r["body"])["id"] for r in sink.delivered()]

    def event_ids(self):
        return [r[0] for r in self.sql("SELECT id::text FROM core.tb_entity_change_log ORDER BY pk_entity_change_log")]

    def test_two_nodes_handed_the_same_events_run_each_once(self):
        sink = self.sink()
        sink.control(delay_ms=20)  # keep both nodes busy on the same events
        extra = redis_section(self.redis.url)
        a = self.node(self.observers(sink), listener_id="node-a", extra=extra)
        b = self.node(self.observers(sink), listener_id="node-b", extra=extra)
        self.setup_orders(a)
        produce(self.dsn, 60)
        a.start()
        b.start()
        wait_until(lambda: (self.checkpoint("node-a") or (0, 0))[1] == 60
                   and (self.checkpoint("node-b") or (0, 0))[1] == 60,
                   timeout=60, what="both nodes finish all 60 events")
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)
        got = self.delivered_ids(sink)
        self.assertEqual(sorted(set(got)), sorted(set(self.event_ids())))
        self.assertEqual(len(got), 60, f"each event delivered once, got {len(got)} deliveries")
        for eid in self.event_ids():
            self.assertEqual(self.redis.get(f"event:{eid}"), "done")
        # Both nodes read all 60; the work was split between them, not doubled.
        self.assertIn("deduplication on", a.output())

    def test_kill_after_side_effects_before_checkpoint_does_not_repeat_them(self):
        sink = self.sink()
        # The checkpoint is never saved while the node runs: everything it
        # finished is redelivered after the kill.
        node = self.node(self.observers(sink), extra=redis_section(self.redis.url),
                         checkpoint="batch_size = 4000000000\ninterval_ms = 4000000000")
        self.setup_orders(node)
        node.start()
        produce(self.dsn, 40)
        ids = self.event_ids()
        wait_until(lambda: len(sink.delivered()) >= 40, timeout=30, what="40 deliveries")
        # Confirms precede the checkpoint; wait until every event is marked done.
        wait_until(lambda: all(self.redis.get(f"event:{i}") == "done" for i in ids), timeout=10,
                   what="every event confirmed done")
        node.kill9()
        self.assertIsNone(self.checkpoint(), "no checkpoint saved before the kill")

        again = self.node(self.observers(sink),
                          extra=redis_section(self.redis.url) + "\n[metrics]\nenabled = true\nport = 0\n")
        again.start()
        port = metrics_port(again)
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 40, timeout=30,
                   what="the redelivered events finish")
        self.assertEqual(metric(port, "observer_dedup_hits_total"), 40, again.output())
        self.assertEqual(metric(port, "observer_dedup_misses_total"), 0)
        self.assertEqual(again.stop(), 0)
        got = self.delivered_ids(sink)
        self.assertEqual(len(got), 40, "no event ran twice")
        self.assertEqual(set(got), set(ids))

    def test_kill_before_side_effects_the_successor_takes_the_claims_over_at_once(self):
        sink = self.sink(status=503)  # every attempt fails: no side effect happens
        # No breaker: every retry must reach the (failing) sink, which is how
        # the test sees each event attempted.
        extra = redis_section(self.redis.url, claim_ttl=30) + "\n[circuit_breaker]\nenabled = false\n"
        node = self.node(self.observers(sink, max_attempts=1000), extra=extra)
        self.setup_orders(node)
        node.start()
        produce(self.dsn, 20)
        ids = self.event_ids()
        wait_until(lambda: len({json.loads(r["body"])["id"] for r in sink.records()}) == 20, timeout=30,
                   what="every event attempted")
        claims = [self.redis.get(f"event:{i}") for i in ids]
        self.assertTrue(all(c and c != "done" for c in claims), claims)
        node.kill9()
        killed_at = time.time()
        self.assertEqual(sink.delivered(), [])
        sink.control(status=200)

        again = self.node(self.observers(sink, max_attempts=1000), extra=extra)
        again.start()
        wait_until(lambda: set(self.delivered_ids(sink)) == set(ids), timeout=60,
                   what="the redelivery runs every event")
        first = min(r["t"] for r in sink.delivered())
        # The dead node's claims (30 s TTL) did not hold the successor back.
        self.assertLess(first - killed_at, 10.0)
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 20, timeout=30, what="checkpoint")
        self.assertEqual(again.stop(), 0)
        self.assertEqual(len(self.delivered_ids(sink)), 20, "each event succeeded once")
        for i in ids:
            self.assertEqual(self.redis.get(f"event:{i}"), "done")


if __name__ == "__main__":
    main()
