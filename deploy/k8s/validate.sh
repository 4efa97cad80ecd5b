#!/usr/bin/env bash
# Renders every overlay of deploy/k8s with `kubectl kustomize` and validates the
# output offline: each object against the Kubernetes schemas (npm package
# kubernetes-models, pinned in validate/package-lock.json, installed once into
# BUILD_DIR/k8s-validate; after that no network), plus the promises of
# deploy/k8s (validate/validate.mjs). The configurations in base/config must be
# those of docker-compose/config. Usage: deploy/k8s/validate.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")"
k8s=$PWD
build=$(cd "${1:-../../build}" && pwd)
fail() { echo "k8s validate: $*" >&2; exit 1; }
command -v kubectl >/dev/null || fail "no kubectl (its kustomize renders the overlays)"
command -v npm >/dev/null || fail "no npm (scripts/install-deps.sh)"
for f in base/config/*.toml; do
  cmp -s "$f" "../../docker-compose/config/$(basename "$f")" ||
    fail "$f differs from docker-compose/config/$(basename "$f") (keep them identical)"
done
tools=$build/k8s-validate
if ! cmp -s validate/package-lock.json "$tools/package-lock.json" 2>/dev/null || [ ! -d "$tools/node_modules" ]; then
  mkdir -p "$tools"
  cp validate/package.json validate/package-lock.json "$tools/"
  (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || fail "npm ci in $tools failed"
fi
cp validate/validate.mjs "$tools/"
n=0
for o in overlays/*/; do
  o=$(basename "$o")
  kubectl kustomize "overlays/$o" >"$tools/$o.yaml" || fail "kubectl kustomize overlays/$o failed"
  node "$tools/validate.mjs" "$o" <"$tools/$o.yaml"
  n=$((n + 1))
done
[ "$n" = 4 ] || fail "$n overlays, expected 4"
# The checker itself: a wrong type and a wrong probe path must be refused.
sed -e 's/containerPort: 9464/containerPort: "metrics"/' -e 's|path: /readyz|path: /ready|' \
  "$tools/postgres-only.yaml" >"$tools/broken.yaml"
if node "$tools/validate.mjs" postgres-only <"$tools/broken.yaml" >"$tools/broken.log" 2>&1; then
  fail "a broken manifest passed validation"
fi
grep -q "containerPort must be integer" "$tools/broken.log" || fail "schema error not reported: $(cat "$tools/broken.log")"
grep -q "readiness probe is not /readyz" "$tools/broken.log" || fail "probe error not reported"
echo "k8s validate: PASS ($k8s)"
