#!/usr/bin/env bash
# Runs one libFuzzer binary for a bounded time on a copy of its seed corpus:
#   run_fuzzer.sh BINARY SEED_DIR WORK_DIR SECONDS
# New inputs go to WORK_DIR/corpus (never into the repository). A crash leaves WORK_DIR/crash-*
# (or leak-/timeout-/oom-*) and fails the test; copy that file into tests/fuzz/corpus/<name>/ once
# fixed so fuzz_replay_<name> keeps it as a regression test. FRAUD_FUZZ_SECONDS overrides SECONDS.
set -euo pipefail
bin=$1 seeds=$2 work=$3 seconds=${FRAUD_FUZZ_SECONDS:-$4}
mkdir -p "$work/corpus"
rm -f "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
set +e
"$bin" -max_total_time="$seconds" -rss_limit_mb=2560 -timeout=10 -max_len=65536 \
  -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$seeds" 2>"$work/fuzz.log"
rc=$?
set -e
grep -E "^(stat::|Done|INFO: Running with)" "$work/fuzz.log" | head -20 || true
if [ "$rc" != 0 ]; then
  tail -60 "$work/fuzz.log"
  ls "$work" | grep -E '^(crash|leak|timeout|oom)-' || true
  echo "fuzzer failed (exit $rc); inputs above are in $work" >&2
  exit 1
fi
echo "1 passed, 0 failed"
