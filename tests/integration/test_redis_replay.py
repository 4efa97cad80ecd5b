"""observerctl replay with deduplication on a real redis-server: the original
deliveries leave `event:<id>` done in Redis for the dedup window, yet a replay
re-delivers every event (its copies claim `event:<id>:replay:<n>`), with the
original idempotency keys; a second node of another listener id sharing the
database and Redis runs none of the copies."""
import json
import time

from harness import IntegrationTest, Redis, control_port, ctl, main, wait_until, webhook_observer
from test_redis_dedup import redis_section


class RedisReplayTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.redis = Redis()

    def test_replay_passes_the_dedup_window(self):
        sink = self.sink()
        extra = redis_section(self.redis.url)
        obs = webhook_observer("order-insert", "INSERT", "Order", sink.url + "/hooks")
        node = self.node(obs, listener_id="rp-a", extra=extra)
        self.setup_orders(node)
        node.start()
        wait_until(lambda: "leading listener" in node.output(), what="leads")
        other = self.node(obs, listener_id="rp-b", extra=extra)
        for i in range(4):
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)", (f"c{i}",))
        wait_until(lambda: len(sink.delivered()) >= 4, what="originals")
        ids = [r[0] for r in self.sql("SELECT id::text FROM core.tb_entity_change_log"
                                      " ORDER BY pk_entity_change_log")]
        wait_until(lambda: all(self.redis.get(f"event:{i}") == "done" for i in ids),
                   what="originals done in Redis")
        # Another listener id on the same database and Redis: it delivered the
        # originals once more (its own checkpoint) or found them done; either
        # way it must run none of rp-a's copies.
        other.start()
        time.sleep(2)
        before = len(sink.delivered())
        port = control_port(node)
        r = ctl(port, "replay", "--from", ids[0])
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        rid = json.loads(ctl(port, "--format", "json", "replay", "--status").stdout)["result"][0]["id"]
        wait_until(lambda: len(sink.delivered()) >= before + 4, what="replayed past dedup")
        time.sleep(1.5)
        replayed = [(r["idempotency_key"], json.loads(r["body"])) for r in sink.delivered()[before:]]
        self.assertEqual(len(replayed), 4, "one copy per event, none from the other listener")
        self.assertEqual(sorted(k for k, _ in replayed), sorted(f"{i}:order-insert:0" for i in ids))
        self.assertTrue(all(b["replay"]["id"] == rid for _, b in replayed))
        for i in ids:
            self.assertEqual(self.redis.get(f"event:{i}:replay:{rid}"), "done")


if __name__ == "__main__":
    main()
