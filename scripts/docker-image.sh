#!/usr/bin/env bash
# Builds the images the docker tests use, in the engine DOCKER_HOST names
# (scripts/docker-engine.sh; `debian:12` must be there: docker-engine.sh base-image):
#   fraiseql-observer:local   packaging/docker/Dockerfile.deb over the Debian
#                             package of BUILD_DIR (cpack -G DEB first)
#   fraiseql-test-postgres:local, fraiseql-test-redis:local, fraiseql-test-nats:local
#                             postgresql-15, redis-server, nats-server from Debian
#                             (docker-compose/test/Dockerfile.services)
# An image whose inputs did not change (the label fraiseql.inputs) is kept.
# Both with --network host (the build's apt reaches the mirror through the host).
# Usage: scripts/docker-image.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
build=$(cd "${1:-build}" && pwd)
[ -n "${DOCKER_HOST:-}" ] || { echo "docker-image: DOCKER_HOST is not set (scripts/docker-engine.sh env DIR)" >&2; exit 2; }
docker_cli=/usr/bin/docker
[ -x "$docker_cli" ] || docker_cli=docker
"$docker_cli" image inspect debian:12 >/dev/null 2>&1 ||
  { echo "docker-image: no debian:12 in the engine (scripts/docker-engine.sh base-image DIR)" >&2; exit 1; }
[ -x "$build/apps/observer/observer-node" ] || { echo "docker-image: no build in $build (scripts/build.sh)" >&2; exit 1; }
ctx=$(mktemp -d /tmp/fraiseql-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
# Rebuilt only when its inputs change: the binaries, the Dockerfiles.
inputs=$(cat "$build/apps/observer/observer-node" "$build/apps/ctl/observerctl" \
  packaging/docker/Dockerfile.deb packaging/debian/* | sha256sum | cut -c1-32)
current() { "$docker_cli" image inspect -f '{{ index .Config.Labels "fraiseql.inputs" }}' "$1" 2>/dev/null || true; }
if [ "$(current fraiseql-observer:local)" != "$inputs" ]; then
  (cd "$build" && rm -f fraiseql-observer_*_amd64.deb && cpack -G DEB >"$ctx/cpack.log" 2>&1) ||
    { cat "$ctx/cpack.log" >&2; echo "docker-image: cpack failed" >&2; exit 1; }
  cp "$build"/fraiseql-observer_*_amd64.deb "$repo/packaging/docker/Dockerfile.deb" "$ctx/"
  "$docker_cli" build -q --network host --label "fraiseql.inputs=$inputs" -f "$ctx/Dockerfile.deb" \
    -t fraiseql-observer:local "$ctx" >/dev/null
  echo "docker-image: fraiseql-observer:local built ($(basename "$build"/fraiseql-observer_*_amd64.deb))"
else
  echo "docker-image: fraiseql-observer:local up to date"
fi
svc_inputs=$(sha256sum docker-compose/test/Dockerfile.services | cut -c1-32)
for s in "postgres:postgresql-15 postgresql-client-15" "redis:redis-server redis-tools" \
  "nats:nats-server curl ca-certificates"; do
  name=${s%%:*} packages=${s#*:}
  if [ "$(current "fraiseql-test-$name:local")" != "$svc_inputs" ]; then
    "$docker_cli" build -q --network host --label "fraiseql.inputs=$svc_inputs" \
      --build-arg "PACKAGES=$packages" -f docker-compose/test/Dockerfile.services \
      -t "fraiseql-test-$name:local" docker-compose/test >/dev/null
    echo "docker-image: fraiseql-test-$name:local built ($packages)"
  fi
done
