#!/usr/bin/env bash
# Live delivery latency while a large backfill runs, with a private PostgreSQL
# on loopback (stopped on every exit path): a writer updates rows at a steady
# rate; its events' delivery latency (sink receive time - capture time) is
# measured idle, then during `observerctl backfill` of a table of N rows
# whose READ events go to a second webhook. Prints JSON lines and a table.
#   bench/backfill/run.sh                 1,000,000 rows
#   BENCH_BACKFILL_ROWS=100000            fewer
#   BENCH_BACKFILL_RATE=100               live updates per second
#   BENCH_BACKFILL_IDLE_SECS=20           the idle phase
#   BENCH_BACKFILL_BATCH=1000             rows per chunk
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
[ "${BENCH_SKIP_SETUP:-0}" = 1 ] || { scripts/install-deps.sh >&2; scripts/build.sh >&2; }
pgdir=$(mktemp -d /tmp/bench-backfill.XXXXXX)
cleanup() { "$root/scripts/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$pgdir"; }
trap cleanup EXIT
scripts/pg.sh start "$pgdir" >&2
OBSERVER_NODE=$root/build/apps/observer/observer-node OBSERVERCTL=$root/build/apps/ctl/observerctl \
  BENCH_SINK=$root/build/bench/sink/bench_sink \
  PG_ENV=$pgdir/env REPO_ROOT=$root PYTHONDONTWRITEBYTECODE=1 \
  /usr/bin/python3 bench/backfill/backfill.py
