// The HTTP server's worker pool (httplib's TaskQueue). httplib hands every accepted connection to
// a worker before reading a byte, so connections that send nothing (or half a request line) hold
// workers until the read timeout. This pool runs `core` workers and, when all are busy, adds more
// up to `max` so such connections cannot lock out other clients; beyond `max` connections wait in
// the queue. Workers stay until shutdown.
//
// Thread-safety: enqueue() from any thread; shutdown() once, after which the queued jobs still
// run and the workers are joined.
#pragma once

#include <httplib.h>

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace fraud::gateway {

class ElasticThreadPool final : public httplib::TaskQueue {
 public:
  ElasticThreadPool(size_t core, size_t max);
  ~ElasticThreadPool() override = default;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

 private:
  void Spawn() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Work();

  const size_t max_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;  // appended under mu_, joined after stop_
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace fraud::gateway
