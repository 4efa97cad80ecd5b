#!/usr/bin/env bash
# Backlog drain: N events written while no node runs (one INSERT ... SELECT),
# then observer-node drains them through listener, router, action pool (log
# action, filtered) and checkpointer. Prints events/s, peak RSS, CPU time.
# Usage: N=1000000 bench/drain/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
bench_init drain
bench_pg
N=${N:-200000}
time psql -q -c "INSERT INTO items (name, qty) SELECT 'item-' || g, g FROM generate_series(1, $N) g" 
start=$(date +%s.%N)
build/apps/observer/observer-node --config "$work/node.toml" >"$work/node.log" 2>&1 &
node_pid=$!
while true; do
  n=$(psql -At -c "SELECT coalesce((SELECT events_total FROM observer_checkpoints WHERE listener_id='bench'),0)")
  [ "$n" -ge "$N" ] && break
  sleep 0.2
done
end=$(date +%s.%N)
grep VmHWM "/proc/$node_pid/status"
ps -o cputime= -p "$node_pid"
kill "$node_pid"; wait "$node_pid" || true; node_pid=""
awk -v s=$start -v e=$end -v n=$N 'BEGIN{printf "drained %d events in %.2fs = %.0f events/s\n", n, e-s, n/(e-s)}'
