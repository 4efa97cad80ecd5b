"""The NATS JetStream topology (docs/nats.md): a bridge (--role bridge)
publishes the change log into the stream, workers (--role worker) consume
it by partition and run the observers. Real nats-server(s) from
scripts/nats.sh, real PostgreSQL, the webhook sink; all on loopback."""
import json
import os
import time
import urllib.request
import uuid

from harness import (IntegrationTest, Nats, main, wait_until, webhook_observer, metrics_port,
                     metric)


def nats_section(nats_url, partitions=8, ack_wait_ms=4000, lease_ms=3000, extra=""):
    # `extra` keys override the defaults above (TOML forbids a key twice).
    for line in extra.splitlines():
        if line.startswith("ack_wait_ms"):
            ack_wait_ms = None
        if line.startswith("partition_lease_ms"):
            lease_ms = None
    aw = f"ack_wait_ms = {ack_wait_ms}" if ack_wait_ms else ""
    ls = f"partition_lease_ms = {lease_ms}" if lease_ms else ""
    return f"""
[transport]
transport = "nats"

[nats]
url = "{nats_url}"
partitions = {partitions}
{aw}
{ls}
publish_ack_timeout_ms = 2000
{extra}
"""


def nats_publish_raw(url, subject, payload):
    """Publishes one message with the plain NATS protocol (no client library:
    what a foreign or broken producer would send)."""
    import socket
    host, port = url.replace("nats://", "").split(",")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.recv(4096)  # INFO
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        s.sendall(b"PUB %s %d\r\n%s\r\nPING\r\n" % (subject.encode(), len(payload), payload))
        data = b""
        while b"PONG" not in data:
            data += s.recv(4096)


class NatsTest(IntegrationTest):
    cluster = False
    nats_env = None

    def setUp(self):
        super().setUp()
        self.nats = Nats(os.path.join(self.workdir, "nats"), cluster=self.cluster,
                         env=self.nats_env)
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

    def wait(self, pred, timeout=20.0, what="condition", sink=None):
        """wait_until, printing the nodes' logs and the NATS state on a timeout."""
        try:
            return wait_until(pred, timeout=timeout, what=what)
        except AssertionError:
            self.dump(sink)
            raise

    def wait_delivered(self, sink, n, timeout=60):
        self.wait(lambda: len(self.delivered_keys(sink)) >= n, timeout=timeout,
                  what=f"{n} deliveries", sink=sink)

    def dump(self, sink=None):
        if True:
            for node in self.topology_nodes:
                print(f"--- {node.role} {node.config}:\n{node.output()[-4000:]}")
            print("stream:", json.dumps((self.nats.stream_info() or {}).get("state"), indent=1))
            if sink:
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

    def assert_entity_order(self, records, source_of=None):
        """Per observer and entity (the delivery contract's lane), the
        deliveries' change-log positions never go back (a redelivery repeats
        a position; it never overtakes a later one)."""
        by_entity = {}
        for r in records:
            body = json.loads(r["body"])
            pos = (int(body["position"]["txid"]), int(body["position"]["pk"]))
            observer = r["idempotency_key"].split(":")[1]
            source = source_of(body["id"]) if source_of else None
            by_entity.setdefault((source, observer, body["entity_id"]), []).append(
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
        # The envelope names the database it came from (source_name's default).
        self.assertEqual({json.loads(r["body"])["source"] for r in sink.delivered()}, {self.db})
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
        # Every node is ready: a worker reads no change log, so no listener
        # connection is asked of it (it answered 503 before).
        for node in (bridge, w1, w2):
            ready = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port(node)}/readyz",
                                           timeout=5)
            self.assertEqual(ready.status, 200)
        for node in (bridge, w1, w2):
            self.assertEqual(node.stop(), 0, node.output()[-3000:])


    def test_role_all_runs_bridge_and_workers_in_one_process(self):
        sink = self.sink()
        node = self.topology_node("all", self.observers(sink),
                                  extra="")  # [transport] run_bridge below
        with open(node.config) as f:
            text = f.read()
        with open(node.config, "w") as f:
            f.write(text.replace('transport = "nats"', 'transport = "nats"\nrun_bridge = true'))
        self.setup_orders(node)
        node.start()
        n = self.write_orders(20, 2)
        self.wait_delivered(sink, n)
        self.assertIn("bridge started", node.output())
        self.assertIn("workers started", node.output())
        self.assert_entity_order(sink.delivered())
        self.assertEqual(node.stop(), 0, node.output()[-3000:])

    def test_standby_bridge_takes_over_when_the_active_one_dies(self):
        """One active bridge per database (the leader lease of its listener
        id); a standby takes over when it dies, and nothing is lost."""
        sink = self.sink()
        b1 = self.topology_node("bridge")
        self.setup_orders(b1)
        b1.start()
        self.wait(lambda: "bridge started" in b1.output(), what="first bridge leads")
        b2 = self.topology_node("bridge")
        b2.start()
        self.wait(lambda: "standing by" in b2.output(), what="second bridge stands by")
        worker = self.topology_node("worker", self.observers(sink))
        worker.start()
        n1 = self.write_orders(20, 1)
        self.wait_delivered(sink, n1)
        b1.kill9()
        c = self.connect()
        c.cursor().execute("UPDATE orders SET status = 'after'")
        self.wait(lambda: "bridge started" in b2.output(), timeout=30, what="standby takes over")
        self.wait_delivered(sink, n1 + 20)
        self.assertEqual(len(self.delivered_keys(sink)), n1 + 20)
        self.assertEqual(b2.stop(), 0)
        self.assertEqual(worker.stop(), 0)

    def test_deleting_the_bridge_checkpoint_republishes_and_the_stream_absorbs_it(self):
        """The spec's troubleshooting step: DELETE FROM tb_observer_checkpoint
        WHERE transport_name = 'pg_to_nats' with the bridge stopped makes it
        publish from the start; within the duplicate window the stream stores
        nothing twice and no action runs twice."""
        sink = self.sink()
        bridge = self.topology_node("bridge")
        self.setup_orders(bridge)
        worker = self.topology_node("worker", self.observers(sink))
        bridge.start()
        worker.start()
        n = self.write_orders(10, 2)
        self.wait_delivered(sink, n)
        wait_until(lambda: (self.sql("SELECT events_total FROM tb_observer_checkpoint WHERE "
                                     "transport_name = 'pg_to_nats'") or [[0]])[0][0] == n,
                   what="bridge checkpoint")
        self.assertEqual(bridge.stop(), 0)
        self.sql("DELETE FROM tb_observer_checkpoint WHERE transport_name = 'pg_to_nats'")
        bridge.start()
        wait_until(lambda: "publish_duplicates_total" in bridge.output() or
                   (self.sql("SELECT events_total FROM tb_observer_checkpoint WHERE "
                             "transport_name = 'pg_to_nats'") or [[0]])[0][0] == n,
                   what="bridge re-published everything")
        port = metrics_port(bridge)
        wait_until(lambda: metric(port, "observer_nats_publish_duplicates_total") == n,
                   what="every re-publish reported as a duplicate")
        self.assertEqual(self.nats.stream_info()["state"]["messages"], n)
        time.sleep(1.0)
        self.assertEqual(len(sink.delivered()), n, "an action ran twice")
        self.assertEqual(bridge.stop(), 0)
        self.assertEqual(worker.stop(), 0)


class Misconfiguration(NatsTest):
    def test_bridge_and_worker_disagreeing_on_partitions_is_refused_by_name(self):
        bridge = self.topology_node("bridge", partitions=8)
        self.setup_orders(bridge)
        bridge.start()
        self.wait(lambda: "bridge started" in bridge.output(), what="bridge up")
        worker = self.topology_node("worker", webhook_observer("o", "INSERT", "Order",
                                                               "http://127.0.0.1:9"),
                                    partitions=4)
        worker.start()
        code = worker.proc.wait(30)
        self.assertNotEqual(code, 0)
        self.assertIn("nats.partitions = 4, but stream 'fraiseql_events' is partitioned into 8",
                      worker.output())
        self.assertEqual(bridge.stop(), 0, bridge.output()[-3000:])


class BadMessages(NatsTest):
    nats_env = {"NATS_MAX_PAYLOAD": "8192"}

    def test_event_over_max_payload_is_dead_lettered_and_the_bridge_moves_on(self):
        sink = self.sink()
        bridge = self.topology_node("bridge")
        self.setup_orders(bridge)
        worker = self.topology_node("worker", self.observers(sink))
        bridge.start()
        worker.start()
        self.sql("INSERT INTO orders (customer, status, total) VALUES (repeat('x', 20000), 'big', 1)")
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('small', 'ok', 2)")
        self.wait_delivered(sink, 1)
        rows = wait_until(lambda: self.sql(
            "SELECT observer_name, action_type, last_error FROM observer_dlq"), what="DLQ row")
        self.assertEqual(rows[0][0], "(bridge)")
        self.assertEqual(rows[0][1], "nats")
        self.assertIn("max_payload", rows[0][2])
        wait_until(lambda: (self.sql("SELECT events_total FROM tb_observer_checkpoint WHERE "
                                     "transport_name = 'pg_to_nats'") or [[0]])[0][0] == 2,
                   what="the checkpoint passes both events")
        self.assertEqual(json.loads(sink.delivered()[0]["body"])["data"]["customer"], "small")
        self.assertEqual(bridge.stop(), 0)
        self.assertEqual(worker.stop(), 0)

    def test_unparseable_message_is_dead_lettered_and_terminated(self):
        sink = self.sink()
        worker = self.topology_node("worker", self.observers(sink), partitions=1)
        worker.migrate()
        worker.start()
        self.wait(lambda: "took partition 0" in worker.output(), what="worker owns partition 0")
        nats_publish_raw(self.nats.url, "fraiseql.foreign.0.Order.insert", b"{not json")
        rows = self.wait(lambda: self.sql(
            "SELECT observer_name, action_type, last_error, event FROM observer_dlq"),
            what="DLQ row")
        self.assertEqual(rows[0][0], "(worker)")
        self.assertEqual(rows[0][1], "unparseable")
        self.assertEqual(rows[0][3]["raw"], "{not json")
        port = metrics_port(worker)
        wait_until(lambda: metric(port, "observer_nats_terminated_total") == 1,
                   what="message terminated")
        self.assertEqual(sink.delivered(), [])
        self.assertEqual(worker.stop(), 0)

    def test_message_past_max_deliver_goes_to_the_dlq(self):
        """A worker dies while it runs an event (the sink hangs), once more than
        max_deliver allows: the next delivery goes to the DLQ, not to the sink."""
        sink = self.sink()
        sink.control(delay_ms=60000)
        bridge = self.topology_node("bridge", partitions=1)
        self.setup_orders(bridge)
        cfg = dict(partitions=1, nats_extra="max_deliver = 1\nack_wait_ms = 2000\n"
                   "partition_lease_ms = 1500")
        w1 = self.topology_node("worker", self.observers(sink), **cfg)
        bridge.start()
        w1.start()
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('a', 'new', 1)")
        port = metrics_port(w1)
        self.wait(lambda: metric(port, "observer_nats_fetched_total") >= 1,
                  what="the worker runs the event")
        time.sleep(0.5)
        w1.kill9()
        sink.control(delay_ms=0)
        w2 = self.topology_node("worker", self.observers(sink), **cfg)
        w2.start()
        rows = self.wait(lambda: self.sql(
            "SELECT observer_name, action_type, last_error, attempts FROM observer_dlq"),
            timeout=30, what="DLQ row")
        self.assertEqual(rows[0][1], "max_deliver")
        self.assertIn("max_deliver 1", rows[0][2])
        time.sleep(0.5)
        # Only the call the killed worker had started reached the sink.
        self.assertEqual(len(sink.records()), 1)
        self.assertEqual(w2.stop(), 0)
        self.assertEqual(bridge.stop(), 0)


if __name__ == "__main__":
    main()
