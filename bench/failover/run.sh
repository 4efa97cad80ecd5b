#!/usr/bin/env bash
# Takeover time of a standby after its leader is killed or frozen, with a
# private PostgreSQL on loopback (stopped on every exit path). Prints one JSON
# line per trial and the distribution per mode.
#   bench/failover/run.sh                 20 trials per mode, default [failover]
#   BENCH_FAILOVER_TRIALS=5               fewer trials
#   BENCH_FAILOVER_CONFIG=$'[failover]\nfailover_threshold_ms = 2000'
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
[ "${BENCH_SKIP_SETUP:-0}" = 1 ] || { scripts/install-deps.sh >&2; scripts/build.sh >&2; }
pgdir=$(mktemp -d /tmp/bench-failover.XXXXXX)
cleanup() { "$root/scripts/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$pgdir"; }
trap cleanup EXIT
scripts/pg.sh start "$pgdir" >&2
OBSERVER_NODE=$root/build/apps/observer/observer-node OBSERVERCTL=$root/build/apps/ctl/observerctl \
  PG_ENV=$pgdir/env REPO_ROOT=$root PYTHONDONTWRITEBYTECODE=1 \
  /usr/bin/python3 bench/failover/failover.py
