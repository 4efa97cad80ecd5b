#!/usr/bin/env bash
# Private PostgreSQL 15 cluster on a free loopback port.
#   scripts/pg.sh start DIR   -> initdb + start; writes DIR/env (PGPORT, FRAISEQL_DATABASE_URL)
#   scripts/pg.sh stop DIR    -> fast stop and remove DIR
#   scripts/pg.sh restart DIR -> stop + start on the same port and data (for outage tests)
# Works as root (drops to user postgres) or as an ordinary user.
set -euo pipefail
cmd=${1:?usage: pg.sh start|stop|restart|kill DIR}
dir=${2:?usage: pg.sh start|stop|restart|kill DIR}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
pg_start_server() {
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $PGPORT -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 ${PG_EXTRA_OPTS:-}" \
    start </dev/null >/dev/null
}
case "$cmd" in
  start)
    rm -rf "$dir"; mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync \
      >"$dir/initdb.log" 2>&1 </dev/null || { cat "$dir/initdb.log" >&2; exit 1; }
    PGPORT=${PGPORT:-$(free_port)}
    pg_start_server || { cat "$dir/server.log" >&2; exit 1; }
    cat >"$dir/env" <<ENV
PGPORT=$PGPORT
PGHOST=127.0.0.1
PGUSER=postgres
PGDATABASE=postgres
FRAISEQL_DATABASE_URL=postgresql://postgres@127.0.0.1:$PGPORT/postgres
ENV
    echo "$PGPORT"
    ;;
  restart)
    # shellcheck disable=SC1091
    . "$dir/env"
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop </dev/null >/dev/null || true
    pg_start_server
    ;;
  kill)
    # Immediate shutdown (crash-like), server restarted by a later `restart`.
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop </dev/null >/dev/null || true
    ;;
  stop)
    if [ -d "$dir/data" ]; then
      as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop </dev/null >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *) echo "pg.sh: unknown command $cmd" >&2; exit 2 ;;
esac
