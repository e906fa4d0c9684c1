#!/usr/bin/env bash
# Runs the browser e2e script against the in-memory mock gateway (no C++ services needed):
# checks the web build and the script itself. Usage: tests/e2e/web/run-against-mock.sh [ARTIFACTS_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
artifacts="${1:-$(mktemp -d /tmp/fraud-web-e2e-mock.XXXXXX)}"
mkdir -p "$artifacts"
port="${MOCK_PORT:-$((55000 + RANDOM % 1000))}"
token="mock-$RANDOM$RANDOM"

cd "$root/clients/web"
[ -d node_modules ] || npm ci --no-audit --no-fund
[ -f dist/index.html ] || npm run build

node "$root/tests/e2e/web/mock-gateway.mjs" --port "$port" --token "$token" >"$artifacts/mock.log" 2>&1 &
mock=$!
trap 'kill "$mock" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -fs "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1 && break
  sleep 0.1
done

FRAUD_E2E_URL="http://127.0.0.1:$port" FRAUD_E2E_TOKEN="$token" FRAUD_E2E_ARTIFACTS="$artifacts" \
  FRAUD_E2E_TIMEOUT="${FRAUD_E2E_TIMEOUT:-300}" node "$root/tests/e2e/web/e2e.spec.mjs"
