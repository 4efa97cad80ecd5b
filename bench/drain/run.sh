#!/usr/bin/env bash
# Backlog drain: N events written while no node runs (one INSERT ... SELECT),
# then observer-node drains them through listener, router, action pool (log
# action, filtered) and checkpointer. Prints events/s, peak RSS, CPU time.
# Usage: N=1000000 bench/drain/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/fraiseql-drain.XXXXXX); chmod 755 $work
scripts/pg.sh start $work/pg >/dev/null
trap 'kill $pid 2>/dev/null; scripts/pg.sh stop $work/pg; rm -rf $work' EXIT
pid=''
set -a; . $work/pg/env; set +a
cat > $work/n.toml <<T
[database]
url = "$FRAISEQL_DATABASE_URL"
[listener]
listener_id = "drain"
[logging]
level = "info"
[[observers]]
name = "drain"
event_type = "INSERT"
entity = "Item"
[[observers.actions]]
type = "log"
level = "debug"
T
build/apps/observer/observer-node migrate --config $work/n.toml >/dev/null
psql -q -c "SET client_min_messages=warning" -c "CREATE TABLE items (id bigserial PRIMARY KEY, name text, qty int); SELECT observer_attach('items','Item');" >/dev/null
N=${N:-200000}
time psql -q -c "INSERT INTO items (name, qty) SELECT 'item-' || g, g FROM generate_series(1, $N) g" 
start=$(date +%s.%N)
build/apps/observer/observer-node --config $work/n.toml > $work/node.log 2>&1 &
pid=$!
while true; do
  n=$(psql -At -c "SELECT coalesce((SELECT events_total FROM observer_checkpoints WHERE listener_id='drain'),0)")
  [ "$n" -ge "$N" ] && break
  sleep 0.2
done
end=$(date +%s.%N)
grep VmHWM /proc/$pid/status
ps -o cputime= -p $pid
kill $pid; wait $pid || true
awk -v s=$start -v e=$end -v n=$N 'BEGIN{printf "drained %d events in %.2fs = %.0f events/s\n", n, e-s, n/(e-s)}'
