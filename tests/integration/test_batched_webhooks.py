"""Batched webhooks (webhook `batch_size` > 1, issue 19) on a live node against
the sink: one request carries a JSON array of events, each element with its
own idempotency key; per-entity capture order holds within and across
batches; a failing batch is retried whole and, after its last attempt, each
of its events goes to the DLQ on its own, from where it is redriven alone."""
import json

from harness import IntegrationTest, control_port, ctl, main, wait_until, webhook_observer

ENTITIES = 200
UPDATES = 2  # per entity, after its INSERT


def batched(url, size, max_attempts=3, wait_ms=20):
    return webhook_observer("batched", "*", "Order", url, max_attempts=max_attempts,
                            initial_delay_ms=50, max_delay_ms=100,
                            extra=f"batch_size = {size}\nbatch_max_wait_ms = {wait_ms}")


class BatchedWebhooksTest(IntegrationTest):
    def test_batches_carry_each_events_key_in_entity_order(self):
        sink = self.sink()
        n = self.node(batched(sink.url + "/batch", 50))
        self.setup_orders(n)
        n.start()
        c = self.connect()
        cur = c.cursor()
        cur.execute("INSERT INTO orders (customer, status, total) "
                    "SELECT 'c' || g, 'v0', g FROM generate_series(1, %s) g", (ENTITIES,))
        for v in range(1, UPDATES + 1):
            cur.execute("UPDATE orders SET status = %s", (f"v{v}",))
        total = ENTITIES * (UPDATES + 1)

        def elements():
            out = []
            for r in sorted(sink.delivered(), key=lambda r: r["t"]):
                for i, el in enumerate(json.loads(r["body"])):
                    out.append((r, el))
            return out

        wait_until(lambda: len(elements()) >= total, timeout=60, what="every event in a batch")
        reqs = sink.delivered()
        # Batches, not one request per event; each says how many it carries.
        self.assertLess(len(reqs), total / 5)
        for r in reqs:
            arr = json.loads(r["body"])
            self.assertIsInstance(arr, list)
            self.assertLessEqual(len(arr), 50)
            self.assertEqual(r["headers"].get("X-Fraiseql-Batch-Size"), str(len(arr)))
            self.assertTrue(r["idempotency_key"].startswith("batch-"), r["idempotency_key"])
            # One event per entity per batch.
            ids = [el["entity_id"] for el in arr]
            self.assertEqual(len(ids), len(set(ids)))
        els = elements()
        keys = [el["idempotency_key"] for _, el in els]
        self.assertEqual(len(keys), total)
        self.assertEqual(len(set(keys)), total, "each event once, under its own key")
        for _, el in els:
            self.assertEqual(el["idempotency_key"], f"{el['id']}:batched:0")
        # Capture order per entity across batches.
        versions = {}
        for _, el in els:
            versions.setdefault(str(el["entity_id"]), []).append(el["data"]["status"])
        want = [f"v{v}" for v in range(UPDATES + 1)]
        self.assertEqual({e: v for e, v in versions.items() if v != want}, {})
        # Capture order within a batch too: change-log order of its elements.
        order = {eid: i for i, eid in enumerate(self.change_log_ids())}
        for r in reqs:
            pos = [order[el["id"]] for el in json.loads(r["body"])]
            self.assertEqual(pos, sorted(pos))

    def test_failed_batch_is_retried_whole_then_dead_lettered_per_event(self):
        sink = self.sink(status=500)
        n = self.node(batched(sink.url + "/batch", 10, max_attempts=2, wait_ms=200),
                      extra="[control]\nenabled = true\nport = 0\n")
        self.setup_orders(n)
        n.start()
        self.sql("INSERT INTO orders (customer, status, total) "
                 "SELECT 'c' || g, 'new', g FROM generate_series(1, 10) g")
        rows = wait_until(lambda: (lambda r: r if len(r) >= 10 else None)(self.sql(
            "SELECT id, idempotency_key, attempts, event->>'id', last_error FROM observer_dlq "
            "ORDER BY id")), timeout=30, what="10 DLQ rows")
        self.assertEqual(len(rows), 10)
        self.assertEqual({r[1] for r in rows}, {f"{r[3]}:batched:0" for r in rows})
        self.assertTrue(all(r[2] == 2 and "HTTP 500" in r[4] for r in rows), rows)
        # Two attempts of one batch of ten, the same request each time.
        reqs = sink.records()
        self.assertEqual(len(reqs), 2)
        self.assertEqual(reqs[0]["idempotency_key"], reqs[1]["idempotency_key"])
        self.assertEqual([len(json.loads(r["body"])) for r in reqs], [10, 10])
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 10, what="checkpoint past them")
        # A redrive delivers that one event alone, under its own key.
        sink.control(status=200)
        port = control_port(n)
        r = ctl(port, "dlq", "retry", str(rows[3][0]))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        got = wait_until(lambda: sink.delivered(), what="the redriven event")
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]["idempotency_key"], rows[3][1])
        self.assertEqual(json.loads(got[0]["body"])["id"], rows[3][3])


if __name__ == "__main__":
    main()
