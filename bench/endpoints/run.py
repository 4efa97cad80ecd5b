#!/usr/bin/env python3
"""Endpoint benchmark of issue 19 (docs/performance.md, "Slow endpoints").

Started by bench/endpoints/run (which builds first). Starts its own
PostgreSQL (scripts/pg.sh), the C++ sink (bench/sink: --delay-ms for a slow
endpoint, --capacity for one that sheds load with 503) and one observer-node
per run, all on loopback with private directories under one work dir, and
stops everything on every exit path. Workloads (--workloads, default all):

  slow       a backlog of N inserted items (N entities, one event each) is
             written with the engine stopped, then drained against the sink
             answering after 50 ms (BENCH_EP_DELAY_MS), side by side:
             fixed limits (adaptive concurrency off; max_concurrent_actions
             10 = the old default, and BENCH_EP_FIXED, e.g. 100 and 400),
             adaptive concurrency at its defaults, and adaptive + batched
             webhooks (batch_size BENCH_EP_BATCH = 100). events/s from the
             engine's start to the sink's last receive.
  shedding   the same backlog against a sink of capacity C (BENCH_EP_CAPACITY
             = 20 answers in flight at 50 ms, i.e. 400 events/s; more are
             answered 503 at once): fixed 400 vs adaptive. The sink counts
             what it shed and the most answers it held; the engine's limit at
             the end comes from its metrics.
  slow500    a sink answering after 500 ms with capacity 5: adaptive. How
             many calls it shed (more than its capacity offered) per event.
  loopback   pgbench writes BENCH_EP_LOOPBACK_EVENTS rows in 100-row
             transactions while the engine delivers to the sink answering at
             once: adaptive one request per event, and batched (batch_size
             100). events/s from the first capture to the last receive.

Prints one JSON line per result, then a table and the goals (figures only:
nothing is asserted).
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time
import types
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import run as base  # noqa: E402  (bench/run.py: process, PostgreSQL and sink helpers)

log = base.log


class EndpointBench(base.Bench):
    def __init__(self, opts):
        super().__init__(opts)
        self.engine_extra = ""
        self.action_extra = ""
        self.held = False
        self.metrics_port = free_port()

    def emit(self, row):
        """As the base class, but a row can be held back until its figures from
        the sink and the engine are added (complete())."""
        if not self.held:
            return super().emit(row)
        self.results.append(row)

    def complete(self, extra):
        row = {"bench": "endpoints", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               **self.results.pop(), **extra, "load1": round(os.getloadavg()[0], 2)}
        self.held = False
        super().emit(row)
        return row

    # The base class's sink, with this run's latency / capacity.
    def start_sink(self, *args):
        self.stop_proc("sink")
        port_file = os.path.join(self.work, "sink.port")
        if os.path.exists(port_file):
            os.remove(port_file)
        self.spawn("sink", [base.SINK_BIN, "--port-file", port_file] + [str(a) for a in args])
        for _ in range(100):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        with open(port_file) as f:
            self.sink_port = int(f.read())

    def engine_config(self, concurrency):
        path = os.path.join(self.work, "node.toml")
        with open(path, "w") as f:
            f.write(f"""[database]
url = "{self.dsn('bench')}"
[listener]
listener_id = "bench"
[metrics]
enabled = true
port = {self.metrics_port}
[logging]
level = "{os.environ.get('BENCH_EP_LOG', 'warn')}"
{self.engine_extra}
[[observers]]
name = "bench"
event_type = "INSERT"
entity = "Item"
[[observers.actions]]
type = "webhook"
url = "http://127.0.0.1:{self.sink_port}/hooks/item"
timeout_ms = 10000
{self.action_extra}
[observers.retry]
max_attempts = 100
initial_delay_ms = 50
max_delay_ms = 1000
""")
        return path

    def configure(self, fixed=None, batch=None):
        """fixed: adaptive concurrency off with this max_concurrent_actions;
        else adaptive at its defaults. batch: webhook batch_size."""
        if fixed is not None:
            self.engine_extra = (f"[performance]\nmax_concurrent_actions = {fixed}\n"
                                 "[adaptive_concurrency]\nenabled = false\n")
        else:
            self.engine_extra = ""
        self.action_extra = f"batch_size = {batch}\nbatch_max_wait_ms = 20\n" if batch else ""

    def label(self, fixed, batch):
        m = f"fixed {fixed}" if fixed is not None else "adaptive"
        if fixed == 10:
            m += " (old default)"
        if batch:
            m += f" + batch {batch}"
        return m

    def wait_delivered(self, expect, stall_s, poll_s=0.2):
        """As the base class, but a run ends after BENCH_EP_MAX_S whatever
        arrived (a fixed limit against a shedding endpoint can take many
        minutes); the row then says "capped" and how many were lost."""
        deadline = time.time() + self.o.max_s
        while True:
            n = self.sink("GET", "/_count")["requests"]
            if n >= expect:
                st = self.sink("GET", f"/_stats?expect={expect}")
                if st["lost"] == 0:
                    return st
            if time.time() > deadline:
                log(f"capped after {self.o.max_s}s: {n} of {expect} events")
                self.capped = True
                return self.sink("GET", f"/_stats?expect={expect}")
            time.sleep(poll_s)

    def engine_limits(self):
        """observer_endpoint_concurrency_limit of the running engine (max over endpoints)."""
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                          timeout=5).read()
        except OSError:
            return None
        vals = [float(m) for m in re.findall(rb'^observer_endpoint_concurrency_limit\{[^}]*\} (\S+)',
                                             body, re.M)]
        return max(vals) if vals else None

    def drain(self, workload, fixed=None, batch=None, extra=None):
        self.configure(fixed, batch)
        limit = {}

        def stop():
            limit["v"] = self.engine_limits()
            self.stop_proc("engine")

        self.held = True
        self.capped = False
        self.backlog("fraiseql", "bench", self.o.events, lambda: self.start_engine(0), stop,
                     mode_extra=f" {workload} {self.label(fixed, batch)}")
        st = self.sink("GET", f"/_stats?expect={self.o.events}")
        stop()
        return self.complete({"workload": workload, "variant": self.label(fixed, batch),
                              "http_requests": st["http_requests"], "shed": st["shed"],
                              "sink_max_in_flight": st["max_in_flight"],
                              "final_limit": limit.get("v"), "capped": self.capped,
                              **(extra or {})})

    def run_slow(self):
        self.start_sink("--delay-ms", self.o.delay_ms)
        for fixed in [10] + self.o.fixed:
            self.drain("slow", fixed=fixed)
        self.drain("slow", fixed=None)
        self.drain("slow", fixed=None, batch=self.o.batch)

    def run_shedding(self):
        c = self.o.capacity
        self.start_sink("--delay-ms", self.o.delay_ms, "--capacity", c)
        cap = {"capacity": c, "capacity_events_per_s": round(c * 1000 / self.o.delay_ms, 1)}
        for fixed in self.o.fixed_shed:
            self.drain("shedding", fixed=fixed, extra=cap)
        self.drain("shedding", fixed=None, extra=cap)

    def run_slow500(self):
        self.start_sink("--delay-ms", 500, "--capacity", 5)
        keep = self.o.events
        self.o.events = self.o.slow500_events
        try:
            self.drain("slow500", fixed=None, extra={"capacity": 5, "capacity_events_per_s": 10.0})
        finally:
            self.o.events = keep

    def run_loopback(self):
        self.start_sink()
        spec = dict(sql="batch", clients=1, events=self.o.loopback_events)
        for batch in (None, 100):
            self.configure(None, batch)
            self.reset_tables("bench")
            p = self.start_engine(0)
            try:
                log(f"loopback: {self.label(None, batch)}")
                self.held = True
                self.measure_run("fraiseql", "pg-only", f"loopback {self.label(None, batch)}",
                                 "loopback", "bench", spec, p.pid)
                st = self.sink("GET", f"/_stats?expect={self.results[-1]['events']}")
                self.complete({"workload": "loopback", "variant": self.label(None, batch),
                               "http_requests": st["http_requests"],
                               "final_limit": self.engine_limits()})
            finally:
                self.stop_proc("engine")

    def run(self):
        t0 = time.time()
        self.start_pg()
        self.start_sink()
        self.action_extra = ""
        self.engine_extra = ""
        self.setup_bench()
        for name in ("slow", "shedding", "slow500", "loopback"):
            if self.want(name):
                getattr(self, "run_" + name)()
        self.report_endpoints()
        log(f"done in {time.time() - t0:.0f}s")

    def setup_bench(self):
        log("setup: observer schema and capture trigger")
        env = dict(self.env)
        env.pop("FRAISEQL_DATABASE_URL", None)
        subprocess.run([base.NODE_BIN, "migrate", "--config", self.engine_config(0)], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        self.sql("bench", base.ITEMS_DDL)
        self.sql("bench", "SELECT observer_attach('items', 'Item', 'id', false)")

    def report_endpoints(self):
        cols = [("workload", "workload"), ("variant", "variant"), ("events", "events"),
                ("events/s", "events_per_s"), ("HTTP requests", "http_requests"),
                ("shed (503)", "shed"), ("sink max in flight", "sink_max_in_flight"),
                ("final limit", "final_limit"), ("p99 ms", "p99_ms"), ("CPU s", "cpu_s"),
                ("load", "load1")]
        rows = [[fmt(r.get(k)) for _, k in cols] for r in self.results]
        widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
                  for i, (h, _) in enumerate(cols)]
        print()
        print("| " + " | ".join(h.ljust(widths[i]) for i, (h, _) in enumerate(cols)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for row in rows:
            print("| " + " | ".join(v.rjust(widths[i]) for i, v in enumerate(row)) + " |")
        print()

        def find(workload, variant):
            for r in self.results:
                if r.get("workload") == workload and r.get("variant") == variant:
                    return r
            return None

        goals = []
        a = find("slow", "adaptive")
        if a:
            goals.append(f"defaults against a {self.o.delay_ms} ms endpoint: "
                         f"{a['events_per_s']:,.0f} events/s (goal >= 2,000)")
        old = find("slow", "fixed 10 (old default)")
        if a and old and old["events_per_s"]:
            goals.append(f"adaptive vs the old fixed default: {a['events_per_s'] / old['events_per_s']:.1f}x")
        s = find("shedding", "adaptive")
        if s:
            goals.append(f"shedding endpoint (capacity {s['capacity']}, {s['capacity_events_per_s']}/s): "
                         f"{s['events_per_s']:,.0f} events/s, {s['shed']:,} calls shed for "
                         f"{s['events']:,} events ({s['shed'] / max(1, s['events']):.2f} per event)")
        f = find("shedding", "fixed 400")
        if f:
            goals.append(f"  fixed 400 against it: {f['events_per_s']:,.0f} events/s, "
                         f"{f['shed']:,} shed ({f['shed'] / max(1, f['events']):.2f} per event)")
        s5 = find("slow500", "adaptive")
        if s5:
            goals.append(f"500 ms endpoint of capacity 5 (10/s): {s5['events_per_s']:,.1f} events/s, "
                         f"{s5['shed']:,} shed ({s5['shed'] / max(1, s5['events']):.2f} per event)")
        lb = find("loopback", "adaptive + batch 100")
        if lb:
            goals.append(f"batched delivery, 100-row transactions, loopback sink: "
                         f"{lb['events_per_s']:,.0f} events/s (goal >= 50,000)")
        for g in goals:
            print(g)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--workloads", default=os.environ.get("BENCH_EP_WORKLOADS", ""),
                    help="comma list of slow,shedding,slow500,loopback (default: all)")
    a = ap.parse_args()
    a.workloads = set(x for x in a.workloads.split(",") if x)
    q = a.quick
    a.events = env_int("BENCH_EP_EVENTS", 2000 if q else 5000)
    a.slow500_events = env_int("BENCH_EP_SLOW500_EVENTS", 100 if q else 300)
    a.loopback_events = env_int("BENCH_EP_LOOPBACK_EVENTS", 50000 if q else 200000)
    a.delay_ms = env_int("BENCH_EP_DELAY_MS", 50)
    a.capacity = env_int("BENCH_EP_CAPACITY", 20)
    a.batch = env_int("BENCH_EP_BATCH", 100)
    a.fixed = [int(x) for x in os.environ.get("BENCH_EP_FIXED", "100" if q else "100,400").split(",")
               if x]
    a.fixed_shed = [int(x) for x in os.environ.get("BENCH_EP_FIXED_SHED", "400").split(",") if x]
    a.stall = env_int("BENCH_STALL_S", 60)
    a.max_s = env_int("BENCH_EP_MAX_S", 60 if q else 120)
    a.perf = ""
    a.phases = {"fraiseql"}
    a.concurrency = [10]
    b = EndpointBench(a)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        b.run()
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
