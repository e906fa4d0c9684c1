#!/usr/bin/env bash
# End-to-end: the launcher starts the whole constellation (real binaries, shifted ports) against a
# fresh database in the throwaway cluster of `./fraud test`, then
#   1. http_e2e.mjs drives the REST API (upload, duplicate, malformed, train, promote, rollback),
#   2. the browser test (tests/e2e/web/e2e.spec.mjs, Playwright + Debian's Chromium) drives the UI.
# Bounded in time; loopback only; everything is stopped on exit.
#   run_e2e.sh ROOT BIN_DIR [http|web|all]
set -euo pipefail
ROOT=$1
BIN=$2
WHAT=${3:-all}
: "${FRAUD_TEST_PG_URI:?FRAUD_TEST_PG_URI must name the throwaway cluster (./fraud test sets it)}"

work=$(mktemp -d /tmp/fraud-e2e.XXXXXX)
db="e2e_$(date +%s)_$$"
base=${FRAUD_TEST_PG_URI%/*}
psql "$FRAUD_TEST_PG_URI" -qAtc "CREATE DATABASE $db" >/dev/null
export FRAUD_STATE_DIR=$work/state FRAUD_BUILD_DIR=${BIN%/bin}
# An offset whose ten ports (gRPC 5005x, metrics 910x, HTTP 8080) are all free to bind right now.
ports_free() {
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
off = int(sys.argv[1])
for p in [50051, 50052, 50053, 50054, 9101, 9102, 9103, 9104, 8080]:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p + off))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
}
for _ in $(seq 1 50); do
  offset=$(( (RANDOM % 60) * 100 + 1000 ))
  # HTTP 10080 (offset 2000) is on the Fetch standard's list of blocked ports: Node's fetch and
  # Chromium refuse it ("fetch failed", ERR_UNSAFE_PORT), which failed a CI run at random.
  [ $((8080 + offset)) = 10080 ] && continue
  ports_free "$offset" && break
done
cleanup() {
  "$ROOT/fraud" down >/dev/null 2>&1 || true
  psql "$FRAUD_TEST_PG_URI" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  if [ -n "${FRAUD_E2E_KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Small, fast first model: bootstrap on 20k synthetic rows with two quick families.
export FRAUD_BOOTSTRAP_ROWS=${FRAUD_BOOTSTRAP_ROWS:-20000}
export FRAUD_FAMILIES=${FRAUD_FAMILIES:-logreg,xgboost}
export FRAUD_AUTO_TRAIN=false
"$ROOT/fraud" up --detach --no-build --port-offset "$offset" --database-url "$base/$db"
url="http://127.0.0.1:$((8080 + offset))"
export FRAUD_E2E_URL=$url FRAUD_E2E_TOKEN=$(cat "$FRAUD_STATE_DIR/admin_token")
export FRAUD_E2E_ARTIFACTS=${FRAUD_E2E_ARTIFACTS:-$ROOT/build/e2e-artifacts}
mkdir -p "$FRAUD_E2E_ARTIFACTS"

# Ready = every service SERVING, which for inference means the bootstrap model is published.
for i in $(seq 1 600); do
  if curl -fsS -o /dev/null "$url/api/v1/health" 2>/dev/null; then break; fi
  if [ "$i" = 600 ]; then echo "constellation not healthy after 300 s: $(curl -sS "$url/api/v1/health")"; fi
  sleep 0.5
done

status=0
if [ "$WHAT" = http ] || [ "$WHAT" = all ]; then
  node "$ROOT/tests/e2e/constellation/http_e2e.mjs" || status=1
fi
if { [ "$WHAT" = web ] || [ "$WHAT" = all ]; } && [ "$status" = 0 ]; then
  NODE_PATH=$ROOT/clients/web/node_modules node "$ROOT/tests/e2e/web/e2e.spec.mjs" || status=1
fi
if [ "$status" != 0 ]; then
  for f in "$FRAUD_STATE_DIR"/logs/*.log; do echo "==== $f (last 30 lines)"; tail -30 "$f"; done
fi
exit $status
