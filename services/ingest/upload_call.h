// One Upload or ValidateOnly call served on gRPC's callback API, read by plain blocking code on
// a worker thread (WorkerPool):
//
//   reactor side (gRPC's threads)          worker side (one WorkerPool thread)
//   OnReadDone: hand the message over  ->  Read(&msg) blocks until a message, the end of the
//   OnCancel:   wake the worker        ->    stream, a client cancel, or Interrupt()
//                                          Complete(status): the call's one Finish
//
// Why not the sync API: a sync handler blocked in ServerReader::Read can only be woken by
// cancelling the call, and then the client sees CANCELLED whatever status the handler returns.
// Here the worker decides the status itself, so an idle cut-off (Interrupt from the watchdog)
// reaches the client as DEADLINE_EXCEEDED with its message. No reaction blocks: reactions only
// update state under a mutex; the waiting happens on the worker.
//
// The next message is requested only when the worker asks for it (Read), so HTTP/2 flow control
// still slows the sender while a batch is being scored and stored (backpressure), as before.
//
// Lifetime: the object deletes itself once both OnDone has run and the worker has called
// Complete. After Complete the worker must not touch it again. context() and response() belong
// to gRPC and are valid until Complete.
// Thread-safety: Read, end and Complete from the one worker; Interrupt from any thread.
#pragma once

#include <grpcpp/support/server_callback.h>

#include <atomic>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "fraud/ingest/v1/ingest.grpc.pb.h"

namespace fraud::ingest {

class UploadCall final : public grpc::ServerReadReactor<v1::UploadRequest> {
 public:
  // Why Read returned false.
  enum class End {
    kNone,         // it has not
    kEndOfStream,  // the client half-closed (or the stream broke)
    kCancelled,    // the client cancelled, its deadline passed, or the server is shutting down
    kInterrupted,  // Interrupt() was called (the idle watchdog)
  };

  UploadCall(grpc::CallbackServerContext* ctx, v1::UploadResponse* response);

  grpc::CallbackServerContext* context() const { return ctx_; }
  v1::UploadResponse* response() const { return response_; }

  // Blocks until the next message (true) or the end of the stream (false; see end()). Once it
  // has returned false it keeps returning false.
  bool Read(v1::UploadRequest* msg) ABSL_LOCKS_EXCLUDED(mu_);
  End end() const ABSL_LOCKS_EXCLUDED(mu_);
  // Makes a blocked Read, and every later one, return false with end() == kInterrupted (unless the
  // stream had already ended). Safe from any thread until Complete.
  void Interrupt() ABSL_LOCKS_EXCLUDED(mu_);
  // Sends `status` (with *response() when OK) and trailing metadata added so far. Called exactly
  // once, also after a cancel (gRPC requires a Finish for every call).
  void Complete(grpc::Status status);

 private:
  ~UploadCall() override = default;
  void OnReadDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;
  void Unref();
  bool ReadSettled() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::CallbackServerContext* const ctx_;
  v1::UploadResponse* const response_;
  // Two owners: gRPC (until OnDone) and the worker (until Complete).
  std::atomic<int> refs_{2};
  mutable absl::Mutex mu_;
  // Filled by gRPC between StartRead and OnReadDone; the worker takes it under mu_.
  v1::UploadRequest incoming_;
  bool read_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool have_message_ ABSL_GUARDED_BY(mu_) = false;
  End end_ ABSL_GUARDED_BY(mu_) = End::kNone;
};

}  // namespace fraud::ingest
