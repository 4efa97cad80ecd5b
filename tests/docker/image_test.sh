#!/usr/bin/env bash
# The observer image (fraiseql-observer:local, scripts/docker-image.sh) starts:
# --version under both names, --validate of every shipped example and of the
# compose configurations, as the non-root user 10001, every library the
# binaries link resolved; and the runtime stage of packaging/docker/Dockerfile.deb
# is the one of ../../Dockerfile, verbatim. Needs DOCKER_HOST (the private engine
# of scripts/docker-engine.sh). Exit 77 (CTest: skipped) unless FRAISEQL_DOCKER_TESTS=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "image_test: $*" >&2; exit 1; }
marker='# --- runtime (identical'
diff <(sed -n "/^$marker/,\$p" Dockerfile) <(sed -n "/^$marker/,\$p" packaging/docker/Dockerfile.deb) ||
  fail "the runtime stages of Dockerfile and packaging/docker/Dockerfile.deb differ"
[ "${FRAISEQL_DOCKER_TESTS:-}" = 1 ] || { echo "skipped: set FRAISEQL_DOCKER_TESTS=1 (scripts/test-docker.sh does)"; exit 77; }
[ -n "${DOCKER_HOST:-}" ] || fail "DOCKER_HOST is not set (scripts/docker-engine.sh env DIR)"
docker_cli=/usr/bin/docker
[ -x "$docker_cli" ] || docker_cli=docker
img=fraiseql-observer:local
run() { "$docker_cli" run --rm --network host "$@"; }
set -x
[ "$(run "$img" --version)" = "observer-node $(build/apps/observer/observer-node --version | awk '{print $2}')" ] ||
  fail "observer-node --version in the image differs from the build's"
# The image's own entrypoint and command (the default config, topology 1).
run "$img" --config /etc/fraiseql/observer.toml --validate
# The rest in one container (each container start copies the image: vfs).
# shellcheck disable=SC2016  # expanded by the bash in the container
run --entrypoint bash -v "$PWD/docker-compose/config:/compose-config:ro" "$img" -euxc '
  fraiseql-observer --version | grep -q "^fraiseql-observer "
  fraiseql-observers --version | grep -q "^fraiseql-observers "
  [ "$(id -u)" = 10001 ] || { echo "not running as uid 10001"; exit 1; }
  # Every library resolved: the package Depends cover what the binaries link.
  ! ldd /usr/bin/observer-node /usr/bin/observerctl | grep "not found"
  # The spec command as typed, from the working directory /etc/fraiseql.
  [ "$PWD" = /etc/fraiseql ]
  for f in 01-postgresql-only 02-postgresql-redis 03-nats-distributed 04-multi-database-bridge; do
    fraiseql-observer --config "examples/$f.toml" --validate
  done
  # The compose configurations, with the URL the compose files set.
  export FRAISEQL_DATABASE_URL=postgresql://fraiseql@127.0.0.1:1/fraiseql
  observer-node --role all --config /compose-config/postgres-only.toml --validate
  observer-node --role all --config /compose-config/postgres-redis.toml --validate
  observer-node --role bridge --config /compose-config/bridge.toml --validate
  observer-node --role worker --config /compose-config/worker.toml --validate
'
# A bad configuration is refused with exit 2, naming the problem.
set +e
out=$(run -e FRAISEQL_SHUTDOWN_TIMEOUT=soon "$img" --config examples/01-postgresql-only.toml --validate 2>&1)
rc=$?
set -e
[ "$rc" = 2 ] || fail "bad configuration: exit $rc (want 2): $out"
grep -q FRAISEQL_SHUTDOWN_TIMEOUT <<<"$out" || fail "bad configuration: the error does not name the variable: $out"
echo "image_test: PASS"
