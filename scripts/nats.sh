#!/usr/bin/env bash
# Private nats-server(s) with JetStream on free loopback ports, private stores.
#   scripts/nats.sh start DIR          -> one server; writes DIR/env
#   scripts/nats.sh start-cluster DIR  -> three servers forming one JetStream
#                                         cluster (R3 streams work); writes DIR/env
#   scripts/nats.sh stop DIR           -> stop every server (SIGTERM, bounded
#                                         wait, then SIGKILL) and remove DIR;
#                                         a no-op when DIR is absent
#   scripts/nats.sh kill DIR [N]       -> kill -9 server N (default: all) for
#                                         outage tests; its store and config stay
#   scripts/nats.sh restart DIR [N]    -> stop server N (default: all) if
#                                         running, start it again on the same
#                                         ports and store, wait until healthy
#   scripts/nats.sh status DIR         -> one line per server: N pid port up|down
# DIR/env (shell syntax, also read by tests):
#   NATS_SERVERS (count), NATS_URL (first server), NATS_URLS (comma list),
#   NATS_PORT, NATS_MONITOR_PORT (first server), FRAISEQL_NATS_URL (= NATS_URLS),
#   NATS_<i>_PORT, NATS_<i>_MONITOR_PORT, NATS_<i>_CLUSTER_PORT, NATS_<i>_PID.
# Server i lives in DIR/n<i>: server.conf, js/ (the JetStream store), nats.log,
# nats.pid. Env in: NATS_PORT (single server: fixed client port, default a free
# one), NATS_MAX_PAYLOAD (bytes, default the server's 1 MB), NATS_USER and
# NATS_PASSWORD (clients must authenticate; both go into DIR/env, not into
# the URLs), NATS_TLS=1 (clients must use TLS: a throw-away CA and a server
# certificate for 127.0.0.1 / localhost are made in DIR/tls with openssl;
# DIR/env gets tls:// URLs and NATS_TLS_CA), NATS_SERVER (the binary, default nats-server), NATS_WAIT_SECS
# (health wait bound, default 20).
# Every port binds to 127.0.0.1. Works as root and with no stdin.
set -euo pipefail
usage="usage: nats.sh start|start-cluster|stop|kill|restart|status DIR [N]"
cmd=${1:?$usage}
dir=${2:?$usage}
only=${3:-}
NATS_SERVER=${NATS_SERVER:-nats-server}
WAIT_SECS=${NATS_WAIT_SECS:-20}

command -v "$NATS_SERVER" >/dev/null ||
  { echo "nats.sh: $NATS_SERVER not found (scripts/install-deps.sh installs nats-server)" >&2; exit 2; }
command -v curl >/dev/null || { echo "nats.sh: curl not found" >&2; exit 2; }

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# Running, and not a zombie (the server is not our child once we exit).
alive() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)" != Z ]
}

server_pid() { if [ -s "$dir/n$1/nats.pid" ]; then cat "$dir/n$1/nats.pid"; fi; }

# Server i's ports from its saved ports file.
load_ports() {
  # shellcheck disable=SC1090
  . "$dir/n$1/ports"
}

# Writes DIR/n<i>/server.conf from the saved ports (and the routes to all peers).
write_conf() {
  local i=$1 n=$2 j routes=""
  load_ports "$i"
  {
    echo "server_name: n$i"
    echo "listen: 127.0.0.1:$PORT"
    echo "http: 127.0.0.1:$MONITOR_PORT"
    echo "pid_file: \"$dir/n$i/nats.pid\""
    echo "log_file: \"$dir/n$i/nats.log\""
    [ -n "${NATS_MAX_PAYLOAD:-}" ] && echo "max_payload: $NATS_MAX_PAYLOAD"
    if [ "${NATS_TLS:-}" = 1 ]; then
      echo "tls { cert_file: \"$dir/tls/server.pem\", key_file: \"$dir/tls/server.key\", timeout: 2 }"
    fi
    if [ -n "${NATS_USER:-}" ]; then
      echo "authorization { user: \"$NATS_USER\", password: \"${NATS_PASSWORD:-}\" }"
    fi
    echo "jetstream { store_dir: \"$dir/n$i/js\" }"
    if [ "$n" -gt 1 ]; then
      for ((j = 1; j <= n; j++)); do
        [ "$j" = "$i" ] && continue
        # shellcheck disable=SC1090
        routes+="nats-route://127.0.0.1:$(. "$dir/n$j/ports"; echo "$CLUSTER_PORT"), "
      done
      echo "cluster { name: fraiseql_test, listen: 127.0.0.1:$CLUSTER_PORT, routes: [ ${routes%, } ] }"
    fi
  } >"$dir/n$i/server.conf"
}

# Bounded wait until server i is healthy with JetStream on. In 2.9.10 the
# plain /healthz checks JetStream (meta leader known, streams and consumers
# current); its js-enabled / js-enabled-only parameters answer "ok" even on a
# server without JetStream, so /jsz is asked whether JetStream runs.
wait_healthy() {
  local i=$1 k pid
  load_ports "$i"
  for ((k = 0; k < WAIT_SECS * 10; k++)); do
    if curl -fs --max-time 1 "http://127.0.0.1:$MONITOR_PORT/healthz" >/dev/null 2>&1 &&
      curl -fs --max-time 1 "http://127.0.0.1:$MONITOR_PORT/jsz" 2>/dev/null | grep -q '"store_dir"'; then
      return 0
    fi
    pid=$(server_pid "$i")
    if [ $k -gt 5 ] && { [ -z "$pid" ] || ! alive "$pid"; }; then return 1; fi
    sleep 0.1
  done
  return 1
}

# Bounded wait until the cluster has a JetStream meta leader with n peers
# (asked of server 1's monitoring port, then any other that answers).
wait_meta_leader() {
  local n=$1 k i
  for ((k = 0; k < WAIT_SECS * 10; k++)); do
    for ((i = 1; i <= n; i++)); do
      load_ports "$i"
      if curl -fs --max-time 1 "http://127.0.0.1:$MONITOR_PORT/jsz" 2>/dev/null | python3 -c '
import json, sys
m = json.load(sys.stdin).get("meta_cluster") or {}
ok = m.get("leader") and m.get("cluster_size", 0) >= int(sys.argv[1])
sys.exit(0 if ok else 1)' "$n" 2>/dev/null; then
        return 0
      fi
    done
    sleep 0.1
  done
  return 1
}

# SIGTERM (or the signal in $2) to server i, then a bounded wait, then SIGKILL.
stop_server() {
  local i=$1 sig=${2:--TERM} pid k
  pid=$(server_pid "$i")
  [ -n "$pid" ] || return 0
  kill "$sig" "$pid" 2>/dev/null || true
  for ((k = 0; k < 100; k++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; sleep 0.2; fi
  rm -f "$dir/n$i/nats.pid"
}

count_servers() {
  local n=0
  while [ -d "$dir/n$((n + 1))" ]; do n=$((n + 1)); done
  echo "$n"
}

# A CA and a server certificate (127.0.0.1, localhost) in DIR/tls, valid 2 days.
make_tls() {
  local t=$dir/tls
  mkdir -p "$t"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$t/ca.key" -out "$t/ca.pem" -subj "/CN=fraiseql test CA" >/dev/null 2>&1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$t/server.key" -out "$t/server.csr" -subj "/CN=127.0.0.1" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$t/ext"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
    -days 2 -extfile "$t/ext" -out "$t/server.pem" >/dev/null 2>&1
}

write_env() {
  local n=$1 i urls="" scheme=nats
  [ -d "$dir/tls" ] && scheme=tls
  for ((i = 1; i <= n; i++)); do
    load_ports "$i"
    urls+="$scheme://127.0.0.1:$PORT,"
  done
  urls=${urls%,}
  {
    echo "NATS_SERVERS=$n"
    load_ports 1
    echo "NATS_URL=$scheme://127.0.0.1:$PORT"
    echo "NATS_URLS=$urls"
    echo "FRAISEQL_NATS_URL=$urls"
    echo "NATS_PORT=$PORT"
    echo "NATS_MONITOR_PORT=$MONITOR_PORT"
    echo "NATS_USER=${NATS_USER:-}"
    echo "NATS_PASSWORD=${NATS_PASSWORD:-}"
    if [ -d "$dir/tls" ]; then echo "NATS_TLS_CA=$dir/tls/ca.pem"; else echo "NATS_TLS_CA="; fi
    for ((i = 1; i <= n; i++)); do
      load_ports "$i"
      echo "NATS_${i}_PORT=$PORT"
      echo "NATS_${i}_MONITOR_PORT=$MONITOR_PORT"
      echo "NATS_${i}_CLUSTER_PORT=${CLUSTER_PORT:-}"
      echo "NATS_${i}_PID=$(server_pid "$i")"
    done
  } >"$dir/env.tmp"
  mv "$dir/env.tmp" "$dir/env"
}

show_logs() {
  local i
  for ((i = 1; i <= $1; i++)); do
    echo "--- n$i/nats.log" >&2
    tail -n 20 "$dir/n$i/nats.log" >&2 2>/dev/null || true
    tail -n 5 "$dir/n$i/stdout.log" >&2 2>/dev/null || true
  done
}

stop_all() {
  local n i
  n=$(count_servers)
  for ((i = 1; i <= n; i++)); do stop_server "$i" "$@"; done
}

# Fresh DIR, n servers: pick ports (a free port may be taken between the probe
# and the bind: the whole set is retried a few times), start, wait.
start_fresh() {
  local n=$1 attempt i ok
  [ -d "$dir" ] && stop_all -TERM
  for attempt in 1 2 3 4 5; do
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "${NATS_TLS:-}" = 1 ]; then
      make_tls || { echo "nats.sh: openssl could not make the test certificates" >&2; return 1; }
    fi
    for ((i = 1; i <= n; i++)); do
      mkdir -p "$dir/n$i/js"
      {
        if [ "$n" = 1 ] && [ -n "${NATS_PORT:-}" ]; then echo "PORT=$NATS_PORT"; else echo "PORT=$(free_port)"; fi
        echo "MONITOR_PORT=$(free_port)"
        if [ "$n" -gt 1 ]; then echo "CLUSTER_PORT=$(free_port)"; else echo "CLUSTER_PORT="; fi
      } >"$dir/n$i/ports"
    done
    for ((i = 1; i <= n; i++)); do write_conf "$i" "$n"; done
    ok=1
    # Cluster members start together: each waits for a quorum to be healthy.
    for ((i = 1; i <= n; i++)); do
      rm -f "$dir/n$i/nats.pid"
      setsid "$NATS_SERVER" -c "$dir/n$i/server.conf" </dev/null >>"$dir/n$i/stdout.log" 2>&1 &
    done
    for ((i = 1; i <= n; i++)); do wait_healthy "$i" || { ok=0; break; }; done
    if [ $ok = 1 ] && [ "$n" -gt 1 ]; then wait_meta_leader "$n" || ok=0; fi
    if [ $ok = 1 ]; then
      write_env "$n"
      return 0
    fi
    echo "nats.sh: attempt $attempt: servers not healthy within ${WAIT_SECS}s" >&2
    show_logs "$n"
    stop_all -9
    [ "$n" = 1 ] && [ -n "${NATS_PORT:-}" ] && break
  done
  return 1
}

# The servers a kill/restart applies to: N, or all.
targets() {
  local n
  n=$(count_servers)
  [ "$n" -gt 0 ] || { echo "nats.sh: no servers in $dir (start it first)" >&2; exit 1; }
  if [ -n "$only" ]; then
    [ "$only" -ge 1 ] && [ "$only" -le "$n" ] ||
      { echo "nats.sh: no server $only in $dir (1..$n)" >&2; exit 1; }
    echo "$only"
  else
    seq 1 "$n"
  fi
}

# kill / restart rewrite DIR/env: keep the credentials it has.
# (TLS: write_env sees DIR/tls; server.conf keeps the rest.)
if [ "$cmd" = kill ] || [ "$cmd" = restart ]; then
  if [ -f "$dir/env" ] && [ -z "${NATS_USER:-}" ]; then
    NATS_USER=$(sed -n 's/^NATS_USER=//p' "$dir/env")
    NATS_PASSWORD=$(sed -n 's/^NATS_PASSWORD=//p' "$dir/env")
  fi
fi

case "$cmd" in
  start)
    start_fresh 1 || exit 1
    # shellcheck disable=SC1091
    . "$dir/env"
    echo "$NATS_PORT"
    ;;
  start-cluster)
    start_fresh 3 || exit 1
    # shellcheck disable=SC1091
    . "$dir/env"
    echo "$NATS_URLS"
    ;;
  restart)
    n=$(count_servers)
    list=$(targets)
    for i in $list; do stop_server "$i" -TERM; done
    # Cluster members start together: each waits for a quorum to be healthy.
    for i in $list; do
      rm -f "$dir/n$i/nats.pid"
      setsid "$NATS_SERVER" -c "$dir/n$i/server.conf" </dev/null >>"$dir/n$i/stdout.log" 2>&1 &
    done
    for i in $list; do
      wait_healthy "$i" || { echo "nats.sh: server $i not healthy after restart" >&2; show_logs "$n"; exit 1; }
    done
    if [ "$n" -gt 1 ]; then
      wait_meta_leader "$n" || { echo "nats.sh: no JetStream meta leader after restart" >&2; show_logs "$n"; exit 1; }
    fi
    write_env "$n"
    ;;
  kill)
    n=$(count_servers)
    list=$(targets)
    for i in $list; do stop_server "$i" -9; done
    write_env "$n"
    ;;
  stop)
    if [ -d "$dir" ]; then stop_all -TERM; fi
    rm -rf "$dir"
    ;;
  status)
    n=$(count_servers)
    for ((i = 1; i <= n; i++)); do
      load_ports "$i"
      pid=$(server_pid "$i")
      if [ -n "$pid" ] && alive "$pid"; then st=up; else st=down; fi
      echo "$i ${pid:--} $PORT $st"
    done
    ;;
  *) echo "nats.sh: unknown command $cmd ($usage)" >&2; exit 2 ;;
esac
