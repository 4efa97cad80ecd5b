#!/usr/bin/env bash
# Private PostgreSQL 15 cluster on a free loopback port.
#   scripts/pg.sh start DIR   -> initdb + start; writes DIR/env (PGPORT, FRAISEQL_DATABASE_URL,
#                                PGDATA, PG_SERVER_DIR)
#   scripts/pg.sh stop DIR    -> fast stop, remove the server's directory and DIR
#   scripts/pg.sh restart DIR -> stop + start on the same port and data (for outage tests)
#   scripts/pg.sh kill DIR    -> immediate (crash-like) stop; `restart` brings it back
# DIR only holds the env file (and initdb.log): it may be anywhere, e.g. in a
# checkout under /root that user postgres cannot enter. The data directory,
# the socket and server.log live in a private directory of their own,
# mktemp -d under PG_TMP_PARENT (default /tmp), that user postgres owns; `stop`
# removes it. Works as root (drops to user postgres) or as an ordinary user.
set -euo pipefail
cmd=${1:?usage: pg.sh start|stop|restart|kill DIR}
dir=${2:?usage: pg.sh start|stop|restart|kill DIR}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# From / so that user postgres never needs the caller's working directory.
as_pg() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
# The server's directory of DIR (empty when DIR has none).
server_dir() {
  if [ -f "$dir/env" ]; then sed -n 's/^PG_SERVER_DIR=//p' "$dir/env"; fi
}
pg_start_server() {
  as_pg "$PGBIN/pg_ctl" -D "$sdir/data" -l "$sdir/server.log" -w -t 60 \
    -o "-p $PGPORT -k $sdir -c listen_addresses=127.0.0.1 -c max_connections=200 ${PG_EXTRA_OPTS:-}" \
    start </dev/null >/dev/null
}
pg_stop_and_remove() {
  local s
  s=$(server_dir)
  # Only a directory this script made (never a stray value in the env file).
  case "$s" in */observer-pg.*) ;; *) s="" ;; esac
  if [ -n "$s" ] && [ -d "$s/data" ]; then
    as_pg "$PGBIN/pg_ctl" -D "$s/data" -m fast -w stop </dev/null >/dev/null 2>&1 || true
  fi
  if [ -d "$dir/data" ]; then  # the layout before the server directory moved out of DIR
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop </dev/null >/dev/null 2>&1 || true
  fi
  [ -n "$s" ] && rm -rf "$s"
  rm -rf "$dir"
}
case "$cmd" in
  start)
    pg_stop_and_remove  # a cluster left in DIR by an earlier run
    mkdir -p "$dir"
    sdir=$(mktemp -d "${PG_TMP_PARENT:-/tmp}/observer-pg.XXXXXX")
    # Remembered before anything can fail, so that `stop` always finds it.
    echo "PG_SERVER_DIR=$sdir" >"$dir/env"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$sdir"; fi
    chmod 700 "$sdir"
    as_pg "$PGBIN/initdb" -D "$sdir/data" -U postgres -A trust -E UTF8 --no-sync \
      >"$dir/initdb.log" 2>&1 </dev/null || { cat "$dir/initdb.log" >&2; exit 1; }
    PGPORT=${PGPORT:-$(free_port)}
    pg_start_server || { cat "$sdir/server.log" >&2; exit 1; }
    cat >"$dir/env" <<ENV
PGPORT=$PGPORT
PGHOST=127.0.0.1
PGUSER=postgres
PGDATABASE=postgres
FRAISEQL_DATABASE_URL=postgresql://postgres@127.0.0.1:$PGPORT/postgres
PGDATA=$sdir/data
PG_SERVER_DIR=$sdir
ENV
    echo "$PGPORT"
    ;;
  restart)
    # shellcheck disable=SC1091
    . "$dir/env"
    sdir=$PG_SERVER_DIR
    as_pg "$PGBIN/pg_ctl" -D "$sdir/data" -m fast -w stop </dev/null >/dev/null || true
    pg_start_server
    ;;
  kill)
    # Immediate shutdown (crash-like), server restarted by a later `restart`.
    sdir=$(server_dir)
    as_pg "$PGBIN/pg_ctl" -D "$sdir/data" -m immediate -w stop </dev/null >/dev/null || true
    ;;
  stop)
    pg_stop_and_remove
    ;;
  *) echo "pg.sh: unknown command $cmd" >&2; exit 2 ;;
esac
