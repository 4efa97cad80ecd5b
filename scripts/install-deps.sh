#!/usr/bin/env bash
# Installs what the build, the tests and the demo need on Debian 12 (as root,
# no input). Does nothing when everything is present.
# `scripts/install-deps.sh --docker` also installs a Docker engine (docker.io,
# started only by scripts/docker-engine.sh, never as a service) and debootstrap
# (the base image): what scripts/test-docker.sh needs. `--build` installs only
# what compiling and packaging need (the Dockerfile's build stage).
set -euo pipefail
build_pkgs=(build-essential cmake ninja-build ccache pkg-config git file dpkg-dev python3
  libcaf-dev libpqxx-dev libboost-json1.81-dev libtomlplusplus-dev prometheus-cpp-dev
  doctest-dev librapidcheck-dev libcli11-dev libspdlog-dev libfmt-dev libcurl4-openssl-dev
  libhiredis-dev libcivetweb-dev libssl-dev libnats-dev)
pkgs=(build-essential cmake ninja-build ccache pkg-config git python3 python3-psycopg2 curl
  libcaf-dev libpqxx-dev libboost-json1.81-dev libtomlplusplus-dev prometheus-cpp-dev
  doctest-dev librapidcheck-dev libcli11-dev libspdlog-dev libfmt-dev libcurl4-openssl-dev
  postgresql-15 postgresql-client-15 redis-server libhiredis-dev libcivetweb-dev
  libssl-dev openssl python3-aiosmtpd
  libnats-dev nats-server  # NATS JetStream: nats.c 3.4.1 (libnats.pc), nats-server 2.9.10
  clang-format  # scripts/check-format.sh
  dpkg-dev systemd  # scripts/check-deb.sh: dpkg-shlibdeps (cpack), systemd-analyze
  prometheus  # prometheus: only for promtool (tests check rules and a live scrape)
  docker-compose)  # `docker-compose config -q` of the compose files (ctest compose_config)
# deploy/k8s/validate.sh validates the manifests with an npm package (Debian's
# npm, unless a node with its own npm is already there).
command -v npm >/dev/null || pkgs+=(nodejs npm)
case "${1:-}" in
  "") ;;
  --docker) pkgs+=(docker.io debootstrap) ;;
  --build) pkgs=("${build_pkgs[@]}") ;;
  *) echo "usage: scripts/install-deps.sh [--docker | --build]" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -q
  # Packages with services (postgresql, redis-server, prometheus, nats-server) must not start
  # them: tests run private servers on free ports. Without a policy-rc.d (most
  # hosts; Debian containers ship one) install a temporary one that refuses
  # every start (invoke-rc.d and deb-systemd-invoke both honour it).
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$policy" >/dev/null
    $sudo_cmd chmod 755 "$policy"
    trap '$sudo_cmd rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi
