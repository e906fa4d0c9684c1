// Cuts off client streams that stop sending. An upload holds a storage connection and an open
// transaction from its first chunk to its last; a client that stalls mid-file would hold them
// until the upload deadline (an hour). The watchdog cancels a stream that has waited for its next
// chunk longer than `idle_timeout`; time spent processing a chunk (backpressure from storage or
// inference) never counts as idle.
//
//   IdleWatchdog dog(absl::Seconds(60));
//   IdleWatchdog::Lease lease = dog.Watch([ctx] { ctx->TryCancel(); });
//   while (true) {
//     lease.Waiting();              // waiting for the client from now on
//     if (!reader->Read(&msg)) break;
//     lease.Busy();                 // our turn: not idle
//     ...
//   }
//   if (lease.fired()) ...          // the stream was cut off for idling
//
// One background thread per watchdog wakes every `tick`. `on_idle` runs on that thread, at most
// once per lease, never after the lease is destroyed. Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fraud::ingest {

class IdleWatchdog {
 private:
  struct Entry {
    std::function<void()> on_idle;
    // absl::ToUnixNanos of the moment waiting began; 0 while busy.
    std::atomic<int64_t> waiting_since{0};
    std::atomic<bool> fired{false};
  };

 public:
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease();
    void Waiting();
    void Busy();
    bool fired() const;

   private:
    friend class IdleWatchdog;
    Lease(IdleWatchdog* dog, uint64_t id, std::shared_ptr<Entry> entry);
    IdleWatchdog* dog_;
    uint64_t id_;
    std::shared_ptr<Entry> entry_;
  };

  // idle_timeout <= 0 disables the watchdog (Watch still returns working leases that never fire).
  explicit IdleWatchdog(absl::Duration idle_timeout, absl::Duration tick = absl::Milliseconds(250));
  ~IdleWatchdog();
  IdleWatchdog(const IdleWatchdog&) = delete;
  IdleWatchdog& operator=(const IdleWatchdog&) = delete;

  // Starts watching; the lease starts busy.
  Lease Watch(std::function<void()> on_idle);
  absl::Duration idle_timeout() const { return idle_timeout_; }

 private:
  void Loop();
  void Forget(uint64_t id);

  const absl::Duration idle_timeout_;
  const absl::Duration tick_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, std::shared_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace fraud::ingest
