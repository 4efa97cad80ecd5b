"""The NATS JetStream topology (docs/nats.md): a bridge (--role bridge)
publishes the change log into the stream, workers (--role worker) consume
it by partition and run the observers. Real nats-server(s) from
scripts/nats.sh, real PostgreSQL, the webhook sink; all on loopback."""
import json
import os
import time
import uuid

from harness import (IntegrationTest, Nats, main, wait_until, webhook_observer, metrics_port,
                     metric)


def nats_section(nats_url, partitions=8, ack_wait_ms=4000, lease_ms=3000, extra=""):
    return f"""
[transport]
transport = "nats"

[nats]
url = "{nats_url}"
partitions = {partitions}
ack_wait_ms = {ack_wait_ms}
partition_lease_ms = {lease_ms}
publish_ack_timeout_ms = 2000
{extra}
"""


class NatsTest(IntegrationTest):
    cluster = False

    def setUp(self):
        super().setUp()
        self.nats = Nats(os.path.join(self.workdir, "nats"), cluster=self.cluster)
        self.cleanups.append(self.nats.stop)
        self.topology_nodes = []

    def topology_node(self, role, observers="", partitions=8, extra="", nats_extra="",
                      listener_id="bridge", dsn=None, **kw):
        from harness import Node
        n = Node(self.workdir, dsn or self.dsn, observers, listener_id=listener_id, role=role,
                 extra=nats_section(self.nats.urls, partitions=partitions, extra=nats_extra) +
                 f"\n[metrics]\nenabled = true\nport = 0\n\n[control]\nenabled = false\n{extra}", **kw)
        self.cleanups.append(n.kill9)
        self.topology_nodes.append(n)
        return n

    def wait_delivered(self, sink, n, timeout=60):
        try:
            wait_until(lambda: len(self.delivered_keys(sink)) >= n, timeout=timeout,
                       what=f"{n} deliveries")
        except AssertionError:
            for node in self.topology_nodes:
                print(f"--- {node.role} {node.config}:\n{node.output()[-4000:]}")
            print("stream:", json.dumps(self.nats.stream_info(), indent=1)[:3000])
            print("sink:", len(sink.records()), "requests")
            if os.environ.get("NATS_TEST_GDB"):
                import subprocess
                for node in self.topology_nodes:
                    if node.role == "worker":
                        out = subprocess.run(["gdb", "-p", str(node.proc.pid), "-batch", "-ex",
                                              "thread apply all bt 12"], capture_output=True,
                                             text=True).stdout
                        open(f"/tmp/gdb-{node.proc.pid}.txt", "w").write(out)
            j = self.nats.monitor("/jsz?consumers=true")
            for acc in j.get("account_details", []):
                for st in acc.get("stream_detail", []):
                    for c in st.get("consumer_detail", []) or []:
                        print("consumer", c["name"], "pending", c["num_pending"], "ack_pending",
                              c["num_ack_pending"], "redelivered", c["num_redelivered"],
                              "waiting", c["num_waiting"], "delivered", c["delivered"],
                              "ack_floor", c["ack_floor"])
            import urllib.request
            for node in self.topology_nodes:
                try:
                    text = urllib.request.urlopen(
                        f"http://127.0.0.1:{metrics_port(node)}/metrics", timeout=5).read().decode()
                    print(node.role, [l for l in text.splitlines()
                                      if l.startswith("observer_nats") or
                                      l.startswith("observer_backlog")])
                except Exception as e:
                    print("metrics:", e)
            raise

    def observers(self, sink):
        return (webhook_observer("orders-created", "INSERT", "Order", sink.url, max_attempts=5) +
                webhook_observer("orders-updated", "UPDATE", "Order", sink.url, max_attempts=5))

    def write_orders(self, entities, updates_each):
        """Inserts `entities` orders, then `updates_each` updates of each,
        interleaved across entities; returns the number of events."""
        c = self.connect()
        cur = c.cursor()
        cur.execute("INSERT INTO orders (customer, status, total) SELECT 'c' || g, 'v0', g"
                    " FROM generate_series(1, %s) g", (entities,))
        for v in range(1, updates_each + 1):
            cur.execute("UPDATE orders SET status = %s", (f"v{v}",))
        return entities * (1 + updates_each)

    def assert_entity_order(self, records):
        """Per observer and entity (the delivery contract's lane), the
        deliveries' change-log positions never go back (a redelivery repeats
        a position; it never overtakes a later one)."""
        by_entity = {}
        for r in records:
            body = json.loads(r["body"])
            pos = (int(body["position"]["txid"]), int(body["position"]["pk"]))
            observer = r["idempotency_key"].split(":")[1]
            by_entity.setdefault((observer, body["entity_id"]), []).append(
                (pos, r["idempotency_key"]))
        for entity, seq in by_entity.items():
            first_seen = []
            for pos, _ in seq:
                if pos not in first_seen:
                    first_seen.append(pos)
            self.assertEqual(first_seen, sorted(first_seen),
                             f"entity {entity}: deliveries out of capture order")

    def check_nats_series(self, bridge, workers):
        """The bridge and the workers export the NATS series that the alert
        rules and the dashboard use (docs/monitoring.md; a node on transport
        "postgres" lacks some of them, see test_monitoring's NATS_ONLY)."""
        import re
        import urllib.request
        import yaml
        from harness import REPO

        def scrape(node):
            return urllib.request.urlopen(f"http://127.0.0.1:{metrics_port(node)}/metrics",
                                          timeout=5).read().decode()

        texts = {node: scrape(node) for node in (bridge,) + tuple(workers)}
        for node, text in texts.items():
            self.assertRegex(text, r"(?m)^observer_nats_connected 1$", node.role)
        # Every worker owns some partition here, and reports its consumer.
        for w in workers:
            wait_until(lambda: re.search(r'(?m)^observer_nats_consumer_max_ack_pending\{partition="\d+"\} 1000$',
                                         scrape(w)), what="consumer figures of a worker")
        names = set()
        for node in texts:
            names |= set(re.findall(r"(?m)^(observer_nats_[a-z_]+)[{ ]", scrape(node)))
        with open(os.path.join(REPO, "config/prometheus/observer-alerts.yml")) as f:
            rules = yaml.safe_load(f)
        used = set()
        for g in rules["groups"]:
            for r in g["rules"]:
                used |= set(re.findall(r"\b(observer_nats_[a-z_]+)\b", r["expr"]))
        with open(os.path.join(REPO, "config/grafana/observer-dashboard.json")) as f:
            dash = json.load(f)
        for p in dash["panels"]:
            for t in p.get("targets", []):
                used |= set(re.findall(r"\b(observer_nats_[a-z_]+)\b", t["expr"]))
        self.assertTrue(used)
        self.assertLessEqual(used, names)

    def delivered_keys(self, sink):
        return {r["idempotency_key"] for r in sink.delivered()}


class BridgeAndWorkers(NatsTest):
    def test_bridge_and_two_workers_deliver_every_event_in_entity_order(self):
        sink = self.sink()
        bridge = self.topology_node("bridge")
        self.setup_orders(bridge)
        w1 = self.topology_node("worker", self.observers(sink), nats_extra='worker_name = "w1"')
        w2 = self.topology_node("worker", self.observers(sink), nats_extra='worker_name = "w2"')
        bridge.start()
        w1.start()
        w2.start()
        n = self.write_orders(40, 5)
        self.wait_delivered(sink, n)
        time.sleep(0.5)
        keys = self.delivered_keys(sink)
        self.assertEqual(len(keys), n)
        self.assert_entity_order(sink.delivered())
        # Both workers took partitions.
        self.assertIn("took partition", w1.output())
        self.assertIn("took partition", w2.output())
        # The spec's troubleshooting query as typed.
        rows = self.sql("SELECT listener_id, transport_name, events_total FROM tb_observer_checkpoint"
                        " WHERE transport_name = 'pg_to_nats'")
        wait_until(lambda: self.sql("SELECT events_total FROM tb_observer_checkpoint WHERE "
                                    "transport_name = 'pg_to_nats'")[0][0] == n,
                   what="bridge checkpoint at every event")
        self.assertEqual(rows[0][0], "bridge")
        # Subjects carry source, partition, entity and operation.
        st = self.nats.stream_info()
        self.assertEqual(st["state"]["messages"], n)
        self.check_nats_series(bridge, (w1, w2))
        for node in (bridge, w1, w2):
            self.assertEqual(node.stop(), 0, node.output()[-3000:])


if __name__ == "__main__":
    main()
