#include "services/storage/append_worker.h"

#include <utility>

namespace fraud::storage {

namespace v1 = ::fraud::storage::v1;

AppendWorker::AppendWorker(Write write, size_t capacity)
    : write_(std::move(write)), capacity_(capacity < 1 ? 1 : capacity), thread_([this] { Run(); }) {}

AppendWorker::~AppendWorker() {
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    abandon_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status AppendWorker::Push(v1::StoreUploadRequest request) {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](AppendWorker* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
        return !w->status_.ok() || w->queue_.size() < w->capacity_;
      },
      this));
  if (!status_.ok()) return status_;
  queue_.push_back(std::move(request));
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
      request = std::move(queue_.front());
      queue_.pop_front();
    }
    absl::Status s = write_(request);
    if (!s.ok()) {
      absl::MutexLock lock(&mu_);
      status_ = std::move(s);
      queue_.clear();
      return;
    }
  }
}

}  // namespace fraud::storage
