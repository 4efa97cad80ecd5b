#!/usr/bin/env bash
# The docker tests (ctest label docker): the image starts, and each compose
# topology comes up for real under a private Docker engine, delivers every
# event to a loopback sink, survives killing a worker and a bridge (or the
# observer), scales to 10 workers (topology 3), and is torn down. As root;
# installs docker.io and debootstrap if missing (scripts/install-deps.sh --docker).
# The engine (BUILD_DIR/docker-engine) is stopped on every exit path; its image
# store and the debian:12 tarball stay in the build directory, so a rerun only
# rebuilds what changed. Extra arguments go to ctest (e.g. -R postgres-only).
#   scripts/test-docker.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=$root/${BUILD_DIR:-build}
[ "$(id -u)" = 0 ] || { echo "test-docker: needs root (dockerd, debootstrap)" >&2; exit 2; }
scripts/install-deps.sh --docker
scripts/build.sh
trap '"$root/scripts/docker-engine.sh" stop "$build/docker-engine" >/dev/null 2>&1 || true' EXIT
t0=$SECONDS
(cd "$build" && FRAISEQL_DOCKER_TESTS=1 ctest --output-on-failure -L docker "$@")
echo "test-docker: passed in $((SECONDS - t0)) s"
