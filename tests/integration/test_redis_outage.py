"""Redis stopped (kill -9) mid-stream under both failure policies: no event is
lost either way. fail_open keeps running events without dedup (counted);
fail_closed stops running them until Redis answers again. `observerctl
cache-stats` reports Redis unavailable during the outage and healthy after."""
import json
import os
import threading
import time

from harness import (IntegrationTest, Redis, control_port, ctl, main, metric, metrics_port,
                     wait_until, webhook_observer)


def producer(dsn, n, pause=0.01):
    import psycopg2
    c = psycopg2.connect(dsn)
    c.autocommit = True
    cur = c.cursor()
    for i in range(n):
        cur.execute("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', %s)", (f"c{i}", i))
        time.sleep(pause)
    c.close()


class RedisOutageTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.redis = Redis(private_dir=os.path.join(self.workdir, "redis"))
        self.cleanups.append(self.redis.stop)

    def run_outage(self, policy):
        sink = self.sink()
        obs = webhook_observer("order-insert", "INSERT", "Order", sink.url + "/hooks",
                               max_attempts=50, initial_delay_ms=20, max_delay_ms=200)
        node = self.node(obs, extra=f"""
[redis]
url = "{self.redis.url}"
command_timeout_secs = 1
connect_timeout_secs = 1
failure_policy = "{policy}"

[performance]
enable_dedup = true

[metrics]
enabled = true
port = 0
""")
        self.setup_orders(node)
        node.start()
        port = metrics_port(node)
        t = threading.Thread(target=producer, args=(self.dsn, 300))
        t.start()
        try:
            wait_until(lambda: len(sink.delivered()) >= 60, timeout=30, what="60 deliveries")
            self.redis.kill()
            killed_at = len(sink.delivered())
            time.sleep(2.0)
            during = len(sink.delivered())
            if policy == "fail_open":
                wait_until(lambda: len(sink.delivered()) >= 200, timeout=60,
                           what="deliveries go on without Redis")
                self.assertGreater(metric(port, "observer_dedup_bypassed_total"), 0)
                self.assertEqual(metric(port, "observer_redis_health"), 0)
                self.assertEqual(self.redis_seen_by_ctl(node)[0], False)
            else:
                # Nothing new starts; at most the events already claimed finish.
                time.sleep(1.0)
                stalled = len(sink.delivered())
                self.assertEqual(stalled, during, "fail_closed runs nothing while Redis is down")
                self.assertLess(during - killed_at, 60)
            self.assertGreater(metric(port, "observer_redis_unavailable_total"), 0)
            self.redis.restart()
        finally:
            t.join()
        ids = set(self.change_log_ids())
        self.assertEqual(len(ids), 300)
        wait_until(lambda: {json.loads(r["body"])["id"] for r in sink.delivered()} >= ids, timeout=90,
                   what="all 300 delivered")
        wait_until(lambda: metric(port, "observer_redis_health") == 1, timeout=10, what="redis healthy")
        self.assertEqual(self.redis_seen_by_ctl(node), (True, None))
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 300, timeout=30, what="checkpoint at 300")
        self.assertEqual(node.stop(), 0)
        self.assertIn("Redis answers again", node.output())
        self.assertIn("node: Redis connected at redis://", node.output())
        got = [json.loads(r["body"])["id"] for r in sink.delivered()]
        print(f"{policy}: {len(got)} deliveries of 300 events, killed after {killed_at}")
        self.assertEqual(set(got), ids)

    def redis_seen_by_ctl(self, node):
        """(healthy, error) of Redis in `observerctl cache-stats`."""
        r = ctl(control_port(node), "--format", "json", "cache-stats")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        redis = json.loads(r.stdout)["result"]["redis"]
        if not redis["healthy"]:
            self.assertIn("redis at", redis["error"])
        return redis["healthy"], redis["error"]

    def test_fail_open_runs_without_dedup_and_loses_nothing(self):
        self.run_outage("fail_open")

    def test_fail_closed_pauses_and_loses_nothing(self):
        self.run_outage("fail_closed")


if __name__ == "__main__":
    main()
