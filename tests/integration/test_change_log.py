"""Change-log retention ([change_log]): the leader deletes rows every checkpoint
has passed once they are past the retention period, never a row some reader
has not handled; a checkpoint that stays behind holds pruning back and is named
in the log; the figures reach the metrics."""
import re
import time

import psycopg2

from harness import IntegrationTest, main, metric, metrics_port, wait_until, webhook_observer

# One hour is the shortest retention: the tests age rows by moving created_at back.
RETENTION = """
[change_log]
retention_hours = 1
prune_interval_secs = 1
prune_batch_size = 100

[metrics]
enabled = true
port = 0
"""


class ChangeLogTest(IntegrationTest):
    def insert(self, n, prefix):
        for i in range(n):
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)",
                     (f"{prefix}{i}",))

    def rows(self):
        return self.sql("SELECT count(*) FROM core.tb_entity_change_log")[0][0]

    def age(self, hours, where="true"):
        self.sql("UPDATE core.tb_entity_change_log SET created_at = created_at - "
                 f"make_interval(hours => {hours}) WHERE {where}")

    def test_prunes_what_every_checkpoint_passed_and_nothing_else(self):
        sink = self.sink()
        # Many attempts: while the receiver fails, events stay unfinished (in
        # retries), not dead-lettered (a dead-lettered event is finished).
        node = self.node(webhook_observer("o", "INSERT", "Order", sink.url + "/x", max_attempts=1000,
                                          initial_delay_ms=200), extra=RETENTION)
        self.setup_orders(node)
        node.start()
        wait_until(lambda: "leading listener" in node.output(), what="leads")
        port = metrics_port(node)
        # A long transaction in another database of the cluster (txids are
        # cluster-wide): it is in every read's snapshot, so in the checkpoint's
        # pending list, and must not hold this database's retention back.
        other = psycopg2.connect(self.pg.dsn("postgres"))
        self.cleanups.append(other.close)
        other.cursor().execute("SELECT pg_current_xact_id()")
        self.insert(250, "a")
        wait_until(lambda: len(sink.delivered()) >= 250, what="250 delivered")
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 250, what="checkpoint at 250")
        # Young rows stay, however far the checkpoint is past them.
        time.sleep(2.5)
        self.assertEqual(self.rows(), 250)
        # The first 200 age past the retention period: they go, in batches of 100.
        self.age(2, "pk_entity_change_log <= 200")
        wait_until(lambda: self.rows() == 50, timeout=20, what="200 pruned")
        wait_until(lambda: metric(port, "observer_change_log_pruned_total") == 200,
                   what="200 counted")
        pending = self.sql("SELECT pending_txids FROM observer_checkpoints")[0][0]
        self.assertNotEqual(pending, "", "the other database's transaction is pending")
        left = [r[0] for r in self.sql("SELECT pk_entity_change_log FROM core.tb_entity_change_log")]
        self.assertEqual(sorted(left), list(range(201, 251)))
        wait_until(lambda: metric(port, "observer_change_log_bytes") > 0, what="size reported")
        self.assertEqual(metric(port, "observer_change_log_prune_overdue_seconds"), 0)

        # Rows the pipeline has not finished are never pruned, however old:
        # the receiver fails, the events wait in retries.
        sink.control(status=500)
        self.insert(20, "b")
        wait_until(lambda: self.rows() == 70, what="20 more rows")
        self.age(3)  # everything is now past the retention period
        wait_until(lambda: self.rows() == 20, timeout=20, what="the 50 handled rows pruned")
        kept = self.sql("SELECT min(pk_entity_change_log) FROM core.tb_entity_change_log")[0][0]
        self.assertEqual(kept, 251)
        time.sleep(2.5)
        self.assertEqual(self.rows(), 20, "unfinished events were pruned")
        self.assertEqual(self.sql("SELECT count(*) FROM observer_dlq")[0][0], 0)
        sink.control(status=200)
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 270, timeout=30,
                   what="the 20 delivered")
        self.age(3)
        wait_until(lambda: self.rows() == 0, timeout=20, what="all pruned once handled")
        self.assertEqual(node.stop(), 0)

    def test_a_checkpoint_left_behind_holds_pruning_back_and_is_named(self):
        sink = self.sink()
        node = self.node(webhook_observer("o", "INSERT", "Order", sink.url + "/x"), extra=RETENTION)
        self.setup_orders(node)
        # A listener id that ran once and is gone: its checkpoint never moves.
        self.sql("INSERT INTO observer_checkpoints (listener_id, event_id, txid, events_total,"
                 " last_processed_at) VALUES ('retired', 0, '1', 0, now() - interval '9 days')")
        node.start()
        wait_until(lambda: "leading listener" in node.output(), what="leads")
        port = metrics_port(node)
        self.insert(30, "a")
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 30, what="checkpoint at 30")
        self.age(3)
        m = wait_until(lambda: re.search(r"checkpoint of listener 'retired' .* holds pruning back",
                                         node.output()), timeout=20, what="the holder named")
        self.assertIn("DELETE FROM observer_checkpoints WHERE listener_id = 'retired'", node.output())
        self.assertEqual(self.rows(), 30)
        wait_until(lambda: metric(port, "observer_change_log_prune_overdue_seconds") > 3600,
                   what="overdue reported")
        # Removing it lets pruning proceed.
        self.sql("DELETE FROM observer_checkpoints WHERE listener_id = 'retired'")
        wait_until(lambda: self.rows() == 0, timeout=20, what="pruned once it is gone")
        wait_until(lambda: metric(port, "observer_change_log_prune_overdue_seconds") == 0,
                   what="overdue back to 0")
        self.assertEqual(node.stop(), 0)

    def test_prune_off_keeps_every_row_and_still_reports(self):
        sink = self.sink()
        node = self.node(webhook_observer("o", "INSERT", "Order", sink.url + "/x"),
                         extra=RETENTION.replace("[change_log]\n", "[change_log]\nprune = false\n"))
        self.setup_orders(node)
        node.start()
        port = metrics_port(node)
        self.insert(10, "a")
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 10, what="checkpoint at 10")
        self.age(5)
        wait_until(lambda: metric(port, "observer_change_log_oldest_age_seconds") > 5 * 3600,
                   what="oldest age reported")
        time.sleep(2.5)
        self.assertEqual(self.rows(), 10)
        self.assertEqual(metric(port, "observer_change_log_prune_overdue_seconds"), 0)
        self.assertEqual(node.stop(), 0)


if __name__ == "__main__":
    main()
