#!/usr/bin/env bash
# The compose files carry the spec's names and are valid: `docker-compose -f F
# config -q` for each of the four topologies, alone and with its test override
# (docker-compose/test/host-network.*.yml); every observer service of a file
# has a health check, a restart policy and the observer image; topology 3 has
# a scalable worker, topology 4 three databases and three bridges. Fast, no
# engine (ctest compose_config, label compose).
set -euo pipefail
cd "$(dirname "$0")/../../docker-compose"
command -v docker-compose >/dev/null || { echo "compose_config: no docker-compose (scripts/install-deps.sh)" >&2; exit 1; }
fail() { echo "compose_config: $*" >&2; exit 1; }
# What the overrides read (the docker test picks free ports).
export FQ_DIR=/nonexistent FQ_METRICS_PORT=1 FQ_BRIDGE_METRICS_PORT=1 FQ_STANDBY_METRICS_PORT=1 \
  FQ_PG_PORT=1 FQ_PG_PORT_1=1 FQ_PG_PORT_2=1 FQ_PG_PORT_3=1 FQ_REDIS_PORT=1 FQ_NATS_PORT=1 \
  FQ_NATS_MONITOR_PORT=1 FQ_BRIDGE_METRICS_PORT_1=1 FQ_BRIDGE_METRICS_PORT_2=1 FQ_BRIDGE_METRICS_PORT_3=1
for t in postgres-only postgres-redis nats-distributed multi-database; do
  f=docker-compose.$t.yml
  [ -f "$f" ] || fail "missing $f"
  docker-compose -f "$f" config -q || fail "$f: invalid"
  docker-compose -f "$f" -f "test/host-network.$t.yml" config -q || fail "$f + test/host-network.$t.yml: invalid"
  /usr/bin/python3 - "$t" "$f" <<'PY'
import subprocess, sys, yaml
t, f = sys.argv[1], sys.argv[2]
doc = yaml.safe_load(subprocess.run(["docker-compose", "-f", f, "config"], check=True,
                                    capture_output=True, text=True).stdout)
svcs = doc["services"]
def fail(msg):
    sys.exit(f"compose_config: {f}: {msg}")
observers = [s for s, v in svcs.items() if v.get("image") == "fraiseql-observer:latest"]
migrates = [s for s in observers if s.startswith("migrate")]
long_running = [s for s in observers if s not in migrates]
if not migrates:
    fail("no migrate service")
for s in migrates:
    if svcs[s]["command"][0] != "migrate":
        fail(f"{s} does not run migrate")
for s in long_running:
    v = svcs[s]
    if v.get("restart") != "unless-stopped":
        fail(f"{s}: restart policy {v.get('restart')}")
    if "/healthz" not in " ".join(v.get("healthcheck", {}).get("test", [])):
        fail(f"{s}: no /healthz health check")
    if not any(m.startswith("migrate") for m in v.get("depends_on", {})):
        fail(f"{s} does not wait for the migration")
for s, v in svcs.items():
    if s.startswith("postgres") or s == "redis":
        if "healthcheck" not in v or v.get("restart") != "unless-stopped":
            fail(f"{s}: health check / restart policy")
        if not v.get("volumes"):
            fail(f"{s}: no volume")
want = {"postgres-only": ({"postgres", "observer"}, 0, 0),
        "postgres-redis": ({"postgres", "redis", "observer"}, 0, 0),
        "nats-distributed": ({"postgres", "nats", "redis", "bridge", "worker"}, 1, 2),
        "multi-database": ({"postgres-db1", "postgres-db2", "postgres-db3", "nats", "redis",
                            "bridge-db1", "bridge-db2", "bridge-db3", "worker"}, 3, 3)}[t]
if not want[0] <= set(svcs):
    fail(f"services {sorted(want[0] - set(svcs))} missing")
if sum(1 for s in svcs if s.startswith("postgres")) != max(want[1], 1):
    fail("number of databases")
if sum(1 for s in long_running if s.startswith("bridge")) < want[2]:
    fail("number of bridges")
if "worker" in svcs and (svcs["worker"].get("ports") or "container_name" in svcs["worker"]):
    fail("worker publishes ports or has a fixed name: it cannot be scaled")
print(f"{f}: ok ({len(svcs)} services)")
PY
done
echo "compose_config: PASS"
