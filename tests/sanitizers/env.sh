# shellcheck shell=bash
# Sanitizer run-time options, sourced by ./fraud (test --sanitize) and tests/sanitizers/run.sh:
#   source tests/sanitizers/env.sh
# Exports ASAN_OPTIONS, LSAN_OPTIONS, UBSAN_OPTIONS and TSAN_OPTIONS unless already set.
# Suppressions cover third-party code only (see README.md beside this file).
_fraud_san_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:detect_odr_violation=0:detect_container_overflow=0:quarantine_size_mb=4:thread_local_quarantine_size_kb=64:allocator_release_to_os_interval_ms=50}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$_fraud_san_dir/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$_fraud_san_dir/ubsan.supp}
# intercept_send=0: gRPC (uninstrumented) fills its socket buffers on other threads, so TSan's
# sendmsg check flagged every send and the suppression matching (a symbolised report per 64 KiB
# iovec) stalled gRPC's I/O thread for 20 s, until TCP_USER_TIMEOUT broke the connection.
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:intercept_send=0:suppressions=$_fraud_san_dir/tsan.supp}
unset _fraud_san_dir
