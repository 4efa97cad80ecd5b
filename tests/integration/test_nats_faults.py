"""The NATS topology under faults: workers and bridges killed (SIGKILL) and
restarted while events flow, a NATS server restarted, one server of a
3-server JetStream cluster killed, one of three bridged databases stopped.
Every event must reach the sink (redeliveries carry the same idempotency
key), and per observer and entity the capture order holds.

NATS_FAULT_EVENTS / NATS_FAULT_KILLS scale the kill test up (the issue's
100k events with 10 kills of each kind: NATS_FAULT_EVENTS=100000
NATS_FAULT_KILLS=10)."""
import json
import os
import random
import threading
import time

from harness import Postgres, main, wait_until, webhook_observer
from test_nats_topology import NatsTest


def any_observer(url):
    return webhook_observer("all", "*", "Order", url, max_attempts=8, initial_delay_ms=50,
                            max_delay_ms=500)


class FaultTest(NatsTest):
    def expected_keys(self, dsn=None):
        rows = self.sql_on(dsn, "SELECT id::text FROM core.tb_entity_change_log")
        return {f"{r[0]}:all:0" for r in rows}

    def sql_on(self, dsn, query):
        import psycopg2
        c = psycopg2.connect(dsn or self.dsn)
        c.autocommit = True
        try:
            cur = c.cursor()
            cur.execute(query)
            return cur.fetchall() if cur.description else None
        finally:
            c.close()

    def writer(self, total, entities, stop, dsn=None, batch=50):
        """Inserts `entities` orders, then updates random ones in small
        transactions until `total` events were written."""
        import psycopg2
        c = psycopg2.connect(dsn or self.dsn)
        c.autocommit = True
        cur = c.cursor()
        cur.execute("INSERT INTO orders (customer, status, total) SELECT 'c' || g, 'v0', g"
                    " FROM generate_series(1, %s) g", (entities,))
        written = entities
        rnd = random.Random(7)
        while written < total and not stop.is_set():
            n = min(batch, total - written)
            ids = [rnd.randint(1, entities) for _ in range(n)]
            cur.execute("UPDATE orders SET status = 'v' || (random() * 1000)::int WHERE id = ANY(%s)",
                        (ids,))
            written += cur.rowcount
            time.sleep(0.005)
        c.close()

    def check_all_delivered(self, sink, expected, timeout=120, source_of=None):
        self.wait(lambda: expected <= {r["idempotency_key"] for r in sink.delivered()},
                  timeout=timeout, what=f"{len(expected)} events delivered", sink=sink)
        got = {r["idempotency_key"] for r in sink.delivered()}
        self.assertEqual(got - expected, set(), "deliveries of events never captured")
        self.assert_entity_order(sink.delivered(), source_of)


class Faults(FaultTest):
    def test_kills_of_bridge_and_workers_lose_nothing_and_keep_entity_order(self):
        total = int(os.environ.get("NATS_FAULT_EVENTS", "6000"))
        kills = int(os.environ.get("NATS_FAULT_KILLS", "3"))
        sink = self.sink(ids_only=False)
        obs = any_observer(sink.url)
        bridge = self.topology_node("bridge")
        self.setup_orders(bridge)
        workers = [self.topology_node("worker", obs, nats_extra=f'worker_name = "w{i}"')
                   for i in range(2)]
        bridge.start()
        for w in workers:
            w.start()
        stop = threading.Event()
        t = threading.Thread(target=self.writer, args=(total, 300, stop))
        t.start()
        rnd = random.Random(11)
        try:
            for k in range(kills):
                time.sleep(rnd.uniform(0.5, 1.5))
                bridge.kill9()
                bridge.start()
                time.sleep(rnd.uniform(0.5, 1.5))
                w = rnd.choice(workers)
                w.kill9()
                w.start()
        finally:
            t.join()
        # The Python sink takes a few hundred requests/s: scale the wait.
        self.check_all_delivered(sink, self.expected_keys(), timeout=max(180, total / 200))
        for node in [bridge] + workers:
            self.assertEqual(node.stop(), 0, node.output()[-2000:])

    def test_entity_order_with_1_2_and_4_workers_and_a_worker_kill(self):
        for count in (1, 2, 4):
            with self.subTest(workers=count):
                self.run_workers(count)

    def run_workers(self, count):
        db = self.pg.create_database()
        dsn = self.pg.dsn(db)
        sink = self.sink()
        sink.control(delay_ms=2)
        obs = any_observer(sink.url)
        stream = f"s{count}"
        extra = f'stream = "{stream}"\nsubject_prefix = "p{count}"'
        bridge = self.topology_node("bridge", dsn=dsn, nats_extra=extra)
        self.dsn, saved = dsn, self.dsn
        try:
            self.setup_orders(bridge)
            workers = [self.topology_node("worker", obs, dsn=dsn,
                                          nats_extra=extra + f'\nworker_name = "w{i}"')
                       for i in range(count)]
            bridge.start()
            for w in workers:
                w.start()
            stop = threading.Event()
            t = threading.Thread(target=self.writer, args=(1500, 40, stop, dsn))
            t.start()
            time.sleep(1.0)
            victim = workers[-1]
            victim.kill9()
            if count == 1:
                victim.start()  # the only worker: it comes back
            t.join()
            self.check_all_delivered(sink, self.expected_keys(dsn), timeout=120)
            for node in [bridge] + [w for w in workers if w is not victim or count == 1]:
                self.assertEqual(node.stop(), 0, node.output()[-2000:])
        finally:
            self.dsn = saved


if __name__ == "__main__":
    main()
