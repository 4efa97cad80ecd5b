"""[adaptive_concurrency] on a live node against a sink with latency (issue 19):
at default settings the endpoint's limit grows past the old fixed default of
10 while latency stays near its baseline; a sink that sheds load with 503
beyond its capacity keeps the limit near that capacity; in both every event is
delivered exactly once (per idempotency key) and in capture order per entity."""
import json
import os
import re
import sys
import time
import urllib.request

from harness import IntegrationTest, main, metrics_port, wait_until, webhook_observer

ENTITIES = 300
UPDATES = 4  # per entity, after its INSERT: 1,500 events


def sink_stats(sink):
    return json.loads(urllib.request.urlopen(sink.url + "/_stats", timeout=5).read())


def endpoint_series(port, name):
    """{endpoint: value} of a per-endpoint gauge."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(name + r'\{endpoint="([^"]*)"\} (\S+)$', line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


class AdaptiveConcurrencyTest(IntegrationTest):
    def write_backlog(self):
        """ENTITIES orders, each inserted then updated UPDATES times, in one
        transaction per round so that entities interleave in the log."""
        c = self.connect()
        cur = c.cursor()
        cur.execute("INSERT INTO orders (customer, status, total) "
                    "SELECT 'c' || g, 'v0', g FROM generate_series(1, %s) g", (ENTITIES,))
        for v in range(1, UPDATES + 1):
            cur.execute("UPDATE orders SET status = %s", (f"v{v}",))
        return ENTITIES * (UPDATES + 1)

    def check_delivery(self, sink, total):
        """Exactly one 2xx per idempotency key; per entity the versions arrive
        in capture order (v0 .. vN)."""
        ok = sink.delivered()
        keys = {}
        for r in ok:
            keys[r["idempotency_key"]] = keys.get(r["idempotency_key"], 0) + 1
        self.assertEqual(len(keys), total, "every event delivered")
        self.assertEqual([k for k, n in keys.items() if n > 1], [], "no key delivered twice")
        versions = {}
        for r in sorted(ok, key=lambda r: r["t"]):
            body = json.loads(r["body"])
            data = body.get("data") or {}
            versions.setdefault(str(body["entity_id"]), []).append(data.get("status"))
        self.assertEqual(len(versions), ENTITIES)
        want = [f"v{v}" for v in range(UPDATES + 1)]
        bad = {e: v for e, v in versions.items() if v != want}
        self.assertEqual(bad, {}, "capture order per entity")

    def test_limit_grows_past_the_fixed_default_against_a_50ms_endpoint(self):
        sink = self.sink()
        sink.control(delay_ms=50)
        n = self.node(webhook_observer("all", "*", "Order", sink.url + "/hook"),
                      extra="[metrics]\nenabled = true\nport = 0\n" + os.environ.get("ADAPTIVE_EXTRA", "").replace(";", "\n"))
        self.setup_orders(n)
        n.start()
        port = metrics_port(n)
        total = self.write_backlog()
        t0 = time.time()
        wait_until(lambda: len(sink.delivered()) >= total, timeout=120, what="all events")
        stats = sink_stats(sink)
        print(f"\n50 ms endpoint: {total} events in {time.time() - t0:.1f} s, sink {stats}, "
              f"limit {endpoint_series(port, 'observer_endpoint_concurrency_limit')}",
              file=sys.stderr)
        # The old fixed default (10) would keep at most 10 requests at the sink.
        self.assertGreater(stats["max_in_flight"], 20, stats)
        # Against a sink with no capacity limit nothing is shed or retried.
        self.assertEqual(stats["shed"], 0)
        if os.environ.get("ADAPTIVE_DEBUG"):
            print("\n".join(l for l in n.output().splitlines() if "adaptive" in l)[-6000:],
                  file=sys.stderr)
        limits = endpoint_series(port, "observer_endpoint_concurrency_limit")
        self.assertEqual(list(limits), [f"http://127.0.0.1:{sink.port}"])
        self.assertGreater(max(limits.values()), 10)
        self.check_delivery(sink, total)
        # The gauges settle once the endpoint is idle: nothing in flight.
        wait_until(lambda: endpoint_series(port, "observer_endpoint_in_flight") ==
                   {f"http://127.0.0.1:{sink.port}": 0.0}, what="in-flight gauge back to 0")

    def test_shedding_endpoint_keeps_the_limit_near_its_capacity(self):
        capacity = 8
        sink = self.sink()
        sink.control(delay_ms=50, capacity=capacity, shed_status=503)
        n = self.node(webhook_observer("all", "*", "Order", sink.url + "/hook", max_attempts=100,
                                       initial_delay_ms=50, max_delay_ms=400),
                      extra="[metrics]\nenabled = true\nport = 0\n"
                            "[circuit_breaker]\nenabled = false\n")
        self.setup_orders(n)
        n.start()
        port = metrics_port(n)
        total = self.write_backlog()
        t0 = time.time()
        wait_until(lambda: len(sink.delivered()) >= total, timeout=180, what="all events")
        stats = sink_stats(sink)
        print(f"\nshedding endpoint (capacity {capacity}): {total} events in "
              f"{time.time() - t0:.1f} s, sink {stats}, "
              f"limit {endpoint_series(port, 'observer_endpoint_concurrency_limit')}",
              file=sys.stderr)
        self.check_delivery(sink, total)
        # The sink never served more than its capacity (it sheds the rest) ...
        self.assertLessEqual(stats["max_in_flight"], capacity)
        # ... and the limiter backed off to near it instead of keeping 1000
        # requests at the door: sheds stay a fraction of the deliveries.
        self.assertLess(stats["shed"], total, stats)
        limit = endpoint_series(port, "observer_endpoint_concurrency_limit")
        self.assertTrue(limit, "limit series present")
        self.assertLessEqual(max(limit.values()), 4 * capacity, limit)


if __name__ == "__main__":
    main()
