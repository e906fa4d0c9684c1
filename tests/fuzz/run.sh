#!/usr/bin/env bash
# The libFuzzer run of `./fraud test` (see tests/fuzz/README.md):
#   tests/fuzz/run.sh           gating run: every target replays its corpus, then a fixed seed and
#                               run count (FRAUD_FUZZ_RUNS_<NAME> in libfuzzer/CMakeLists.txt)
#   tests/fuzz/run.sh --deep    exploration: 300 s per target with a random seed
#   tests/fuzz/run.sh SECONDS   exploration for SECONDS per target (0 = the gating run)
# FRAUD_FUZZ_SECONDS overrides the seconds of either form. Builds the targets with clang
# (ASan + UBSan) in build-fuzz/ ($FRAUD_JOBS jobs, default nproc) and runs them as ctest label
# `fuzz`. Exit status: non-zero when clang++ is missing, the build fails or a target fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
JOBS=${FRAUD_JOBS:-$(nproc)}
log() { printf '\033[1m[fraud]\033[0m %s\n' "$*" >&2; }

seconds=0
case "${1:-}" in
  "") ;;
  --deep) seconds=300 ;;
  *[!0-9]*) log "usage: tests/fuzz/run.sh [--deep | SECONDS]"; exit 2 ;;
  *) seconds=$1 ;;
esac
seconds=${FRAUD_FUZZ_SECONDS:-$seconds}

command -v clang++ >/dev/null || { log "clang++ not installed: no fuzzing"; exit 1; }
fb=$ROOT/build-fuzz
export CCACHE_BASEDIR=$ROOT
CC=clang CXX=clang++ cmake -S "$ROOT" -B "$fb" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFRAUD_FUZZ=ON "-DFRAUD_FUZZ_SECONDS=$seconds" >/dev/null
log "building libFuzzer targets in $fb"
cmake --build "$fb" -j "$JOBS" --target fuzz_csv_reader fuzz_manifest fuzz_gateway_request
log "ctest -L fuzz"
ctest --test-dir "$fb" -L '^fuzz$' --output-on-failure --timeout 900
