#!/usr/bin/env bash
# Runs one libFuzzer binary on its seed corpus:
#   run_fuzzer.sh BINARY SEED_DIR WORK_DIR RUNS [SECONDS]
#
# Gating mode (SECONDS empty or 0; what ./fraud test and CI run): first every corpus input is
# replayed, then exactly RUNS mutations from a fixed seed (-seed=1) starting from the seed corpus
# alone (the work corpus is emptied first). The same commit therefore always executes the same
# inputs and gives the same verdict: a submission cannot fail because a random exploration found
# something unrelated to it.
# Exploration mode (SECONDS > 0; ./fraud test --deep, the nightly workflow): a random seed for
# SECONDS, growing WORK_DIR/corpus across runs. FRAUD_FUZZ_SECONDS overrides SECONDS.
#
# New inputs go to WORK_DIR/corpus (never into the repository). A crash leaves WORK_DIR/crash-*
# (or leak-/timeout-/oom-*) and fails the test; once fixed, copy the file into
# tests/fuzz/corpus/<name>/ so fuzz_replay_<name> (a unit test of the normal build) keeps it.
set -euo pipefail
bin=$1 seeds=$2 work=$3 runs=$4 seconds=${FRAUD_FUZZ_SECONDS:-${5:-0}}
rm -f "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# -reload=0: libFuzzer otherwise re-reads the corpus directory every second (a clock in the
# loop). One OpenMP thread: XGBoost's workers would add coverage from other threads at
# timing-dependent moments.
export OMP_NUM_THREADS=1
# Without address-space randomisation, pointer-keyed hashing inside third-party code takes the
# same branches on every run (setarch -R; plain execution where the kernel refuses it).
norand=()
if setarch "$(uname -m)" -R true 2>/dev/null; then norand=(setarch "$(uname -m)" -R); fi
opts=(-rss_limit_mb=2560 -timeout=30 -max_len=65536 -print_final_stats=1 -reload=0)
common=("${opts[@]}" -artifact_prefix="$work/")

fail() {
  tail -60 "$work/fuzz.log"
  ls "$work" | grep -E '^(crash|leak|timeout|oom)-' || true
  echo "fuzzer failed ($1); inputs above are in $work" >&2
  exit 1
}

if [ "$seconds" -gt 0 ]; then
  mkdir -p "$work/corpus"
  echo "exploration: random seed, ${seconds} s, corpus $work/corpus + $seeds"
  set +e
  "$bin" -seed=0 -max_total_time="$seconds" "${common[@]}" "$work/corpus" "$seeds" \
    2>"$work/fuzz.log"
  rc=$?
  set -e
else
  rm -rf "$work/corpus"
  mkdir -p "$work/corpus"
  # 1. Every kept input, as files (deterministic, no mutation).
  set +e
  "$bin" -runs=0 "${common[@]}" "$seeds"/* 2>"$work/fuzz.log"
  rc=$?
  set -e
  [ "$rc" = 0 ] || fail "replaying $seeds, exit $rc"
  echo "replayed $(ls "$seeds" | wc -l) corpus inputs"
  # 2. A bounded, seeded run: same inputs on every run of this commit. With address-space
  # randomisation off, addresses still depend on the size of argv and the environment, so the
  # fuzzer runs from inside $work with fixed relative names and a fixed environment: a clone in
  # any folder, under any user's environment, explores exactly the same inputs.
  ln -sfn "$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" "$work/target"
  ln -sfn "$(cd "$seeds" && pwd)" "$work/seeds"
  set +e
  (cd "$work" && env -i PATH=/usr/bin:/bin HOME=/ OMP_NUM_THREADS=1 \
    ASAN_OPTIONS="$ASAN_OPTIONS" UBSAN_OPTIONS="$UBSAN_OPTIONS" \
    "${norand[@]}" ./target -seed=1 -runs="$runs" "${opts[@]}" -artifact_prefix=./ corpus seeds \
    2>fuzz.log)
  rc=$?
  set -e
fi
grep -E "^(stat::|Done|INFO: Running with|INFO: Seed)" "$work/fuzz.log" | head -20 || true
[ "$rc" = 0 ] || fail "exit $rc"
echo "1 passed, 0 failed"
