"""Change-log retention at scale: N processed rows, aged past the retention
period, pruned by the leader in batches while a writer commits one row every
10 ms; then the same N rows removed by one DELETE statement for comparison.
Figures, never assertions. Run through bench/retention/run.sh."""
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))
from harness import IntegrationTest, metrics_port, metric  # noqa: E402

ROWS = int(os.environ.get("BENCH_RETENTION_ROWS", "1000000"))
LOG_OBSERVER = """
[[observers]]
name = "log"
event_type = "INSERT"
entity = "Bench"
[[observers.actions]]
type = "log"
"""


class Bench(IntegrationTest):
    def runTest(self):
        pass


def fill(t):
    """N rows in the change log, handled (a checkpoint past them) and 2 h old."""
    t.sql("INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type,"
          " object_data, created_at)"
          " SELECT 'Bench', g::text, 'INSERT', jsonb_build_object('n', g, 'pad', repeat('x', 200)),"
          " clock_timestamp() - interval '2 hours' FROM generate_series(1, %s) g", (ROWS,))
    t.sql("VACUUM ANALYZE core.tb_entity_change_log")
    head = t.sql("SELECT txid::text, max(pk_entity_change_log) FROM core.tb_entity_change_log"
                 " GROUP BY txid ORDER BY txid DESC LIMIT 1")[0]
    t.sql("INSERT INTO observer_checkpoints (listener_id, event_id, txid, events_total,"
          " last_processed_at) VALUES ('bench', %s, %s::xid8, %s, now())"
          " ON CONFLICT (listener_id) DO UPDATE SET event_id = EXCLUDED.event_id,"
          " txid = EXCLUDED.txid",
          (head[1], head[0], ROWS))


def writer(t, stop, latencies):
    conn = t.connect()
    cur = conn.cursor()
    while not stop.is_set():
        s = time.perf_counter()
        cur.execute("SELECT observer_emit('Bench', 'w', '{}'::jsonb)")
        latencies.append((time.perf_counter() - s) * 1000)
        time.sleep(0.01)
    conn.close()


def size(t):
    return t.sql("SELECT pg_total_relation_size('core.tb_entity_change_log')")[0][0]


def main():
    t = Bench()
    t.setUpClass()
    t.setUp()
    out = []
    try:
        node = t.node(LOG_OBSERVER, listener_id="bench", extra="""
[change_log]
retention_hours = 1
prune_interval_secs = 1

[metrics]
enabled = true
port = 0
""")
        node.migrate()
        fill(t)
        before = size(t)
        # Idle writer latency first.
        stop, idle = threading.Event(), []
        w = threading.Thread(target=writer, args=(t, stop, idle))
        w.start()
        time.sleep(5)
        stop.set()
        w.join()
        stop, busy = threading.Event(), []
        w = threading.Thread(target=writer, args=(t, stop, busy))
        w.start()
        start = time.time()
        node.start()
        port = metrics_port(node)
        while metric(port, "observer_change_log_pruned_total") < ROWS:
            time.sleep(0.2)
            if time.time() - start > 3600:
                break
        took = time.time() - start
        stop.set()
        w.join()
        pruned = metric(port, "observer_change_log_pruned_total")
        node.stop()
        after = size(t)
        q = lambda xs, p: statistics.quantiles(xs, n=100)[p - 1] if len(xs) > 2 else float("nan")
        out.append({"workload": "pruner", "rows": int(pruned), "seconds": round(took, 1),
                    "rows_per_s": round(pruned / took), "bytes_before": before, "bytes_after": after,
                    "writer_p50_ms_idle": round(q(idle, 50), 2), "writer_p99_ms_idle": round(q(idle, 99), 2),
                    "writer_p50_ms_pruning": round(q(busy, 50), 2),
                    "writer_p99_ms_pruning": round(q(busy, 99), 2)})
        # One DELETE statement over the same rows, for comparison.
        t.sql("TRUNCATE core.tb_entity_change_log")
        fill(t)
        stop, one = threading.Event(), []
        w = threading.Thread(target=writer, args=(t, stop, one))
        w.start()
        s = time.time()
        t.sql("DELETE FROM core.tb_entity_change_log WHERE object_type = 'Bench' AND object_id <> 'w'")
        took = time.time() - s
        stop.set()
        w.join()
        out.append({"workload": "one DELETE", "rows": ROWS, "seconds": round(took, 1),
                    "rows_per_s": round(ROWS / took), "writer_p50_ms": round(q(one, 50), 2),
                    "writer_p99_ms": round(q(one, 99), 2), "writer_max_ms": round(max(one), 1)})
    finally:
        t._cleanup()
    for o in out:
        print(json.dumps(o))
    p = out[0]
    print(f"\npruner: {p['rows']} rows in {p['seconds']} s ({p['rows_per_s']}/s), "
          f"{p['bytes_before'] / 1e6:.0f} MB before, {p['bytes_after'] / 1e6:.0f} MB after (space "
          f"reused, not returned: autovacuum); writer commit p50/p99 {p['writer_p50_ms_idle']}/"
          f"{p['writer_p99_ms_idle']} ms idle, {p['writer_p50_ms_pruning']}/{p['writer_p99_ms_pruning']} ms "
          f"while pruning")
    d = out[1]
    print(f"one DELETE: {d['rows']} rows in {d['seconds']} s; writer p50/p99/max {d['writer_p50_ms']}/"
          f"{d['writer_p99_ms']}/{d['writer_max_ms']} ms meanwhile")


if __name__ == "__main__":
    main()
