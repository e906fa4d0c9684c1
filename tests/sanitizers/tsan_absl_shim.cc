// ThreadSanitizer support for Debian's prebuilt Abseil (built without -fsanitize=thread, so TSan
// cannot see absl::Mutex's synchronisation and reports every Mutex-guarded access as a race).
// Linked into the TSan test binaries only (./fraud test --tsan): each function below takes the
// exported symbol of an absl::Mutex / CondVar / Notification entry point, calls the library's own
// implementation (dlsym RTLD_NEXT) and tells TSan about the happens-before edge it creates
// (__tsan_release before a mutex is released, __tsan_acquire after it is acquired). The symbols
// are defined by their mangled names, so no Abseil class is redefined here.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);

// absl::Duration / absl::Time / KernelTimeout as passed by value (trivially copyable). Not in an
// unnamed namespace: functions taking them must keep external linkage.
namespace tsan_shim {
struct Duration {
  int64_t hi;
  uint32_t lo;
};
struct Time {
  Duration d;
};
struct KernelTimeout {
  int64_t ns;
};
}  // namespace tsan_shim
using tsan_shim::Duration;
using tsan_shim::KernelTimeout;
using tsan_shim::Time;

namespace {

template <typename F>
F Real(const char* name) {
  void* p = dlsym(RTLD_NEXT, name);
  if (p == nullptr) {
    std::fprintf(stderr, "tsan_absl_shim: %s not found\n", name);
    std::abort();
  }
  return reinterpret_cast<F>(p);
}

#define REAL(type, sym) static const auto real = Real<type>(sym)

}  // namespace

#define SYM(s) __asm__(s)

void MutexLock(void* mu) SYM("_ZN4absl7debian35Mutex4LockEv");
void MutexLock(void* mu) {
  REAL(void (*)(void*), "_ZN4absl7debian35Mutex4LockEv");
  real(mu);
  __tsan_acquire(mu);
}
void MutexReaderLock(void* mu) SYM("_ZN4absl7debian35Mutex10ReaderLockEv");
void MutexReaderLock(void* mu) {
  REAL(void (*)(void*), "_ZN4absl7debian35Mutex10ReaderLockEv");
  real(mu);
  __tsan_acquire(mu);
}
bool MutexTryLock(void* mu) SYM("_ZN4absl7debian35Mutex7TryLockEv");
bool MutexTryLock(void* mu) {
  REAL(bool (*)(void*), "_ZN4absl7debian35Mutex7TryLockEv");
  const bool ok = real(mu);
  if (ok) __tsan_acquire(mu);
  return ok;
}
bool MutexReaderTryLock(void* mu) SYM("_ZN4absl7debian35Mutex13ReaderTryLockEv");
bool MutexReaderTryLock(void* mu) {
  REAL(bool (*)(void*), "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool ok = real(mu);
  if (ok) __tsan_acquire(mu);
  return ok;
}
void MutexUnlock(void* mu) SYM("_ZN4absl7debian35Mutex6UnlockEv");
void MutexUnlock(void* mu) {
  REAL(void (*)(void*), "_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_release(mu);
  real(mu);
}
void MutexReaderUnlock(void* mu) SYM("_ZN4absl7debian35Mutex12ReaderUnlockEv");
void MutexReaderUnlock(void* mu) {
  REAL(void (*)(void*), "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_release(mu);
  real(mu);
}
void MutexLockWhen(void* mu, const void* cond) SYM("_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
void MutexLockWhen(void* mu, const void* cond) {
  REAL(void (*)(void*, const void*), "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  real(mu, cond);
  __tsan_acquire(mu);
}
void MutexReaderLockWhen(void* mu, const void* cond)
    SYM("_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
void MutexReaderLockWhen(void* mu, const void* cond) {
  REAL(void (*)(void*, const void*), "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  real(mu, cond);
  __tsan_acquire(mu);
}
bool MutexLockWhenWithTimeout(void* mu, const void* cond, Duration d)
    SYM("_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
bool MutexLockWhenWithTimeout(void* mu, const void* cond, Duration d) {
  REAL(bool (*)(void*, const void*, Duration),
       "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const bool r = real(mu, cond, d);
  __tsan_acquire(mu);  // held whatever the result
  return r;
}
bool MutexLockWhenWithDeadline(void* mu, const void* cond, Time t)
    SYM("_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
bool MutexLockWhenWithDeadline(void* mu, const void* cond, Time t) {
  REAL(bool (*)(void*, const void*, Time),
       "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const bool r = real(mu, cond, t);
  __tsan_acquire(mu);
  return r;
}
// Await / CondVar::Wait release the mutex while waiting and hold it again on return.
bool MutexAwaitCommon(void* mu, const void* cond, KernelTimeout t)
    SYM("_ZN4absl7debian35Mutex11AwaitCommonERKNS0_9ConditionENS0_24synchronization_internal13KernelTimeoutE");
bool MutexAwaitCommon(void* mu, const void* cond, KernelTimeout t) {
  REAL(bool (*)(void*, const void*, KernelTimeout),
       "_ZN4absl7debian35Mutex11AwaitCommonERKNS0_9ConditionENS0_24synchronization_internal13KernelTimeoutE");
  __tsan_release(mu);
  const bool r = real(mu, cond, t);
  __tsan_acquire(mu);
  return r;
}
bool CondVarWaitCommon(void* cv, void* mu, KernelTimeout t)
    SYM("_ZN4absl7debian37CondVar10WaitCommonEPNS0_5MutexENS0_24synchronization_internal13KernelTimeoutE");
bool CondVarWaitCommon(void* cv, void* mu, KernelTimeout t) {
  REAL(bool (*)(void*, void*, KernelTimeout),
       "_ZN4absl7debian37CondVar10WaitCommonEPNS0_5MutexENS0_24synchronization_internal13KernelTimeoutE");
  __tsan_release(mu);
  const bool r = real(cv, mu, t);
  __tsan_acquire(mu);
  return r;
}
void NotificationNotify(void* n) SYM("_ZN4absl7debian312Notification6NotifyEv");
void NotificationNotify(void* n) {
  REAL(void (*)(void*), "_ZN4absl7debian312Notification6NotifyEv");
  __tsan_release(n);
  real(n);
}
void NotificationWait(const void* n) SYM("_ZNK4absl7debian312Notification19WaitForNotificationEv");
void NotificationWait(const void* n) {
  REAL(void (*)(const void*), "_ZNK4absl7debian312Notification19WaitForNotificationEv");
  real(n);
  __tsan_acquire(const_cast<void*>(n));
}
bool NotificationWaitTimeout(const void* n, Duration d)
    SYM("_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
bool NotificationWaitTimeout(const void* n, Duration d) {
  REAL(bool (*)(const void*, Duration),
       "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool r = real(n, d);
  if (r) __tsan_acquire(const_cast<void*>(n));
  return r;
}
