"""Prometheus metrics of a live node move as events flow."""
import re
import time
import urllib.request

from harness import IntegrationTest, main, wait_until


def scrape(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def value(text, name, labels=""):
    m = re.search(r"^" + re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)$",
                  text, re.M)
    return float(m.group(1)) if m else None


class MetricsTest(IntegrationTest):
    def test_counters_and_gauges_follow_the_pipeline(self):
        ok = self.sink()
        bad = self.sink(status=500)
        node = self.node(f"""
[[observers]]
name = "ok"
event_type = "INSERT"
entity = "Order"
condition = "data.total > `10`"
[[observers.actions]]
type = "webhook"
url = "{ok.url}/ok"

[[observers]]
name = "bad"
event_type = "INSERT"
entity = "Order"
[[observers.actions]]
type = "webhook"
url = "{bad.url}/bad"
[observers.retry]
max_attempts = 2
initial_delay_ms = 10
max_delay_ms = 10

[[observers]]
name = "broken-condition"
event_type = "INSERT"
entity = "Order"
condition = "changed('status')"
[[observers.actions]]
type = "log"
""", extra="[metrics]\nenabled = true\nport = 0\n")
        self.setup_orders(node)
        node.start()
        port = int(wait_until(lambda: re.search(r"metrics on http://127.0.0.1:(\d+)/metrics", node.output()),
                              what="metrics port").group(1))
        node_labels = 'listener_id="test"'
        wait_until(lambda: value(scrape(port), "observer_listener_health", node_labels) == 1,
                   what="healthy listener")
        text = scrape(port)
        self.assertEqual(value(text, "observer_events_processed_total", node_labels), 0)
        self.assertEqual(value(text, "observer_events_read_total", node_labels), 0)
        self.assertEqual(value(text, "observer_leader", node_labels), 1)
        self.assertEqual(value(text, "observer_build_info", 'version="0.1.0"'), 1)
        start = value(text, "observer_start_time_seconds")
        self.assertLess(abs(time.time() - start), 120)
        self.assertEqual(value(text, "observer_checkpoint_event_id", node_labels), 0)
        for total in (5, 20, 30):
            self.sql("INSERT INTO orders (customer, status, total) VALUES ('c', 'new', %s)", (total,))
        wait_until(lambda: value(scrape(port), "observer_dlq_items_total", 'observer="bad"') == 3,
                   what="3 DLQ items")
        text = scrape(port)
        self.assertEqual(value(text, "observer_events_read_total", node_labels), 3)
        self.assertEqual(value(text, "observer_events_processed_total", node_labels), 3)
        self.assertEqual(value(text, "observer_events_matched_total", 'observer="ok"'), 2)
        self.assertEqual(value(text, "observer_events_matched_total", 'observer="bad"'), 3)
        self.assertEqual(value(text, "observer_condition_errors_total", 'observer="broken-condition"'), 3)
        self.assertEqual(value(text, "observer_actions_executed_total", 'action_type="webhook",observer="ok"'), 2)
        self.assertEqual(value(text, "observer_actions_failed_total", 'action_type="webhook",observer="ok"'), 0)
        self.assertEqual(value(text, "observer_actions_executed_total", 'action_type="webhook",observer="bad"'), 6)
        self.assertEqual(value(text, "observer_actions_failed_total", 'action_type="webhook",observer="bad"'), 6)
        self.assertEqual(value(text, "observer_action_duration_seconds_count",
                               'action_type="webhook",observer="ok"'), 2)
        wait_until(lambda: value(scrape(port), "observer_event_processing_duration_seconds_count") == 3,
                   what="3 finished events")
        # All finished: the checkpoint moves to the last change-log row and the
        # backlog and checkpoint age drop back to 0.
        last_pk = self.sql("SELECT max(pk_entity_change_log) FROM core.tb_entity_change_log")[0][0]
        wait_until(lambda: value(scrape(port), "observer_checkpoint_event_id", node_labels) == last_pk,
                   what="checkpoint at the last event")
        wait_until(lambda: value(scrape(port), "observer_backlog_size", node_labels) == 0
                   and value(scrape(port), "observer_checkpoint_age_seconds", node_labels) == 0,
                   what="empty backlog")
        self.assertGreater(value(scrape(port), "observer_checkpoint_txid", node_labels), 0)
        self.assertEqual(node.stop(), 0)


if __name__ == "__main__":
    main()
