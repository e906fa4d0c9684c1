#include "services/ingest/idle_watchdog.h"

#include <utility>

#include "absl/time/clock.h"

namespace fraud::ingest {

IdleWatchdog::Lease::Lease(IdleWatchdog* dog, uint64_t id, std::shared_ptr<Entry> entry)
    : dog_(dog), id_(id), entry_(std::move(entry)) {}

IdleWatchdog::Lease::Lease(Lease&& other) noexcept
    : dog_(std::exchange(other.dog_, nullptr)), id_(other.id_), entry_(std::move(other.entry_)) {}

IdleWatchdog::Lease::~Lease() {
  if (dog_ != nullptr) dog_->Forget(id_);
}

void IdleWatchdog::Lease::Waiting() {
  entry_->waiting_since.store(absl::ToUnixNanos(absl::Now()), std::memory_order_relaxed);
}

void IdleWatchdog::Lease::Busy() { entry_->waiting_since.store(0, std::memory_order_relaxed); }

bool IdleWatchdog::Lease::fired() const { return entry_->fired.load(); }

IdleWatchdog::IdleWatchdog(absl::Duration idle_timeout, absl::Duration tick)
    : idle_timeout_(idle_timeout), tick_(tick) {
  if (idle_timeout_ > absl::ZeroDuration()) thread_ = std::thread([this] { Loop(); });
}

IdleWatchdog::~IdleWatchdog() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

IdleWatchdog::Lease IdleWatchdog::Watch(std::function<void()> on_idle) {
  auto entry = std::make_shared<Entry>();
  entry->on_idle = std::move(on_idle);
  absl::MutexLock l(&mu_);
  const uint64_t id = next_id_++;
  entries_.emplace(id, entry);
  return Lease(this, id, std::move(entry));
}

void IdleWatchdog::Forget(uint64_t id) {
  // Holding mu_ here waits out an on_idle running for this lease.
  absl::MutexLock l(&mu_);
  entries_.erase(id);
}

void IdleWatchdog::Loop() {
  absl::MutexLock l(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_), tick_)) {
    const int64_t now = absl::ToUnixNanos(absl::Now());
    const int64_t limit = absl::ToInt64Nanoseconds(idle_timeout_);
    for (auto& [id, entry] : entries_) {
      const int64_t since = entry->waiting_since.load(std::memory_order_relaxed);
      if (since == 0 || now - since < limit || entry->fired.load()) continue;
      entry->fired.store(true);
      entry->on_idle();
    }
  }
}

}  // namespace fraud::ingest
