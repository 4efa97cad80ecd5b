#!/usr/bin/env bash
# The deployment topologies as plain processes on loopback, for machines
# without Docker. Every observer node listens on its own address 127.0.0.N
# (metrics, /healthz, /readyz on :9464, control plane on :7465); PostgreSQL,
# Redis and NATS are private servers on free ports of 127.0.0.1 (scripts/pg.sh,
# scripts/redis.sh, scripts/nats.sh). The nodes run the compose files'
# configurations (docker-compose/config/*.toml) with those addresses.
#
#   scripts/cluster.sh up TOPOLOGY [--workers N] [--sink URL]
#   scripts/cluster.sh status TOPOLOGY
#   scripts/cluster.sh down TOPOLOGY
#
# TOPOLOGY: postgres-only | postgres-redis | nats-distributed | multi-database.
#   postgres-only, postgres-redis: an observer (--role all) and a standby
#   nats-distributed: a bridge and a standby, N workers (default 3)
#   multi-database:   three databases (fraiseql_db1..3), a bridge each, N workers
#                     (default 3; their dead-letter queue in fraiseql_db1)
# --sink URL replaces https://example.com of the observers' webhook URLs (a
# local sink: scripts/sink.py). State, logs and the nodes' files live in
# CLUSTER_DIR (default build/cluster/TOPOLOGY); DIR/env has the database URLs
# (DATABASE_URL_1..), DIR/nodes lists `name address pid role` per node. `down`
# stops the nodes (SIGTERM, then SIGKILL after 30 s) and the servers, and
# removes DIR. `up` stops everything it started when it fails. CLUSTER_PREFIX
# (default 127.0.0) sets the nodes' addresses, PREFIX.2, PREFIX.3, ... (tests
# pick another 127.X.Y so that two runs on one host do not collide).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
usage() {
  echo "usage: scripts/cluster.sh up|status|down postgres-only|postgres-redis|nats-distributed|multi-database [--workers N] [--sink URL]" >&2
  exit 2
}
[ $# -ge 2 ] || usage
cmd=$1 topo=$2
shift 2
case "$cmd" in up | status | down) ;; *) usage ;; esac
case "$topo" in postgres-only | postgres-redis | nats-distributed | multi-database) ;; *) usage ;; esac
workers=3 sink=""
while [ $# -gt 0 ]; do
  case "$1" in
    --workers)
      if ! { [ $# -ge 2 ] && [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 200 ]; }; then
        echo "cluster: --workers needs a number 1-200" >&2
        exit 2
      fi
      workers=$2
      shift 2
      ;;
    --sink)
      if ! { [ $# -ge 2 ] && [[ "$2" =~ ^https?://[^/]+$ ]]; }; then
        echo "cluster: --sink needs http://HOST:PORT" >&2
        exit 2
      fi
      sink=$2
      shift 2
      ;;
    *) usage ;;
  esac
done
case "$topo" in nats-distributed | multi-database) ;; *)
  [ "$workers" = 3 ] || { echo "cluster: --workers applies to nats-distributed and multi-database" >&2; exit 2; } ;;
esac
bin=${BUILD_DIR:-$repo/build}/apps/observer/observer-node
dir=${CLUSTER_DIR:-$repo/build/cluster/$topo}
prefix=${CLUSTER_PREFIX:-127.0.0}
[[ "$prefix" =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || { echo "cluster: CLUSTER_PREFIX must be 127.X.Y" >&2; exit 2; }

node_pids() { if [ -f "$dir/nodes" ]; then awk '{print $3}' "$dir/nodes"; fi; }

down() {
  local pid i
  for pid in $(node_pids); do kill "$pid" 2>/dev/null || true; done
  for pid in $(node_pids); do
    for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ -d "$dir/nats" ]; then "$repo/scripts/nats.sh" stop "$dir/nats" >/dev/null 2>&1 || true; fi
  if [ -d "$dir/redis" ]; then "$repo/scripts/redis.sh" stop "$dir/redis" >/dev/null 2>&1 || true; fi
  if [ -d "$dir/pg" ]; then "$repo/scripts/pg.sh" stop "$dir/pg" >/dev/null 2>&1 || true; fi
  rm -rf "$dir"
}

probe() {  # probe ADDRESS PATH -> the HTTP status line's code, or "-"
  local code
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$1:9464$2" 2>/dev/null || true)
  case "$code" in "" | 000) echo - ;; *) echo "$code" ;; esac
}

status() {
  [ -f "$dir/nodes" ] || { echo "cluster: $topo is not up ($dir)" >&2; exit 1; }
  local name addr pid role state bad=0
  printf '%-28s %-12s %-8s %-7s %-8s %s\n' NODE ADDRESS PID ROLE HEALTHZ READYZ
  while read -r name addr pid role; do
    if kill -0 "$pid" 2>/dev/null; then state=$(probe "$addr" /healthz); else state=dead; bad=1; fi
    printf '%-28s %-12s %-8s %-7s %-8s %s\n' "$name" "$addr" "$pid" "$role" "$state" "$(probe "$addr" /readyz)"
    [ "$state" = 200 ] || bad=1
  done <"$dir/nodes"
  return $bad
}

# config SRC NAME ADDRESS: the compose configuration for a node on ADDRESS.
config() {
  local src=$repo/docker-compose/config/$1 out=$dir/$2/observer.toml
  mkdir -p "$dir/$2/run"
  chmod 700 "$dir/$2/run"
  sed -e "s/^bind = \"0.0.0.0\"\$/bind = \"$3\"/" \
    -e "s/^# worker_name = .*/worker_name = \"$2\"/" \
    ${sink:+-e "s|https://example.com/hooks/|$sink/hooks/|"} "$src" >"$out"
  grep -q "^bind = \"$3\"" "$out" || { echo "cluster: no [metrics] bind in $src" >&2; exit 1; }
  printf '\n[control]\nbind = "%s"\nruntime_dir = "%s"\n' "$3" "$dir/$2/run" >>"$out"
}

# start NAME ADDRESS ROLE DATABASE_URL
start() {
  (
    export FRAISEQL_DATABASE_URL=$4
    [ -n "${redis_url:-}" ] && export FRAISEQL_REDIS_URL=$redis_url
    [ -n "${nats_url:-}" ] && export FRAISEQL_NATS_URL=$nats_url
    exec setsid "$bin" --role "$3" --config "$dir/$1/observer.toml" </dev/null >"$dir/$1/node.log" 2>&1
  ) &
  echo "$1 $2 $! $3" >>"$dir/nodes"
}

up() {
  [ -x "$bin" ] || { echo "cluster: no $bin (scripts/build.sh)" >&2; exit 1; }
  [ ! -e "$dir" ] || { echo "cluster: $dir exists: is $topo up? (scripts/cluster.sh down $topo)" >&2; exit 1; }
  mkdir -p "$dir"
  trap 'echo "cluster: up failed; stopping what it started" >&2; down' ERR
  "$repo/scripts/pg.sh" start "$dir/pg" >/dev/null
  local pg_url dbs=() i n=2 db url
  pg_url=$(sed -n 's/^FRAISEQL_DATABASE_URL=//p' "$dir/pg/env")
  if [ "$topo" = multi-database ]; then dbs=(fraiseql_db1 fraiseql_db2 fraiseql_db3); else dbs=(fraiseql); fi
  : >"$dir/env"
  i=1
  for db in "${dbs[@]}"; do
    psql -q -X -v ON_ERROR_STOP=1 "$pg_url" -c "CREATE DATABASE $db" >/dev/null
    url=${pg_url%/*}/$db
    echo "DATABASE_URL_$i=$url" >>"$dir/env"
    FRAISEQL_DATABASE_URL=$url "$bin" migrate --config "$repo/docker-compose/config/bridge.toml" \
      >"$dir/migrate-$db.log" 2>&1 || { cat "$dir/migrate-$db.log" >&2; false; }
    i=$((i + 1))
  done
  redis_url="" nats_url=""
  if [ "$topo" != postgres-only ]; then
    "$repo/scripts/redis.sh" start "$dir/redis" >/dev/null
    redis_url=$(sed -n 's/^FRAISEQL_REDIS_URL=//p' "$dir/redis/env")
    echo "FRAISEQL_REDIS_URL=$redis_url" >>"$dir/env"
  fi
  case "$topo" in nats-distributed | multi-database)
    "$repo/scripts/nats.sh" start "$dir/nats" >/dev/null
    nats_url=$(sed -n 's/^NATS_URL=//p' "$dir/nats/env")
    echo "FRAISEQL_NATS_URL=$nats_url" >>"$dir/env"
    ;;
  esac
  : >"$dir/nodes"
  case "$topo" in
    postgres-only | postgres-redis)
      for name in observer observer-standby; do
        config "$topo.toml" "$name" "$prefix.$n"
        start "$name" "$prefix.$n" all "${pg_url%/*}/fraiseql"
        n=$((n + 1))
      done
      ;;
    *)
      i=1
      for db in "${dbs[@]}"; do
        for name in "bridge-$db" "bridge-$db-standby"; do
          config bridge.toml "$name" "$prefix.$n"
          start "$name" "$prefix.$n" bridge "${pg_url%/*}/$db"
          n=$((n + 1))
        done
        i=$((i + 1))
      done
      for i in $(seq "$workers"); do
        config worker.toml "worker-$i" "$prefix.$n"
        start "worker-$i" "$prefix.$n" worker "${pg_url%/*}/${dbs[0]}"
        n=$((n + 1))
      done
      ;;
  esac
  local name addr pid role
  while read -r name addr pid role; do
    for i in $(seq 300); do
      [ "$(probe "$addr" /healthz)" = 200 ] && break
      kill -0 "$pid" 2>/dev/null || { echo "cluster: $name exited:" >&2; tail -20 "$dir/$name/node.log" >&2; false; }
      sleep 0.1
    done
    [ "$(probe "$addr" /healthz)" = 200 ] || { echo "cluster: $name not healthy after 30 s" >&2; tail -20 "$dir/$name/node.log" >&2; false; }
  done <"$dir/nodes"
  trap - ERR
  echo "cluster: $topo up in $dir ($(wc -l <"$dir/nodes") nodes)"
  status
}

case "$cmd" in
  up) up ;;
  status) status ;;
  down)
    [ -d "$dir" ] || { echo "cluster: $topo is not up ($dir)"; exit 0; }
    down
    echo "cluster: $topo down"
    ;;
esac
