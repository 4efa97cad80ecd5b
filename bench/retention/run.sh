#!/usr/bin/env bash
# Cost of change-log retention at 1M rows, with a private PostgreSQL on
# loopback (stopped on every exit path): how fast the leader's pruner deletes
# a processed backlog, what a writer's commit latency does meanwhile, and how
# that compares with one DELETE statement. Prints JSON lines and a table.
#   bench/retention/run.sh              1,000,000 rows
#   BENCH_RETENTION_ROWS=200000         fewer
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
[ "${BENCH_SKIP_SETUP:-0}" = 1 ] || { scripts/install-deps.sh >&2; scripts/build.sh >&2; }
pgdir=$(mktemp -d /tmp/bench-retention.XXXXXX)
cleanup() { "$root/scripts/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$pgdir"; }
trap cleanup EXIT
scripts/pg.sh start "$pgdir" >&2
OBSERVER_NODE=$root/build/apps/observer/observer-node OBSERVERCTL=$root/build/apps/ctl/observerctl \
  PG_ENV=$pgdir/env REPO_ROOT=$root PYTHONDONTWRITEBYTECODE=1 \
  /usr/bin/python3 bench/retention/retention.py
