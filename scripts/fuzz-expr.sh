#!/usr/bin/env bash
# Builds the libFuzzer target of the expression engine (parser + evaluator + templates) with
# clang -fsanitize=fuzzer,address,undefined and runs it for a bounded time.
#
# Usage: scripts/fuzz-expr.sh [extra libFuzzer arguments...]
# Environment:
#   FUZZ_SECONDS    run time in seconds (default 60)
#   FUZZ_BUILD_DIR  where the binary, corpus and crash artifacts go (default build-fuzz-expr)
#   FUZZ_CXX        compiler (default clang++; needs libclang-rt-*-dev:
#                   apt-get install -y clang libclang-rt-14-dev)
# Exits non-zero when the fuzzer finds a crash, a leak, a sanitizer report or a broken
# invariant; the reproducer is left in FUZZ_BUILD_DIR (crash-*, leak-*, timeout-*).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${FUZZ_SECONDS:-60}"
build="${FUZZ_BUILD_DIR:-$root/build-fuzz-expr}"
cxx="${FUZZ_CXX:-clang++}"

if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "fuzz-expr: $cxx not found (apt-get install -y clang libclang-rt-14-dev)" >&2
  exit 2
fi

mkdir -p "$build/obj" "$build/corpus"
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
       -fno-sanitize-recover=undefined -I"$root")

sources=()
for src in "$root"/runtime/expr/*.cpp; do
  [[ "$(basename "$src")" == conformance_main.cpp ]] && continue
  sources+=("$src")
done
sources+=("$root/fuzz/expr_fuzz.cpp")

echo "fuzz-expr: building $build/expr_fuzz"
pids=()
objects=()
for src in "${sources[@]}"; do
  obj="$build/obj/$(basename "${src%.cpp}").o"
  objects+=("$obj")
  if [[ ! -f "$obj" || "$src" -nt "$obj" || -n "$(find "$root/runtime/expr" -name '*.hpp' -newer "$obj" -print -quit)" ]]; then
    "$cxx" "${flags[@]}" -c "$src" -o "$obj" &
    pids+=($!)
    # Two compilations at a time.
    if (( ${#pids[@]} >= 2 )); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
"$cxx" -fsanitize=fuzzer,address,undefined "${objects[@]}" -o "$build/expr_fuzz"

# Seed the corpus with the checked-in seeds and every expression of the compliance files.
cp -n "$root"/fuzz/corpus/expr/* "$build/corpus/" 2>/dev/null || true
if command -v python3 >/dev/null 2>&1; then
  python3 - "$build/corpus" "$root"/runtime/expr/compliance/*.json <<'PY' || true
import hashlib, json, os, sys
out = sys.argv[1]
for path in sys.argv[2:]:
    for suite in json.load(open(path, encoding="utf-8")):
        for case in suite["cases"]:
            data = case["expression"].encode("utf-8")
            name = os.path.join(out, "seed-" + hashlib.sha1(data).hexdigest())
            if not os.path.exists(name):
                with open(name, "wb") as f:
                    f.write(data)
PY
fi

echo "fuzz-expr: running for ${seconds}s"
cd "$build"  # libFuzzer writes its logs (-jobs, -fork) to the working directory
status=0
"$build/expr_fuzz" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -dict="$root/fuzz/expr.dict" -artifact_prefix="$build/" -print_final_stats=1 \
  "$@" "$build/corpus" || status=$?
if (( status != 0 )); then
  echo "fuzz-expr: FAILED (exit $status); reproducers in $build/" >&2
  exit "$status"
fi
echo "fuzz-expr: no crash in ${seconds}s"
