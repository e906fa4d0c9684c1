#include "services/ingest/worker_pool.h"

#include <algorithm>
#include <utility>

namespace fraud::ingest {

WorkerPool::WorkerPool(int max_workers) : max_workers_(std::max(max_workers, 1)) {}

WorkerPool::~WorkerPool() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  // Workers drain the queue before they leave, so every submitted job runs to its end.
  for (std::thread& t : threads) t.join();
}

bool WorkerPool::TrySubmit(std::function<void()> job) {
  absl::MutexLock l(&mu_);
  if (stopping_ || active_ >= max_workers_) return false;
  ++active_;
  jobs_.push_back(std::move(job));
  // Keep at least one thread per unfinished job: a queued job never waits for a running one.
  if (static_cast<int>(threads_.size()) < active_) threads_.emplace_back([this] { Work(); });
  return true;
}

int WorkerPool::active() const {
  absl::MutexLock l(&mu_);
  return active_;
}

bool WorkerPool::HasJobOrStopping() const { return stopping_ || !jobs_.empty(); }

void WorkerPool::Work() {
  for (;;) {
    std::function<void()> job;
    {
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(this, &WorkerPool::HasJobOrStopping));
      if (jobs_.empty()) return;  // stopping, nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
    job = nullptr;  // release what the job captured before the slot is counted free
    absl::MutexLock l(&mu_);
    --active_;
  }
}

}  // namespace fraud::ingest
