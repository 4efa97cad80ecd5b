#!/usr/bin/env bash
# CTest fixture of the docker tests (label docker):
#   fixture.sh start BUILD_DIR   the private engine under BUILD_DIR/docker-engine
#                                (scripts/docker-engine.sh), debian:12 (cached as
#                                BUILD_DIR/debian-12-minbase.tar), the images
#                                (scripts/docker-image.sh; kept while unchanged)
#   fixture.sh stop BUILD_DIR    stops the engine (its image store stays for the next run)
# Exit 77 (skipped) unless FRAISEQL_DOCKER_TESTS=1: root, the network and
# minutes; scripts/test-docker.sh sets it and stops the engine on every exit path.
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}:$#" in start:2 | stop:2) ;; *) echo "usage: fixture.sh start|stop BUILD_DIR" >&2; exit 2 ;; esac
build=$(cd "$2" && pwd)
engine=$build/docker-engine
if [ "$1" = stop ]; then exec scripts/docker-engine.sh stop "$engine"; fi
[ "${FRAISEQL_DOCKER_TESTS:-}" = 1 ] || { echo "skipped: set FRAISEQL_DOCKER_TESTS=1 (scripts/test-docker.sh does)"; exit 77; }
t0=$SECONDS
scripts/docker-engine.sh start "$engine"
eval "$(scripts/docker-engine.sh env "$engine")"
scripts/docker-engine.sh base-image "$engine" "$build"
echo "fixture: engine and debian:12 in $((SECONDS - t0)) s"
t1=$SECONDS
scripts/docker-image.sh "$build"
echo "fixture: images in $((SECONDS - t1)) s"
