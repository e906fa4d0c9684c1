#!/usr/bin/env bash
# The sanitizer builds and the ThreadSanitizer run of `./fraud test --sanitize` / `--tsan`
# (see README.md beside this file):
#   tests/sanitizers/run.sh build asan [DIR]   ASan + UBSan build of every target (default
#                                              DIR build-asan); ./fraud then runs the usual suites
#                                              in it with the options of env.sh
#   tests/sanitizers/run.sh build tsan [DIR]   the ThreadSanitizer test binaries (default build-tsan)
#   tests/sanitizers/run.sh test tsan [DIR]    ctest of the tests named *Reload* / *Concurrent* /
#                                              *AppendWorker*
#                                              (labels unit, integration) in that build; the
#                                              database tests use $FRAUD_TEST_PG_URI (./fraud
#                                              starts a throwaway PostgreSQL for them)
# $FRAUD_JOBS build jobs (default nproc). Exit status: non-zero on a build or test failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
JOBS=${FRAUD_JOBS:-$(nproc)}
log() { printf '\033[1m[fraud]\033[0m %s\n' "$*" >&2; }
usage() { log "usage: tests/sanitizers/run.sh build asan|tsan [DIR] | test tsan [DIR]"; exit 2; }

# The test binaries that hold tests named *Reload*, *Concurrent* or *AppendWorker* (hot reload,
# concurrent uploads and registry updates, storage's upload read-ahead, the RPC metrics
# interceptor's per-method cache): only these are built with TSan.
TSAN_TARGETS=(inference_unit_test inference_integration_test storage_integration_test
  storage_unit_test ingest_integration_test gateway_integration_test training_unit_test
  rpc_unit_test)

# shellcheck source=tests/sanitizers/env.sh
source "$ROOT/tests/sanitizers/env.sh"
export CCACHE_BASEDIR=$ROOT

build_asan() {  # DIR
  local build=$1
  # GCC 12 reports false maybe-uninitialized warnings in <regex> and <functional> under
  # -fsanitize=address at -O3; -Werror would turn them into build failures.
  cmake -S "$ROOT" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFRAUD_SANITIZE=ON \
    -DCMAKE_CXX_FLAGS=-Wno-maybe-uninitialized >/dev/null
  log "building C++ ($JOBS jobs) in $build"
  cmake --build "$build" -j "$JOBS"
}

build_tsan() {  # DIR
  local build=$1
  # Debian's Abseil is not built with TSan: the shim tells TSan about absl::Mutex/CondVar edges.
  mkdir -p "$build"
  g++ -std=c++17 -fsanitize=thread -O1 -g -fPIC -c "$ROOT/tests/sanitizers/tsan_absl_shim.cc" \
    -o "$build/tsan_absl_shim.o"
  cmake -S "$ROOT" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRAUD_TSAN=ON \
    "-DFRAUD_TSAN_SHIM=$build/tsan_absl_shim.o" >/dev/null
  log "building ThreadSanitizer test binaries in $build"
  cmake --build "$build" -j "$JOBS" --target "${TSAN_TARGETS[@]}"
}

test_tsan() {  # DIR
  local build=$1
  log "ctest -R 'Reload|Concurrent|AppendWorker' (TSan)"
  ctest --test-dir "$build" -R 'Reload|Concurrent|AppendWorker' -L '^(unit|integration)$' --output-on-failure \
    --timeout 900
}

if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
# libgomp is uninstrumented: XGBoost's OpenMP workers would hand model memory to our threads
# through barriers TSan cannot see. One OpenMP thread keeps that work on the calling thread.
if [ "$2" = tsan ]; then export OMP_NUM_THREADS=1; fi
case "$1 $2" in
  "build asan") build_asan "${3:-$ROOT/build-asan}" ;;
  "build tsan") build_tsan "${3:-$ROOT/build-tsan}" ;;
  "test tsan") test_tsan "${3:-$ROOT/build-tsan}" ;;
  *) usage ;;
esac
