#!/usr/bin/env bash
# Private redis-server on a free loopback port (no persistence, daemonized).
#   scripts/redis.sh start DIR   -> start; writes DIR/env (REDIS_PORT, FRAISEQL_REDIS_URL)
#   scripts/redis.sh stop DIR    -> stop (SIGTERM, bounded wait) and remove DIR
#   scripts/redis.sh kill DIR    -> kill -9 (outage tests); DIR and env stay for `restart`
#   scripts/redis.sh restart DIR -> stop if running, start again on the same port
# Env: REDIS_PORT (default: a free port), REDIS_PASSWORD (default: none; sets
# requirepass and goes into the URL). Works as root and with no stdin.
set -euo pipefail
cmd=${1:?usage: redis.sh start|stop|kill|restart DIR}
dir=${2:?usage: redis.sh start|stop|kill|restart DIR}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# Running, and not a zombie (a daemonized server is not our child: nobody may reap it).
alive() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)" != Z ]
}

pidof_dir() { if [ -s "$dir/redis.pid" ]; then cat "$dir/redis.pid"; fi; }

# Waits (bounded) until the server answers PING.
wait_ping() {
  local port=$1 i
  for ((i = 0; i < 100; i++)); do
    if REDISCLI_AUTH=${REDIS_PASSWORD:-} "$REDIS_CLI" -h 127.0.0.1 -p "$port" ping </dev/null 2>/dev/null \
        | grep -q PONG; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# Starts on $1; returns non-zero when it does not answer within 10 s.
start_server() {
  local port=$1
  local args=(--bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log")
  [ -n "${REDIS_PASSWORD:-}" ] && args+=(--requirepass "$REDIS_PASSWORD")
  rm -f "$dir/redis.pid"
  "$REDIS_SERVER" "${args[@]}" </dev/null >/dev/null 2>&1 || return 1
  wait_ping "$port"
}

# SIGTERM (or SIGKILL with $1 = -9), then a bounded wait for the process to go.
stop_server() {
  local sig=${1:--TERM} pid i
  pid=$(pidof_dir)
  [ -n "$pid" ] || return 0
  kill "$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; sleep 0.2; fi
  rm -f "$dir/redis.pid"
}

write_env() {
  local port=$1 auth=""
  [ -n "${REDIS_PASSWORD:-}" ] && auth=":${REDIS_PASSWORD}@"
  cat >"$dir/env" <<ENV
REDIS_PORT=$port
REDIS_PASSWORD=${REDIS_PASSWORD:-}
FRAISEQL_REDIS_URL=redis://${auth}127.0.0.1:$port
ENV
}

case "$cmd" in
  start)
    [ -d "$dir" ] && stop_server -TERM
    rm -rf "$dir"; mkdir -p "$dir"
    if [ -n "${REDIS_PORT:-}" ]; then
      start_server "$REDIS_PORT" || { cat "$dir/redis.log" >&2 || true; exit 1; }
      port=$REDIS_PORT
    else
      # A free port may be taken between the probe and the bind: try a few.
      port=""
      for _ in 1 2 3 4 5; do
        candidate=$(free_port)
        if start_server "$candidate"; then port=$candidate; break; fi
        stop_server -9
      done
      [ -n "$port" ] || { cat "$dir/redis.log" >&2 || true; exit 1; }
    fi
    write_env "$port"
    echo "$port"
    ;;
  restart)
    # shellcheck disable=SC1091
    . "$dir/env"
    stop_server -TERM
    start_server "$REDIS_PORT" || { cat "$dir/redis.log" >&2 || true; exit 1; }
    ;;
  kill)
    stop_server -9
    ;;
  stop)
    if [ -d "$dir" ]; then stop_server -TERM; fi
    rm -rf "$dir"
    ;;
  *) echo "redis.sh: unknown command $cmd" >&2; exit 2 ;;
esac
