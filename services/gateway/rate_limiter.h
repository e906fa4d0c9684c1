// Per-client token buckets: each key (the client's address) may make `rate` requests per second on
// average with bursts of `burst`. Idle buckets are forgotten so the table stays small.
// Thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fraud::gateway {

class RateLimiter {
 public:
  // rate <= 0 disables limiting (Allow always succeeds).
  RateLimiter(double rate, double burst);

  // Takes one token for `key` at time `now`. Returns 0 when allowed, otherwise the seconds until a
  // token is available (>= 1, for Retry-After).
  int64_t Acquire(const std::string& key, absl::Time now);

  bool enabled() const { return rate_ > 0; }
  size_t tracked_keys() const;

 private:
  struct Bucket {
    double tokens;
    absl::Time last;
  };
  void EvictIdle(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const double rate_;
  const double burst_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  absl::Time last_eviction_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace fraud::gateway
