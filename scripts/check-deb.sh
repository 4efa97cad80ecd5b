#!/usr/bin/env bash
# Builds the Debian package from BUILD_DIR (cpack -G DEB) and checks it without
# installing it: control fields (version = observer-node --version, shared
# library dependencies), contents (binaries, the spec's names as symlinks,
# /etc/fraiseql, the systemd unit), the extracted binaries run, the unit
# passes `systemd-analyze verify` and its hardening scores OK or better.
# scripts/test-deb.sh installs it into a fresh Debian 12 root.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
work=$(mktemp -d /tmp/fraiseql-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "check-deb: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; fail "cpack failed"; }
deb=$(ls -t "$build"/fraiseql-observer_*_amd64.deb | head -1)
version=$("$build/apps/observer/observer-node" --version | awk '{print $2}')
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "package version $(dpkg-deb -f "$deb" Version) != observer-node --version $version"
[ "$(dpkg-deb -f "$deb" Package)" = fraiseql-observer ] || fail "package name"
for dep in libcaf-core0.17 libpqxx libcurl4 adduser; do
  dpkg-deb -f "$deb" Depends | grep -q "$dep" || fail "Depends lacks $dep"
done
dpkg-deb -c "$deb" >"$work/contents"
for f in ./usr/bin/observer-node ./usr/bin/observerctl ./etc/fraiseql/observer.toml \
  ./etc/fraiseql/examples/01-postgresql-only.toml ./etc/fraiseql/examples/02-postgresql-redis.toml \
  ./etc/fraiseql/examples/03-nats-distributed.toml ./etc/fraiseql/examples/04-multi-database-bridge.toml \
  ./usr/lib/systemd/system/fraiseql-observers.service ./usr/share/doc/fraiseql-observer/README.md; do
  grep -q " $f\$" "$work/contents" || fail "missing $f"
done
grep -q " ./usr/bin/fraiseql-observer -> observer-node\$" "$work/contents" || fail "no fraiseql-observer symlink"
grep -q " ./usr/bin/fraiseql-observers -> observerctl\$" "$work/contents" || fail "no fraiseql-observers symlink"
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/fraiseql/observer.toml "$work/control/conffiles" || fail "observer.toml is not a conffile"

root=$work/root
dpkg-deb -x "$deb" "$root"
[ "$("$root/usr/bin/fraiseql-observer" --version)" = "fraiseql-observer $version" ] || fail "fraiseql-observer --version"
[ "$("$root/usr/bin/observer-node" --version)" = "observer-node $version" ] || fail "observer-node --version"
"$root/usr/bin/fraiseql-observers" --version | grep -q "^fraiseql-observers $version " || fail "fraiseql-observers --version"
"$root/usr/bin/fraiseql-observer" --config "$root/etc/fraiseql/examples/01-postgresql-only.toml" --validate >/dev/null ||
  fail "the packaged example does not validate"
"$root/usr/bin/fraiseql-observers" validate-config "$root/etc/fraiseql/observer.toml" >/dev/null ||
  fail "the packaged observer.toml does not validate"

unit=$root/usr/lib/systemd/system/fraiseql-observers.service
if command -v systemd-analyze >/dev/null; then
  # verify checks that ExecStart exists: point it at the extracted binary.
  mkdir "$work/unit"
  sed "s#/usr/bin/observer-node#$root/usr/bin/observer-node#g" "$unit" >"$work/unit/fraiseql-observers.service"
  systemd-analyze verify "$work/unit/fraiseql-observers.service" || fail "systemd-analyze verify"
  exposure=$(systemd-analyze security --offline=yes --root="$root" fraiseql-observers.service 2>/dev/null |
    sed -n 's/.*Overall exposure level for fraiseql-observers.service: \([0-9.]*\).*/\1/p')
  [ -n "$exposure" ] || fail "systemd-analyze security gave no exposure level"
  awk -v e="$exposure" 'BEGIN { exit !(e <= 2.5) }' || fail "unit exposure $exposure > 2.5"
  echo "check-deb: unit verified, exposure $exposure"
else
  echo "check-deb: systemd-analyze not installed: unit not verified (install package systemd)" >&2
  exit 1
fi
echo "check-deb: $(basename "$deb") OK ($(dpkg-deb -f "$deb" Installed-Size) KiB installed)"
