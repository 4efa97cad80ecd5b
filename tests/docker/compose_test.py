#!/usr/bin/python3
"""Brings one compose topology up for real under the private Docker engine
and checks delivery end to end:

  tests/docker/compose_test.py TOPOLOGY
  TOPOLOGY: postgres-only | postgres-redis | nats-distributed | multi-database

docker-compose/docker-compose.TOPOLOGY.yml with docker-compose/test/host-network.TOPOLOGY.yml
(local images from Debian packages, host networking, loopback, free ports).
Every service must become healthy (the migrate services exit 0); an `orders`
table is attached in every database; rows are inserted and the webhook sink
(scripts/sink.py, on 127.0.0.1) must receive every change-log event of every
database, and (topologies 2-4) Redis must hold the dedup claims. Then a worker
(topologies 3, 4: after scaling to 10 workers in 3), a bridge (the leading
one), or the observer (1, 2) is killed with SIGKILL: the restart policy must
bring it back healthy and the rows written meanwhile must be delivered too.
Everything is torn down (down -v) on every exit path.

Needs DOCKER_HOST (scripts/docker-engine.sh env DIR) and the images of
scripts/docker-image.sh. Exit 77 (CTest: skipped) unless FRAISEQL_DOCKER_TESTS=1.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import psycopg2
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COMPOSE_DIR = os.path.join(REPO, "docker-compose")
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
TOPOLOGIES = ("postgres-only", "postgres-redis", "nats-distributed", "multi-database")
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


_taken = set()


def free_port():
    """A free port below the kernel's ephemeral range (32768-60999): a port bind(0)
    picked could be taken, before the container binds it, by an outgoing
    connection of another container (seen: PostgreSQL failing to bind). 20000+
    is worker-entry.sh's range."""
    import random
    for _ in range(1000):
        p = random.randint(12000, 19999)
        if p in _taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        _taken.add(p)
        return p
    raise AssertionError("no free port in 12000-19999")


def wait_until(pred, timeout, what, interval=0.5):
    deadline = time.monotonic() + timeout
    while True:
        r = pred()
        if r:
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Topology:
    def __init__(self, name, workdir):
        self.name = name
        self.dir = workdir
        self.project = f"fqtest-{name}"
        self.env = dict(os.environ, FQ_DIR=workdir)
        self.sink_port = None
        self.dbs = {}  # service -> (port, database)
        self.metrics = {}  # service -> metrics port (single-container services)

    # --- configuration -------------------------------------------------------
    def write_config(self, src, dst, metrics_port=None):
        with open(os.path.join(COMPOSE_DIR, "config", src)) as f:
            text = f.read()
        text = text.replace("https://example.com/hooks/", f"http://127.0.0.1:{self.sink_port}/hooks/")
        if metrics_port is not None:
            assert "\nport = 9464\n" in text, src
            text = text.replace("\nport = 9464\n", f"\nport = {metrics_port}\n")
        path = os.path.join(self.dir, dst)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)

    def prepare(self, sink_port):
        self.sink_port = sink_port
        e = self.env
        e["FQ_REDIS_PORT"] = str(free_port())
        e["FQ_NATS_PORT"] = str(free_port())
        e["FQ_NATS_MONITOR_PORT"] = str(free_port())
        if self.name in ("postgres-only", "postgres-redis"):
            e["FQ_PG_PORT"] = str(free_port())
            self.dbs["postgres"] = (e["FQ_PG_PORT"], "fraiseql")
            self.metrics["observer"] = free_port()
            e["FQ_METRICS_PORT"] = str(self.metrics["observer"])
            self.write_config(f"{self.name}.toml", "observer.toml", self.metrics["observer"])
        elif self.name == "nats-distributed":
            e["FQ_PG_PORT"] = str(free_port())
            self.dbs["postgres"] = (e["FQ_PG_PORT"], "fraiseql")
            for svc, var, cfg in (("bridge", "FQ_BRIDGE_METRICS_PORT", "bridge.toml"),
                                  ("bridge-standby", "FQ_STANDBY_METRICS_PORT", "bridge-standby.toml")):
                self.metrics[svc] = free_port()
                e[var] = str(self.metrics[svc])
                self.write_config("bridge.toml", cfg, self.metrics[svc])
            self.write_config("worker.toml", "worker.toml")
        else:
            for i in (1, 2, 3):
                e[f"FQ_PG_PORT_{i}"] = str(free_port())
                self.dbs[f"postgres-db{i}"] = (e[f"FQ_PG_PORT_{i}"], f"fraiseql_db{i}")
                self.metrics[f"bridge-db{i}"] = free_port()
                e[f"FQ_BRIDGE_METRICS_PORT_{i}"] = str(self.metrics[f"bridge-db{i}"])
                self.write_config("bridge.toml", f"bridge-db{i}.toml", self.metrics[f"bridge-db{i}"])
            self.write_config("worker.toml", "worker.toml")

    # --- docker --------------------------------------------------------------
    def merge(self):
        """The file the test runs: `docker-compose config` of the topology's file
        and its host-network override, without published ports (Docker discards
        them under host networking, docker-compose refuses the pair, and
        override files can only add ports, never remove them)."""
        out = subprocess.run(
            ["docker-compose", "-f", f"docker-compose.{self.name}.yml",
             "-f", f"test/host-network.{self.name}.yml", "config"],
            cwd=COMPOSE_DIR, env=self.env, text=True, capture_output=True)
        if out.returncode != 0:
            raise AssertionError(f"docker-compose config failed: {out.stderr}")
        doc = yaml.safe_load(out.stdout)
        for svc, spec in doc["services"].items():
            assert spec.get("network_mode") == "host", f"{svc} is not on the host network"
            spec.pop("ports", None)
        self.file = os.path.join(self.dir, "docker-compose.yml")
        with open(self.file, "w") as f:
            yaml.safe_dump(doc, f)

    def compose(self, *args, check=True, capture=False):
        cmd = ["docker-compose", "-p", self.project, "--project-directory", COMPOSE_DIR,
               "-f", self.file, *args]
        r = subprocess.run(cmd, cwd=COMPOSE_DIR, env=self.env, text=True,
                           stdout=subprocess.PIPE if capture else None,
                           stderr=subprocess.STDOUT if capture else None)
        if check and r.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed ({r.returncode})"
                                 + (f": {r.stdout}" if capture else ""))
        return r.stdout if capture else r.returncode

    def containers(self, service=None):
        out = self.compose("ps", "-q", *([service] if service else []), capture=True)
        return [c for c in out.split() if c]

    def inspect(self, cid):
        r = subprocess.run([DOCKER, "inspect", cid], text=True, capture_output=True, check=True)
        return json.loads(r.stdout)[0]

    def service_of(self, info):
        return info["Config"]["Labels"].get("com.docker.compose.service")

    def unhealthy(self):
        """Containers not yet where they should be: running and healthy, or
        (migrate*) exited 0. Raises on a migrate that failed."""
        bad = []
        for cid in self.containers():
            i = self.inspect(cid)
            svc, st = self.service_of(i), i["State"]
            if svc.startswith("migrate"):
                if st["Status"] == "exited" and st["ExitCode"] != 0:
                    raise AssertionError(f"{svc} exited {st['ExitCode']}:\n{self.logs(cid)}")
                if st["Status"] != "exited":
                    bad.append(f"{svc} {st['Status']}")
                continue
            health = st.get("Health", {}).get("Status", "none")
            if st["Status"] != "running" or health != "healthy":
                bad.append(f"{i['Name'].lstrip('/')} {st['Status']}/{health}")
        return bad

    def wait_healthy(self, timeout=180):
        last = [None]

        def ok():
            last[0] = self.unhealthy()
            return not last[0]
        try:
            wait_until(ok, timeout, "every service healthy")
        except AssertionError:
            raise AssertionError(f"not healthy after {timeout} s: {last[0]}")

    def logs(self, cid, tail=40):
        r = subprocess.run([DOCKER, "logs", "--tail", str(tail), cid], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return r.stdout

    def dump(self):
        for cid in self.containers():
            i = self.inspect(cid)
            print(f"--- {i['Name']} {i['State']['Status']} restarts={i['RestartCount']}", file=sys.stderr)
            print(self.logs(cid), file=sys.stderr)

    def kill9(self, cid):
        """SIGKILL of the container's main process from the host: a crash, which
        the restart policy answers (docker kill would count as a manual stop)."""
        i = self.inspect(cid)
        pid, restarts = i["State"]["Pid"], i["RestartCount"]
        assert pid > 0, f"{i['Name']} not running"
        os.kill(pid, 9)
        log(f"killed {i['Name'].lstrip('/')} ({self.service_of(i)}, pid {pid})")
        wait_until(lambda: self.inspect(cid)["RestartCount"] > restarts, 60,
                   f"{i['Name']} restarted by its restart policy")

    # --- databases -----------------------------------------------------------
    def sql(self, service, query, params=None):
        port, db = self.dbs[service]
        c = psycopg2.connect(host="127.0.0.1", port=int(port), user="fraiseql", dbname=db)
        c.autocommit = True
        try:
            with c.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else None
        finally:
            c.close()

    def insert(self, n, tag):
        for svc in self.dbs:
            self.sql(svc, "INSERT INTO orders (customer, status) SELECT %s || '-' || g, 'new' "
                          "FROM generate_series(1, %s) g", (f"{tag}-{svc}", n))

    def change_log_ids(self):
        ids = set()
        for svc in self.dbs:
            ids |= {r[0] for r in self.sql(svc, "SELECT id::text FROM core.tb_entity_change_log")}
        return ids


class Sink:
    def __init__(self, workdir):
        self.log = os.path.join(workdir, "sink.jsonl")
        port_file = os.path.join(workdir, "sink.port")
        self.proc = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "sink.py"),
                                      "--port-file", port_file, "--log", self.log])
        wait_until(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 20, "sink port")
        self.port = int(open(port_file).read())

    def ids(self):
        out = []
        if os.path.exists(self.log):
            with open(self.log, "rb") as f:
                for line in f:
                    if line.endswith(b"\n"):
                        out.append(json.loads(json.loads(line)["body"])["id"])
        return out

    def sources(self):
        out = set()
        if os.path.exists(self.log):
            with open(self.log, "rb") as f:
                for line in f:
                    if line.endswith(b"\n"):
                        out.add(json.loads(json.loads(line)["body"]).get("source"))
        return out

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def check_delivery(t, sink, what, timeout=120):
    want = t.change_log_ids()
    assert want, "no change-log rows"

    def done():
        return want <= set(sink.ids())
    try:
        wait_until(done, timeout, f"{len(want)} events at the sink ({what})")
    except AssertionError:
        got = set(sink.ids())
        raise AssertionError(f"{what}: {len(want - got)} of {len(want)} events never reached the sink")
    got = sink.ids()
    foreign = set(got) - want
    assert not foreign, f"{what}: the sink received events that are in no change log: {sorted(foreign)[:5]}"
    log(f"{what}: all {len(want)} events delivered ({len(got) - len(set(got))} redeliveries)")


def readyz(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
            return s.recv(4096).split(b"\r\n", 1)[0]
    except OSError:
        return b""


def run(name):
    workdir = tempfile.mkdtemp(prefix=f"fraiseql-compose-{name}.")
    os.chmod(workdir, 0o755)
    t = Topology(name, workdir)
    sink = None
    try:
        sink = Sink(workdir)
        t.prepare(sink.port)
        t.merge()
        t.compose("down", "-v", "--remove-orphans", "-t", "2", capture=True, check=False)  # leftovers
        log(f"{name}: up")
        t.compose("up", "-d", "--no-build")
        t.wait_healthy()
        log(f"{name}: every service healthy: {len(t.containers())} containers")
        for svc in t.dbs:
            t.sql(svc, "CREATE TABLE orders (id bigserial PRIMARY KEY, customer text, status text)")
            t.sql(svc, "SELECT observer_attach('public.orders', 'Order', 'id', true)")
        t.insert(50, "first")
        check_delivery(t, sink, "first rows")
        if name != "postgres-only":
            # The dedup claims of the delivered events are in the compose Redis.
            keys = int(subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", t.env["FQ_REDIS_PORT"],
                                       "DBSIZE"], capture_output=True, text=True, check=True).stdout)
            assert keys > 0, "Redis holds no keys: dedup did not use it"
            log(f"Redis holds {keys} keys (dedup claims)")

        if name == "multi-database":
            # Each bridge names its database in the envelopes ([nats] source_name default).
            got = sink.sources()
            assert got == {"fraiseql_db1", "fraiseql_db2", "fraiseql_db3"}, f"sources {got}"
            log(f"events from the three bridges: sources {sorted(got)}")
        if name == "nats-distributed":
            t.compose("up", "-d", "--no-build", "--scale", "worker=10")
            t.wait_healthy()
            n = len(t.containers("worker"))
            assert n == 10, f"{n} workers after --scale worker=10"
            log("scaled to 10 workers, all healthy")
            t.insert(100, "scaled")
            check_delivery(t, sink, "10 workers")

        if name in ("nats-distributed", "multi-database"):
            t.kill9(t.containers("worker")[0])
            if name == "nats-distributed":
                leader = wait_until(lambda: [s for s in ("bridge", "bridge-standby")
                                             if b" 200 " in readyz(t.metrics[s]) + b" "], 30,
                                    "a leading bridge")[0]
                log(f"the leading bridge is {leader}")
            else:
                leader = "bridge-db2"
            t.kill9(t.containers(leader)[0])
            t.insert(50, "after-kill")
            check_delivery(t, sink, "after killing a worker and a bridge")
        else:
            t.kill9(t.containers("observer")[0])
            t.insert(50, "after-kill")
            check_delivery(t, sink, "after killing the observer")
        t.wait_healthy()
        log(f"{name}: the killed containers are healthy again")
        log(f"{name}: PASS")
        return 0
    except Exception:
        try:
            t.dump()
        except Exception as e:  # noqa: BLE001 - the original failure matters more
            print(f"(dump failed: {e})", file=sys.stderr)
        raise
    finally:
        t.compose("down", "-v", "--remove-orphans", "-t", "5", capture=True, check=False)
        log(f"{name}: down")
        if sink:
            sink.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in TOPOLOGIES:
        print(f"usage: {sys.argv[0]} {'|'.join(TOPOLOGIES)}", file=sys.stderr)
        return 2
    if os.environ.get("FRAISEQL_DOCKER_TESTS") != "1":
        print("skipped: set FRAISEQL_DOCKER_TESTS=1 (scripts/test-docker.sh does)")
        return 77
    if not os.environ.get("DOCKER_HOST"):
        print("compose_test: DOCKER_HOST is not set (scripts/docker-engine.sh env DIR)", file=sys.stderr)
        return 2
    return run(sys.argv[1])


if __name__ == "__main__":
    sys.exit(main())
