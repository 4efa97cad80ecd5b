#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, and runs every CTest
# test (unit, conformance, integration against a private PostgreSQL that the
# CTest fixture starts and stops). Servers are stopped on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/install-deps.sh
scripts/build.sh
# Every server a test may have started (CTest fixtures and tests' private
# ones), whatever way this script ends. pg.sh stop also removes the cluster's
# directory under /tmp (scripts/pg.sh).
cleanup() {
  "$root/scripts/pg.sh" stop "$root/build/test-pg" >/dev/null 2>&1 || true
  "$root/scripts/redis.sh" stop "$root/build/test-redis" >/dev/null 2>&1 || true
  local d
  for d in "$root"/build/test-redis-private/*/; do
    [ -d "$d" ] && "$root/scripts/redis.sh" stop "${d%/}" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
cd build
ctest --output-on-failure --timeout 900 -j "${JOBS:-2}" "$@"
