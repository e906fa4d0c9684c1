#include "services/storage/append_worker.h"

#include <utility>

namespace fraud::storage {

namespace v1 = ::fraud::storage::v1;

AppendWorker::AppendWorker(Write write, size_t capacity, size_t max_bytes)
    : write_(std::move(write)),
      capacity_(capacity < 1 ? 1 : capacity),
      max_bytes_(max_bytes),
      thread_([this] { Run(); }) {}

AppendWorker::~AppendWorker() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    abandon_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status AppendWorker::Push(v1::StoreUploadRequest request) {
  const size_t bytes = request.ByteSizeLong();
  absl::MutexLock lock(&mu_);
  incoming_bytes_ = bytes;
  mu_.Await(absl::Condition(
      +[](AppendWorker* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
        return !w->status_.ok() || w->queue_.empty() ||
               (w->queue_.size() < w->capacity_ &&
                w->queued_bytes_ + w->incoming_bytes_ <= w->max_bytes_);
      },
      this));
  if (!status_.ok()) return status_;
  queue_.emplace_back(std::move(request), bytes);
  queued_bytes_ += bytes;
  return absl::OkStatus();
}

absl::Status AppendWorker::Drain() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  return status_;
}

void AppendWorker::Run() {
  for (;;) {
    v1::StoreUploadRequest request;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](AppendWorker* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
            return w->closed_ || !w->queue_.empty();
          },
          this));
      if (abandon_ || queue_.empty()) return;
      request = std::move(queue_.front().first);
      queued_bytes_ -= queue_.front().second;
      queue_.pop_front();
    }
    absl::Status s = write_(request);
    if (!s.ok()) {
      absl::MutexLock lock(&mu_);
      status_ = std::move(s);
      queue_.clear();
      queued_bytes_ = 0;
      return;
    }
  }
}

}  // namespace fraud::storage
