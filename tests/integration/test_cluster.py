"""A cluster of nodes over CAF remoting ([cluster]): three processes with one
listener id join through their seeds, exchange heartbeats and keep a
membership view that `observerctl status` and the metrics show. The view
converges within two heartbeat intervals after a join and a leave, marks a
frozen or killed leader unreachable and follows the lease to the new leader;
bad peers (wrong token, a taken name, a seed that is not a coordinator or does
not resolve) get a logged refusal naming them."""
import json
import os
import re
import signal
import socket
import subprocess
import time
from datetime import datetime

from harness import (CTL, IntegrationTest, deliveries_by_id, main, make_pki, metric,
                     metrics_port, wait_until, webhook_observer)

HEARTBEAT_MS = 500
TOKEN = "cluster-token-for-tests"


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def log_time(line):
    return datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def first_line(node, pattern):
    for line in node.output().splitlines():
        if re.search(pattern, line):
            return line
    return None


class ClusterTest(IntegrationTest):
    def cluster_node(self, sink, name, port, seeds, token=TOKEN, extra_cluster="", metrics=False):
        token_file = os.path.join(self.workdir, f"token-{name}-{port}")
        with open(token_file, "w") as f:
            f.write(token + "\n")
        os.chmod(token_file, 0o600)
        seed_list = ", ".join(f'"{s}"' for s in seeds)
        extra = f"""
[failover]
health_check_interval_ms = 500
failover_threshold_ms = 3000

[control]
enabled = true
port = 0

[cluster]
enabled = true
node_name = "{name}"
port = {port}
seeds = [{seed_list}]
heartbeat_interval_ms = {HEARTBEAT_MS}
token_file = "{token_file}"
{extra_cluster}
"""
        if metrics:
            extra += "\n[metrics]\nenabled = true\nport = 0\n"
        obs = webhook_observer("o", "INSERT", "Order", sink.url + "/x", max_attempts=20)
        return self.node(obs, extra=extra)

    def three(self, sink, metrics=False):
        ports = free_ports(3)
        seeds = [f"127.0.0.1:{p}" for p in ports]
        nodes = [self.cluster_node(sink, f"listener-{i + 1}", ports[i], seeds, metrics=metrics)
                 for i in range(3)]
        self.setup_orders(nodes[0])
        nodes[0].start()
        wait_until(lambda: "leading listener" in nodes[0].output(), what="listener-1 leads")
        for n in nodes[1:]:
            n.start()
        return nodes, ports

    def control_port(self, node):
        m = wait_until(lambda: re.search(r"control: listening on [^:]+:(\d+)", node.output()),
                       what="control plane port in the node log")
        return int(m.group(1))

    def status(self, node, fmt=None):
        cmd = [CTL, "--node", f"127.0.0.1:{self.control_port(node)}", "--timeout", "10"]
        if fmt:
            cmd += ["--format", fmt]
        r = subprocess.run(cmd + ["status"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json.loads(r.stdout)["result"] if fmt == "json" else r.stdout

    def members(self, node):
        view = self.status(node, "json")["cluster"]
        return {m["name"]: m for m in view["members"]} if view else {}

    def test_three_nodes_converge_and_status_shows_the_cluster(self):
        sink = self.sink()
        nodes, ports = self.three(sink, metrics=True)
        for n in nodes:
            wait_until(lambda: "Leader: listener-1 (3/3 healthy)" in self.status(n), timeout=20,
                       what="'Leader: listener-1 (3/3 healthy)' on every node")
        text = self.status(nodes[1])
        self.assertIn("cluster:      3 nodes, 3 healthy", text)
        self.assertRegex(text, r"listener-1\s+127\.0\.0\.1:%d\s+leader" % ports[0])
        self.assertRegex(text, r"listener-2\s+127\.0\.0\.1:%d\s+standby .*this node" % ports[1])
        view = self.status(nodes[2], "json")
        lead = view["leadership"][0]
        self.assertEqual((lead["leader"], lead["healthy"], lead["members"], lead["source"]),
                         ("listener-1", 3, 3, "cluster"))
        self.assertEqual(view["name"], "listener-3")
        # A standby's metrics show the cluster's view of the listener, not its own.
        port = metrics_port(nodes[2])
        wait_until(lambda: metric(port, "observer_cluster_members") == 3, what="3 members")
        self.assertEqual(metric(port, "observer_cluster_members_healthy"), 3)
        self.assertEqual(metric(port, 'observer_listener_health{listener_id="test"}'), 1)

        # Join: the joiner's "listening" line to the last "joined the view"
        # line about it on every node (one clock: the same host).
        def converged(joiner, others, pattern):
            start = log_time(first_line(joiner, r"cluster: node '.*' listening"))
            ends = []
            for n in others:
                line = first_line(n, pattern)
                if line is None:
                    return None
                ends.append(log_time(line))
            return max(ends) - start
        took = wait_until(lambda: converged(nodes[2], nodes[:2], r"listener-3 \(.*joined the view"),
                          what="listener-3 in every view")
        self.assertLessEqual(took, 2 * HEARTBEAT_MS / 1000,
                             f"the view took {took:.3f} s to converge after a join")
        # Leave: a graceful stop tells the peers; they drop it at once.
        stop_at = time.time()
        self.assertEqual(nodes[2].stop(), 0)
        for n in nodes[:2]:
            wait_until(lambda: first_line(n, r"listener-3 \(.*\) left") is not None,
                       what="listener-3 left")
            took = log_time(first_line(n, r"listener-3 \(.*\) left")) - stop_at
            self.assertLessEqual(took, 2 * HEARTBEAT_MS / 1000,
                                 f"the view took {took:.3f} s to converge after a leave")
            self.assertNotIn("listener-3", self.members(n))
        self.assertIn("Leader: listener-1 (2/2 healthy)", self.status(nodes[0]))
        self.assertIn("told 2 peer(s) that this node leaves", nodes[2].output())

    def test_frozen_then_killed_leaders_are_replaced_and_the_view_follows(self):
        sink = self.sink()
        nodes, _ = self.three(sink, metrics=True)
        a, b, c = nodes
        wait_until(lambda: "Leader: listener-1 (3/3 healthy)" in self.status(b), timeout=20,
                   what="3/3 healthy")
        for i in range(30):
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)", (f"a{i}",))
        a.proc.send_signal(signal.SIGSTOP)
        try:
            for i in range(30):
                self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)",
                         (f"b{i}",))
            new = wait_until(lambda: next((n for n in (b, c) if "leading listener" in n.output()),
                                          None), timeout=20, what="a standby takes over")
            other = c if new is b else b
            name = "listener-2" if new is b else "listener-3"
            wait_until(lambda: f"Leader: {name} (2/3 healthy)" in self.status(other), timeout=20,
                       what=f"the view shows {name} leading, 2/3 healthy")
            members = self.members(other)
            self.assertFalse(members["listener-1"]["reachable"])
            self.assertEqual(members[name]["state"], "leader")
            self.assertGreater(members[name]["epoch"], 1)
            port = metrics_port(other)
            wait_until(lambda: metric(port, 'observer_cluster_leader_changes_total{listener_id="test"}') == 1,
                       what="one leader change counted")
        finally:
            a.proc.send_signal(signal.SIGCONT)
        # The thawed leader finds itself fenced and exits; it delivers nothing more.
        a.proc.wait(30)
        self.assertNotEqual(a.proc.returncode, 0)
        ids = set(self.change_log_ids())
        wait_until(lambda: set(deliveries_by_id(sink.delivered())) >= ids, timeout=30,
                   what="all 60 delivered")
        # Kill -9 the new leader: the third takes over; the view follows.
        new.kill9()
        for i in range(10):
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)", (f"c{i}",))
        wait_until(lambda: "leading listener" in other.output(), timeout=20, what="the third leads")
        last = "listener-3" if other is c else "listener-2"
        wait_until(lambda: f"Leader: {last} (1/3 healthy)" in self.status(other), timeout=20,
                   what=f"the view shows {last} leading")
        ids = set(self.change_log_ids())
        wait_until(lambda: set(deliveries_by_id(sink.delivered())) >= ids, timeout=30,
                   what="all 70 delivered")
        self.assertEqual(other.stop(), 0)

    def test_bad_peers_get_a_refusal_naming_them(self):
        sink = self.sink()
        p1, p2, p3, p4, p5 = free_ports(5)
        a = self.cluster_node(sink, "alpha", p1, [f"127.0.0.1:{p1}", f"127.0.0.1:{p5}"])
        self.setup_orders(a)
        a.start()
        wait_until(lambda: "leading listener" in a.output(), what="alpha leads")
        # An unreachable seed: a warning naming it, and the node runs on.
        wait_until(lambda: f"cannot join seed 127.0.0.1:{p5}" in a.output(),
                   what="the unreachable seed named")
        # A wrong token: both sides name the other.
        b = self.cluster_node(sink, "bravo", p2, [f"127.0.0.1:{p1}"], token="not-the-token")
        b.start()
        wait_until(lambda: f"cannot join seed 127.0.0.1:{p1}: refused: authentication failed"
                   in b.output(), what="bravo told its token is wrong")
        wait_until(lambda: re.search(r"cluster: refused join from .*: wrong token", a.output()),
                   what="alpha names the peer with the wrong token")
        # The same name twice: refused, the first keeps it.
        c = self.cluster_node(sink, "alpha", p3, [f"127.0.0.1:{p1}"])
        c.start()
        wait_until(lambda: "a node named 'alpha' is already a member" in c.output()
                   or "this node is named 'alpha' already" in c.output(),
                   what="the second alpha refused")
        wait_until(lambda: re.search(r"refused join from alpha \(.*\): this node is named 'alpha'",
                                     a.output()), what="alpha logs the clash naming the peer")
        self.assertEqual(set(self.members(a)), {"alpha"})
        # A seed that is a control plane, not a coordinator.
        d = self.cluster_node(sink, "delta", p4, [f"127.0.0.1:{self.control_port(a)}"])
        d.start()
        wait_until(lambda: "is not a failover coordinator" in d.output(),
                   what="a control port as a seed named")
        # A non-loopback bind or seed without TLS is a configuration error, before
        # anything starts.
        e = self.cluster_node(sink, "echo", p5, ["no-such-host.invalid:7466"],
                              extra_cluster='bind = "0.0.0.0"')
        e.start()
        self.assertEqual(e.proc.wait(30), 2)
        self.assertIn("cluster.bind: '0.0.0.0' is not a loopback address", e.output())
        self.assertIn("cluster.seeds[0]: 'no-such-host.invalid:7466' is not a loopback address",
                      e.output())
        for n in (b, c, d):
            self.assertEqual(n.stop(), 0)
        self.assertEqual(a.stop(), 0)

    def test_tls_cluster_joins_peers_of_its_ca_only(self):
        sink = self.sink()
        good, evil = make_pki(self.workdir, "good"), make_pki(self.workdir, "evil")
        tls = lambda pki: (f'tls_certificate = "{pki["node.pem"]}"\n'
                           f'tls_key = "{pki["node.key"]}"\ntls_ca = "{pki["ca.pem"]}"\n')
        p1, p2, p3 = free_ports(3)
        seeds = [f"127.0.0.1:{p1}", f"127.0.0.1:{p2}"]
        a = self.cluster_node(sink, "tls-a", p1, seeds, extra_cluster=tls(good))
        self.setup_orders(a)
        a.start()
        wait_until(lambda: "leading listener" in a.output(), what="tls-a leads")
        self.assertIn("TLS, peers verified", a.output())
        b = self.cluster_node(sink, "tls-b", p2, seeds, extra_cluster=tls(good))
        b.start()
        wait_until(lambda: "Leader: tls-a (2/2 healthy)" in self.status(b), timeout=20,
                   what="tls-b sees tls-a over TLS")
        # A node whose certificate another CA signed never gets in.
        c = self.cluster_node(sink, "tls-c", p3, seeds, extra_cluster=tls(evil))
        c.start()
        wait_until(lambda: f"cannot join seed 127.0.0.1:{p1}" in c.output(), timeout=20,
                   what="tls-c refused")
        time.sleep(1)
        self.assertEqual(set(self.members(a)), {"tls-a", "tls-b"})
        self.assertEqual(set(self.members(c)), {"tls-c"})
        for n in (c, b, a):
            self.assertEqual(n.stop(), 0)


if __name__ == "__main__":
    main()
