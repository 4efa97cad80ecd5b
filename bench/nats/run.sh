#!/usr/bin/env bash
# JetStream publish throughput (bench/nats/publish_bench.cpp): builds
# nats_publish_bench, runs it against a private nats-server it starts and
# stops itself (or NATS_URL), prints a table and JSON lines. No assertions.
#   bench/nats/run.sh [events=100000] [payload_bytes=1024] [window=4096] [runs=3] [replicas=1] [ack_timeout_ms=5000]
# replicas=3: an R3 stream on a private 3-server loopback cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
[ -f "$BUILD_DIR/build.ninja" ] || cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j "${JOBS:-2}" --target nats_publish_bench >/dev/null
exec "$BUILD_DIR/bench/nats/nats_publish_bench" "$@" </dev/null
