"""Failing endpoints: retries with backoff, then a DLQ row; 4xx goes to the DLQ
at once; a failing endpoint does not stall another observer."""
import json
import time

from harness import IntegrationTest, main, wait_until, webhook_observer


class DlqTest(IntegrationTest):
    def dlq_rows(self):
        return self.sql("SELECT observer_name, action_index, action_type, attempts, last_error,"
                        " idempotency_key, event->>'id', status FROM observer_dlq ORDER BY id")

    def test_500_retries_then_dead_letters_and_checkpoint_moves_on(self):
        sink = self.sink(status=500)
        node = self.node(webhook_observer("flaky", "INSERT", "Order", sink.url + "/x",
                                          max_attempts=4, initial_delay_ms=50, max_delay_ms=100))
        self.setup_orders(node)
        node.start()
        t0 = time.time()
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1)")
        rows = wait_until(self.dlq_rows, timeout=20, what="a DLQ row")
        elapsed = time.time() - t0
        self.assertEqual(len(rows), 1)
        obs, idx, typ, attempts, err, key, eid, status = rows[0]
        self.assertEqual((obs, idx, typ, attempts, status), ("flaky", 0, "webhook", 4, "pending"))
        self.assertIn("HTTP 500", err)
        self.assertEqual(key, f"{eid}:flaky:0")
        reqs = sink.records()
        self.assertEqual(len(reqs), 4)
        self.assertTrue(all(r["idempotency_key"] == key for r in reqs))
        # Backoff: 50 + 100 + 100 ms minus at most 20% jitter each.
        self.assertGreaterEqual(reqs[-1]["t"] - reqs[0]["t"], 0.2)
        self.assertLess(elapsed, 15)
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 1, what="checkpoint past the dead-lettered event")
        self.assertEqual(node.stop(), 0)

    def test_4xx_is_not_retried(self):
        sink = self.sink(status=422)
        node = self.node(webhook_observer("strict", "INSERT", "Order", sink.url + "/x", max_attempts=5))
        self.setup_orders(node)
        node.start()
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1)")
        rows = wait_until(self.dlq_rows, what="a DLQ row")
        self.assertEqual(rows[0][3], 1)
        self.assertIn("HTTP 422", rows[0][4])
        self.assertEqual(len(sink.records()), 1)

    def test_transient_failures_recover_without_dlq(self):
        sink = self.sink()
        sink.control(fail_next=2, fail_status=503)
        node = self.node(webhook_observer("retrying", "INSERT", "Order", sink.url + "/x", max_attempts=3))
        self.setup_orders(node)
        node.start()
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1)")
        wait_until(lambda: sink.delivered(), what="a delivery")
        self.assertEqual(len(sink.records()), 3)
        time.sleep(0.2)
        self.assertEqual(self.dlq_rows(), [])

    def test_unreachable_endpoint_does_not_stall_other_observers(self):
        good = self.sink()
        obs = webhook_observer("dead", "INSERT", "Order", "http://127.0.0.1:9/unreachable",
                               max_attempts=50, initial_delay_ms=200, max_delay_ms=1000)
        obs += webhook_observer("alive", "INSERT", "Order", good.url + "/ok")
        node = self.node(obs)
        self.setup_orders(node)
        node.start()
        for i in range(20):
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)", (f"c{i}",))
        wait_until(lambda: len(good.delivered()) >= 20, timeout=10, what="20 deliveries to the live endpoint")
        # The dead observer's events are still retrying, so the checkpoint has not passed them.
        cp = self.checkpoint()
        self.assertTrue(cp is None or cp[1] == 0)
        node.kill9()


if __name__ == "__main__":
    main()
