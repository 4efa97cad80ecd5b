#!/usr/bin/env bash
# The unit tests under AddressSanitizer + UndefinedBehaviorSanitizer: a Debug
# build in build-asan/ (ccache) of every target named observer_unit*, each run
# from the repository root. Any sanitizer report fails the run (halt on the
# first error, no UBSan recovery); so does a failing test.
#   ASAN_BUILD_DIR   build directory (default build-asan)
#   JOBS             parallel compile jobs (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${ASAN_BUILD_DIR:-build-asan}
# `null` stays recoverable only so that tests/sanitizers/ubsan.supp can name one
# report inside CAF's headers; halt_on_error=1 below still stops at any other.
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fsanitize-recover=null -fno-omit-frame-pointer"
t0=$(date +%s)
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS="$san" -DCMAKE_C_FLAGS="$san" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
# Every unit-test executable, whatever the layout names it (observer_unit_*).
mapfile -t targets < <(cmake --build "$dir" --target help \
  | sed -nE 's/^(\.\.\. )?(observer_unit[A-Za-z0-9_]*)(: phony)?$/\2/p' | sort -u)
if [ ${#targets[@]} -eq 0 ]; then
  echo "test-sanitizers: no observer_unit* target in $dir" >&2
  exit 1
fi
echo "test-sanitizers: building ${targets[*]} (ASan + UBSan, Debug) in $dir"
cmake --build "$dir" -j "${JOBS:-2}" --target "${targets[@]}"
t1=$(date +%s)
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:report_error_type=1:suppressions=$root/tests/sanitizers/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
status=0
for t in "${targets[@]}"; do
  exe=$(cd "$dir" && find "$PWD" -type f -perm -u+x -name "$t" | head -n 1)
  [ -n "$exe" ] || { echo "test-sanitizers: built $t but found no executable" >&2; exit 1; }
  echo "test-sanitizers: running $exe"
  # Tests expect the repository root as working directory (as under CTest).
  if ! (cd "$root" && "$exe" </dev/null); then
    echo "test-sanitizers: $t FAILED (a test failed or a sanitizer reported; see above)" >&2
    status=1
  fi
done
t2=$(date +%s)
echo "test-sanitizers: build $((t1 - t0)) s, run $((t2 - t1)) s"
exit $status
