#!/bin/bash
# Test path only (host-network.*.yml): replicas of a scaled worker share the
# host's network and host name, so each one gets, before it starts, its own
# metrics port (a free one, written to /tmp/metrics-port for the health check)
# and its own [nats] worker_name. Then it runs observer-node with the arguments
# given (--role worker ...) on that copy of /etc/fraiseql/observer.toml.
set -euo pipefail
port=""
for _ in $(seq 200); do
  p=$(shuf -i 20000-32000 -n 1)
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "worker-entry: no free port" >&2; exit 1; }
name="worker-$(cut -c1-8 /proc/sys/kernel/random/uuid)"
sed -e "s/^port = 9464\$/port = $port/" -e "s/^# worker_name = .*/worker_name = \"$name\"/" \
  /etc/fraiseql/observer.toml >/tmp/observer.toml
grep -q "^worker_name = \"$name\"" /tmp/observer.toml || { echo "worker-entry: no worker_name line" >&2; exit 1; }
echo "$port" >/tmp/metrics-port
echo "worker-entry: $name, metrics on 127.0.0.1:$port"
exec observer-node "$@" --config /tmp/observer.toml
