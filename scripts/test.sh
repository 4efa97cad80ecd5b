#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, then runs the format
# check (scripts/check-format.sh), every CTest test (unit, conformance,
# integration against private servers that CTest fixtures start and stop) and
# the unit tests under ASan + UBSan (scripts/test-sanitizers.sh, build-asan/),
# and the docker tests (scripts/test-docker.sh: the image and the four compose
# topologies under a private Docker engine; about 7 minutes with a warm image
# store, 13 from nothing, on 2 cores; DOCKER_TESTS=0 leaves them out).
# Servers are stopped on every exit path.
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
# Each part runs even when an earlier one failed; the script fails if any did.
failed=()
scripts/check-format.sh || failed+=(format)
(cd build && ctest --output-on-failure --timeout 900 -j "${JOBS:-2}" "$@") || failed+=(ctest)
# ASan + UBSan unit tests (build-asan/); SANITIZERS=0 leaves them out locally.
if [ "${SANITIZERS:-1}" != 0 ]; then scripts/test-sanitizers.sh || failed+=(sanitizers); fi
if [ "${DOCKER_TESTS:-1}" != 0 ]; then
  if [ "$(id -u)" = 0 ]; then scripts/test-docker.sh || failed+=(docker)
  else echo "test.sh: docker tests left out: they need root (dockerd)" >&2; fi
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "test.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "test.sh: all passed"
