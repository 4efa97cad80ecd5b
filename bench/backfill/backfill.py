"""Live delivery p99 during a backfill vs idle: a writer updates random rows
of a captured table at BENCH_BACKFILL_RATE per second; an observer sends its
UPDATE events to one bench_sink (latency = receive time - capture time), and
during the second phase `observerctl backfill` emits every row of the table
as a READ event to a second bench_sink. Figures, never assertions. Run
through bench/backfill/run.sh."""
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))
from harness import IntegrationTest, control_port, ctl  # noqa: E402

ROWS = int(os.environ.get("BENCH_BACKFILL_ROWS", "1000000"))
RATE = float(os.environ.get("BENCH_BACKFILL_RATE", "100"))
IDLE_SECS = float(os.environ.get("BENCH_BACKFILL_IDLE_SECS", "20"))
BATCH = int(os.environ.get("BENCH_BACKFILL_BATCH", "1000"))
SINK = os.environ["BENCH_SINK"]


class Bench(IntegrationTest):
    def runTest(self):
        pass


class BenchSink:
    def __init__(self, workdir, name):
        self.port_file = os.path.join(workdir, f"{name}.port")
        self.proc = subprocess.Popen([SINK, "--port-file", self.port_file],
                                     stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(self.port_file) and open(self.port_file).read().strip():
                break
            time.sleep(0.05)
        self.port = int(open(self.port_file).read())
        self.url = f"http://127.0.0.1:{self.port}"

    def call(self, method, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request(method, path)
        body = c.getresponse().read()
        c.close()
        return json.loads(body or b"{}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def observer(name, event_type, url):
    return f"""
[[observers]]
name = "{name}"
event_type = "{event_type}"
entity = "Item"
[[observers.actions]]
type = "webhook"
url = "{url}"
timeout_ms = 5000
"""


def writer(t, stop, sent):
    conn = t.connect()
    cur = conn.cursor()
    rnd = random.Random(1)
    period = 1.0 / RATE
    nxt = time.perf_counter()
    while not stop.is_set():
        cur.execute("UPDATE items SET v = v + 1 WHERE id = %s", (rnd.randint(1, ROWS),))
        sent[0] += 1
        nxt += period
        time.sleep(max(0.0, nxt - time.perf_counter()))
    conn.close()


def phase(t, live, seconds=None, until=None):
    live.call("POST", "/_reset")
    stop = threading.Event()
    sent = [0]
    th = threading.Thread(target=writer, args=(t, stop, sent))
    start = time.time()
    th.start()
    try:
        if until:
            until()
        else:
            time.sleep(seconds)
    finally:
        stop.set()
        th.join()
    elapsed = time.time() - start
    # Let the last live events arrive.
    deadline = time.time() + 60
    while time.time() < deadline and live.call("GET", "/_count")["requests"] < sent[0]:
        time.sleep(0.2)
    return live.call("GET", "/_stats"), sent[0], elapsed


def main():
    t = Bench()
    t.setUpClass()
    t.setUp()
    live = BenchSink(t.workdir, "live")
    bulk = BenchSink(t.workdir, "bulk")
    t.cleanups += [live.stop, bulk.stop]
    results = []
    try:
        node = t.node(observer("live", "UPDATE", live.url + "/live") +
                      observer("backfill", "READ", bulk.url + "/bulk"),
                      listener_id="bench", checkpoint="interval_ms = 200")
        node.migrate()
        t.sql("CREATE TABLE items (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0, pad text)")
        t0 = time.time()
        t.sql("INSERT INTO items (id, pad) SELECT g, repeat('x', 100) FROM generate_series(1, %s) g",
              (ROWS,))
        t.sql("VACUUM ANALYZE items")
        t.sql("SELECT observer_attach('public.items', 'Item', 'id', true)")
        print(f"# {ROWS} rows loaded in {time.time() - t0:.1f} s", file=sys.stderr, flush=True)
        node.start()
        port = control_port(node)
        time.sleep(2)
        idle, sent, el = phase(t, live, seconds=IDLE_SECS)
        results.append({"phase": "idle", "live_events": sent, "seconds": round(el, 1),
                        "lat_ms": idle.get("lat_ms")})
        print(json.dumps(results[-1]), flush=True)

        def run_backfill():
            r = ctl(port, "backfill", "public.items", "--batch", str(BATCH))
            if r.returncode != 0:
                raise RuntimeError(r.stderr + r.stdout)
            while True:
                st = t.sql("SELECT status FROM observer_backfills ORDER BY id DESC LIMIT 1")[0][0]
                if st != "running":
                    break
                time.sleep(0.5)
            while bulk.call("GET", "/_count")["requests"] < ROWS:
                time.sleep(0.2)

        during, sent, el = phase(t, live, until=run_backfill)
        bf = t.sql("SELECT rows_emitted, chunks_done, chunk_retries,"
                   " extract(epoch FROM finished_at - created_at) FROM observer_backfills"
                   " ORDER BY id DESC LIMIT 1")[0]
        results.append({"phase": "during backfill", "live_events": sent, "seconds": round(el, 1),
                        "lat_ms": during.get("lat_ms"), "backfill_rows": bf[0],
                        "chunks": bf[1], "chunk_retries": bf[2],
                        "backfill_seconds": round(float(bf[3]), 1),
                        "backfill_rows_per_s": round(bf[0] / max(0.001, el), 0),
                        "read_events_received": bulk.call("GET", "/_count")["requests"]})
        print(json.dumps(results[-1]), flush=True)
        node.stop()
    finally:
        t._cleanup()
    i, d = results[0]["lat_ms"] or {}, results[1]["lat_ms"] or {}
    print(f"\n{'live delivery latency (ms)':32} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    for name, l in (("idle", i), (f"during a {ROWS}-row backfill", d)):
        print(f"{name:32} {l.get('p50', 0):8.2f} {l.get('p95', 0):8.2f} {l.get('p99', 0):8.2f}"
              f" {l.get('max', 0):8.2f}")
    if i.get("p99"):
        print(f"p99 ratio: {d.get('p99', 0) / i['p99']:.2f}x (goal <= 2x); backfill "
              f"{results[1]['backfill_rows']} rows in {results[1]['backfill_seconds']} s")


if __name__ == "__main__":
    main()
