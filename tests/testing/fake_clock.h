// A settable fraud::Clock (services/common/core/clock.h) for tests of time-dependent code: the
// inference model reloader and watcher, the training auto-trigger, anything else that takes a
// `const Clock*`.
#pragma once

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/common/core/clock.h"

namespace fraud::testing {

// Starts at a fixed instant (2023-11-14 22:13:20 UTC) and moves only when Advance() is called.
// Thread-safe: the code under test may read it from its own threads while the test advances it.
class FakeClock final : public Clock {
 public:
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1700000000);
};

}  // namespace fraud::testing
