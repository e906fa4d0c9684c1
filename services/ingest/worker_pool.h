// A bounded set of threads for work that blocks (an upload's parsing, scoring and storing), so
// that it never runs on gRPC's callback threads. At most `max_workers` jobs run at once; a job
// beyond that is refused at once rather than queued, so the caller can answer
// RESOURCE_EXHAUSTED ("busy, retry later") as the capped sync server used to.
//
//   WorkerPool pool(14);
//   if (!pool.TrySubmit([call] { Serve(call); })) call->Refuse();
//
// Threads start on demand (never more than max_workers) and stay for reuse until the pool is
// destroyed. The destructor waits for every submitted job to finish. Thread-safe.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fraud::ingest {

class WorkerPool {
 public:
  // max_workers < 1 is taken as 1.
  explicit WorkerPool(int max_workers);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs `job` on a pool thread; false (and `job` is dropped) when max_workers jobs are already
  // submitted and not yet finished, or the pool is being destroyed.
  bool TrySubmit(std::function<void()> job);

  int max_workers() const { return max_workers_; }
  // Jobs submitted and not yet finished.
  int active() const;

 private:
  void Work();
  bool HasJobOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int max_workers_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fraud::ingest
