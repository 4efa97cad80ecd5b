#!/usr/bin/env bash
# Topology 3 (NATS distributed) end to end as plain processes on loopback
# (scripts/cluster.sh): PostgreSQL, NATS JetStream, Redis, a bridge and its
# standby, WORKERS workers (default 3), each node on its own 127.0.0.N. It
# attaches an `orders` table, writes rows, and checks that the webhook sink
# (scripts/sink.py on 127.0.0.1) received every event of the change log; then
# kills (SIGKILL) a worker and the leading bridge, writes more rows and checks
# again (the standby takes over, the other workers take the dead one's
# partitions). Everything is stopped on every exit path. Exit 0 only if every
# event was delivered. ctest: cluster_nats_distributed.
#   scripts/cluster-demo.sh [--workers N]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
workers=3
case "${1:-}" in
  "") ;;
  --workers) workers=${2:?--workers needs a number} ;;
  *) echo "usage: scripts/cluster-demo.sh [--workers N]" >&2; exit 2 ;;
esac
work=$(mktemp -d /tmp/fraiseql-cluster-demo.XXXXXX)
export CLUSTER_DIR=$work/cluster
sink_pid=""
cleanup() {
  "$repo/scripts/cluster.sh" down nats-distributed >/dev/null 2>&1 || true
  if [ -n "$sink_pid" ]; then kill "$sink_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
step() { echo "== $*"; }

python3 "$repo/scripts/sink.py" --port-file "$work/sink.port" --log "$work/sink.jsonl" &
sink_pid=$!
for _ in $(seq 100); do [ -s "$work/sink.port" ] && break; sleep 0.1; done
sink_port=$(cat "$work/sink.port")

step "scripts/cluster.sh up nats-distributed --workers $workers --sink http://127.0.0.1:$sink_port"
t0=$SECONDS
"$repo/scripts/cluster.sh" up nats-distributed --workers "$workers" --sink "http://127.0.0.1:$sink_port"
db=$(sed -n 's/^DATABASE_URL_1=//p' "$CLUSTER_DIR/env")
sql() { psql -q -X -v ON_ERROR_STOP=1 -At "$db" -c "$1"; }
sql "CREATE TABLE orders (id bigserial PRIMARY KEY, customer text, status text)"
sql "SELECT observer_attach('public.orders', 'Order', 'id', true)" >/dev/null

# delivered WHAT: waits (60 s) until the sink holds every change-log event id.
delivered() {
  local want missing
  for _ in $(seq 600); do
    sql "SELECT id::text FROM core.tb_entity_change_log" | sort -u >"$work/want"
    python3 -c 'import json,sys
for l in open(sys.argv[1], "rb"):
    if l.endswith(b"\n"): print(json.loads(json.loads(l)["body"])["id"])' "$work/sink.jsonl" 2>/dev/null |
      sort -u >"$work/got" || true
    missing=$(comm -23 "$work/want" "$work/got" | wc -l)
    [ "$missing" = 0 ] && break
    sleep 0.1
  done
  want=$(wc -l <"$work/want")
  if [ "$missing" != 0 ]; then
    echo "cluster-demo: $1: $missing of $want events never reached the sink" >&2
    tail -5 "$CLUSTER_DIR"/*/node.log >&2
    exit 1
  fi
  if [ -n "$(comm -13 "$work/want" "$work/got")" ]; then
    echo "cluster-demo: $1: the sink received events that are not in the change log" >&2
    exit 1
  fi
  echo "$1: all $want events delivered ($(wc -l <"$work/sink.jsonl") requests)"
}

step "100 inserts, 100 updates"
sql "INSERT INTO orders (customer, status) SELECT 'c' || g, 'new' FROM generate_series(1, 100) g"
sql "UPDATE orders SET status = 'shipped'"
delivered "before the kills"

step "SIGKILL worker-1 and the leading bridge"
leader=""
while read -r name addr pid role; do
  if [ "$role" = bridge ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr:9464/readyz")" = 200 ]; then
    leader="$name $pid"
  fi
  if [ "$name" = worker-1 ]; then kill -9 "$pid"; echo "killed worker-1 (pid $pid)"; fi
done <"$CLUSTER_DIR/nodes"
[ -n "$leader" ] || { echo "cluster-demo: no bridge is leading" >&2; exit 1; }
kill -9 "${leader#* }"
echo "killed the leading bridge ${leader% *} (pid ${leader#* })"

step "100 more inserts"
sql "INSERT INTO orders (customer, status) SELECT 'd' || g, 'new' FROM generate_series(1, 100) g"
delivered "after the kills"
step "scripts/cluster.sh status nats-distributed (the killed nodes show as dead)"
"$repo/scripts/cluster.sh" status nats-distributed || true
echo "cluster-demo: PASS in $((SECONDS - t0)) s"
