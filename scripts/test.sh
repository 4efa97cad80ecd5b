#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, and runs every CTest
# test (unit, conformance, integration against a private PostgreSQL that the
# CTest fixture starts and stops). Servers are stopped on every exit path.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/install-deps.sh
scripts/build.sh
cleanup() { "$root/scripts/pg.sh" stop "$root/build/test-pg" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cd build
ctest --output-on-failure --timeout 900 -j "${JOBS:-2}" "$@"
