#include "services/gateway/thread_pool.h"

#include <algorithm>
#include <utility>

namespace fraud::gateway {

ElasticThreadPool::ElasticThreadPool(size_t core, size_t max) : max_(std::max(core, max)) {
  absl::MutexLock l(&mu_);
  for (size_t i = 0; i < core; ++i) Spawn();
}

void ElasticThreadPool::enqueue(std::function<void()> fn) {
  absl::MutexLock l(&mu_);
  jobs_.push_back(std::move(fn));
  if (idle_ < jobs_.size() && threads_.size() < max_) Spawn();
}

void ElasticThreadPool::shutdown() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void ElasticThreadPool::Spawn() {
  threads_.emplace_back([this] { Work(); });
}

void ElasticThreadPool::Work() {
  for (;;) {
    std::function<void()> fn;
    {
      absl::MutexLock l(&mu_);
      ++idle_;
      mu_.Await(absl::Condition(
          +[](ElasticThreadPool* p) { return p->stop_ || !p->jobs_.empty(); }, this));
      --idle_;
      if (jobs_.empty()) return;  // stopping and nothing left
      fn = std::move(jobs_.front());
      jobs_.pop_front();
    }
    fn();
  }
}

}  // namespace fraud::gateway
