"""Circuit breakers on a live node: a dead endpoint opens its breaker (the
endpoint sees no calls while open, only spaced probes), another observer's
endpoint keeps delivering, and after the endpoint recovers a probe closes the
breaker and every held-back event is delivered without a DLQ row."""
import re
import time
import urllib.request

from harness import IntegrationTest, main, wait_until, webhook_observer

TIMEOUT_MS = 1500
SAMPLE = 4
CONCURRENCY = 8
EVENTS = 30


def scrape(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def value(text, name, labels):
    m = re.search(r"^" + re.escape(name + "{" + labels + "}") + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


class CircuitBreakerTest(IntegrationTest):
    def test_dead_endpoint_opens_probes_recovers_and_delivers(self):
        dead = self.sink(status=500)
        alive = self.sink()
        obs = webhook_observer("dead", "INSERT", "Order", dead.url + "/d", max_attempts=1000,
                               initial_delay_ms=20, max_delay_ms=100)
        obs += webhook_observer("alive", "INSERT", "Order", alive.url + "/a")
        node = self.node(obs, extra=f"""
[performance]
max_concurrent_actions = {CONCURRENCY}

[circuit_breaker]
failure_threshold = 0.5
success_threshold = 1.0
sample_size = {SAMPLE}
half_open_probes = 1
timeout_ms = {TIMEOUT_MS}

[metrics]
enabled = true
port = 0
""")
        self.setup_orders(node)
        node.start()
        port = int(wait_until(lambda: re.search(r"metrics on http://127.0.0.1:(\d+)/metrics", node.output()),
                              what="metrics port").group(1))
        dead_ep = f'endpoint="http://127.0.0.1:{dead.port}"'
        alive_ep = f'endpoint="http://127.0.0.1:{alive.port}"'
        for i in range(EVENTS):
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)", (f"c{i}",))

        # The other observer's endpoint is not held back by the dead one.
        wait_until(lambda: len(alive.delivered()) >= EVENTS, timeout=15, what="all deliveries to the live endpoint")
        wait_until(lambda: value(scrape(port), "observer_circuit_breaker_state", dead_ep) == 1,
                   what="the dead endpoint's breaker open")
        # Let it stay dead for a few open periods.
        time.sleep(3 * TIMEOUT_MS / 1000.0 + 0.5)
        text = scrape(port)
        rejected = value(text, "observer_circuit_breaker_rejected_total", dead_ep)
        self.assertIsNotNone(rejected)
        self.assertGreater(rejected, EVENTS)  # every held-back event failed fast at least once
        self.assertIsNone(value(text, "observer_circuit_breaker_rejected_total", alive_ep))

        calls = sorted(r["t"] for r in dead.records())
        # Before the breaker opened: at most the calls already in flight (one
        # concurrency window) reached the endpoint. After that, only probes,
        # one per open period.
        first = calls[0]
        wave = [t for t in calls if t < first + 0.5]
        probes = [t for t in calls if t >= first + 0.5]
        self.assertLessEqual(len(wave), CONCURRENCY)
        self.assertGreaterEqual(len(wave), SAMPLE)
        self.assertGreaterEqual(len(probes), 1)
        self.assertLessEqual(len(probes), int((calls[-1] - first) / (TIMEOUT_MS / 1000.0)) + 1)
        for a, b in zip(probes, probes[1:]):
            self.assertGreaterEqual(b - a, 0.9 * TIMEOUT_MS / 1000.0, "two probes within one open period")
        self.assertGreaterEqual(probes[0] - wave[-1], 0.9 * TIMEOUT_MS / 1000.0)
        # Nothing was dead-lettered and the checkpoint waits for the held-back events.
        self.assertEqual(self.sql("SELECT count(*) FROM observer_dlq")[0][0], 0)
        cp = self.checkpoint()
        self.assertTrue(cp is None or cp[1] < EVENTS)

        # Recovery: the next probe succeeds, the breaker closes, everything is delivered.
        dead.control(status=200)
        wait_until(lambda: len({r["idempotency_key"] for r in dead.delivered()}) == EVENTS, timeout=30,
                   what="every held-back event delivered after recovery")
        self.assertEqual(value(scrape(port), "observer_circuit_breaker_state", dead_ep), 0)
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == EVENTS, what="checkpoint past every event")
        self.assertEqual(self.sql("SELECT count(*) FROM observer_dlq")[0][0], 0)
        self.assertEqual(node.stop(), 0)

    def test_open_breaker_exhausts_attempts_into_the_dlq(self):
        # A short retry budget: fast-failed attempts count, so events still
        # reach the DLQ and the in-flight window keeps moving. Each retry
        # waits for the breaker's next probe time (300 ms here).
        dead = self.sink(status=503)
        node = self.node(webhook_observer("dead", "INSERT", "Order", dead.url + "/d", max_attempts=3,
                                          initial_delay_ms=10, max_delay_ms=20),
                         extra="[circuit_breaker]\nsample_size = 2\ntimeout_ms = 300\n")
        self.setup_orders(node)
        node.start()
        for i in range(10):
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)", (f"c{i}",))
        rows = wait_until(lambda: (lambda r: r if len(r) == 10 else None)(
            self.sql("SELECT attempts, last_error FROM observer_dlq ORDER BY id")), what="10 DLQ rows")
        self.assertTrue(all(a == 3 for a, _ in rows))
        errors = [e for _, e in rows]
        self.assertTrue(any(e.startswith("circuit open for http://127.0.0.1:") for e in errors), errors)
        # 30 attempts; the endpoint saw only the first window of calls and the spaced probes.
        self.assertLess(len(dead.records()), 30)
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 10, what="checkpoint past the DLQ'd events")
        self.assertEqual(node.stop(), 0)


if __name__ == "__main__":
    main()
