"""[performance] on a live node with a slowed sink: the actions of one event
run concurrently, attempts in flight never exceed max_concurrent_actions (and
reach it), and per-attempt timeouts cut slow calls, count as failed attempts
and leak neither threads nor sockets."""
import os
import time

from harness import IntegrationTest, main, wait_until

DELAY_MS = 800
# These tests check the fixed limit (max_concurrent_actions); adaptive
# concurrency would start each endpoint with a one-call baseline probe
# (tests/integration/test_adaptive_concurrency.py covers it).
FIXED = "[adaptive_concurrency]\nenabled = false\n"


def max_overlap(starts, duration):
    """Most requests in flight at once, given receive times and the sink's fixed delay."""
    best = 0
    for t in starts:
        best = max(best, sum(1 for s in starts if s <= t < s + duration))
    return best


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def sockets(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass  # closed meanwhile
    return n


def observer(name, url, actions=1, timeout_ms=10000, max_attempts=3, entity="Order"):
    out = f"""
[[observers]]
name = "{name}"
event_type = "INSERT"
entity = "{entity}"
"""
    for i in range(actions):
        out += f"""
[[observers.actions]]
type = "webhook"
url = "{url}/{name}/{i}"
timeout_ms = {timeout_ms}
"""
    out += f"""
[observers.retry]
max_attempts = {max_attempts}
initial_delay_ms = 10
max_delay_ms = 20
"""
    return out


class ConcurrencyTest(IntegrationTest):
    def test_actions_of_one_event_run_concurrently(self):
        sink = self.sink()
        sink.control(delay_ms=DELAY_MS)
        node = self.node(observer("fanout", sink.url, actions=3),
                         extra=FIXED + "[performance]\nenable_concurrent = true\nmax_concurrent_actions = 10\n")
        self.setup_orders(node)
        node.start()
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1)")
        wait_until(lambda: len(sink.delivered()) == 3, what="3 deliveries")
        starts = sorted(r["t"] for r in sink.records())
        # Each call is answered after DELAY_MS: all three started before the first was answered.
        self.assertEqual(max_overlap(starts, DELAY_MS / 1000.0), 3)
        self.assertEqual(sorted(r["path"] for r in sink.records()), ["/fanout/0", "/fanout/1", "/fanout/2"])
        self.assertEqual(node.stop(), 0)

    def test_sequential_mode_runs_actions_one_after_another(self):
        sink = self.sink()
        sink.control(delay_ms=200)
        node = self.node(observer("seq", sink.url, actions=3),
                         extra=FIXED + "[performance]\nenable_concurrent = false\n")
        self.setup_orders(node)
        node.start()
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1)")
        wait_until(lambda: len(sink.delivered()) == 3, what="3 deliveries")
        recs = sorted(sink.records(), key=lambda r: r["t"])
        self.assertEqual([r["path"] for r in recs], ["/seq/0", "/seq/1", "/seq/2"])
        self.assertEqual(max_overlap([r["t"] for r in recs], 0.2), 1)
        self.assertEqual(node.stop(), 0)

    def test_entities_run_in_parallel_up_to_max_concurrent_actions(self):
        sink = self.sink()
        sink.control(delay_ms=DELAY_MS)
        node = self.node(observer("par", sink.url),
                         extra=FIXED + "[performance]\nmax_concurrent_actions = 4\n")
        self.setup_orders(node)
        node.start()
        for i in range(12):  # 12 entities, one event each
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)", (f"c{i}",))
        wait_until(lambda: len(sink.delivered()) == 12, timeout=30, what="12 deliveries")
        overlap = max_overlap([r["t"] for r in sink.records()], DELAY_MS / 1000.0)
        self.assertEqual(overlap, 4)
        self.assertEqual(node.stop(), 0)

    def test_timeouts_cut_calls_and_leak_no_threads_or_sockets(self):
        sink = self.sink()
        # The sink answers after 2 s; attempts are cut at 100 ms (concurrent_timeout_ms
        # caps the action's own 10 s timeout). The breaker is off so every attempt is a call.
        sink.control(delay_ms=2000)
        node = self.node(observer("slow", sink.url, timeout_ms=10000, max_attempts=2),
                         extra=FIXED + "[performance]\nmax_concurrent_actions = 8\nconcurrent_timeout_ms = 100\n"
                               "[circuit_breaker]\nenabled = false\n")
        self.setup_orders(node)
        node.start()
        pid = node.proc.pid

        def dlq_count():
            return self.sql("SELECT count(*) FROM observer_dlq")[0][0]

        self.sql("INSERT INTO orders (customer, status, total) VALUES ('warm', 'new', 1)")
        wait_until(lambda: dlq_count() == 1, what="the first event dead-lettered after 2 timeouts")
        base_threads, base_sockets = threads(pid), sockets(pid)
        rounds, per_round = 4, 25
        samples = []
        for k in range(rounds):
            for i in range(per_round):
                self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)", (f"r{k}-{i}",))
            want = 1 + (k + 1) * per_round
            wait_until(lambda: dlq_count() == want, timeout=60, what=f"{want} DLQ rows")
            samples.append((threads(pid), sockets(pid)))
        rows = self.sql("SELECT attempts, last_error FROM observer_dlq")
        self.assertEqual(len(rows), 1 + rounds * per_round)
        self.assertTrue(all(a == 2 and e.startswith("timeout:") for a, e in rows), rows[:3])
        # 2 * 101 = 202 timed-out calls: the node's threads did not grow, and its sockets
        # stay within one concurrency window of the baseline (libcurl keeps no cut connection).
        for t, s in samples:
            self.assertLessEqual(t, base_threads)
            self.assertLessEqual(s, base_sockets + 8)
        self.assertEqual(node.stop(), 0)


if __name__ == "__main__":
    main()
