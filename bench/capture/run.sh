#!/usr/bin/env bash
# Capture cost: writer throughput with 8 concurrent clients, one row per
# transaction, fsync on (durable commits, group commit matters), for
#   plain     INSERT into a table without trigger
#   capture   the same table with the observer capture trigger (no listener
#             asleep: the writers' probe of the wake-up mark is granted, no NOTIFY;
#             the same as under a busy listener)
#   asleep    capture + a session holding the wake-up mark as a sleeping
#             listener does (sql/0005_wakeup_lock.sql): every transaction NOTIFYs
#   node      capture + a running observer-node draining the log (log action)
# Prints one JSON line per mode and a table. Usage: bench/capture/run.sh [seconds] [clients]
# NODE_BIN=path: the observer-node of the "node" mode (e.g. an older build).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
secs=${1:-10}
clients=${2:-8}
. bench/lib.sh
bench_init capture
bench_pg
psql -q -c "CREATE TABLE plain_items (id bigserial PRIMARY KEY, name text, qty int)"
echo "INSERT INTO plain_items (name, qty) VALUES ('x', 1);" >"$work/plain.sql"
echo "INSERT INTO items (name, qty) VALUES ('x', 1);" >"$work/captured.sql"

run() {  # mode script
  psql -q -c "CHECKPOINT" >/dev/null
  local tps
  tps=$(pgbench -n -c "$clients" -j "$clients" -T "$secs" -f "$work/$2" 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
  echo "$1 $tps"
}
results=()
results+=("$(run plain plain.sql)")
results+=("$(run capture captured.sql)")
# Hold the mark for the length of the run, as a sleeping listener does.
psql -q -c "SELECT pg_advisory_lock(-152985557, 0)" -c "SELECT pg_sleep($secs + 30)" >/dev/null 2>&1 &
holder=$!
sleep 0.5
results+=("$(run asleep captured.sql)")
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null || true
psql -q -c "TRUNCATE core.tb_entity_change_log" >/dev/null
"${NODE_BIN:-build/apps/observer/observer-node}" --config "$work/node.toml" </dev/null >"$work/node.log" 2>&1 &
node_pid=$!
sleep 1
results+=("$(run node captured.sql)")
base=$(echo "${results[0]}" | awk '{print $2}')
printf '\n%-8s %12s %10s\n' mode "rows/s" "vs plain"
for r in "${results[@]}"; do
  set -- $r
  ratio=$(awk -v a="$2" -v b="$base" 'BEGIN{printf "%.1f%%", (a/b-1)*100}')
  printf '%-8s %12.0f %10s\n' "$1" "$2" "$ratio"
  printf '{"bench":"capture","mode":"%s","clients":%s,"seconds":%s,"rows_per_s":%s,"vs_plain":"%s"}\n' \
    "$1" "$clients" "$secs" "$2" "$ratio" >>"$work/results.jsonl"
done
echo
cat "$work/results.jsonl"
