#!/usr/bin/env bash
# Installs the Debian package into a fresh Debian 12 root (debootstrap, from
# this host's apt sources) and runs the spec's commands there: --version under
# both names, --validate and validate-config on the packaged configurations,
# migrate, then a node started as the service would start it (user fraiseql,
# /etc/fraiseql/observer.toml, FRAISEQL_RUNTIME_DIR=/run/fraiseql) against a
# private PostgreSQL of this host, and `fraiseql-observers status` /
# `dlq stats` as root without a token. Needs root and the network (minutes);
# not part of ctest (scripts/check-deb.sh is). Usage: scripts/test-deb.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
build=$(cd "${1:-build}" && pwd)
[ "$(id -u)" = 0 ] || { echo "test-deb: needs root (debootstrap, chroot)" >&2; exit 2; }
command -v debootstrap >/dev/null || {
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap
}
scripts/check-deb.sh "$build" >/dev/null
deb=$(ls -t "$build"/fraiseql-observer_*_amd64.deb | head -1)
# The mirror this host installs from (deb822 or one-line sources).
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
[ -n "$mirror" ] || { echo "test-deb: no Debian mirror in this host's apt sources" >&2; exit 1; }

work=$(mktemp -d /tmp/fraiseql-debroot.XXXXXX)
chmod 755 "$work"
root=$work/root
node_pid=""
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true
  mountpoint -q "$root/proc" && umount "$root/proc"
  "$repo/scripts/pg.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { echo "== $*"; }
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }

step "debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log"; exit 1; }
mount -t proc proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod 755 "$root/usr/sbin/policy-rc.d"
cp "$deb" "$root/tmp/"

step "apt-get install ./$(basename "$deb")"
in_root apt-get update -q >/dev/null
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  "/tmp/$(basename "$deb")" >"$work/install.log" 2>&1 || { tail -30 "$work/install.log"; exit 1; }
in_root getent passwd fraiseql >/dev/null || { echo "test-deb: no user fraiseql" >&2; exit 1; }
stat -c '%U:%G %a %n' "$root/etc/fraiseql" "$root/etc/fraiseql/observer.toml"

step "the spec's commands in the fresh root"
set -x
in_root fraiseql-observer --version
in_root fraiseql-observers --version
in_root observer-node --version
in_root fraiseql-observer --config /etc/fraiseql/examples/01-postgresql-only.toml --validate
in_root fraiseql-observers validate-config /etc/fraiseql/observer.toml --detailed >/dev/null
set +x

step "a node as the service runs it, against a private PostgreSQL of this host"
"$repo/scripts/pg.sh" start "$work/pg" >/dev/null
url=$(sed -n 's/^FRAISEQL_DATABASE_URL=//p' "$work/pg/env")
in_root env FRAISEQL_DATABASE_URL="$url" fraiseql-observer migrate --config /etc/fraiseql/observer.toml
# What systemd's RuntimeDirectory=fraiseql (mode 0700) does before ExecStart.
install -d -m 700 "$root/run/fraiseql" && in_root chown fraiseql:fraiseql /run/fraiseql
sed -i 's/^port = 9464/port = 0/' "$root/etc/fraiseql/observer.toml"  # this host's 9464 may be taken
chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin FRAISEQL_DATABASE_URL="$url" \
  FRAISEQL_RUNTIME_DIR=/run/fraiseql setpriv --reuid=fraiseql --regid=fraiseql --init-groups \
  observer-node --role all --config /etc/fraiseql/observer.toml >"$work/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 200); do grep -q "node: started" "$work/node.log" && break; sleep 0.1; done
cat "$work/node.log"
grep -q "node: started" "$work/node.log" || { echo "test-deb: the node did not start" >&2; exit 1; }
port=$(sed -n 's/.*control: listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/node.log" | head -1)
ls -l "$root/run/fraiseql"
set -x
in_root env FRAISEQL_CONTROL_NODE="127.0.0.1:$port" fraiseql-observers status
in_root env FRAISEQL_CONTROL_NODE="127.0.0.1:$port" fraiseql-observers dlq stats
set +x
kill -TERM "$node_pid"; wait "$node_pid"; node_pid=""
step "test-deb OK: $(basename "$deb") installs and runs on a fresh Debian 12 root"
