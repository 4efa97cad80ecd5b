#!/usr/bin/env bash
# Quick-start demo: a private PostgreSQL, the schema, an `orders` table with the
# capture trigger, a local webhook sink, observer-node --role all, and some
# inserts/updates/deletes whose deliveries are printed; ends with `observerctl
# status` and `observerctl dlq stats` against the running node. Cleans up on
# every exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/install-deps.sh
scripts/build.sh
work=$(mktemp -d /tmp/fraiseql-demo.XXXXXX)
chmod 755 "$work"
node_pid=""; sink_pid=""
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true
  [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
  "$root/scripts/pg.sh" stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting a private PostgreSQL"
"$root/scripts/pg.sh" start "$work/pg" >/dev/null
set -a; . "$work/pg/env"; set +a
echo "   $FRAISEQL_DATABASE_URL"

echo "== starting the webhook sink"
python3 "$root/scripts/sink.py" --port-file "$work/sink.port" --log "$work/sink.jsonl" \
  </dev/null >"$work/sink.out" 2>&1 &
sink_pid=$!
for _ in $(seq 100); do [ -s "$work/sink.port" ] && break; sleep 0.05; done
sink_port=$(cat "$work/sink.port")
sed "s#127.0.0.1:18080#127.0.0.1:$sink_port#g" "$root/config/demo.toml" >"$work/demo.toml"
echo "   http://127.0.0.1:$sink_port"

bin=$root/build/apps/observer/observer-node
echo "== observer-node migrate"
"$bin" migrate --config "$work/demo.toml"

echo "== demo table public.orders with the capture trigger (entity Order)"
psql -q -v ON_ERROR_STOP=1 <<'SQL'
SET client_min_messages = warning;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL, status text NOT NULL,
                     total numeric(10,2) NOT NULL);
SELECT observer_attach('public.orders', 'Order', 'id', true);
SQL

echo "== observer-node --role all --config demo.toml"
"$bin" --role all --config "$work/demo.toml" </dev/null >"$work/node.log" 2>&1 &
node_pid=$!

echo "== writing: 3 inserts, 2 updates, 1 delete"
psql -q -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 120.00);
INSERT INTO orders (customer, status, total) VALUES ('grace', 'new', 35.50), ('linus', 'new', 99.99);
UPDATE orders SET status = 'shipped' WHERE customer = 'ada';
UPDATE orders SET total = 40.00 WHERE customer = 'grace';
DELETE FROM orders WHERE customer = 'linus';
SQL

expected=6
for _ in $(seq 200); do
  got=$(wc -l <"$work/sink.jsonl" 2>/dev/null || echo 0)
  [ "$got" -ge "$expected" ] && break
  sleep 0.05
done
echo "== deliveries received by the sink"
python3 - "$work/sink.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    e = json.loads(r["body"])
    extra = ""
    if e.get("changes"):
        extra = " changes=" + json.dumps(e["changes"])
    print(f'  {r["method"]} {r["path"]} {e["event_type"]:6} {e["entity_type"]} id={e["entity_id"]}'
          f' key={r["idempotency_key"]}{extra}')
PY
got=$(wc -l <"$work/sink.jsonl")
echo "== observer-node log"
sed 's/^/  /' "$work/node.log"
psql -q -At -c "SELECT 'checkpoint: listener=' || listener_id || ' event_id=' || event_id || ' events=' || events_total FROM observer_checkpoints"
# The control plane is on by default (loopback, 127.0.0.1:7465); observerctl
# reads the token the node wrote to its runtime directory. Another node on this
# host may hold 7465: then this one took a free port, named in its log.
ctl=$root/build/apps/ctl/observerctl
ctl_port=$(sed -n 's/.*control: listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/node.log" | head -1)
export FRAISEQL_CONTROL_NODE=127.0.0.1:${ctl_port:-7465}
echo "== observerctl status"
"$ctl" status | sed 's/^/  /'
echo "== observerctl dlq stats"
"$ctl" dlq stats | sed 's/^/  /'
kill -TERM "$node_pid"; wait "$node_pid" || true; node_pid=""
if [ "$got" -ge "$expected" ]; then
  echo "demo OK: $got of $expected deliveries"
else
  echo "demo FAILED: $got of $expected deliveries" >&2
  exit 1
fi
