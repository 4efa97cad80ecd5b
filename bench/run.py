#!/usr/bin/env python3
"""End-to-end benchmark of the observer engine against its baselines.

Started by bench/run (which installs and builds first). Starts a private
PostgreSQL and the C++ sink on loopback, then measures, on the same producer
(pgbench, fsync on):

  producer   plain INSERTs, and INSERTs with the capture trigger (no engine):
             the physical limit and the capture cost
  fraiseql   capture trigger + observer-node (--role all) POSTing every
             event to the sink
  graphile   the peer: a row trigger adds a graphile-worker job per row, a
             Node task POSTs it to the same sink

Workloads: burst-1 / burst-8 (N single-row transactions from 1 / 8 clients),
batch-100 (rows in transactions of 100), steady-R (R events/s for T s) and
backlog (rows written while the consumer is stopped, then drained) and
backlog-large (the same with BENCH_LARGE_EVENTS rows of BENCH_LARGE_KB KB
each: peak RSS under the byte budget, listener.max_bytes_in_flight, beside
the small-event backlog's).

Latency = sink receive time - capture time (change-log created_at, which is
clock_timestamp(); for the peer, clock_timestamp() in its trigger).
Every run prints one JSON line; a table and the ratios close the output.
Everything started here is stopped on every exit path.
"""
import argparse
import ctypes
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD_DIR", os.path.join(ROOT, "build"))
NODE_BIN = os.environ.get("BENCH_NODE_BIN") or os.path.join(BUILD, "apps", "observer", "observer-node")
SINK_BIN = os.path.join(BUILD, "bench", "sink", "bench_sink")
LOAD_BIN = os.path.join(BUILD, "bench", "sink", "bench_sink_load")
PEER_DIR = os.path.join(ROOT, "bench", "peer")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

SINGLE_SQL = "INSERT INTO items (name, qty) VALUES ('item', 1);\n"
BATCH_SQL = "INSERT INTO items (name, qty) SELECT 'item', g FROM generate_series(1, 100) g;\n"
BACKLOG_CHUNK = 10000
BACKLOG_SQL = "INSERT INTO items (name, qty) SELECT 'item', g FROM generate_series(1, %d) g;\n"
# Large payloads (issue 18): each row's name is BENCH_LARGE_KB KB of md5 text,
# so every event's body is that large (the change log stores it compressed).
LARGE_CHUNK = 200
LARGE_SQL = ("INSERT INTO items (name, qty) SELECT left(repeat(md5(g::text), {kb} * 32), {kb} * 1024), g"
             " FROM generate_series(1, %d) g;\n")

ITEMS_DDL = "CREATE TABLE items (id bigserial PRIMARY KEY, name text, qty int);"

# The peer's capture: one graphile-worker job per row, carrying what the
# engine's envelope carries (id, entity id, row data, capture time).
PEER_SQL = """
CREATE TABLE items (id bigserial PRIMARY KEY, name text, qty int);
CREATE FUNCTION peer_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM graphile_worker.add_job('post_event', json_build_object(
    'id', NEW.id, 'entity_id', NEW.id, 'data', row_to_json(NEW),
    'created_at', clock_timestamp()));
  RETURN NULL;
END
$$;
CREATE TRIGGER peer_enqueue AFTER INSERT ON items
  FOR EACH ROW EXECUTE FUNCTION peer_enqueue();
"""

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    """Children get SIGTERM if this process dies (even by SIGKILL)."""
    _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setsid()


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- process metrics (/proc) ---------------------------------------------------

def proc_cpu_s(pid, children=False):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t / CLK_TCK


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def clear_hwm(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    except OSError:
        pass


def tree_cpu_s(root_pid):
    """CPU seconds of a process, its reaped children and its live children."""
    total = proc_cpu_s(root_pid, children=True)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == root_pid:
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
    return total


class Bench:
    def __init__(self, opts):
        self.o = opts
        self.work = tempfile.mkdtemp(prefix="fraiseql-bench.")
        os.chmod(self.work, 0o755)
        self.pg_dir = os.path.join(self.work, "pg")
        self.procs = {}  # name -> Popen
        self.results = []
        self.env = dict(os.environ)
        self.sink_port = None
        self.pg_started = False

    # --- lifecycle -----------------------------------------------------------------

    def cleanup(self):
        for name in list(self.procs):
            self.stop_proc(name, timeout=10)
        if self.pg_started:
            subprocess.run([os.path.join(ROOT, "scripts", "pg.sh"), "stop", self.pg_dir],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.pg_started = False
        if self.o.keep:
            log(f"work dir kept: {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def spawn(self, name, args, env=None, out=None):
        f = open(out or os.path.join(self.work, name + ".log"), "ab")
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                             env=env or self.env, preexec_fn=_die_with_parent, cwd=self.work)
        self.procs[name] = p
        return p

    def stop_proc(self, name, timeout=60):
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return None if p is None else p.returncode
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop within {timeout}s: killing it")
            p.kill()
            return p.wait()

    def start_pg(self):
        out = subprocess.run([os.path.join(ROOT, "scripts", "pg.sh"), "start", self.pg_dir],
                             check=True, capture_output=True, text=True)
        self.pg_started = True
        with open(os.path.join(self.pg_dir, "env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if k:
                    self.env[k] = v
        self.pg_port = int(out.stdout.strip())
        with open(os.path.join(self.env["PGDATA"], "postmaster.pid")) as f:
            self.postmaster = int(f.readline())
        for db in ("bench", "peer"):
            self.sql("postgres", f"CREATE DATABASE {db}")

    def dsn(self, db):
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/{db}"

    def db_cpu_s(self):
        return tree_cpu_s(self.postmaster)

    # --- SQL and pgbench ------------------------------------------------------------

    def sql(self, db, query):
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db,
                            "-c", "SET client_min_messages = warning", "-c", query],
                           env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed on {db}: {query}\n{r.stderr}")
        return r.stdout.strip()

    def write_script(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def pgbench(self, db, script, clients, transactions=None, seconds=None, rate=None):
        args = ["pgbench", "-n", "-d", db, "-f", script, "-c", str(clients),
                "-j", str(min(clients, 8))]
        if transactions is not None:
            args += ["-t", str(transactions)]
        if seconds is not None:
            args += ["-T", str(seconds)]
        if rate is not None:
            args += ["-R", str(rate)]
        r = subprocess.run(args, env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"pgbench failed: {' '.join(args)}\n{r.stdout}\n{r.stderr}")
        tps = None
        lat = lag = 0.0
        for line in r.stdout.splitlines():
            if line.startswith("tps = ") and "without initial connection time" in line:
                tps = float(line.split()[2])
            elif line.startswith("latency average = "):
                lat = float(line.split()[3])
            elif line.startswith("rate limit schedule lag: avg "):
                lag = float(line.split()[5])
        # The writer's own transaction time (capture -> commit is part of it):
        # a floor under every capture-to-delivery latency.
        self.last_txn_ms = round(lat - lag, 3)
        return tps

    # --- sink --------------------------------------------------------------------

    def start_sink(self):
        port_file = os.path.join(self.work, "sink.port")
        self.spawn("sink", [SINK_BIN, "--port-file", port_file])
        for _ in range(100):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        with open(port_file) as f:
            self.sink_port = int(f.read())

    def sink(self, method, path):
        c = http.client.HTTPConnection("127.0.0.1", self.sink_port, timeout=120)
        c.request(method, path)
        body = c.getresponse().read()
        c.close()
        return json.loads(body or b"{}")

    def sink_capacity(self):
        r = subprocess.run([LOAD_BIN, "--port", str(self.sink_port), "--conns", "16",
                            "--requests", str(self.o.sink_requests)],
                           capture_output=True, text=True, check=True)
        d = json.loads(r.stdout)
        self.sink("POST", "/_reset")
        self.emit({"system": "bench_sink", "topology": "-", "mode": "capacity (16 conns)",
                   "events": d["requests"], "events_per_s": d["requests_per_s"]})

    def wait_delivered(self, expect, stall_s, poll_s=0.2):
        """Until the sink has every entity 1..expect, or nothing arrived for stall_s."""
        last, last_change = -1, time.time()
        while True:
            n = self.sink("GET", "/_count")["requests"]
            if n != last:
                last, last_change = n, time.time()
            if n >= expect:
                st = self.sink("GET", f"/_stats?expect={expect}")
                if st["lost"] == 0:
                    time.sleep(0.3)  # let stragglers (duplicates) arrive
                    return self.sink("GET", f"/_stats?expect={expect}")
            if time.time() - last_change > stall_s:
                log(f"no delivery for {stall_s}s: {n} requests for {expect} events")
                return self.sink("GET", f"/_stats?expect={expect}")
            time.sleep(poll_s)

    # --- consumers -------------------------------------------------------------------

    def engine_config(self, concurrency):
        path = os.path.join(self.work, f"node-{concurrency}.toml")
        with open(path, "w") as f:
            f.write(f"""[database]
url = "{self.dsn('bench')}"
[listener]
listener_id = "bench"
[performance]
max_concurrent_actions = {concurrency}
[logging]
level = "warn"
[[observers]]
name = "bench"
event_type = "INSERT"
entity = "Item"
[[observers.actions]]
type = "webhook"
url = "http://127.0.0.1:{self.sink_port}/hooks/item"
timeout_ms = 10000
""")
        return path

    def start_engine(self, concurrency):
        env = dict(self.env)
        env.pop("FRAISEQL_DATABASE_URL", None)  # the config names the bench database
        cfg = self.engine_config(concurrency)
        p = self.spawn("engine", [NODE_BIN, "--role", "all", "--config", cfg], env=env)
        self.engine_cfg = cfg
        time.sleep(0.5)
        if p.poll() is not None:
            raise RuntimeError(f"observer-node exited with {p.returncode}; see {self.work}/engine.log")
        return p

    def start_peer(self):
        env = dict(self.env)
        env.update(DATABASE_URL=self.dsn("peer"),
                   SINK_URL=f"http://127.0.0.1:{self.sink_port}/hooks/item",
                   CONCURRENCY=str(self.o.peer_concurrency))
        p = self.spawn("peer", ["node", os.path.join(PEER_DIR, "worker.js")], env=env)
        time.sleep(1.5)  # Node start-up and graphile-worker's LISTEN
        if p.poll() is not None:
            raise RuntimeError(f"graphile-worker exited with {p.returncode}; see {self.work}/peer.log")
        return p

    # --- results -----------------------------------------------------------------------

    def emit(self, row):
        # The 1-minute load average when the row is written: other work on a
        # shared 2-core machine shows up here (our own run adds ~1-3).
        row = {"bench": "run", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **row,
               "load1": round(os.getloadavg()[0], 2)}
        self.results.append(row)
        print(json.dumps(row), flush=True)

    # --- phases ------------------------------------------------------------------------

    def workloads(self, peer=False):
        o = self.o
        w = [("burst-1", dict(sql="single", clients=1, events=o.peer_events if peer else o.events)),
             ("burst-8", dict(sql="single", clients=8, events=o.peer_events if peer else o.events)),
             ("batch-100", dict(sql="batch", clients=1,
                                events=o.peer_batch_events if peer else o.batch_events))]
        for r in o.rates:
            w.append((f"steady-{r}", dict(sql="single", clients=4, rate=r, seconds=o.steady_secs)))
        return [x for x in w if self.want(x[0])]

    def produce(self, db, spec):
        """Runs one workload's producer; returns (rows/s by pgbench, rows written)."""
        script = self.write_script(spec["sql"] + ".sql",
                                   SINGLE_SQL if spec["sql"] == "single" else BATCH_SQL)
        per_txn = 1 if spec["sql"] == "single" else 100
        if "rate" in spec:
            tps = self.pgbench(db, script, spec["clients"], seconds=spec["seconds"],
                               rate=spec["rate"])
        else:
            txns = max(1, spec["events"] // per_txn // spec["clients"])
            tps = self.pgbench(db, script, spec["clients"], transactions=txns)
        return tps * per_txn

    def reset_tables(self, db, change_log=True):
        q = "TRUNCATE items RESTART IDENTITY;"
        if change_log:
            q += " TRUNCATE core.tb_entity_change_log;"
        self.sql(db, q)
        self.sql(db, "CHECKPOINT")

    def producer_baseline(self, name, spec, mode):
        """The producer alone: items without trigger (plain) or with the capture
        trigger and no listener (capture: nobody holds the wake-up mark, so no
        NOTIFY)."""
        if mode == "plain":
            self.sql("bench", "SELECT observer_detach('items')")
        else:
            self.sql("bench", "SELECT observer_attach('items', 'Item', 'id', false)")
        self.reset_tables("bench")
        eps = self.produce("bench", spec)
        n = int(self.sql("bench", "SELECT count(*) FROM items"))
        self.sql("bench", "SELECT observer_attach('items', 'Item', 'id', false)")
        self.reset_tables("bench")
        return {"system": "postgres", "topology": "producer", "mode": f"{name} {mode}",
                "workload": name, "variant": mode, "events": n, "events_per_s": round(eps, 1),
                "producer_txn_ms": self.last_txn_ms}

    def producer_baselines(self, name, spec):
        """plain and capture, alternated BENCH_PRODUCER_RUNS times; each row is
        the median run (this disk's flush time varies run to run, and a single
        pair of runs gave capture overheads from 14% to 37%)."""
        runs = {"plain": [], "capture": []}
        for _ in range(self.o.producer_runs):
            for mode in ("plain", "capture"):
                runs[mode].append(self.producer_baseline(name, spec, mode))
        for mode in ("plain", "capture"):
            rs = sorted(runs[mode], key=lambda r: r["events_per_s"])
            row = dict(rs[len(rs) // 2])
            row["runs_events_per_s"] = [r["events_per_s"] for r in runs[mode]]
            self.emit(row)

    def peer_trigger_baseline(self, name, spec):
        """The producer with the peer's trigger and no worker (what add_job and
        its per-job NOTIFY cost the writers); the queued jobs are then dropped."""
        self.sql("peer", "TRUNCATE items RESTART IDENTITY; CHECKPOINT")
        eps = self.produce("peer", spec)
        n = int(self.sql("peer", "SELECT count(*) FROM items"))
        self.sql("peer", "DELETE FROM graphile_worker._private_jobs")
        self.emit({"system": "postgres", "topology": "producer", "mode": f"{name} peer-trigger",
                   "workload": name, "variant": "peer-trigger", "events": n,
                   "events_per_s": round(eps, 1)})

    def perf_start(self, system, mode, pid):
        """BENCH_PERF=proc: perf record the consumer; =all: the whole machine;
        =trace: perf trace -s (system calls) of the consumer."""
        if not self.o.perf:
            return None
        out = os.path.join(self.work, f"perf-{system}-{mode.replace(' ', '_')}.data")
        target = ["-a"] if self.o.perf == "all" else ["-p", str(pid)]
        cmd = ["perf", "record", "-F", "499", "-g", "-o", out] + target
        if self.o.perf == "trace":  # system call counts and times per thread
            cmd = ["perf", "trace", "-s", "-o", out[:-len(".data")] + ".trace", "-p", str(pid)]
        p = subprocess.Popen(cmd,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=_die_with_parent)
        time.sleep(0.3)
        return p

    def perf_stop(self, p):
        if p is not None:
            p.send_signal(signal.SIGINT)
            p.wait(60)

    def measure_run(self, system, topology, mode, workload, db, spec, pid, extra=None,
                    change_log=True):
        self.reset_tables(db, change_log=change_log)
        self.sink("POST", "/_reset")
        clear_hwm(pid)
        perf = self.perf_start(system, mode, pid)
        cpu0, db0 = proc_cpu_s(pid), self.db_cpu_s()
        producer_eps = self.produce(db, spec)
        n = int(self.sql(db, "SELECT count(*) FROM items"))
        st = self.wait_delivered(n, self.o.stall)
        cpu1, db1 = proc_cpu_s(pid), self.db_cpu_s()
        self.perf_stop(perf)
        row = {"system": system, "topology": topology, "mode": mode, "workload": workload,
               "events": n, "events_per_s": st["events_per_s"], "producer_events_per_s":
               round(producer_eps, 1), "p50_ms": st["lat_ms"]["p50"],
               "p95_ms": st["lat_ms"]["p95"], "p99_ms": st["lat_ms"]["p99"],
               "max_ms": st["lat_ms"]["max"], "lost": st["lost"], "dup": st["dup_keys"],
               "rss_peak_mb": round(proc_status_kb(pid, "VmHWM") / 1024, 1),
               "cpu_s": round(cpu1 - cpu0, 2), "db_cpu_s": round(db1 - db0, 2),
               "cpu_us_per_event": round((cpu1 - cpu0) * 1e6 / n, 1) if n else None,
               "producer_txn_ms": self.last_txn_ms}
        if extra:
            row.update(extra)
        self.emit(row)
        return row

    def idle_row(self, system, mode, pid, secs=3):
        time.sleep(secs)
        cpu0 = proc_cpu_s(pid)
        time.sleep(2)
        self.emit({"system": system, "topology": "pg-only", "mode": mode, "workload": "idle",
                   "rss_mb": round(proc_status_kb(pid, "VmRSS") / 1024, 1),
                   "rss_peak_mb": round(proc_status_kb(pid, "VmRSS") / 1024, 1),
                   "cpu_s": round(proc_cpu_s(pid) - cpu0, 2)})

    def backlog(self, system, db, n, start_consumer, stop_consumer, mode_extra="",
                change_log=True, large_kb=0):
        stop_consumer()
        self.reset_tables(db, change_log=change_log)
        self.sink("POST", "/_reset")
        if large_kb:
            chunk = min(n, LARGE_CHUNK)
            script = self.write_script("backlog-large.sql", LARGE_SQL.format(kb=large_kb) % chunk)
        else:
            chunk = min(n, BACKLOG_CHUNK)
            script = self.write_script("backlog.sql", BACKLOG_SQL % chunk)
        log(f"{system}: writing a backlog of {n} events with the consumer stopped")
        t0 = time.time()
        self.pgbench(db, script, 1, transactions=max(1, n // chunk))
        write_s = time.time() - t0
        n = int(self.sql(db, "SELECT count(*) FROM items"))
        self.sql(db, "CHECKPOINT")
        db0 = self.db_cpu_s()
        start = time.time()
        p = start_consumer()
        perf = self.perf_start(system, "backlog", p.pid)
        st = self.wait_delivered(n, self.o.stall, poll_s=0.5)
        self.perf_stop(perf)
        drain_s = st["last_recv_us"] / 1e6 - start if st["last_recv_us"] else 0
        mode = (f"backlog-large {n:,} x {large_kb} KB{mode_extra}" if large_kb
                else f"backlog {n // 1000}k{mode_extra}")
        row = {"system": system, "topology": "pg-only", "mode": mode,
               "workload": "backlog-large" if large_kb else "backlog", "events": n,
               "events_per_s": round(st["unique_entities"] / drain_s, 1) if drain_s > 0 else 0,
               "write_s": round(write_s, 2), "drain_s": round(drain_s, 2),
               "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None,
               "lat_ms_incl_wait": st["lat_ms"], "lost": st["lost"], "dup": st["dup_keys"],
               "rss_peak_mb": round(proc_status_kb(p.pid, "VmHWM") / 1024, 1),
               "cpu_s": round(proc_cpu_s(p.pid), 2), "db_cpu_s": round(self.db_cpu_s() - db0, 2),
               "cpu_us_per_event": round(proc_cpu_s(p.pid) * 1e6 / n, 1) if n else None}
        self.emit(row)
        return row

    def setup(self):
        log("setup: observer schema and capture trigger (bench), graphile-worker (peer)")
        env = dict(self.env)
        env.pop("FRAISEQL_DATABASE_URL", None)
        subprocess.run([NODE_BIN, "migrate", "--config", self.engine_config(self.o.concurrency[0])],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        self.sql("bench", ITEMS_DDL)
        self.sql("bench", "SELECT observer_attach('items', 'Item', 'id', false)")
        if "peer" in self.o.phases:
            penv = dict(self.env, DATABASE_URL=self.dsn("peer"))
            subprocess.run(["node", os.path.join(PEER_DIR, "worker.js"), "--migrate"], env=penv,
                           check=True, cwd=self.work)
            self.sql("peer", PEER_SQL)

    def fraiseql_run(self, name, spec, concurrency, idle=False):
        """A fresh observer-node per run: its CPU time and peak RSS are the run's."""
        self.reset_tables("bench")  # nothing left from a baseline for it to deliver
        p = self.start_engine(concurrency)
        try:
            if idle:
                self.idle_row("fraiseql", "idle (start)", p.pid)
            mode = name if concurrency == self.o.concurrency[0] else f"{name} c={concurrency}"
            log(f"fraiseql: {mode} (max_concurrent_actions={concurrency})")
            self.measure_run("fraiseql", "pg-only", mode, name, "bench", spec, p.pid,
                             extra={"max_concurrent_actions": concurrency})
            if idle:
                self.idle_row("fraiseql", "idle (after load)", p.pid)
        finally:
            self.stop_proc("engine")

    def peer_run(self, name, spec):
        p = self.start_peer()
        try:
            log(f"graphile-worker: {name} (concurrency={self.o.peer_concurrency})")
            self.measure_run("graphile-worker", "pg-only", name, name, "peer", spec, p.pid,
                             extra={"concurrency": self.o.peer_concurrency}, change_log=False)
        finally:
            self.stop_proc("peer")

    def want(self, name):
        """Selected by --workloads / BENCH_WORKLOADS (all when empty)."""
        return not self.o.workloads or name in self.o.workloads

    def run_workloads(self):
        """Each workload runs back to back for every system, so that the ratios
        compare runs made under the same conditions (the machine may be shared)."""
        ph = self.o.phases
        c0 = self.o.concurrency[0]
        peer_specs = dict(self.workloads(peer=True))
        for name, spec in self.workloads():
            steady = name.startswith("steady")
            if "producer" in ph and not steady:
                log(f"producer: {name}")
                self.producer_baselines(name, spec)
                if "peer" in ph and name == "burst-8":
                    self.peer_trigger_baseline(name, spec)
            if "fraiseql" in ph:
                self.fraiseql_run(name, spec, c0, idle=(name == "batch-100"))
                if name in ("burst-8", "batch-100"):
                    for c in self.o.concurrency[1:]:
                        self.fraiseql_run(name, spec, c)
            if "peer" in ph:
                self.peer_run(name, peer_specs[name])
        if "fraiseql" in ph and self.o.backlog > 0 and self.want("backlog"):
            self.backlog("fraiseql", "bench", self.o.backlog,
                         lambda: self.start_engine(c0), lambda: self.stop_proc("engine"))
            self.stop_proc("engine")
        if "fraiseql" in ph and self.o.large_events > 0 and self.want("backlog-large"):
            self.backlog("fraiseql", "bench", self.o.large_events,
                         lambda: self.start_engine(c0), lambda: self.stop_proc("engine"),
                         large_kb=self.o.large_kb)
            self.stop_proc("engine")
        if "peer" in ph and self.o.peer_backlog > 0 and self.want("backlog"):
            self.backlog("graphile-worker", "peer", self.o.peer_backlog, self.start_peer,
                         lambda: self.stop_proc("peer"), change_log=False)
            self.stop_proc("peer")

    # --- report ----------------------------------------------------------------------------

    def table(self):
        cols = [("system", "system", "<"), ("topology", "topology", "<"), ("mode", "mode", "<"),
                ("events", "events", ">"), ("events/s", "events_per_s", ">"),
                ("producer ev/s", "producer_events_per_s", ">"),
                ("txn ms", "producer_txn_ms", ">"),
                ("p50 ms", "p50_ms", ">"), ("p95 ms", "p95_ms", ">"), ("p99 ms", "p99_ms", ">"),
                ("max ms", "max_ms", ">"), ("lost", "lost", ">"), ("dup", "dup", ">"),
                ("peak RSS MB", "rss_peak_mb", ">"), ("CPU s", "cpu_s", ">"),
                ("CPU µs/ev", "cpu_us_per_event", ">"),
                ("db CPU s", "db_cpu_s", ">"), ("load", "load1", ">")]

        def fmt(v, key):
            if v is None:
                return "-"
            if key in ("events_per_s", "producer_events_per_s", "cpu_us_per_event"):
                return f"{v:,.0f}"
            if key == "events":
                return f"{v:,}"
            if isinstance(v, float):
                return f"{v:.2f}" if key.endswith("_ms") else f"{v:.1f}"
            return str(v)

        rows = [[fmt(r.get(k), k) for _, k, _ in cols] for r in self.results
                if r["system"] != "machine"]
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, (h, _, _) in enumerate(cols)]
        lines = ["| " + " | ".join(h.ljust(widths[i]) for i, (h, _, _) in enumerate(cols)) + " |",
                 "|" + "|".join(("-" * (widths[i] + 1) + ":" if a == ">" else "-" * (widths[i] + 2))
                                for i, (_, _, a) in enumerate(cols)) + "|"]
        for row in rows:
            lines.append("| " + " | ".join(row[i].rjust(widths[i]) if cols[i][2] == ">" else
                                           row[i].ljust(widths[i]) for i in range(len(cols))) + " |")
        return "\n".join(lines)

    def find(self, system, mode):
        for r in self.results:
            if r["system"] == system and r.get("mode") == mode:
                return r
        return None

    def ratios(self):
        out, checks = [], []

        def ratio_line(label, a, b, key="events_per_s"):
            if a and b and a.get(key) and b.get(key):
                v = a[key] / b[key]
                out.append(f"{label}: {v:.2f}")
                return v
            return None

        for w in ("burst-1", "burst-8", "batch-100"):
            ratio_line(f"capture/plain producer rate, {w}", self.find("postgres", f"{w} capture"),
                       self.find("postgres", f"{w} plain"))
        for w in ("burst-1", "burst-8", "batch-100"):
            ratio_line(f"fraiseql/producer-with-capture rate, {w}", self.find("fraiseql", w),
                       self.find("postgres", f"{w} capture"))
        for name, _ in self.workloads():
            f, g = self.find("fraiseql", name), self.find("graphile-worker", name)
            ratio_line(f"fraiseql/graphile-worker events/s, {name}", f, g)
            if f and g and g.get("p99_ms"):
                out.append(f"fraiseql/graphile-worker p99, {name}: {f['p99_ms'] / g['p99_ms']:.2f}")
        fb = [r for r in self.results if r["system"] == "fraiseql" and r.get("workload") == "backlog"]
        gb = [r for r in self.results if r["system"] == "graphile-worker" and r.get("workload") == "backlog"]
        if fb and gb:
            ratio_line("fraiseql/graphile-worker drain events/s, backlog", fb[0], gb[0])

        def check(label, ok, detail):
            if ok is None:
                checks.append(f"  n/a   {label}: {detail}")
            else:
                checks.append(f"  {'MET ' if ok else 'MISS'}  {label}: {detail}")

        # Targets of the PostgreSQL-only topology (docs/performance.md).
        for w in ("burst-1", "burst-8"):
            f, c = self.find("fraiseql", w), self.find("postgres", f"{w} capture")
            if f and c:
                v = f["events_per_s"] / c["events_per_s"]
                check(f"throughput >= 95% of producer-with-capture ({w})", v >= 0.95 and f["lost"] == 0,
                      f"{f['events_per_s']:,.0f} / {c['events_per_s']:,.0f} = {v:.0%}")
        f = self.find("fraiseql", "batch-100")
        if f:
            check(">= 20,000 events/s with 100-row transactions", f["events_per_s"] >= 20000,
                  f"{f['events_per_s']:,.0f} events/s")
        for name, _ in self.workloads():
            f, g = self.find("fraiseql", name), self.find("graphile-worker", name)
            if f and g and not name.startswith("steady"):
                v = f["events_per_s"] / g["events_per_s"]
                check(f">= 5x graphile-worker events/s, lower p99 ({name})",
                      v >= 5 and f["p99_ms"] < g["p99_ms"],
                      f"{v:.1f}x, p99 {f['p99_ms']:.1f} vs {g['p99_ms']:.1f} ms")
            elif f and g:
                check(f"lower p99 than graphile-worker ({name})", f["p99_ms"] < g["p99_ms"],
                      f"p99 {f['p99_ms']:.1f} vs {g['p99_ms']:.1f} ms")
        f = self.find("fraiseql", "steady-1000")
        if f:
            check("steady 1,000/s: p50 <= 2 ms", f["p50_ms"] <= 2, f"p50 {f['p50_ms']:.2f} ms")
            check("steady 1,000/s: p99 <= 10 ms", f["p99_ms"] <= 10, f"p99 {f['p99_ms']:.2f} ms")
        ratio_line("peer-trigger/plain producer rate, burst-8",
                   self.find("postgres", "burst-8 peer-trigger"), self.find("postgres", "burst-8 plain"))
        p, c = self.find("postgres", "burst-8 plain"), self.find("postgres", "burst-8 capture")
        if p and c:
            v = 1 - c["events_per_s"] / p["events_per_s"]
            check("capture overhead <= 20% vs plain INSERTs, 8 clients", v <= 0.20, f"{v:.0%}")
        for r in self.results:
            if r["system"] == "fraiseql" and r.get("workload") == "idle":
                check(f"RSS <= 64 MB idle ({r['mode']})", r["rss_mb"] <= 64, f"{r['rss_mb']} MB")
        if fb:
            check("RSS <= 256 MB draining the backlog", fb[0]["rss_peak_mb"] <= 256,
                  f"{fb[0]['rss_peak_mb']} MB peak ({fb[0]['events']:,} events)")
        fl = [r for r in self.results if r["system"] == "fraiseql" and r.get("workload") == "backlog-large"]
        if fl:
            # Issue 18: the default 64 MB byte budget plus a fixed overhead.
            check("RSS <= 128 MB draining large events (64 MB budget)", fl[0]["rss_peak_mb"] <= 128,
                  f"{fl[0]['rss_peak_mb']} MB peak ({fl[0]['mode']}; small-event backlog: "
                  f"{fb[0]['rss_peak_mb'] if fb else '-'} MB)")
        return out, checks

    def report(self):
        print()
        print(self.table())
        out, checks = self.ratios()
        print()
        print("Ratios:")
        for line in out:
            print("  " + line)
        print()
        print("Targets (PostgreSQL-only topology, docs/performance.md):")
        for line in checks:
            print(line)
        if self.o.out:
            with open(self.o.out, "w") as f:
                for r in self.results:
                    f.write(json.dumps(r) + "\n")
                f.write(json.dumps({"bench": "table", "markdown": self.table()}) + "\n")

    def machine(self):
        def out(args):
            try:
                return subprocess.run(args, capture_output=True, text=True, cwd=ROOT).stdout.strip()
            except OSError:
                return ""
        cpu = ""
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        commit = os.environ.get("BENCH_ENGINE_COMMIT")
        if not commit:
            commit = out(["git", "rev-parse", "--short", "HEAD"])
            if out(["git", "status", "--porcelain", "--", "actors", "runtime", "apps", "messages",
                    "sql"]):
                commit += "+dirty"
        self.engine_commit = commit
        mem_kb = 0
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
        self.emit({"system": "machine", "cpu": cpu, "cores": os.cpu_count(),
                   "mem_gib": round(mem_kb / 1048576, 1),
                   "postgres": out(["pg_config", "--version"]) or out(["psql", "--version"]),
                   "node": out(["node", "--version"]), "engine_commit": commit,
                   "engine_binary": NODE_BIN, "options": {k: v for k, v in vars(self.o).items()
                                                         if k not in ("phases", "workloads")}})

    def run(self):
        t0 = time.time()
        self.machine()
        self.start_pg()
        self.start_sink()
        if "sink" in self.o.phases:
            self.sink_capacity()
        self.setup()
        self.run_workloads()
        self.report()
        log(f"done in {time.time() - t0:.0f}s")


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, about 2 minutes")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--out", default=os.environ.get("BENCH_OUT"), help="also write JSON lines here")
    ap.add_argument("--phases", default=os.environ.get("BENCH_PHASES", "sink,producer,fraiseql,peer"),
                    help="comma list of sink,producer,fraiseql,peer")
    ap.add_argument("--workloads", default=os.environ.get("BENCH_WORKLOADS", ""),
                    help="comma list of burst-1,burst-8,batch-100,steady-R,backlog,backlog-large"
                         " (default: all)")
    a = ap.parse_args()
    a.workloads = set(x for x in a.workloads.split(",") if x)
    q = a.quick
    a.events = env_int("BENCH_EVENTS", 3000 if q else 20000)
    a.batch_events = env_int("BENCH_BATCH_EVENTS", 20000 if q else 100000)
    # graphile-worker delivers 100-500 events/s here: smaller sizes keep the run
    # short (its rate is a steady-state rate, so the size changes little).
    a.peer_events = env_int("BENCH_PEER_EVENTS", 1000 if q else 5000)
    a.peer_batch_events = env_int("BENCH_PEER_BATCH_EVENTS", 2000 if q else 10000)
    a.rates = [int(x) for x in os.environ.get("BENCH_RATES", "1000" if q else "500,1000,2000").split(",") if x]
    a.steady_secs = env_int("BENCH_STEADY_SECS", 5 if q else 10)
    a.backlog = env_int("BENCH_BACKLOG", 50000 if q else 1000000)
    a.peer_backlog = env_int("BENCH_PEER_BACKLOG", 2000 if q else 10000)
    a.large_events = env_int("BENCH_LARGE_EVENTS", 1000 if q else 4000)
    a.large_kb = env_int("BENCH_LARGE_KB", 200)
    a.concurrency = [int(x) for x in os.environ.get("BENCH_CONCURRENCY", "10" if q else "10,64").split(",") if x]
    a.peer_concurrency = env_int("BENCH_PEER_CONCURRENCY", 10)
    a.sink_requests = env_int("BENCH_SINK_REQUESTS", 100000 if q else 300000)
    a.stall = env_int("BENCH_STALL_S", 20)
    a.producer_runs = env_int("BENCH_PRODUCER_RUNS", 3)
    a.perf = os.environ.get("BENCH_PERF", "")  # proc | all | trace: profile each consumer run
    if a.perf:
        a.keep = True
    a.phases = set(a.phases.split(","))
    b = Bench(a)

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
