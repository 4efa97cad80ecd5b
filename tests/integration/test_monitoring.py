"""Monitoring of a live node: /healthz and /readyz across states (leader,
standby, database down and back, stopping), a scrape that passes
`promtool check metrics`, and the alert rules and Grafana dashboard only
using metrics a live node exports."""
import json
import os
import re
import subprocess
import urllib.error
import urllib.request

import yaml

from harness import REPO, IntegrationTest, Postgres, main, wait_until, webhook_observer

RULES = os.path.join(REPO, "config/prometheus/observer-alerts.yml")
DASHBOARD = os.path.join(REPO, "config/grafana/observer-dashboard.json")
METRICS = "[metrics]\nenabled = true\nport = 0\n"
# Series a node on transport "postgres" does not have: the connection gauge
# (only a process with a NATS connection reports it) and the per-partition
# consumer figures (only a worker that owns partitions).
NATS_ONLY = {"observer_nats_connected", "observer_nats_consumer_pending",
             "observer_nats_consumer_ack_pending", "observer_nats_consumer_max_ack_pending"}


def get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metrics_port(node):
    m = wait_until(lambda: re.search(r"metrics on http://127.0.0.1:(\d+)/metrics", node.output()),
                   what="metrics port")
    return int(m.group(1))


def sample_names(text):
    """Names of the samples in a text exposition (histograms give _bucket/_sum/_count)."""
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M)}


def promql_metric_names(expr):
    """observer_* metric names a PromQL expression selects."""
    return set(re.findall(r"\b(observer_[a-z0-9_]+)\b", expr))


def rule_exprs():
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    return {r["alert"]: r["expr"] for g in doc["groups"] for r in g["rules"]}


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            out.append((v["name"], v["definition"]))
    return out


OBSERVERS = lambda ok, bad: f"""
[[observers]]
name = "ok"
event_type = "INSERT"
entity = "Order"
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
"""


class MonitoringTest(IntegrationTest):
    def busy_node(self):
        """A leading node that has processed, failed, dead-lettered and mis-evaluated."""
        ok, bad = self.sink(), self.sink(status=500)
        # A one-node cluster, so that the cluster's series are exported too.
        cluster = "\n[cluster]\nenabled = true\nnode_name = \"solo\"\nport = 0\n"
        node = self.node(OBSERVERS(ok, bad), extra=METRICS + cluster)
        self.setup_orders(node)
        node.start()
        port = metrics_port(node)
        for total in (5, 20, 30):
            self.sql("INSERT INTO orders (customer, status, total) VALUES ('c', 'new', %s)", (total,))
        wait_until(lambda: re.search(r'^observer_dlq_items_total\{observer="bad"\} 3$', get(port, "/metrics")[1],
                                     re.M), what="3 DLQ items")
        wait_until(lambda: re.search(r"^observer_event_processing_duration_seconds_count 3$",
                                     get(port, "/metrics")[1], re.M), what="3 finished events")
        return node, port

    def test_live_scrape_passes_promtool_check_metrics(self):
        node, port = self.busy_node()
        status, text = get(port, "/metrics")
        self.assertEqual(status, 200)
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip() + r.stderr.strip(), "", "promtool lint findings")
        self.assertEqual(node.stop(), 0)

    def test_alert_rules_and_dashboard_use_only_exported_metrics(self):
        node, port = self.busy_node()
        names = sample_names(get(port, "/metrics")[1])
        rules = rule_exprs()
        self.assertGreaterEqual(len(rules), 6)
        for alert, expr in rules.items():
            used = promql_metric_names(expr)
            self.assertTrue(used, f"alert {alert} uses no observer_* metric")
            # observer_redis_health (DedupStoreUnavailable) exists only with
            # [redis]: test_redis_outage scrapes it from a node that has one.
            # The NATS series below exist only on transport "nats" (the
            # consumer figures once a worker owns a partition):
            # test_nats_topology scrapes them from a bridge and workers.
            self.assertLessEqual(used, names | {"observer_redis_health"} | NATS_ONLY,
                                 f"alert {alert}: {expr}")
        exprs = dashboard_exprs()
        self.assertGreaterEqual(len(exprs), 10)
        # Series that exist only once something happened: a breaker leaving
        # closed (they are tested in test_circuit_breaker).
        conditional = {"observer_circuit_breaker_state", "observer_circuit_breaker_rejected_total",
                       "observer_redis_health",  # only with [redis]
                       "observer_cluster_leader_changes_total"}  # once a leader changed
        conditional |= NATS_ONLY  # transport "nats" only: test_nats_topology
        for title, expr in exprs:
            used = promql_metric_names(expr)
            self.assertTrue(used, f"panel {title} uses no observer_* metric")
            self.assertLessEqual(used - conditional, names, f"panel {title}: {expr}")
        # Every family the node exports is on the dashboard (histograms via _bucket).
        on_dashboard = set().union(*(promql_metric_names(e) for _, e in exprs))
        families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in names if n.startswith("observer_")}
        shown = {re.sub(r"_(bucket|sum|count)$", "", n) for n in on_dashboard}
        self.assertEqual(families - shown, set(), "exported but not on the dashboard")
        self.assertEqual(node.stop(), 0)

    def test_leader_ready_standby_live_but_not_ready(self):
        obs = "[[observers]]\nname = \"log\"\nevent_type = \"INSERT\"\nentity = \"Order\"\n" \
              "[[observers.actions]]\ntype = \"log\"\n"
        a = self.node(obs, extra=METRICS)
        self.setup_orders(a)
        a.start()
        pa = metrics_port(a)
        wait_until(lambda: get(pa, "/readyz") == (200, "ok\n"), what="leader ready")
        self.assertEqual(get(pa, "/healthz"), (200, "ok\n"))
        b = self.node(obs, extra=METRICS).start()
        pb = metrics_port(b)
        wait_until(lambda: "standing by" in b.output(), what="b stands by")
        self.assertEqual(get(pb, "/healthz"), (200, "ok\n"))
        status, body = get(pb, "/readyz")
        self.assertEqual(status, 503)
        self.assertRegex(body, r"^standby: listener 'test' is led by another node")
        text = get(pb, "/metrics")[1]
        self.assertRegex(text, r'(?m)^observer_leader\{listener_id="test"\} 0$')
        self.assertRegex(get(pa, "/metrics")[1], r'(?m)^observer_leader\{listener_id="test"\} 1$')
        # Unknown paths and methods are refused plainly.
        self.assertEqual(get(pa, "/nope")[0], 404)
        req = urllib.request.Request(f"http://127.0.0.1:{pa}/readyz", data=b"x", method="POST")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req, timeout=5)
        self.assertEqual(cm.exception.code, 405)
        # The leader leaves: the standby takes over and becomes ready.
        self.assertEqual(a.stop(), 0)
        wait_until(lambda: get(pb, "/readyz") == (200, "ok\n"), timeout=30, what="b ready after takeover")
        self.assertRegex(get(pb, "/metrics")[1], r'(?m)^observer_leader\{listener_id="test"\} 1$')
        self.assertEqual(b.stop(), 0)

    def test_database_down_not_ready_then_ready_again(self):
        pg = Postgres(private_dir=os.path.join(self.workdir, "pg"))
        self.cleanups.append(pg.stop)
        self.dsn = pg.dsn(pg.create_database())
        sink = self.sink()
        node = self.node(webhook_observer("hook", "INSERT", "Order", sink.url + "/h"), extra=METRICS)
        self.setup_orders(node)
        node.start()
        port = metrics_port(node)
        wait_until(lambda: get(port, "/readyz") == (200, "ok\n"), what="ready")
        pg.kill()
        wait_until(lambda: get(port, "/readyz")[0] == 503, what="not ready without the database")
        status, body = get(port, "/readyz")
        self.assertRegex(body, r"^database unreachable")
        self.assertEqual(get(port, "/healthz"), (200, "ok\n"), "a database outage is not a liveness failure")
        self.assertRegex(get(port, "/metrics")[1], r'(?m)^observer_listener_health\{listener_id="test"\} 0$')
        pg.restart()
        wait_until(lambda: get(port, "/readyz") == (200, "ok\n"), timeout=30, what="ready again")
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('c', 'new', 1)")
        wait_until(lambda: len(sink.delivered()) == 1, what="delivery after the outage")
        self.assertEqual(node.stop(), 0)

    def test_waiting_for_database_at_start_is_live_not_ready(self):
        # The node retries start() while the database is unreachable: probes already answer.
        node = self.node("[[observers]]\nname = \"log\"\nevent_type = \"INSERT\"\nentity = \"Order\"\n"
                         "[[observers.actions]]\ntype = \"log\"\n", extra=METRICS)
        with open(node.config) as f:
            cfg = f.read()
        with open(node.config, "w") as f:
            f.write(cfg.replace(self.dsn, "postgresql://postgres@127.0.0.1:1/nowhere"))
        node.start()
        port = metrics_port(node)
        self.assertEqual(get(port, "/healthz"), (200, "ok\n"))
        wait_until(lambda: get(port, "/readyz")[1].startswith("database unreachable"), what="reason")
        self.assertEqual(get(port, "/readyz")[0], 503)
        self.assertEqual(node.stop(), 0)

    def test_stopping_node_fails_healthz_while_draining(self):
        sink = self.sink()
        sink.control(delay_ms=2000)  # keep an event in flight when SIGTERM arrives (timeout 3 s)
        node = self.node(webhook_observer("slow", "INSERT", "Order", sink.url + "/slow"), extra=METRICS)
        self.setup_orders(node)
        node.start()
        port = metrics_port(node)
        wait_until(lambda: get(port, "/readyz")[0] == 200, what="ready")
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('c', 'new', 1)")
        wait_until(lambda: re.search(r'(?m)^observer_backlog_size\{listener_id="test"\} 1$',
                                     get(port, "/metrics")[1]), what="one event in flight")
        node.proc.send_signal(15)
        wait_until(lambda: get(port, "/healthz") == (503, "stopping\n"), what="healthz 503 while draining")
        self.assertEqual(get(port, "/readyz"), (503, "stopping\n"))
        self.assertEqual(node.proc.wait(30), 0)
        self.assertEqual(len(sink.delivered()), 1, "the in-flight event was drained, not dropped")
        self.assertEqual(self.checkpoint()[1], 1)


if __name__ == "__main__":
    main()
