#!/usr/bin/env bash
# The images test (ctest label `images`, `./fraud test --images`): builds every image target of
# deploy/docker/Dockerfile, starts docker-compose.yml with podman-compose, and checks the
# constellation from the host over HTTP and gRPC only (no `podman exec`):
#   1. host set-up (deploy/testing/container-host.sh) and base images (deploy/testing/base-images.sh)
#   2. build every target (buildah bud, ccache in the Dockerfile's cache mount), image sizes
#   3. compose up; drive the compose health checks (podman runs none by itself) until all healthy
#   4. upload a generated labelled CSV through the gateway: stored and scored
#   5. a training run: the new version is promoted and served by inference
#   6. inference container removed and recreated (empty model cache): the champion is served again
#   7. Prometheus (container) scrapes every service's /metrics
#   8. memory per container (cgroup, from the host), then compose down -v (always, via trap)
#   9. (unless FRAUD_IMAGES_HEAVY=0) the heaviest jobs inside the 512 MB containers: a 284,807-row
#      upload through the gateway, then a run of the full default candidate set on every stored
#      row; every container must still be running with no restart (an OOM kill exits 137 and
#      compose restarts it), and the memory report shows each cgroup's peak against its limit
# Every wait is bounded. Usage: compose_test.sh ROOT BIN_DIR
# Environment: FRAUD_IMAGES_PORT_BASE (default 31000: gateway +80, Prometheus +90, gRPC +51..54),
#   FRAUD_IMAGES_KEEP=1 (leave the constellation running for inspection),
#   FRAUD_IMAGES_NO_BUILD=1 (use the images already built), FRAUD_IMAGES_COMPOSE_BOOTSTRAP=1 (the
#   first model as docker-compose.yml makes it: 100k rows, every family; default: 20k rows, two).
set -euo pipefail
ROOT=$(cd "$1" && pwd)
BIN=$(cd "$2" && pwd)
PROJECT=fraudimages
# Below 32768: ports in Linux's ephemeral range (32768-60999) were taken at random as the source
# port of an outgoing connection between the free-port check and the bind (41080, seen here).
BASE=${FRAUD_IMAGES_PORT_BASE:-31000}
GATEWAY_PORT=$((BASE + 80)) PROM_PORT=$((BASE + 90))
declare -A GRPC_PORT=([ingest]=$((BASE + 51)) [storage]=$((BASE + 52)) [inference]=$((BASE + 53))
  [training]=$((BASE + 54)))
declare -A CONTAINER_PORT=([ingest]=50051 [storage]=50052 [inference]=50053 [training]=50054)
TARGETS=(storage inference training ingest gateway all)
SERVICES=(postgres storage inference training ingest gateway prometheus)
T0=$(date +%s)

log() { printf '[images %4ds] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
step() { printf '\n[images %4ds] ==== %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
fail() { printf '[images %4ds] FAILED: %s\n' "$(( $(date +%s) - T0 ))" "$*"; exit 1; }

WORK=$(mktemp -d /tmp/fraud-images.XXXXXX)
FIGURES=$WORK/figures.txt
figure() { printf '%s\n' "$*" | tee -a "$FIGURES"; }

# podman-compose 1.0.3 reads .env from the directory of the FIRST compose file and lets it win over
# the environment, and resolves relative paths from there: the test's own directory comes first
# (its .env and port overrides), the repository's docker-compose.yml second, with ./deploy linked
# so `./deploy/prometheus` resolves to the repository's.
compose() {
  timeout "${COMPOSE_TIMEOUT:-300}" podman-compose -p "$PROJECT" -f "$WORK/compose.test.yml" \
    -f "$ROOT/docker-compose.yml" "$@" >>"$WORK/compose.log" 2>&1
}
cname() { echo "${PROJECT}_$1_1"; }

dump_logs() {
  local s
  for s in "${SERVICES[@]}"; do
    echo "---- $(cname "$s") ($(timeout 20 podman inspect -f '{{.State.Status}} exit={{.State.ExitCode}}' \
      "$(cname "$s")" 2>/dev/null || echo absent)), last 30 log lines"
    timeout 20 podman logs --tail 30 "$(cname "$s")" 2>&1 || true
  done
  echo "---- podman-compose log (last 40 lines)"
  tail -40 "$WORK/compose.log" 2>/dev/null || true
}

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" != 0 ]; then dump_logs; fi
  if [ -n "${FRAUD_IMAGES_KEEP:-}" ]; then
    log "FRAUD_IMAGES_KEEP set: constellation left running (work dir $WORK)"
    exit "$rc"
  fi
  step "teardown: compose down -v"
  COMPOSE_TIMEOUT=180 compose down -v || log "compose down returned non-zero"
  # podman-compose down -v leaves the network (and a volume of a container that was gone) behind.
  timeout 60 podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
  timeout 60 podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT" 2>/dev/null \
    | xargs -r timeout 60 podman volume rm -f >/dev/null 2>&1 || true
  log "figures:"; cat "$FIGURES" 2>/dev/null || true
  rm -rf "$WORK"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# RSS (VmRSS) and peak RSS (VmHWM) of each container's main process, as the host sees it in /proc
# (the figures README's memory table uses), and the cgroup's peak usage against its limit.
memory_report() {  # [WHEN]
  local s c pid id cg rss hwm peak limit
  for s in "${SERVICES[@]}"; do
    c=$(cname "$s")
    pid=$(timeout 20 podman inspect -f '{{.State.Pid}}' "$c" 2>/dev/null) || continue
    id=$(timeout 20 podman inspect -f '{{.Id}}' "$c")
    rss=$(awk '/^VmRSS/{print int($2/1024)}' "/proc/$pid/status" 2>/dev/null)
    hwm=$(awk '/^VmHWM/{print int($2/1024)}' "/proc/$pid/status" 2>/dev/null)
    cg=$(find /sys/fs/cgroup/memory -maxdepth 3 -type d -name "*$id*" 2>/dev/null | head -1)
    peak="" limit=""
    if [ -n "$cg" ]; then
      peak=", cgroup peak $(( $(cat "$cg/memory.max_usage_in_bytes") / 1048576 )) MB"
      limit=" of $(( $(cat "$cg/memory.limit_in_bytes") / 1048576 )) MB"
    fi
    figure "memory $s${1:+ ($1)}: RSS ${rss:-?} MB, peak RSS ${hwm:-?} MB$peak$limit"
  done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---- 1. host and base images -----------------------------------------------------------------
step "1. host set-up and base images"
for p in "$GATEWAY_PORT" "$PROM_PORT" "${GRPC_PORT[@]}"; do
  port_free "$p" || fail "port $p is in use (set FRAUD_IMAGES_PORT_BASE)"
done
"$ROOT/deploy/testing/container-host.sh"
"$ROOT/deploy/testing/base-images.sh" "$ROOT"
# A previous run that was killed may have left its containers behind.
if timeout 30 podman ps -a --format '{{.Names}}' | grep -q "^${PROJECT}_"; then
  log "removing a previous run's containers"
  timeout 120 podman ps -a --format '{{.Names}}' | grep "^${PROJECT}_" | xargs -r timeout 120 podman rm -f -t 5 >/dev/null
  timeout 60 podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
  timeout 60 podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT" \
    | xargs -r timeout 60 podman volume rm -f >/dev/null 2>&1 || true
fi

# ---- 2. images -------------------------------------------------------------------------------
step "2. build every image target of deploy/docker/Dockerfile"
# The Dockerfile keeps ccache in the cache mount id=fraud-ccache, which buildah stores in
# /var/tmp/buildah-cache/fraud-ccache: on first use it becomes a link to the host's ccache, so the
# host build and the image build share one cache.
cache_mount=/var/tmp/buildah-cache/fraud-ccache
if [ ! -e "$cache_mount" ]; then
  host_cache=$(ccache -k cache_dir 2>/dev/null || echo "$HOME/.cache/ccache")
  mkdir -p "$host_cache" /var/tmp/buildah-cache
  ln -s "$host_cache" "$cache_mount"
  log "buildah's ccache mount $cache_mount -> $host_cache (the host's ccache)"
fi
if [ -n "${FRAUD_IMAGES_NO_BUILD:-}" ]; then
  log "FRAUD_IMAGES_NO_BUILD set: using the images already built"
else
  build_start=$(date +%s)
  for t in "${TARGETS[@]}"; do
    s=$(date +%s)
    log "buildah bud --target $t -t ${PROJECT}_$t"
    if ! timeout 5400 buildah bud --isolation chroot --layers --target "$t" -t "${PROJECT}_$t" \
        -f "$ROOT/deploy/docker/Dockerfile" "$ROOT" >"$WORK/build-$t.log" 2>&1; then
      tail -60 "$WORK/build-$t.log"
      fail "image target $t did not build (log above)"
    fi
    grep -A12 -m1 'Summary:\|Hits:' "$WORK/build-$t.log" | sed 's/^/    ccache: /' || true
    log "target $t built in $(( $(date +%s) - s )) s"
  done
  figure "image build (every target, this run): $(( $(date +%s) - build_start )) s"
fi
for t in "${TARGETS[@]}"; do
  size=$(timeout 30 podman image inspect -f '{{.Size}}' "${PROJECT}_$t") || fail "no image ${PROJECT}_$t"
  figure "image ${PROJECT}_$t: $(( size / 1000000 )) MB"
done

# ---- 3. compose up ---------------------------------------------------------------------------
step "3. compose up (podman-compose, docker-compose.yml unchanged + loopback ports)"
ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat >"$WORK/.env" <<ENV
POSTGRES_USER=fraud
POSTGRES_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
POSTGRES_DB=fraud
FRAUD_ADMIN_TOKEN=$ADMIN_TOKEN
FRAUD_SERVICE_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
FRAUD_LOG_LEVEL=info
GATEWAY_PORT=127.0.0.1:$GATEWAY_PORT
PROMETHEUS_PORT=127.0.0.1:$PROM_PORT
ENV
ln -s "$ROOT/deploy" "$WORK/deploy"
# Only additions: loopback ports for the gRPC checks from the host, the 512 MB budget every
# service must fit (Render's Starter instance), and (unless FRAUD_IMAGES_COMPOSE_BOOTSTRAP) a
# small bootstrap (20k rows, logreg+xgboost) so the first model is ready in seconds.
{
  echo "# Test-only additions to docker-compose.yml (tests/images/compose_test.sh)."
  echo "services:"
  for s in "${SERVICES[@]}"; do
    echo "  $s:"
    echo "    mem_limit: 512m"
    [ -n "${GRPC_PORT[$s]:-}" ] && echo "    ports: [\"127.0.0.1:${GRPC_PORT[$s]}:${CONTAINER_PORT[$s]}\"]"
    case "$s" in
      storage|inference|training|ingest|gateway) echo "    image: ${PROJECT}_$s" ;;
    esac
    if [ "$s" = training ] && [ -z "${FRAUD_IMAGES_COMPOSE_BOOTSTRAP:-}" ]; then
      echo "    environment:"
      echo "      FRAUD_BOOTSTRAP_ROWS: \"20000\""
      echo "      FRAUD_FAMILIES: \"logreg,xgboost\""
    fi
  done
} >"$WORK/compose.test.yml"
up_start=$(date +%s)
compose up -d --no-build || fail "compose up failed"
log "compose up returned after $(( $(date +%s) - up_start )) s"

# podman runs no health check by itself (no systemd timers here): run each container's own
# health check (the compose file's `healthcheck.test`) until every one reports healthy.
declare -A HEALTH=()
wait_healthy() {  # TIMEOUT_SECONDS SERVICE...
  local deadline=$(( $(date +%s) + $1 )) started s st c all
  started=$(date +%s)
  shift
  while :; do
    all=1
    for s in "$@"; do
      c=$(cname "$s")
      st=$(timeout 20 podman inspect -f '{{.State.Status}}' "$c" 2>/dev/null || echo absent)
      if [ "$st" = running ]; then
        if [ "$s" = prometheus ]; then
          curl -fsS -o /dev/null --max-time 3 "http://127.0.0.1:$PROM_PORT/-/ready" && st=healthy || st=starting
        elif timeout 30 podman healthcheck run "$c" >/dev/null 2>&1; then
          st=healthy
        else
          st=unhealthy
        fi
      fi
      if [ "${HEALTH[$s]:-}" != "$st" ]; then log "$s: $st"; HEALTH[$s]=$st; fi
      # Not running a minute on (a failed start stays 'created'; restart: unless-stopped would
      # have brought back one that exited): no point waiting for the whole limit.
      case "$st" in created|exited|absent)
        [ $(( $(date +%s) - started )) -lt 60 ] || fail "$s is $st, not running" ;;
      esac
      [ "$st" = healthy ] || all=0
    done
    [ "$all" = 1 ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || fail "not every service healthy after the time limit"
    sleep 3
  done
}
wait_healthy 600 "${SERVICES[@]}"
figure "compose up to every health check green (bootstrap model served): $(( $(date +%s) - up_start )) s"

# The same from the host, with the project's own clients.
for s in ingest storage inference training; do
  "$BIN/fraud-health-probe" --target="127.0.0.1:${GRPC_PORT[$s]}" >/dev/null \
    || fail "fraud-health-probe: $s not SERVING at 127.0.0.1:${GRPC_PORT[$s]}"
done
FRAUD_INGEST_TARGET=127.0.0.1:${GRPC_PORT[ingest]} FRAUD_STORAGE_TARGET=127.0.0.1:${GRPC_PORT[storage]} \
FRAUD_INFERENCE_TARGET=127.0.0.1:${GRPC_PORT[inference]} FRAUD_TRAINING_TARGET=127.0.0.1:${GRPC_PORT[training]} \
  "$BIN/fraudctl" health --all || fail "fraudctl health --all"
curl -fsS --max-time 10 "http://127.0.0.1:$GATEWAY_PORT/api/v1/health" || fail "gateway /api/v1/health"
echo

# ---- 4.-5. upload, train ---------------------------------------------------------------------
export IMG_GATEWAY=http://127.0.0.1:$GATEWAY_PORT IMG_PROMETHEUS=http://127.0.0.1:$PROM_PORT
export IMG_TOKEN=$ADMIN_TOKEN IMG_STATE=$WORK/state.json IMG_CSV=$WORK/labelled.csv
"$BIN/fraudctl" generate --rows 5000 --seed 4242 >"$IMG_CSV"
"$BIN/fraudctl" generate --rows 5000 --seed 4343 >"$WORK/labelled-2.csv"
flow() { timeout "$2" node "$ROOT/tests/images/compose_flow.mjs" "$1" || fail "step '$1' failed"; }

step "4. upload a generated labelled CSV through the gateway: stored and scored"
flow scored 900
figure "compose up to first scored upload: $(( $(date +%s) - up_start )) s"

step "5. training run: new version promoted and served"
flow trained 900
champion=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["champion"])' "$IMG_STATE")
"$BIN/fraudctl" models --target "127.0.0.1:${GRPC_PORT[storage]}" | sed 's/^/    fraudctl models: /'
"$BIN/fraudctl" models --json --target "127.0.0.1:${GRPC_PORT[storage]}" \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); c=r.get("champion",{}).get("version") or r.get("championVersion"); sys.exit(0 if str(c)==sys.argv[1] else "storage champion %s, expected %s" % (c, sys.argv[1]))' "$champion" \
  || fail "fraudctl models: the champion is not v$champion"

memory_report "after upload and training"

# ---- 6. inference recreated with an empty cache ----------------------------------------------
step "6. inference container removed and recreated (empty model cache): champion served again"
old_id=$(timeout 20 podman inspect -f '{{.Id}}' "$(cname inference)")
timeout 60 podman rm -f -t 15 "$(cname inference)" >/dev/null 2>&1 || fail "removing the inference container"
# Known bug, measured by the retries of `flow served`: for ~15-35 s after the recreation ingest
# still dials the removed container's address ("No route to host") and stores uploads unscored.
# podman-compose `up SERVICE` also re-runs the service's dependencies: those containers exist and
# their `run` fails harmlessly before podman-compose `start`s them (already running).
compose up -d --no-build inference || true
new_id=$(timeout 20 podman inspect -f '{{.Id}}' "$(cname inference)") || fail "inference was not recreated"
[ "$new_id" != "$old_id" ] || fail "inference container was not recreated"
log "inference recreated (${old_id:0:12} -> ${new_id:0:12})"
HEALTH[inference]=""
wait_healthy 300 inference
IMG_CSV=$WORK/labelled-2.csv flow served 600
"$BIN/fraudctl" score --target "127.0.0.1:${GRPC_PORT[inference]}" --csv <(head -6 "$IMG_CSV") \
  | sed 's/^/    fraudctl score: /' || fail "fraudctl score against the recreated inference"

# ---- 7. Prometheus ---------------------------------------------------------------------------
step "7. Prometheus scrapes every service's /metrics"
flow prometheus 300

# ---- 8. memory -------------------------------------------------------------------------------
step "8. memory per container (read from the host: /proc of each main process, cgroup counters)"
memory_report
timeout 60 podman stats --no-stream --format 'table {{.Name}} {{.MemUsage}} {{.CPUPerc}}' 2>/dev/null \
  | grep -E "NAME|$PROJECT" | sed 's/^/    podman stats: /' || true
for s in "${SERVICES[@]}"; do
  st=$(timeout 20 podman inspect -f '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}' "$(cname "$s")")
  log "$s: $st (status, last exit code, restarts)"
done

# ---- 9. heaviest jobs under the 512 MB limit -------------------------------------------------
# Every container, stopped or restarted, is a failure: podman inspect reports OOMKilled=false
# even for an OOM kill here (TOOLCHAIN.md), so the exit code (137) and restarts are the evidence.
check_running() {  # WHEN
  local s st
  for s in "${SERVICES[@]}"; do
    st=$(timeout 20 podman inspect -f '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}' "$(cname "$s")")
    log "$s: $st (status, last exit code, restarts) $1"
    [ "$st" = "running 0 0" ] || fail "$s is '$st' $1 (exit 137 = killed by the 512 MB limit)"
  done
}
check_running "before the heavy jobs"
if [ "${FRAUD_IMAGES_HEAVY:-1}" != 0 ]; then
  step "9. heaviest jobs inside the 512 MB containers: 284,807-row upload, full candidate set"
  export IMG_BIG_CSV=$WORK/big.csv
  "$BIN/fraudctl" generate --rows 284807 --seed 4444 >"$IMG_BIG_CSV"
  heavy_start=$(date +%s)
  flow heavy 2400
  figure "heavy jobs (284,807-row upload, full default candidate set): $(( $(date +%s) - heavy_start )) s"
  memory_report "after the heavy jobs"
  check_running "after the heavy jobs"
fi

step "images test passed in $(( $(date +%s) - T0 )) s"
