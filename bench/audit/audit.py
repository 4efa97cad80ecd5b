"""Audit trail at scale. Figures, never assertions. Run through bench/audit/run.sh.

1. Delivery: a backlog of N change-log rows, one webhook observer (the
   harness sink), drained with [audit] enabled = false and = true
   (alternating runs); delivery rate of each, and with the trail on, the
   indexing rate (events + attempts written per second until all N events
   and N attempts are indexed).
2. Search: R events (and one attempt each, 2% failed) generated with SQL
   over 30 days of partitions, then each query run through `observerctl
   search` Q times; p50 / p95 of the node's query time (took_ms) and of the
   whole command."""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))
from harness import (IntegrationTest, control_port, ctl, metric, metrics_port,  # noqa: E402
                     wait_until, webhook_observer)

EVENTS = int(os.environ.get("BENCH_AUDIT_EVENTS", "20000"))
ROWS = int(os.environ.get("BENCH_AUDIT_ROWS", "1000000"))
RUNS = int(os.environ.get("BENCH_AUDIT_RUNS", "2"))
QUERIES_EACH = int(os.environ.get("BENCH_AUDIT_QUERIES", "40"))
RATE = int(os.environ.get("BENCH_AUDIT_RATE", "5000"))
STEADY_SECS = int(os.environ.get("BENCH_AUDIT_STEADY_SECS", "20"))
# Extra [audit] keys for the runs with the trail on, e.g. "flush_interval_ms = 50".
AUDIT_CONF = os.environ.get("BENCH_AUDIT_CONF", "").replace(";", "\n")
PERF = """
[performance]
max_concurrent_actions = 32
[metrics]
enabled = true
port = 0
"""


class Bench(IntegrationTest):
    def runTest(self):
        pass


def out(**kw):
    print(json.dumps(kw), flush=True)
    return kw


def delivery_run(audit_on, sink_url):
    t = Bench()
    t.setUp()
    try:
        extra = PERF + ("\n[audit]\nenabled = true\n" + AUDIT_CONF + "\n" if audit_on
                        else "\n[audit]\nenabled = false\n")
        node = t.node(webhook_observer("o", "INSERT", "Bench", sink_url + "/x"), extra=extra,
                      listener="batch_size = 1000\nmax_in_flight = 10000")
        node.migrate()
        t.sql("INSERT INTO core.tb_entity_change_log (object_type, object_id, modification_type,"
              " object_data) SELECT 'Bench', g::text, 'INSERT',"
              " jsonb_build_object('n', g, 'customer_org', 'org-' || (g %% 100), 'note',"
              " 'bench event ' || g) FROM generate_series(1, %s) g", (EVENTS,))
        t.sql("VACUUM ANALYZE core.tb_entity_change_log")
        node.start()
        port = metrics_port(node)
        start = time.monotonic()
        wait_until(lambda: (t.checkpoint() or (0, 0))[1] >= EVENTS, timeout=600, interval=0.05,
                   what="backlog delivered")
        delivered_s = time.monotonic() - start
        indexed_s = None
        if audit_on:
            wait_until(lambda: metric(port, "observer_audit_events_total") >= EVENTS
                       and metric(port, "observer_audit_attempts_total") >= EVENTS,
                       timeout=600, interval=0.05, what="trail written")
            indexed_s = time.monotonic() - start
        dropped = metric(port, "observer_audit_dropped_total")
        node.stop()
        return out(bench="audit-delivery", audit=audit_on, events=EVENTS,
                   delivered_s=round(delivered_s, 3),
                   delivered_per_s=round(EVENTS / delivered_s),
                   indexed_s=None if indexed_s is None else round(indexed_s, 3),
                   records_indexed_per_s=None if indexed_s is None else round(2 * EVENTS / indexed_s),
                   events_indexed_per_s=None if indexed_s is None else round(EVENTS / indexed_s),
                   dropped=dropped)
    finally:
        t.doCleanups()


def sink_call(url, method, path):
    import urllib.request
    req = urllib.request.Request(url + path, method=method, data=b"" if method == "POST" else None)
    return json.loads(urllib.request.urlopen(req, timeout=60).read() or b"{}")


def steady_run(audit_on, sink_url):
    """RATE events/s written for STEADY_SECS (a batch every 10 ms, each in its
    own transaction, through the capture trigger); capture-to-delivery latency
    from the sink."""
    import threading
    t = Bench()
    t.setUp()
    try:
        extra = PERF + ("\n[audit]\nenabled = true\n" + AUDIT_CONF + "\n" if audit_on
                        else "\n[audit]\nenabled = false\n")
        node = t.node(webhook_observer("o", "INSERT", "Bench", sink_url + "/x"), extra=extra)
        node.migrate()
        t.sql("CREATE TABLE bench (id bigserial PRIMARY KEY, customer_org text, note text)")
        t.sql("SELECT observer_attach('public.bench', 'Bench', 'id', false)")
        node.start()
        port = metrics_port(node)
        sink_call(sink_url, "POST", "/_reset")
        per_batch = max(1, RATE // 100)
        total = per_batch * 100 * STEADY_SECS
        conn = t.connect()
        cur = conn.cursor()
        start = time.monotonic()
        for i in range(100 * STEADY_SECS):
            cur.execute("INSERT INTO bench (customer_org, note) SELECT 'org-' || (g %% 100),"
                        " 'steady event ' || g FROM generate_series(1, %s) g", (per_batch,))
            lag = start + (i + 1) * 0.01 - time.monotonic()
            if lag > 0:
                time.sleep(lag)
        written_s = time.monotonic() - start
        wait_until(lambda: sink_call(sink_url, "GET", "/_count")["requests"] >= total,
                   timeout=300, interval=0.1, what="steady events delivered")
        st = sink_call(sink_url, "GET", "/_stats")
        if audit_on:
            wait_until(lambda: metric(port, "observer_audit_attempts_total") >= total,
                       timeout=300, interval=0.1, what="trail written")
        dropped = metric(port, "observer_audit_dropped_total")
        node.stop()
        lat = st.get("lat_ms", {})
        return out(bench="audit-steady", audit=audit_on, rate=round(total / written_s),
                   events=total, p50_ms=lat.get("p50"), p95_ms=lat.get("p95"),
                   p99_ms=lat.get("p99"), max_ms=lat.get("max"), dropped=dropped)
    finally:
        t.doCleanups()


def generate(t):
    start = time.monotonic()
    t.sql("SELECT observer_audit_ensure_partitions(current_date - 30, current_date + 1)")
    # Events spread over 30 days: entity types, kinds, 1000 customer orgs, text.
    t.sql("""
      INSERT INTO observer_audit_events (event_id, ts, listener_id, txid, pk, event_type,
        event_kind, entity_type, entity_id, observers, actions, data)
      SELECT gen_random_uuid(), now() - (g::double precision / %s) * interval '30 days', 'bench',
             '1'::xid8, g, k.t, k.k, (ARRAY['Order', 'Product', 'Customer', 'Invoice'])[1 + g %% 4],
             g::text, '{o}', 1,
             jsonb_build_object('customer_org', 'org-' || (g %% 1000), 'status',
                                (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + (g / 4) %% 4],
                                'total', g %% 500, 'note', 'generated event number ' || g)
      FROM generate_series(1, %s) g
      CROSS JOIN LATERAL (SELECT (ARRAY['INSERT', 'UPDATE', 'DELETE'])[1 + (g / 16) %% 3] AS t,
                                 (ARRAY['created', 'updated', 'deleted'])[1 + (g / 16) %% 3] AS k) k
    """, (ROWS, ROWS))
    t.sql("""
      INSERT INTO observer_audit_attempts (event_id, event_ts, ts, entity_type, entity_id,
        event_kind, listener_id, observer_name, action_index, action_type, attempt, status,
        http_status, error, latency_ms, idempotency_key)
      SELECT e.event_id, e.ts, e.ts + interval '20 ms', e.entity_type, e.entity_id, e.event_kind,
             'bench', 'o', 0,
             (ARRAY['webhook', 'webhook', 'email', 'slack'])[1 + e.pk % 4], 1,
             CASE WHEN e.pk % 50 = 1 THEN 'failed' ELSE 'succeeded' END,
             CASE WHEN e.pk % 50 = 1 THEN 503 ELSE 200 END,
             CASE WHEN e.pk % 50 = 1 THEN 'HTTP 503: unavailable' END, 20,
             e.event_id || ':o:0'
      FROM observer_audit_events e
    """)
    t.sql("VACUUM ANALYZE observer_audit_events")
    t.sql("VACUUM ANALYZE observer_audit_attempts")
    took = time.monotonic() - start
    size = t.sql("SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_inherits i"
                 " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent IN"
                 " ('observer_audit_events'::regclass, 'observer_audit_attempts'::regclass)")[0][0]
    return out(bench="audit-generate", events=ROWS, attempts=ROWS, seconds=round(took, 1),
               size=size)


QUERIES = [
    "entity_type:Order AND event_kind:created AND timestamp:[now-1d TO now]",
    "entity_type:Product AND action_type:webhook AND status:failed",
    "customer_org:org-42",
    "shipped",
    "\"event number 4242\"",
    "entity_type:Invoice AND (data.status:cancelled OR total:[400 TO 499]) AND NOT customer_org:org-7",
]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def search_bench():
    t = Bench()
    t.setUp()
    try:
        node = t.node(webhook_observer("o", "INSERT", "Bench", "http://127.0.0.1:9/x"),
                      extra=PERF + "\n[audit]\nenabled = true\n")
        node.migrate()
        generate(t)
        node.start()
        port = control_port(node)
        results = []
        for q in QUERIES:
            took, wall, count = [], [], 0
            for _ in range(QUERIES_EACH):
                s = time.perf_counter()
                r = ctl(port, "search", q, "--format", "json")
                wall.append((time.perf_counter() - s) * 1000)
                if r.returncode != 0:
                    raise SystemExit(f"search failed: {r.stderr}")
                res = json.loads(r.stdout)["result"]
                took.append(res["took_ms"])
                count = res["count"]
            results.append(out(bench="audit-search", query=q, events=ROWS, hits=count,
                               runs=QUERIES_EACH, p50_ms=round(pct(took, 50), 1),
                               p95_ms=round(pct(took, 95), 1),
                               cli_p95_ms=round(pct(wall, 95), 1)))
        node.stop()
        return results
    finally:
        t.doCleanups()


def start_sink():
    """bench/sink's C++ sink: the delivery runs measure the node, not the sink."""
    import subprocess
    import tempfile
    d = tempfile.mkdtemp(prefix="bench-audit-sink-")
    port_file = os.path.join(d, "port")
    binary = os.path.join(os.environ["REPO_ROOT"], "build", "bench", "sink", "bench_sink")
    proc = subprocess.Popen([binary, "--port-file", port_file], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: os.path.exists(port_file) and open(port_file).read().strip(),
               what="sink port")
    return proc, f"http://127.0.0.1:{int(open(port_file).read())}"


def main():
    Bench.setUpClass()
    sink, url = start_sink()
    runs = []
    steady = []
    searches = []
    try:
        for i in range(RUNS):
            for on in (False, True):
                runs.append(delivery_run(on, url))
        if STEADY_SECS > 0:
            for i in range(max(1, RUNS)):
                for on in (False, True):
                    steady.append(steady_run(on, url))
    finally:
        sink.kill()
    if runs:
        off = statistics.median(r["delivered_per_s"] for r in runs if not r["audit"])
        on = statistics.median(r["delivered_per_s"] for r in runs if r["audit"])
        idx = statistics.median(r["events_indexed_per_s"] for r in runs if r["audit"])
        rec = statistics.median(r["records_indexed_per_s"] for r in runs if r["audit"])
    if ROWS > 0:
        searches = search_bench()
    print()
    if runs:
        print(f"delivery, {EVENTS} events, median of {RUNS}: trail off {off:.0f}/s, on {on:.0f}/s "
              f"({(1 - on / off) * 100:+.1f}% slower); indexing {idx:.0f} events/s "
              f"({rec:.0f} records/s, events + attempts)")
    for r in steady:
        print(f"steady {r['rate']}/s, trail {'on ' if r['audit'] else 'off'}: latency p50 "
              f"{r['p50_ms']} ms, p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms, dropped {r['dropped']}")
    if not searches:
        return
    print(f"search over {ROWS} events + {ROWS} attempts ({QUERIES_EACH} runs each):")
    print(f"  {'p50 ms':>8} {'p95 ms':>8} {'cli p95':>8} {'hits':>5}  query")
    for r in searches:
        print(f"  {r['p50_ms']:>8} {r['p95_ms']:>8} {r['cli_p95_ms']:>8} {r['hits']:>5}  {r['query']}")


if __name__ == "__main__":
    main()
