#include "services/ingest/upload_call.h"

#include <utility>

namespace fraud::ingest {

UploadCall::UploadCall(grpc::CallbackServerContext* ctx, v1::UploadResponse* response)
    : ctx_(ctx), response_(response) {}

bool UploadCall::ReadSettled() const { return have_message_ || end_ != End::kNone; }

bool UploadCall::Read(v1::UploadRequest* msg) {
  bool start = false;
  {
    absl::MutexLock l(&mu_);
    if (end_ != End::kNone) return false;
    if (!read_pending_ && !have_message_) start = read_pending_ = true;
  }
  // Outside mu_: gRPC may run OnReadDone before StartRead returns.
  if (start) StartRead(&incoming_);
  absl::MutexLock l(&mu_);
  mu_.Await(absl::Condition(this, &UploadCall::ReadSettled));
  // A cancel or an interrupt wins over a message that arrived just before it.
  if (end_ != End::kNone) return false;
  have_message_ = false;
  msg->Swap(&incoming_);
  return true;
}

UploadCall::End UploadCall::end() const {
  absl::MutexLock l(&mu_);
  return end_;
}

void UploadCall::Interrupt() {
  absl::MutexLock l(&mu_);
  if (end_ == End::kNone) end_ = End::kInterrupted;
}

void UploadCall::OnReadDone(bool ok) {
  absl::MutexLock l(&mu_);
  read_pending_ = false;
  if (ok) {
    have_message_ = true;
  } else if (end_ == End::kNone) {
    end_ = End::kEndOfStream;
  }
}

void UploadCall::OnCancel() {
  absl::MutexLock l(&mu_);
  if (end_ == End::kNone || end_ == End::kEndOfStream) end_ = End::kCancelled;
}

void UploadCall::Complete(grpc::Status status) {
  Finish(std::move(status));
  Unref();
}

void UploadCall::OnDone() { Unref(); }

void UploadCall::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

}  // namespace fraud::ingest
