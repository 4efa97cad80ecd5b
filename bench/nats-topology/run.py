#!/usr/bin/env python3
"""NATS topology benchmark (docs/performance.md, "NATS topology").

Started by bench/nats-topology/run (which builds first). Starts its own
PostgreSQL (scripts/pg.sh), nats-server(s) (scripts/nats.sh start /
start-cluster), the C++ sink (bench/sink, with --delay-ms for the worker
runs) and observer-node processes (--role bridge / --role worker), all on
loopback with private directories under one work dir, and stops everything
on every exit path. Workloads (--workloads, default all):

  drain-r1   N change-log rows written first (INSERT ... SELECT
             generate_series, 10,000 rows per transaction, the capture
             trigger on), then a bridge is started: time until the R1 stream
             holds N messages (polled on the server's /jsz), the bridge's
             peak RSS (VmHWM) and CPU. Beside it, on a fresh server, the bare
             nats.c asynchronous publish loop of bench/nats (nats_publish_bench)
             publishing N messages of the bridge's envelope size (measured on
             the stream's first message) with the bridge's window
             ([listener] max_in_flight) and ack timeout.
  drain-r3   the same into an R3 stream on a private 3-server cluster
             ([nats] replicas = 3, url = the three servers).
  workers    W rows published by a bridge into a fresh stream, then 1, 2 and 4
             workers (separate processes) consume it against a sink answering
             after 20 ms; events/s from the sink's first to last receive time.
             Each worker count gets its own stream (and owners bucket), so no
             lease or member of an earlier run is left.
  latency    a bridge and 2 workers running; pgbench inserts at R events/s for
             T s; latency = sink receive time - capture time (the envelope's
             timestamp, clock_timestamp() in the capture trigger, as in
             bench/run.py).

Prints one JSON line per result, then a table and the goals (figures only:
nothing is asserted).
"""
import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import run as base  # noqa: E402  (bench/run.py: process, PostgreSQL and sink helpers)

ROOT = base.ROOT
NODE_BIN = base.NODE_BIN
PUB_BIN = os.path.join(base.BUILD, "bench", "nats", "nats_publish_bench")
NATS_SH = os.path.join(ROOT, "scripts", "nats.sh")
log = base.log


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k:
                env[k] = v
    return env


def first_message(host, port, stream, seq=1):
    """The stored message `seq` of `stream` (JetStream direct API over a bare
    NATS connection): (subject, headers bytes, payload bytes)."""
    s = socket.create_connection((host, port), timeout=10)
    f = s.makefile("rb")
    f.readline()  # INFO
    req = json.dumps({"seq": seq}).encode()
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\n'
              b"SUB _INBOX.bench 1\r\n" +
              f"PUB $JS.API.STREAM.MSG.GET.{stream} _INBOX.bench {len(req)}\r\n".encode() + req +
              b"\r\nPING\r\n")
    while True:
        line = f.readline()
        if not line:
            raise RuntimeError("connection closed before the answer")
        if line.startswith(b"PING"):
            s.sendall(b"PONG\r\n")
        elif line.startswith(b"MSG") or line.startswith(b"HMSG"):
            n = int(line.split()[-1])
            body = f.read(n + 2)[:n]
            if line.startswith(b"HMSG"):
                body = body[int(line.split()[-2]):]
            s.close()
            m = json.loads(body)["message"]
            return (m["subject"], base64.b64decode(m.get("hdrs", "") or ""),
                    base64.b64decode(m.get("data", "") or ""))


class NatsBench(base.Bench):
    def __init__(self, opts):
        super().__init__(opts)
        self.nats_dirs = set()

    # --- lifecycle -------------------------------------------------------------------

    def cleanup(self):
        for name in list(self.procs):
            self.stop_proc(name, timeout=15)
        for d in list(self.nats_dirs):
            self.stop_nats(d)
        super().cleanup()

    def start_nats(self, name, cluster=False):
        d = os.path.join(self.work, name)
        self.nats_dirs.add(d)
        subprocess.run([NATS_SH, "start-cluster" if cluster else "start", d], check=True,
                       stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        env = read_env(os.path.join(d, "env"))
        env["dir"] = d
        return env

    def stop_nats(self, d):
        if isinstance(d, dict):
            d = d["dir"]
        subprocess.run([NATS_SH, "stop", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL)
        self.nats_dirs.discard(d)

    def nats_pids(self, nats):
        return [int(nats[f"NATS_{i}_PID"]) for i in range(1, int(nats["NATS_SERVERS"]) + 1)
                if nats.get(f"NATS_{i}_PID")]

    def monitor(self, nats, path, server=1):
        port = nats[f"NATS_{server}_MONITOR_PORT"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return json.loads(r.read())

    def stream_state(self, nats, stream):
        """{messages, bytes} of `stream` as the first server that knows it reports."""
        for i in range(1, int(nats["NATS_SERVERS"]) + 1):
            try:
                j = self.monitor(nats, "/jsz?streams=true", server=i)
            except OSError:
                continue
            for acc in j.get("account_details", []) or []:
                for st in acc.get("stream_detail", []) or []:
                    if st["name"] == stream:
                        return st["state"]
        return {"messages": 0, "bytes": 0}

    # --- configuration ----------------------------------------------------------------

    def node_config(self, name, nats, stream="fraiseql_events", prefix="fraiseql", replicas=1,
                    listener_id="bridge",
                    worker_name="", consumer="bench", observers=False, concurrency=10,
                    sink_url=None):
        path = os.path.join(self.work, f"{name}.toml")
        obs = ""
        if observers:
            obs = f"""
[[observers]]
name = "bench"
event_type = "INSERT"
entity = "Item"
[[observers.actions]]
type = "webhook"
url = "{sink_url}/hooks/item"
timeout_ms = 10000
"""
        with open(path, "w") as f:
            f.write(f"""[database]
url = "{self.dsn('bench')}"
[listener]
listener_id = "{listener_id}"
max_in_flight = {self.o.window}
[transport]
transport = "nats"
[nats]
url = "{nats['NATS_URLS']}"
stream = "{stream}"
subject_prefix = "{prefix}"
replicas = {replicas}
partitions = {self.o.partitions}
consumer = "{consumer}"
publish_ack_timeout_ms = {self.o.ack_timeout_ms}
{f'worker_name = "{worker_name}"' if worker_name else ''}
{self.o.nats_extra}
[performance]
max_concurrent_actions = {concurrency}
[metrics]
enabled = true
port = 0
[control]
enabled = false
[logging]
level = "info"
{obs}""")
        return path

    def start_node(self, name, role, cfg):
        env = dict(self.env)
        env.pop("FRAISEQL_DATABASE_URL", None)
        env.pop("DATABASE_URL", None)
        p = self.spawn(name, [NODE_BIN, "--role", role, "--config", cfg], env=env)
        return p

    def check_alive(self, name):
        p = self.procs.get(name)
        if p is not None and p.poll() is not None:
            raise RuntimeError(f"{name} exited with {p.returncode}; see {self.work}/{name}.log:\n" +
                               self.tail(name))

    def tail(self, name, n=3000):
        try:
            with open(os.path.join(self.work, name + ".log"), errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    # --- change log -------------------------------------------------------------------

    def write_rows(self, n):
        """n INSERTs (n entities) in transactions of 10,000, captured as Item."""
        self.sql("bench", "TRUNCATE items RESTART IDENTITY; TRUNCATE core.tb_entity_change_log")
        chunk = min(n, base.BACKLOG_CHUNK)
        script = self.write_script("backlog.sql", base.BACKLOG_SQL % chunk)
        t0 = time.time()
        self.pgbench("bench", script, 1, transactions=max(1, n // chunk))
        write_s = time.time() - t0
        n = int(self.sql("bench", "SELECT count(*) FROM core.tb_entity_change_log"))
        self.sql("bench", "CHECKPOINT")
        log(f"wrote {n:,} change-log rows in {write_s:.1f}s")
        return n, write_s

    def setup(self):
        log("setup: observer schema, table items captured as Item")
        env = dict(self.env)
        env.pop("FRAISEQL_DATABASE_URL", None)
        cfg = os.path.join(self.work, "migrate.toml")
        with open(cfg, "w") as f:
            f.write(f'[database]\nurl = "{self.dsn("bench")}"\n')
        subprocess.run([NODE_BIN, "migrate", "--config", cfg], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        self.sql("bench", base.ITEMS_DDL)
        self.sql("bench", "SELECT observer_attach('items', 'Item', 'id', false)")

    # --- workloads --------------------------------------------------------------------

    def publish_until(self, nats, stream, n, name, timeout_s):
        """Polls the stream until it holds n messages; returns (first_seen_s,
        done_s) after the bridge's start, or raises when it stalls."""
        t0 = time.time()
        first = None
        last, last_change = -1, t0
        while True:
            self.check_alive(name)
            m = self.stream_state(nats, stream)["messages"]
            now = time.time()
            if m and first is None:
                first = now - t0
            if m != last:
                last, last_change = m, now
            if m >= n:
                return first, now - t0
            if now - last_change > timeout_s:
                raise RuntimeError(f"{name}: stream {stream} stuck at {m:,} of {n:,} messages for "
                                   f"{timeout_s}s; log tail:\n{self.tail(name)}")
            time.sleep(0.1 if n < 200000 else 0.25)

    def drain(self, workload, n, replicas):
        cluster = replicas > 1
        nats = self.start_nats(f"nats-{workload}", cluster=cluster)
        try:
            n, write_s = self.write_rows(n)
            name = f"bridge-{workload}"
            cfg = self.node_config(name, nats, replicas=replicas, listener_id=name)
            nats_cpu0 = sum(base.proc_cpu_s(p) for p in self.nats_pids(nats))
            db0 = self.db_cpu_s()
            log(f"{workload}: bridge draining {n:,} events into an R{replicas} stream")
            p = self.start_node(name, "bridge", cfg)
            first_s, done_s = self.publish_until(nats, "fraiseql_events", n, name, self.o.stall)
            rss = base.proc_status_kb(p.pid, "VmHWM")
            cpu = base.proc_cpu_s(p.pid)
            nats_cpu = sum(base.proc_cpu_s(p) for p in self.nats_pids(nats)) - nats_cpu0
            db_cpu = self.db_cpu_s() - db0
            st = self.stream_state(nats, "fraiseql_events")
            subject, hdrs, data = first_message("127.0.0.1", int(nats["NATS_PORT"]),
                                                "fraiseql_events")
            rc = self.stop_proc(name, timeout=30)
            row = {"system": "bridge", "workload": workload, "replicas": replicas, "events": n,
                   "events_per_s": round(n / done_s, 1),
                   "events_per_s_after_first": round(n / (done_s - first_s), 1)
                   if done_s > first_s else None,
                   "seconds": round(done_s, 2), "startup_s": round(first_s, 2),
                   "write_s": round(write_s, 2), "stored": st["messages"],
                   "stream_bytes": st["bytes"], "envelope_bytes": len(data),
                   "header_bytes": len(hdrs), "subject": subject,
                   "window": self.o.window, "rss_peak_mb": round(rss / 1024, 1),
                   "cpu_s": round(cpu, 2), "nats_cpu_s": round(nats_cpu, 2),
                   "db_cpu_s": round(db_cpu, 2), "exit": rc}
            self.emit(row)
            self.envelope = data
        finally:
            self.stop_nats(nats)
        self.bare(workload, n, replicas, len(data))

    def bare(self, workload, n, replicas, payload):
        """bench/nats's bare nats.c loop (and async_publisher) on a fresh server of
        the same shape, same message count, the envelope's size."""
        runs = 1 if n >= 300000 else 3
        log(f"{workload}: bare nats.c loop, {n:,} messages of {payload} bytes, window "
            f"{self.o.window}, R{replicas}, {runs} run(s)")
        env = dict(self.env)
        env.pop("NATS_URL", None)
        r = subprocess.run([PUB_BIN, str(n), str(payload), str(self.o.window), str(runs),
                            str(replicas), str(self.o.ack_timeout_ms)], env=env,
                           capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=max(600, n // 1000))
        if r.returncode != 0:
            log(f"nats_publish_bench exited {r.returncode}: {r.stderr[-2000:]}")
        for line in r.stdout.splitlines():
            if not line.startswith("{"):
                continue
            d = json.loads(line)
            system = "bare nats.c" if d["publisher"] == "bare nats.c" else d["publisher"]
            self.emit({"system": system, "workload": workload, "replicas": replicas,
                       "events": d["events"], "events_per_s": d["events_per_s"],
                       "seconds": d["seconds"], "envelope_bytes": payload,
                       "window": d["window"], "errors": d["errors"], "runs": runs,
                       "rss_peak_mb": round(d["peak_rss_bytes"] / 1048576, 1)})

    def workers(self, n):
        nats = self.start_nats("nats-workers")
        self.restart_sink(delay_ms=self.o.sink_delay_ms)
        sink_url = f"http://127.0.0.1:{self.sink_port}"
        try:
            n, _ = self.write_rows(n)
            for k in self.o.worker_counts:
                stream = f"w{k}_events"
                bname = f"bridge-w{k}"
                cfg = self.node_config(bname, nats, stream=stream, prefix=f"w{k}",
                                       listener_id=bname)
                self.start_node(bname, "bridge", cfg)
                self.publish_until(nats, stream, n, bname, self.o.stall)
                self.stop_proc(bname, timeout=30)
                self.sink("POST", "/_reset")
                names = [f"w{k}-{i}" for i in range(1, k + 1)]
                log(f"workers: {k} worker(s) on {n:,} published events, sink delay "
                    f"{self.o.sink_delay_ms} ms, max_concurrent_actions {self.o.worker_window}")
                t0 = time.time()
                for w in names:
                    cfg = self.node_config(w, nats, stream=stream, prefix=f"w{k}", worker_name=w,
                                           consumer=f"c{k}", observers=True,
                                           concurrency=self.o.worker_window, sink_url=sink_url)
                    self.start_node(w, "worker", cfg)
                st = self.wait_delivered_capped(n, t0 + self.o.worker_max_s)
                for w in names:
                    self.check_alive(w)
                cpus = [base.proc_cpu_s(self.procs[w].pid) for w in names]
                rss = [base.proc_status_kb(self.procs[w].pid, "VmHWM") for w in names]
                took = [self.tail(w, 10 ** 7).count("took partition") for w in names]
                for w in names:
                    self.stop_proc(w, timeout=30)
                capped = st["unique_entities"] < n
                span = (st["last_recv_us"] - st["first_recv_us"]) / 1e6
                self.emit({"system": "workers", "workload": "workers", "workers": k,
                           "events": n, "delivered": st["unique_entities"],
                           "events_per_s": round(st["unique_entities"] / span, 1) if span > 0
                           else None,
                           "events_per_s_incl_start": round(
                               st["unique_entities"] / (st["last_recv_us"] / 1e6 - t0), 1),
                           "seconds": round(span, 2),
                           "first_delivery_s": round(st["first_recv_us"] / 1e6 - t0, 2),
                           "sink_delay_ms": self.o.sink_delay_ms,
                           "max_concurrent_actions": self.o.worker_window,
                           "partitions": self.o.partitions, "partitions_taken": took,
                           "lost": st["lost"], "dup": st["dup_keys"], "capped": capped,
                           "cpu_s": round(sum(cpus), 2),
                           "rss_peak_mb": round(max(rss) / 1024, 1)})
        finally:
            self.stop_nats(nats)
            self.restart_sink(delay_ms=0)

    def wait_delivered_capped(self, n, deadline):
        """wait_delivered, but also gives up at `deadline` (a worker run is
        bounded: BENCH_NATS_WORKER_MAX_S); the stats then show what arrived."""
        last, last_change = -1, time.time()
        while True:
            c = self.sink("GET", "/_count")["requests"]
            now = time.time()
            if c != last:
                last, last_change = c, now
            if c >= n and self.sink("GET", f"/_stats?expect={n}")["lost"] == 0:
                time.sleep(0.3)
                break
            if now > deadline:
                log(f"time cap: {c} of {n} delivered; stopping this run")
                break
            if now - last_change > self.o.stall:
                log(f"no delivery for {self.o.stall}s: {c} of {n}")
                break
            time.sleep(0.2)
        return self.sink("GET", f"/_stats?expect={n}")

    def latency(self, rate, secs):
        nats = self.start_nats("nats-latency")
        sink_url = f"http://127.0.0.1:{self.sink_port}"
        try:
            self.sql("bench", "TRUNCATE items RESTART IDENTITY; TRUNCATE core.tb_entity_change_log")
            self.sql("bench", "CHECKPOINT")
            cfg = self.node_config("bridge-lat", nats, listener_id="bridge-lat")
            self.start_node("bridge-lat", "bridge", cfg)
            names = ["lat-w1", "lat-w2"]
            for w in names:
                wc = self.node_config(w, nats, worker_name=w, consumer="lat", observers=True,
                                      concurrency=self.o.worker_window, sink_url=sink_url)
                self.start_node(w, "worker", wc)
            # Every partition owned, consumers created: one event through first.
            self.sql("bench", "INSERT INTO items (name, qty) VALUES ('warm-up', 0)")
            self.wait_delivered(1, self.o.stall)
            # Settled ownership: every partition owned, each worker owning some
            # (the first worker takes all and hands half over when the second
            # joins; events of a partition in hand-over wait for it).
            deadline = time.time() + 60
            stable_since, last = time.time(), None
            while time.time() < deadline:
                owned = [self.tail(w, 10 ** 7).count("took partition") -
                         self.tail(w, 10 ** 7).count("handed over") for w in names]
                if owned != last:
                    stable_since, last = time.time(), owned
                if (sum(owned) == self.o.partitions and min(owned) > 0 and
                        time.time() - stable_since >= 3):
                    break
                time.sleep(0.2)
            log(f"latency: partitions owned {owned}")
            time.sleep(2)
            self.sql("bench", "TRUNCATE items RESTART IDENTITY")
            self.sink("POST", "/_reset")
            pids = [self.procs[x].pid for x in ["bridge-lat"] + names]
            cpu0 = [base.proc_cpu_s(p) for p in pids]
            log(f"latency: {rate} events/s for {secs}s through bridge + 2 workers")
            script = self.write_script("single.sql", base.SINGLE_SQL)
            tps = self.pgbench("bench", script, 4, seconds=secs, rate=rate)
            n = int(self.sql("bench", "SELECT count(*) FROM items"))
            st = self.wait_delivered(n, self.o.stall)
            for x in ["bridge-lat"] + names:
                self.check_alive(x)
            cpu = [round(base.proc_cpu_s(p) - c, 2) for p, c in zip(pids, cpu0)]
            self.emit({"system": "bridge + 2 workers", "workload": "latency", "rate": rate,
                       "seconds": secs, "events": n, "producer_events_per_s": round(tps, 1),
                       "events_per_s": st["events_per_s"], "p50_ms": st["lat_ms"]["p50"],
                       "p95_ms": st["lat_ms"]["p95"], "p99_ms": st["lat_ms"]["p99"],
                       "max_ms": st["lat_ms"]["max"], "lost": st["lost"], "dup": st["dup_keys"],
                       "producer_txn_ms": self.last_txn_ms, "cpu_s_bridge_workers": cpu,
                       "max_concurrent_actions": self.o.worker_window})
            for x in ["bridge-lat"] + names:
                self.stop_proc(x, timeout=30)
        finally:
            self.stop_nats(nats)

    # --- sink -------------------------------------------------------------------------

    def restart_sink(self, delay_ms=0):
        self.stop_proc("sink", timeout=10)
        port_file = os.path.join(self.work, "sink.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        args = [base.SINK_BIN, "--port-file", port_file]
        if delay_ms:
            args += ["--delay-ms", str(delay_ms)]
        self.spawn("sink", args)
        for _ in range(100):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        with open(port_file) as f:
            self.sink_port = int(f.read())

    # --- report -----------------------------------------------------------------------

    def emit(self, row):
        row = {"bench": "nats-topology", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **row,
               "load1": round(os.getloadavg()[0], 2)}
        self.results.append(row)
        print(json.dumps(row), flush=True)

    def table(self):
        cols = [("system", "system"), ("workload", "workload"), ("R", "replicas"),
                ("workers", "workers"), ("events", "events"), ("events/s", "events_per_s"),
                ("s", "seconds"), ("envelope B", "envelope_bytes"), ("p50 ms", "p50_ms"),
                ("p99 ms", "p99_ms"), ("max ms", "max_ms"), ("lost", "lost"), ("dup", "dup"),
                ("peak RSS MB", "rss_peak_mb"), ("CPU s", "cpu_s"), ("nats CPU s", "nats_cpu_s"),
                ("db CPU s", "db_cpu_s"), ("load", "load1")]

        def fmt(v, key):
            if v is None:
                return "-"
            if key in ("events_per_s",):
                return f"{v:,.0f}"
            if key == "events":
                return f"{v:,}"
            if isinstance(v, float):
                return f"{v:.2f}" if key.endswith("_ms") else f"{v:.1f}"
            return str(v)

        rows = [[fmt(r.get(k), k) for _, k in cols] for r in self.results
                if r["system"] != "machine"]
        if not rows:
            return ""
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, (h, _) in enumerate(cols)]
        left = (0, 1)
        lines = ["| " + " | ".join(h.ljust(widths[i]) for i, (h, _) in enumerate(cols)) + " |",
                 "|" + "|".join(("-" * (widths[i] + 2)) if i in left else
                                ("-" * (widths[i] + 1) + ":") for i in range(len(cols))) + "|"]
        for row in rows:
            lines.append("| " + " | ".join(row[i].ljust(widths[i]) if i in left else
                                           row[i].rjust(widths[i]) for i in range(len(cols))) + " |")
        return "\n".join(lines)

    def find(self, **kw):
        for r in self.results:
            if all(r.get(k) == v for k, v in kw.items()):
                return r
        return None

    def goals(self):
        out = []

        def check(label, ok, detail):
            out.append(f"  {'n/a ' if ok is None else ('MET ' if ok else 'MISS')}  {label}: {detail}")

        b, bare = self.find(system="bridge", workload="drain-r1"), \
            self.find(system="bare nats.c", workload="drain-r1")
        if b:
            check("bridge drain into R1 >= 30,000 events/s", b["events_per_s"] >= 30000,
                  f"{b['events_per_s']:,.0f} events/s ({b['events']:,} events)")
            check("bridge peak RSS <= 64 MB", b["rss_peak_mb"] <= 64, f"{b['rss_peak_mb']} MB")
        if b and bare:
            v = b["events_per_s"] / bare["events_per_s"]
            check("bridge >= 60% of the bare nats.c loop (R1)", v >= 0.6,
                  f"{b['events_per_s']:,.0f} / {bare['events_per_s']:,.0f} = {v:.0%}")
        b3, bare3 = self.find(system="bridge", workload="drain-r3"), \
            self.find(system="bare nats.c", workload="drain-r3")
        if b3:
            check("bridge drain into R3 >= 10,000 events/s", b3["events_per_s"] >= 10000,
                  f"{b3['events_per_s']:,.0f} events/s"
                  + (f" (bare loop {bare3['events_per_s']:,.0f}, "
                     f"{b3['events_per_s'] / bare3['events_per_s']:.0%})" if bare3 else ""))
        w1, w4 = self.find(system="workers", workers=1), self.find(system="workers", workers=4)
        if w1 and w4 and w1.get("events_per_s") and w4.get("events_per_s"):
            v = w4["events_per_s"] / w1["events_per_s"]
            capped = [r["workers"] for r in (w1, w4) if r.get("capped")]
            check("4 workers >= 3x one (20 ms sink)", v >= 3,
                  f"{w4['events_per_s']:,.0f} / {w1['events_per_s']:,.0f} = {v:.2f}x" +
                  (f" (time-capped: {capped} workers; lost = not delivered in time)"
                   if capped else ""))
        lat = self.find(workload="latency")
        if lat:
            check(f"latency at {lat['rate']:,}/s: p50 <= 10 ms (spec 15)", lat["p50_ms"] <= 10,
                  f"p50 {lat['p50_ms']:.2f} ms")
            check(f"latency at {lat['rate']:,}/s: p99 <= 50 ms (spec 100)", lat["p99_ms"] <= 50,
                  f"p99 {lat['p99_ms']:.2f} ms")
        return out

    def report(self):
        print()
        print(self.table())
        print()
        print("Goals (NATS topology, docs/performance.md; figures, not tests):")
        for line in self.goals():
            print(line)
        if self.o.out:
            with open(self.o.out, "w") as f:
                for r in self.results:
                    f.write(json.dumps(r) + "\n")
                f.write(json.dumps({"bench": "table", "markdown": self.table()}) + "\n")

    def run(self):
        t0 = time.time()
        self.machine()
        self.start_pg()
        self.restart_sink()
        self.setup()
        o = self.o
        try:
            if self.want("drain-r1"):
                self.drain("drain-r1", o.events, 1)
            if self.want("drain-r3"):
                self.drain("drain-r3", o.r3_events, 3)
            if self.want("workers"):
                self.workers(o.worker_events)
            if self.want("latency"):
                self.latency(o.rate, o.latency_secs)
        finally:
            self.report()
        log(f"done in {time.time() - t0:.0f}s")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--out", default=os.environ.get("BENCH_OUT"), help="also write JSON lines here")
    ap.add_argument("--workloads", default=os.environ.get("BENCH_NATS_WORKLOADS", ""),
                    help="comma list of drain-r1,drain-r3,workers,latency (default: all)")
    a = ap.parse_args()
    a.workloads = set(x for x in a.workloads.split(",") if x)
    q = a.quick
    e = base.env_int
    a.events = e("BENCH_NATS_EVENTS", 100000 if q else 1000000)
    a.r3_events = e("BENCH_NATS_R3_EVENTS", 50000 if q else 200000)
    a.worker_events = e("BENCH_NATS_WORKER_EVENTS", 5000 if q else 20000)
    a.worker_counts = [int(x) for x in os.environ.get("BENCH_NATS_WORKERS", "1,2,4").split(",")]
    a.worker_window = e("BENCH_NATS_WORKER_CONCURRENCY", 10)
    # A worker run stops after this long even if events are missing (then
    # reported with "capped": true and lost > 0).
    a.worker_max_s = e("BENCH_NATS_WORKER_MAX_S", 60 if q else 180)
    a.sink_delay_ms = e("BENCH_NATS_SINK_DELAY_MS", 20)
    a.partitions = e("BENCH_NATS_PARTITIONS", 16)
    a.window = e("BENCH_NATS_WINDOW", 10000)  # [listener] max_in_flight: the bridge's window
    a.ack_timeout_ms = e("BENCH_NATS_ACK_TIMEOUT_MS", 5000)
    a.rate = e("BENCH_NATS_RATE", 1000)
    a.latency_secs = e("BENCH_NATS_LATENCY_SECS", 10 if q else 20)
    a.stall = e("BENCH_STALL_S", 30)
    # Extra [nats] lines for every node, e.g. "fetch_batch = 10" (default none).
    a.nats_extra = os.environ.get("BENCH_NATS_EXTRA", "").replace(";", "\n")
    a.perf = ""
    b = NatsBench(a)

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
