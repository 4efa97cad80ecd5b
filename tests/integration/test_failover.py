"""One leader per listener id: a lease (advisory lock + fencing epoch) in
PostgreSQL. A standby takes over when the leader dies; a fenced former leader
can never move the checkpoint again."""
import json
import time

from harness import IntegrationTest, main, wait_until, webhook_observer


class FailoverTest(IntegrationTest):
    def observers(self, sink):
        return webhook_observer("o", "INSERT", "Order", sink.url + "/x", max_attempts=20)

    def insert(self, n, prefix):
        for i in range(n):
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)", (f"{prefix}{i}",))

    def test_standby_takes_over_after_kill_9_without_loss_or_double_delivery(self):
        sink = self.sink()
        a = self.node(self.observers(sink))
        self.setup_orders(a)
        a.start()
        wait_until(lambda: "leading listener" in a.output(), what="a leads")
        b = self.node(self.observers(sink))
        b.start()
        wait_until(lambda: "standing by" in b.output(), what="b stands by")
        self.insert(50, "a")
        wait_until(lambda: len(sink.delivered()) >= 50, what="50 deliveries")
        time.sleep(0.3)
        self.assertNotIn("leading listener", b.output())
        a.kill9()
        wait_until(lambda: "leading listener" in b.output(), timeout=20, what="b takes over")
        self.insert(50, "b")
        ids = set(self.change_log_ids())
        wait_until(lambda: {json.loads(r["body"])["id"] for r in sink.delivered()} >= ids,
                   timeout=30, what="all 100 delivered")
        self.assertEqual(b.stop(), 0)
        got = [json.loads(r["body"])["id"] for r in sink.delivered()]
        self.assertEqual(set(got), ids)
        lease = self.sql("SELECT epoch FROM observer_leases WHERE listener_id = 'test'")
        self.assertEqual(lease[0][0], 2)
        self.assertEqual(self.checkpoint()[1], 100)

    def test_fenced_leader_stops_and_never_moves_the_checkpoint(self):
        sink = self.sink()
        a = self.node(self.observers(sink))
        self.setup_orders(a)
        a.start()
        wait_until(lambda: "leading listener" in a.output(), what="a leads")
        self.insert(5, "x")
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 5, what="checkpoint at 5")
        # Another node "takes over" (as after a network partition): the epoch moves on.
        self.sql("UPDATE observer_leases SET epoch = epoch + 1, holder = 'someone-else'")
        self.insert(5, "y")
        rc = a.proc.wait(20)
        self.assertNotEqual(rc, 0)
        self.assertRegex(a.output(), "refused|lost the leader lease")
        self.assertEqual(self.checkpoint()[1], 5)


if __name__ == "__main__":
    main()
