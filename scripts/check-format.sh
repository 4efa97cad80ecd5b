#!/usr/bin/env bash
# Checks (never changes) that every tracked *.cpp / *.hpp is formatted as the
# repository's .clang-format says: clang-format --dry-run -Werror per file.
# Exit 1 and a list of the files that differ; fix with
#   clang-format -i $(git ls-files '*.cpp' '*.hpp')
# CLANG_FORMAT overrides the binary (Debian package clang-format, installed by
# scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
if ! command -v "$CLANG_FORMAT" >/dev/null; then
  echo "check-format: $CLANG_FORMAT not found (scripts/install-deps.sh installs clang-format)" >&2
  exit 2
fi
[ -f .clang-format ] || { echo "check-format: no .clang-format at $PWD" >&2; exit 2; }
mapfile -t files < <(git ls-files -- '*.cpp' '*.hpp')
[ ${#files[@]} -gt 0 ] || { echo "check-format: no tracked *.cpp/*.hpp (not a git checkout?)" >&2; exit 2; }
bad=()
for f in "${files[@]}"; do
  if ! "$CLANG_FORMAT" --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if [ ${#bad[@]} -gt 0 ]; then
  printf '  %s\n' "${bad[@]}" >&2
  echo "check-format: ${#bad[@]} of ${#files[@]} files are not formatted per .clang-format" \
       "($("$CLANG_FORMAT" --version | sed 's/.*version \([0-9.]*\).*/\1/'))" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files formatted per .clang-format"
