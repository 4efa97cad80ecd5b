#!/usr/bin/env bash
# Audit trail figures ([audit], docs/history.md), with a private PostgreSQL on
# loopback (stopped on every exit path): (1) delivery throughput of a backlog
# with the trail off and on, and the trail's indexing rate; (2) search latency
# (p50 / p95 over the spec's queries and free text) over >= 1M indexed events
# generated with SQL. Prints JSON lines and a table; asserts nothing.
#   bench/audit/run.sh                       defaults below
#   BENCH_AUDIT_EVENTS=20000                 backlog per delivery run
#   BENCH_AUDIT_ROWS=1000000                 events generated for search
#   BENCH_AUDIT_RUNS=2                       delivery runs per setting (alternating)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
[ "${BENCH_SKIP_SETUP:-0}" = 1 ] || { scripts/install-deps.sh >&2; scripts/build.sh >&2; }
pgdir=$(mktemp -d /tmp/bench-audit.XXXXXX)
cleanup() { "$root/scripts/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$pgdir"; }
trap cleanup EXIT
scripts/pg.sh start "$pgdir" >&2
OBSERVER_NODE=$root/build/apps/observer/observer-node OBSERVERCTL=$root/build/apps/ctl/observerctl \
  PG_ENV=$pgdir/env REPO_ROOT=$root PYTHONDONTWRITEBYTECODE=1 \
  /usr/bin/python3 bench/audit/audit.py
