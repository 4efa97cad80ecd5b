"""The action-result cache in a live node: on Redis ([redis] + enable_caching)
and in process memory (enable_caching without [redis]). Twenty events render
the same webhook request (a fixed body): the first call runs, the other
nineteen are cache hits and reach no sink; `observerctl cache-stats` reports
them per observer, with the cache's size and Redis's health."""
import json

from harness import (IntegrationTest, Redis, control_port, ctl, main, metric, metrics_port,
                     wait_until, webhook_observer)


class CacheTest(IntegrationTest):
    def produce(self, n):
        for i in range(n):
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', %s)", (f"c{i}", i))

    def run_cache(self, redis_url):
        sink = self.sink()
        obs = webhook_observer("order-insert", "INSERT", "Order", sink.url + "/hooks",
                               extra='body_template = "{\\"refresh\\": \\"orders\\"}"\ncache = true\ncache_ttl_secs = 120')
        # A second, uncached observer: every event reaches it.
        obs += webhook_observer("order-audit", "INSERT", "Order", sink.url + "/audit")
        redis = f'[redis]\nurl = "{redis_url}"\n' if redis_url else ""
        node = self.node(obs, extra=redis + """
[performance]
enable_caching = true
max_concurrent_actions = 1

[metrics]
enabled = true
port = 0
""")
        self.setup_orders(node)
        node.start()
        port = metrics_port(node)
        self.produce(20)
        try:
            wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 20, timeout=30, what="20 events finished")
        except AssertionError:
            print(node.output(), sink.records()[:3])
            raise
        hooks = [r for r in sink.delivered() if r["path"] == "/hooks"]
        audit = [r for r in sink.delivered() if r["path"] == "/audit"]
        self.assertEqual(len(hooks), 1, "one call, then cache hits")
        self.assertEqual(json.loads(hooks[0]["body"]), {"refresh": "orders"})
        self.assertEqual(len(audit), 20)
        self.assertEqual(metric(port, "observer_cache_hits_total"), 19)
        self.assertEqual(metric(port, "observer_cache_misses_total"), 1)
        self.assertAlmostEqual(metric(port, "observer_cache_hit_rate"), 0.95)
        self.check_cache_stats(node, redis_url)
        self.assertEqual(node.stop(), 0)
        return node

    def check_cache_stats(self, node, redis_url):
        cport = control_port(node)
        r = ctl(cport, "--format", "json", "cache-stats")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        s = json.loads(r.stdout)["result"]
        self.assertEqual(s["backend"], "redis" if redis_url else "memory")
        self.assertEqual((s["hits"], s["misses"]), (19, 1))
        self.assertAlmostEqual(s["hit_rate"], 0.95)
        self.assertEqual(s["ttl_ms"], 60000)  # the default; the action sets its own 120 s
        per = {o["observer"]: o for o in s["observers"]}
        self.assertEqual((per["order-insert"]["hits"], per["order-insert"]["misses"],
                          per["order-insert"]["cached_actions"]), (19, 1, 1))
        self.assertEqual((per["order-audit"]["hits"], per["order-audit"]["misses"],
                          per["order-audit"]["cached_actions"]), (0, 0, 0))
        self.assertEqual(s["entries"], 1)  # one distinct request
        if redis_url:
            self.assertEqual(s["redis"]["healthy"], True)
            self.assertIsNone(s["capacity"])
            self.assertIsInstance(s["evictions"], int)
        else:
            self.assertIsNone(s["redis"])
            self.assertEqual((s["capacity"], s["evictions"], s["expired"]), (10000, 0, 0))
        text = ctl(cport, "cache-stats")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertIn("hit rate:     95.0% (19 hits, 1 misses since start)", text.stdout)
        self.assertIn("order-insert", text.stdout)
        self.assertIn("order-audit             no cached actions", text.stdout)
        self.assertIn("redis:        " + ("redis://" if redis_url else "not configured"), text.stdout)

    def test_cache_on_redis(self):
        redis = Redis()
        node = self.run_cache(redis.url)
        self.assertIn("action-result cache on Redis", node.output())
        self.assertIn("Redis connected", node.output())
        keys = redis.cli("--scan", "--pattern", "action_result:webhook:*").split()
        self.assertTrue(keys, "an action_result:webhook:<sha256> key exists")
        ttl = int(redis.cli("TTL", keys[0]).replace("(integer)", "").strip())
        self.assertTrue(0 < ttl <= 120, ttl)

    def test_cache_in_memory_without_redis(self):
        node = self.run_cache(None)
        self.assertIn("process memory", node.output())


if __name__ == "__main__":
    main()
