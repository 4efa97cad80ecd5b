"""Conditions and templates in the running pipeline."""
import json
import time

from harness import IntegrationTest, main, wait_until


OBSERVERS = """
[[observers]]
name = "shipped"
event_type = "UPDATE"
entity = "Order"
condition = "changed_to('status', 'shipped') && event.data.total > `100`"

[[observers.actions]]
type = "webhook"
url = "{sink}/orders/{{{{ data.id }}}}/shipped"
headers = {{ "X-Customer" = "{{{{ data.customer }}}}" }}
body_template = '{{"order": {{{{ data.id }}}}, "note": "shipped to {{{{ data.customer }}}}", "before": {{{{ old.status }}}}}}'

[[observers]]
name = "big-insert"
event_type = "INSERT"
entity = "Order"
condition = "data.total >= `100.00`"

[[observers.actions]]
type = "webhook"
url = "{sink}/big"
body_template = "{{{{ data }}}}"

[[observers]]
name = "needs-pre-image"
event_type = "INSERT"
entity = "Order"
condition = "changed('status')"

[[observers.actions]]
type = "webhook"
url = "{sink}/never"
"""


class ConditionsTest(IntegrationTest):
    def test_conditions_filter_and_templates_render(self):
        sink = self.sink()
        node = self.node(OBSERVERS.format(sink=sink.url))
        self.setup_orders(node, capture_before=True)
        node.start()
        self.sql("INSERT INTO orders (id, customer, status, total) VALUES"
                 " (1, 'ada \"the\" first', 'new', 150), (2, 'bob', 'new', 99.99), (3, 'cy', 'new', 100)")
        self.sql("UPDATE orders SET status = 'shipped'")  # 1 and 3 qualify on status; only 1 on total
        self.sql("UPDATE orders SET total = total + 1")   # status unchanged: no fire
        wait_until(lambda: len(sink.delivered()) >= 3, what="3 deliveries")
        time.sleep(0.5)
        got = sink.delivered()
        paths = sorted(r["path"] for r in got)
        self.assertEqual(paths, ["/big", "/big", "/orders/1/shipped"])
        shipped = [r for r in got if r["path"] == "/orders/1/shipped"][0]
        body = json.loads(shipped["body"])
        self.assertEqual(body, {"order": 1, "note": 'shipped to ada "the" first', "before": "new"})
        self.assertEqual(shipped["headers"]["X-Customer"], 'ada "the" first')
        bigs = sorted(json.loads(r["body"])["customer"] for r in got if r["path"] == "/big")
        self.assertEqual(bigs, ['ada "the" first', "cy"])  # 100.00 == 100 numerically
        # changed() on an INSERT (no pre-image) is an evaluation error: no fire, logged, no stall.
        self.assertIn("needs-pre-image", node.output())
        self.assertEqual(node.stop(), 0)
        self.assertEqual(self.checkpoint()[1], 9)

    def test_bad_condition_is_a_config_error(self):
        sink = self.sink()
        node = self.node("""
[[observers]]
name = "broken"
event_type = "INSERT"
entity = "Order"
condition = "data.status == "

[[observers.actions]]
type = "webhook"
url = "%s/x"
""" % sink.url)
        import subprocess
        from harness import NODE
        r = subprocess.run([NODE, "--config", node.config, "--validate"], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 2)
        self.assertIn("broken", r.stderr)
        self.assertIn("column", r.stderr)


if __name__ == "__main__":
    main()
