# Shared set-up of the shell benchmarks (sourced, not run). Call from the repo
# root after `bench_init NAME`:
#   bench_init NAME     private work dir ($work), cleanup trap (stops the node
#                       in $node_pid, PostgreSQL, removes $work)
#   bench_pg            private PostgreSQL, schema, table `items` captured as Item,
#                       a node config $work/node.toml whose observer drains Item
#                       INSERTs through a log action below the log level
bench_init() {
  work=$(mktemp -d "/tmp/fraiseql-$1.XXXXXX")
  chmod 755 "$work"
  node_pid=""
  trap bench_cleanup EXIT
}

bench_cleanup() {
  if [ -n "$node_pid" ]; then kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true; fi
  scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}

bench_pg() {
  scripts/pg.sh start "$work/pg" >/dev/null
  set -a; . "$work/pg/env"; set +a
  cat >"$work/node.toml" <<TOML
[database]
url = "$FRAISEQL_DATABASE_URL"
[listener]
listener_id = "bench"
[logging]
level = "warn"
[[observers]]
name = "drain"
event_type = "INSERT"
entity = "Item"
[[observers.actions]]
type = "log"
level = "debug"
TOML
  build/apps/observer/observer-node migrate --config "$work/node.toml" >/dev/null
  psql -q -c "SET client_min_messages = warning" -c "
    CREATE TABLE items (id bigserial PRIMARY KEY, name text, qty int);
    SELECT observer_attach('items', 'Item');" >/dev/null
}
