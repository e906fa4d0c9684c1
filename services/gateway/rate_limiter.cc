#include "services/gateway/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace fraud::gateway {
namespace {
// A bucket idle this long is full again, so forgetting it changes nothing.
constexpr absl::Duration kEvictEvery = absl::Seconds(30);
constexpr size_t kEvictAbove = 4096;
}  // namespace

RateLimiter::RateLimiter(double rate, double burst) : rate_(rate), burst_(std::max(1.0, burst)) {}

size_t RateLimiter::tracked_keys() const {
  absl::MutexLock l(&mu_);
  return buckets_.size();
}

void RateLimiter::EvictIdle(absl::Time now) {
  if (buckets_.size() < kEvictAbove || now - last_eviction_ < kEvictEvery) return;
  last_eviction_ = now;
  const absl::Duration refill = absl::Seconds(burst_ / rate_);
  absl::erase_if(buckets_, [&](const auto& kv) { return now - kv.second.last >= refill; });
}

int64_t RateLimiter::Acquire(const std::string& key, absl::Time now) {
  if (rate_ <= 0) return 0;
  absl::MutexLock l(&mu_);
  EvictIdle(now);
  auto [it, inserted] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!inserted) {
    const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - b.last));
    b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
    b.last = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return 0;
  }
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil((1.0 - b.tokens) / rate_)));
}

}  // namespace fraud::gateway
