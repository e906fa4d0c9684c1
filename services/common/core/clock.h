// Clock interface so time-dependent code can be tested with a fake clock.
#pragma once

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fraud {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The real wall clock. Thread-safe.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  static RealClock& Get() {
    static auto* clock = new RealClock();
    return *clock;
  }
};

}  // namespace fraud
