"""The action-result cache in a live node: on Redis ([redis] + enable_caching)
and in process memory (enable_caching without [redis]). Twenty events render
the same webhook request (a fixed body): the first call runs, the other
nineteen are cache hits and reach no sink."""
import json

from harness import IntegrationTest, Redis, main, metric, metrics_port, wait_until, webhook_observer


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
        self.assertEqual(node.stop(), 0)
        return node

    def test_cache_on_redis(self):
        redis = Redis()
        node = self.run_cache(redis.url)
        self.assertIn("action-result cache on Redis", node.output())
        keys = redis.cli("--scan", "--pattern", "action_result:webhook:*").split()
        self.assertTrue(keys, "an action_result:webhook:<sha256> key exists")
        ttl = int(redis.cli("TTL", keys[0]).replace("(integer)", "").strip())
        self.assertTrue(0 < ttl <= 120, ttl)

    def test_cache_in_memory_without_redis(self):
        node = self.run_cache(None)
        self.assertIn("process memory", node.output())


if __name__ == "__main__":
    main()
