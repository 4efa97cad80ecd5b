#!/usr/bin/env bash
# A private Docker engine for tests (Debian's docker.io, as root): its data,
# exec root, pid file and socket all live under DIR, so it never touches a
# system dockerd. No iptables rules, no bridge: containers run with host
# networking (--network host) and talk over loopback only.
#
#   scripts/docker-engine.sh start DIR        start dockerd, wait until it answers
#   scripts/docker-engine.sh stop DIR         stop it (and its containers), unmount, keep DIR/data
#   scripts/docker-engine.sh env DIR          print `export DOCKER_HOST=unix://DIR/docker.sock`
#   scripts/docker-engine.sh base-image DIR [CACHE]
#       imports `debian:12` into the running engine: a debootstrap --variant=minbase
#       bookworm root from this host's Debian mirror, with its apt sources; the root
#       is cached as CACHE/debian-12-minbase.tar (CACHE defaults to DIR/..), so a
#       second run only imports it.
#
# Callers trap `stop` on every exit path (scripts/test-docker.sh does).
set -euo pipefail
usage() {
  echo "usage: scripts/docker-engine.sh start|stop|env DIR | base-image DIR [CACHE_DIR]" >&2
  exit 2
}
[ $# -ge 2 ] || usage
cmd=$1
dir=$2
case "$cmd" in start | stop | env | base-image) ;; *) usage ;; esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
sock=$dir/docker.sock
# Debian's client matches the engine's API (a newer /usr/local/bin/docker may not).
docker_cli=/usr/bin/docker
[ -x "$docker_cli" ] || docker_cli=$(command -v docker || true)
d() { DOCKER_HOST="unix://$sock" "$docker_cli" "$@"; }

running() { [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; }

start() {
  [ "$(id -u)" = 0 ] || { echo "docker-engine: needs root" >&2; exit 2; }
  command -v dockerd >/dev/null || {
    echo "docker-engine: no dockerd; run scripts/install-deps.sh --docker" >&2
    exit 2
  }
  if running; then echo "docker-engine: already running (pid $(cat "$dir/pid"))" >&2; return 0; fi
  # A unix socket path is limited to 107 bytes; containerd's lives under exec/.
  if [ ${#dir} -gt 60 ]; then
    echo "docker-engine: DIR path too long for the engine's sockets (${#dir} > 60 chars): $dir" >&2
    exit 2
  fi
  mkdir -p "$dir/data" "$dir/exec"
  rm -f "$sock" "$dir/pid"
  dockerd --storage-driver=vfs --data-root "$dir/data" --exec-root "$dir/exec" \
    --pidfile "$dir/pid" --host "unix://$sock" --iptables=false --ip-masq=false \
    --ip-forward=false --bridge=none --userland-proxy=false --shutdown-timeout 5 \
    --log-level warn --containerd-namespace fraiseql-test \
    --containerd-plugins-namespace fraiseql-test-plugins >"$dir/dockerd.log" 2>&1 &
  local pid=$! i
  for i in $(seq 600); do
    if d version >/dev/null 2>&1; then
      echo "export DOCKER_HOST=unix://$sock" >"$dir/env"
      echo "docker-engine: running (pid $pid, DOCKER_HOST=unix://$sock)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    [ "$i" = 600 ] || sleep 0.1
  done
  echo "docker-engine: dockerd did not come up; its log:" >&2
  tail -30 "$dir/dockerd.log" >&2
  kill "$pid" 2>/dev/null || true
  exit 1
}

stop() {
  local pid i m
  if [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    if kill -0 "$pid" 2>/dev/null; then
      # Containers first (quick SIGKILL after 2 s), then the engine.
      if [ -n "$docker_cli" ]; then
        d ps -q 2>/dev/null | xargs -r "$docker_cli" -H "unix://$sock" stop -t 2 >/dev/null 2>&1 || true
      fi
      kill "$pid" 2>/dev/null || true
      for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        echo "docker-engine: dockerd $pid ignored SIGTERM for 30 s; SIGKILL" >&2
        kill -9 "$pid" 2>/dev/null || true
      fi
    fi
    rm -f "$dir/pid"
  fi
  # The containerd the engine started (its own, under exec/) and its shims.
  for m in "$dir"/exec/containerd/containerd.pid "$dir"/exec/containerd/*.pid; do
    if [ -f "$m" ]; then kill "$(cat "$m")" 2>/dev/null || true; fi
  done
  # Mounts the engine may leave behind (netns, shm, ...), deepest first.
  awk -v p="$dir/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -f "$sock" "$dir/env"
  echo "docker-engine: stopped"
}

base_image() {
  running || { echo "docker-engine: not running under $dir (start it first)" >&2; exit 1; }
  if d image inspect debian:12 >/dev/null 2>&1; then echo "docker-engine: debian:12 present"; return 0; fi
  local cache=${1:-$dir/..}
  mkdir -p "$cache"
  cache=$(cd "$cache" && pwd)
  local tar=$cache/debian-12-minbase.tar
  if [ ! -s "$tar" ]; then
    command -v debootstrap >/dev/null || {
      echo "docker-engine: no debootstrap; run scripts/install-deps.sh --docker" >&2
      exit 2
    }
    # The mirror this host installs from (deb822 or one-line sources).
    local mirror security root
    mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
      grep -v security | head -1 || true)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' \
      /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$mirror" ] || { echo "docker-engine: no Debian mirror in this host's apt sources" >&2; exit 1; }
    security=$(sed -n 's/^URIs: *\([^ ]*security[^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources \
      2>/dev/null | head -1 || true)
    [ -n "$security" ] || security=${mirror%/debian}/debian-security
    root=$(mktemp -d "$cache/debootstrap.XXXXXX")
    echo "docker-engine: debootstrap --variant=minbase bookworm from $mirror"
    if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1; then
      tail -20 "$cache/debootstrap.log" >&2
      rm -rf "$root"
      exit 1
    fi
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # As Debian's official image: no services start in containers, no caches kept.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    rm -rf "${root:?}"/var/cache/apt/archives/*.deb "${root:?}"/var/lib/apt/lists/* "${root:?}"/dev/*
    : >"$root/etc/resolv.conf"
    chmod 755 "$root"  # mktemp made it 0700: it becomes the image's /
    tar --numeric-owner -C "$root" -cf "$tar.part" .
    mv "$tar.part" "$tar"
    rm -rf "$root"
  fi
  d import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' "$tar" debian:12 >/dev/null
  echo "docker-engine: debian:12 imported from $tar"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  env)
    running || { echo "docker-engine: not running under $dir" >&2; exit 1; }
    echo "export DOCKER_HOST=unix://$sock"
    ;;
  base-image) shift 2; base_image "$@" ;;
esac
