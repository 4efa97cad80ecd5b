"""One leader per listener id: a lease (advisory lock + fencing epoch) in
PostgreSQL. A standby takes over when the leader dies; a fenced former leader
can never move the checkpoint again."""
import os
import re
import select
import signal
import socket
import sys
import threading
import time

from harness import IntegrationTest, Node, deliveries_by_id, main, wait_until, webhook_observer


class BlackholeProxy:
    """A TCP proxy in front of PostgreSQL that can cut the path without closing
    anything: while cut, it moves no byte either way and holds new connections
    unanswered, as a network partition does. PostgreSQL keeps the sessions (and
    their advisory locks) alive; the client's calls hang. heal() resumes."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.stopped = False
        self.pairs = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client):
        self.flowing.wait()
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        self.pairs.append((client, upstream))
        peer = {client: upstream, upstream: client}
        try:
            while not self.stopped:
                if not self.flowing.is_set():
                    self.flowing.wait(0.1)
                    continue
                ready, _, _ = select.select([client, upstream], [], [], 0.1)
                for s in ready:
                    if not self.flowing.is_set():
                        break
                    data = s.recv(65536)
                    if not data:
                        return
                    peer[s].sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()

    def cut(self):
        self.flowing.clear()

    def heal(self):
        self.flowing.set()

    def stop(self):
        self.stopped = True
        self.flowing.set()
        self.listener.close()
        for a, b in self.pairs:
            for x in (a, b):
                try:
                    x.close()
                except OSError:
                    pass


class FailoverTest(IntegrationTest):
    def observers(self, sink):
        return webhook_observer("o", "INSERT", "Order", sink.url + "/x", max_attempts=20)

    def insert(self, n, prefix):
        for i in range(n):
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)", (f"{prefix}{i}",))

    def sample_connections(self, leader, standby, seconds):
        """Samples once a second, in one query: (leader's, standby's, the
        database's total) client backends. A node's carry its fallback
        application name 'fraiseql-observer <pid>'."""
        out = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            out.append(tuple(self.sql(
                "SELECT count(*) FILTER (WHERE application_name = %s),"
                " count(*) FILTER (WHERE application_name = %s), count(*)"
                " FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                (f"fraiseql-observer {leader.proc.pid}", f"fraiseql-observer {standby.proc.pid}"))[0]))
            time.sleep(1)
        return out

    def assert_flat(self, samples, what):
        leader = [s[0] for s in samples]
        standby = [s[1] for s in samples]
        total = [s[2] for s in samples]
        # The leader's connections are fixed once it runs; a standby holds none
        # between its attempts and at most two during one (schema check, lease);
        # nothing else connects to this database meanwhile.
        self.assertGreater(min(leader), 0, what)
        self.assertEqual(min(leader), max(leader), f"{what}: leader's connections moved: {leader}")
        self.assertLessEqual(max(standby), 2, f"{what}: standby's connections: {standby}")
        self.assertLessEqual(max(total) - min(total), 2, f"{what}: database's connections: {total}")
        self.assertLessEqual(max(total), max(leader) + 2, f"{what}: unnamed connections: {total}")

    def leader_and_standby(self, sink):
        """Node a leads, node b stands by (same listener id, same observer)."""
        a = self.node(self.observers(sink))
        self.setup_orders(a)
        a.start()
        wait_until(lambda: "leading listener" in a.output(), what="a leads")
        b = self.node(self.observers(sink))
        b.start()
        wait_until(lambda: "standing by" in b.output(), what="b stands by")
        return a, b

    def streaming_pair(self, sink, leader_dsn=None):
        """Node a leads (through `leader_dsn` when given) and posts to /a, node b
        stands by and posts to /b (same observer: the same idempotency keys);
        150 inserts are being written and a has delivered 20 of them."""
        sink.control(delay_ms=5)
        obs = lambda path: webhook_observer("o", "INSERT", "Order", sink.url + path, max_attempts=20)
        a = Node(self.workdir, leader_dsn or self.dsn, obs("/a"))
        self.cleanups.append(a.kill9)
        self.setup_orders(a)
        a.start()
        wait_until(lambda: "leading listener" in a.output(), what="a leads")
        b = self.node(obs("/b"))
        b.start()
        wait_until(lambda: "standing by" in b.output(), what="b stands by")
        writer = threading.Thread(target=self.insert, args=(150, "w"))
        writer.start()
        wait_until(lambda: len(sink.delivered()) >= 20, what="a delivers")
        return a, b, writer

    def test_standby_connections_stay_flat_over_60_s_and_across_failovers(self):
        sink = self.sink()
        a, b = self.leader_and_standby(sink)
        self.insert(20, "a")
        wait_until(lambda: len(sink.delivered()) >= 20, what="20 deliveries")
        # The harness's poll_interval_ms is 200: the standby tries 300 times.
        self.assert_flat(self.sample_connections(a, b, 60), "a leads, b stands by for 60 s")
        a.kill9()
        wait_until(lambda: "leading listener" in b.output(), timeout=20, what="b takes over")
        c = self.node(self.observers(sink))
        c.start()
        wait_until(lambda: "standing by" in c.output(), what="c stands by")
        self.insert(20, "b")
        self.assert_flat(self.sample_connections(b, c, 10), "b leads after a's kill, c stands by")
        b.kill9()
        wait_until(lambda: "leading listener" in c.output(), timeout=20, what="c takes over")
        ids = set(self.change_log_ids())
        wait_until(lambda: set(deliveries_by_id(sink.delivered())) >= ids, timeout=30,
                   what="all 40 delivered")
        self.assertEqual(c.stop(), 0)

    def test_frozen_leader_is_replaced_within_the_threshold_and_steps_down_when_it_thaws(self):
        # Default [failover]: renew every 1 s, a lease lasts 5 s. Each node posts
        # to its own path (same observer, so the same idempotency keys).
        sink = self.sink()
        # Writes flow while a freezes mid-stream.
        a, b, writer = self.streaming_pair(sink)
        os.kill(a.proc.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            wait_until(lambda: "leading listener" in b.output(), timeout=30, what="b takes over")
            takeover = time.monotonic() - frozen_at
            print(f"takeover {takeover:.2f} s after the freeze", file=sys.stderr)
            # 5 s lease since a's last renewal (<= 5 s before the freeze ended
            # it), plus b's poll interval (0.2 s) and the time to start.
            self.assertLess(takeover, 5.0 + 0.2 + 1.5, b.output())
            writer.join()
            ids = set(self.change_log_ids())
            wait_until(lambda: set(deliveries_by_id(sink.delivered())) >= ids, timeout=30,
                       what="b delivers everything")
        finally:
            thawed_at = time.time()
            os.kill(a.proc.pid, signal.SIGCONT)
        rc = a.proc.wait(20)
        self.assertNotEqual(rc, 0, "the thawed leader steps down")
        self.assertRegex(a.output(), "lost the leader lease|expired before it could be renewed")
        # A request a had handed to its HTTP client before the freeze may still
        # go out; nothing else does (at most max_concurrent_actions = 10).
        late = [r for r in sink.delivered() if r["path"] == "/a" and r["t"] >= thawed_at]
        self.assertLessEqual(len(late), 10, late)
        by_id = deliveries_by_id(sink.delivered())
        for event_id, keys in by_id.items():
            self.assertEqual(set(keys), {f"{event_id}:o:0"})
        self.assertEqual(self.sql("SELECT epoch FROM observer_leases WHERE listener_id = 'test'")[0][0], 2)
        self.assertEqual(b.stop(), 0)
        self.assertEqual(self.checkpoint()[1], 150)

    def test_standby_takes_over_after_kill_9_without_loss_or_double_delivery(self):
        sink = self.sink()
        a, b = self.leader_and_standby(sink)
        self.insert(50, "a")
        wait_until(lambda: len(sink.delivered()) >= 50, what="50 deliveries")
        # Nothing in flight when the leader dies: all 50 finished and checkpointed.
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 50, what="a's checkpoint at 50")
        time.sleep(0.3)
        self.assertNotIn("leading listener", b.output())
        a.kill9()
        killed_at = time.time()
        # What the dead leader had read (all 50 rows) minus what its saved
        # checkpoint covers: the only events b may deliver a second time.
        in_flight_at_kill = 50 - self.checkpoint()[1]
        wait_until(lambda: "leading listener" in b.output(), timeout=20, what="b takes over")
        self.insert(50, "b")
        ids = self.change_log_ids()
        self.assertEqual(len(set(ids)), 100)
        wait_until(lambda: set(deliveries_by_id(sink.delivered())) >= set(ids),
                   timeout=30, what="all 100 delivered")
        self.assertEqual(b.stop(), 0)
        keys = deliveries_by_id(sink.delivered())
        # No loss: every event delivered (at least once), nothing else delivered.
        self.assertEqual(set(keys), set(ids))
        # Every delivery of an event carries the event's one stable key,
        # `<event id>:<observer>:<action index>`, whichever node sent it.
        for i, ks in keys.items():
            self.assertEqual(set(ks), {f"{i}:o:0"}, f"event {i}: keys {ks}")
        # No double delivery: b delivers again at most what was in flight when
        # a died, and here nothing was (a's checkpoint covered all 50).
        by_a = deliveries_by_id([r for r in sink.delivered() if r["t"] < killed_at])
        by_b = deliveries_by_id([r for r in sink.delivered() if r["t"] >= killed_at])
        again = sorted(set(by_a) & set(by_b))
        self.assertEqual(len(by_a), 50)
        self.assertLessEqual(len(again), in_flight_at_kill,
                             f"delivered by both nodes ({in_flight_at_kill} in flight at the kill): {again}")
        lease = self.sql("SELECT epoch FROM observer_leases WHERE listener_id = 'test'")
        self.assertEqual(lease[0][0], 2)
        self.assertEqual(self.checkpoint()[1], 100)

    def test_leader_cut_off_from_postgres_stops_acting_and_is_replaced(self):
        # A partition between the leader and PostgreSQL (not a crash): the
        # server keeps the leader's sessions, so only the lease's deadline can
        # end its leadership. Default [failover]: renew every 1 s, 5 s lease.
        sink = self.sink()
        m = re.match(r"postgresql://([^@]+)@([^:/]+):(\d+)/(.+)", self.dsn)
        proxy = BlackholeProxy(m.group(2), int(m.group(3)))
        self.cleanups.append(proxy.stop)
        a, b, writer = self.streaming_pair(
            sink, f"postgresql://{m.group(1)}@127.0.0.1:{proxy.port}/{m.group(4)}")
        proxy.cut()
        cut_at = time.time()
        # a can save nothing from now on: this is its last checkpoint.
        saved_by_a = (self.checkpoint() or (0, 0))[1]
        wait_until(lambda: "leading listener" in b.output(), timeout=30, what="b takes over")
        took_over = time.time() - cut_at
        print(f"takeover {took_over:.2f} s after the cut", file=sys.stderr)
        self.assertLess(took_over, 5.0 + 0.2 + 1.5, b.output())
        writer.join()
        ids = set(self.change_log_ids())
        wait_until(lambda: set(deliveries_by_id(sink.delivered())) >= ids, timeout=30,
                   what="b delivers everything")
        # a started nothing after its lease's deadline, which passed before b
        # could take the lease: a's last delivery precedes b's first.
        by_a = [r["t"] for r in sink.delivered() if r["path"] == "/a"]
        by_b = [r["t"] for r in sink.delivered() if r["path"] == "/b"]
        self.assertLess(max(by_a), min(by_b), "a delivered after b started")
        self.assertLess(max(by_a) - cut_at, 5.0)
        # No double side effect beyond what a had delivered and could not
        # checkpoint; every delivery of an event carries its one key.
        again = set(deliveries_by_id([r for r in sink.delivered() if r["path"] == "/a"])) & \
            set(deliveries_by_id([r for r in sink.delivered() if r["path"] == "/b"]))
        print(f"{len(again)} event(s) delivered by both (a could not checkpoint them)", file=sys.stderr)
        for event_id, keys in deliveries_by_id(sink.delivered()).items():
            self.assertEqual(set(keys), {f"{event_id}:o:0"})
        pk = dict(self.sql("SELECT id::text, pk_entity_change_log FROM core.tb_entity_change_log"))
        self.assertEqual([i for i in again if pk[i] <= saved_by_a], [],
                         f"delivered again although a had checkpointed them (up to pk {saved_by_a})")
        # The path heals: a finds itself fenced and exits, having written nothing.
        proxy.heal()
        rc = a.proc.wait(30)
        self.assertNotEqual(rc, 0, "the cut-off leader steps down")
        self.assertRegex(a.output(), "lost the leader lease|epoch 1 is no longer current")
        self.assertEqual(self.sql("SELECT count(*) FROM observer_dlq")[0][0], 0)
        self.assertEqual(self.sql("SELECT epoch FROM observer_leases WHERE listener_id = 'test'")[0][0], 2)
        self.assertEqual(b.stop(), 0)
        self.assertEqual(self.checkpoint()[1], 150)

    def test_former_leader_writes_no_dlq_row(self):
        # The leader renews rarely (60 s), so it still believes it leads when
        # another node takes over; its DLQ writes must be refused all the same.
        sink = self.sink(status=400)  # final failure: straight to the DLQ
        a = self.node(webhook_observer("o", "INSERT", "Order", sink.url + "/a"),
                      extra="[failover]\nhealth_check_interval_ms = 60000\n"
                            "failover_threshold_ms = 600000\n")
        self.setup_orders(a)
        a.start()
        wait_until(lambda: "leading listener" in a.output(), what="a leads")
        self.insert(3, "x")
        wait_until(lambda: self.sql("SELECT count(*) FROM observer_dlq")[0][0] == 3,
                   what="3 DLQ rows while a leads")
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 3, what="checkpoint at 3")
        self.sql("UPDATE observer_leases SET epoch = epoch + 1, holder = 'someone-else'")
        self.insert(3, "y")
        wait_until(lambda: a.output().count("DLQ write refused") >= 3, timeout=20,
                   what="a's DLQ writes refused")
        self.assertEqual(self.sql("SELECT count(*) FROM observer_dlq")[0][0], 3)
        self.assertEqual(self.checkpoint()[1], 3)

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
