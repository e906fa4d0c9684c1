// gRPC handlers of fraud.ingest.v1.IngestService. Thin: they read the stream, drive an
// UploadSession (the logic, transport-free) and map its status once with rpc::ToGrpcStatus.
//
// Both RPCs use gRPC's callback API (UploadCall) with the blocking work (parsing, scoring and
// storing, which wait on inference and storage) on a WorkerPool thread, never on gRPC's
// threads; see upload_call.h for why (an idle cut-off must reach the client as
// DEADLINE_EXCEEDED, which a sync handler cannot do).
//
// Upload (client stream: the first message carries options, the rest data chunks):
//   - one StoreUpload stream to storage is opened at the start and holds one transaction; one
//     Predict per batch; the next chunk is read only after the batch has been written (HTTP/2
//     flow control then slows the sender: backpressure);
//   - OK: the summary (upload_id, or duplicate_of and upload_id = the earlier upload);
//   - INVALID_ARGUMENT: bad options or a bad file (strict: the first bad row; lenient: no good
//     row at all). The message names line/column/reason, nothing is stored, and the summary with
//     its errors is attached as binary trailing metadata `fraud-upload-summary-bin`
//     (services/common/rpc/summary_trailer.h);
//   - RESOURCE_EXHAUSTED "upload exceeds the 2 GiB limit" (the configured limit), summary
//     attached as well; or "ingest is busy: ... uploads at once" (no summary) when
//     `max_concurrent_uploads` uploads and validations are already running;
//   - UNAVAILABLE: storage unreachable (nothing stored), or scoring broke mid-upload;
//   - DEADLINE_EXCEEDED "no data arrived for 60 s: the stalled upload was cut off; nothing
//     stored" when the client sent nothing for `idle_timeout` (before or after the options);
//     logged and counted as result="idle_timeout"; the storage stream is released;
//   - CANCELLED: the client went away; the storage stream is cancelled, nothing stored;
//   - UNAUTHENTICATED: a token is configured and the call lacks "authorization: Bearer <token>".
//   No model serving is not an error: rows are stored unscored and the summary says so.
// ValidateOnly: the same parsing and the same status codes, nothing stored or scored.
//
// Metrics: fraud_ingest_uploads_total{rpc,result}, fraud_ingest_rows_total{result},
// fraud_ingest_bytes_total, fraud_ingest_upload_duration_seconds{rpc},
// fraud_ingest_upload_stage_seconds{stage} (seconds from a stored upload's first byte to the end
// of each stage; the summary's `stages` has the same figures), fraud_ingest_drift_flagged_features
// (features the latest stored upload with a drift verdict flagged).
// Thread-safety: calls run concurrently, each on its own worker with its own session and
// streams. The service must outlive the server (its destructor waits for running workers).
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fraud/inference/v1/inference.grpc.pb.h"
#include "fraud/ingest/v1/ingest.grpc.pb.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "services/ingest/idle_watchdog.h"
#include "services/ingest/upload_call.h"
#include "services/ingest/upload_session.h"
#include "services/ingest/worker_pool.h"

namespace fraud::ingest {

struct IngestOptions {
  // Rows per batch sent to inference and storage.
  int64_t batch_rows = 8192;
  int64_t max_upload_bytes = int64_t{2} << 30;
  // Default of UploadOptions.max_errors when the client leaves it 0.
  int max_errors = 100;
  // Default of UploadOptions.top_k when the client leaves it 0.
  int top_k = 20;
  // Reason codes stored with each alert: contributions per explanation (0 = store none).
  int explain_top_k = 5;
  // Deadline of each GetModel/Predict call.
  absl::Duration rpc_timeout = absl::Seconds(30);
  // Deadline of the StoreUpload stream (the whole upload).
  absl::Duration upload_timeout = absl::Hours(1);
  // An upload whose client sends nothing for this long is cut off (0 = never); see IdleWatchdog.
  absl::Duration idle_timeout = absl::Seconds(60);
  // Bearer token Upload requires ("" = none).
  std::string upload_token;
  // Uploads and validations served at once (one worker thread each); more are refused with
  // RESOURCE_EXHAUSTED. The sync server this replaces allowed its thread cap (16) minus 2.
  int max_concurrent_uploads = 14;
};

class IngestService final : public v1::IngestService::CallbackService {
 public:
  // Channels are shared with whoever else uses them; stubs are made once here.
  IngestService(std::shared_ptr<grpc::ChannelInterface> storage,
                std::shared_ptr<grpc::ChannelInterface> inference, IngestOptions options);

  grpc::ServerReadReactor<v1::UploadRequest>* Upload(grpc::CallbackServerContext* ctx,
                                                     v1::UploadResponse* response) override;
  grpc::ServerReadReactor<v1::UploadRequest>* ValidateOnly(grpc::CallbackServerContext* ctx,
                                                           v1::UploadResponse* response) override;

 private:
  // Hands the call to a worker, or refuses it as busy.
  grpc::ServerReadReactor<v1::UploadRequest>* Start(grpc::CallbackServerContext* ctx,
                                                    v1::UploadResponse* response, bool store);
  // What the last phase (Report) needs to know about the call.
  struct CallReport {
    absl::Time start;
    const char* rpc_name = "";
    bool store = false;
    std::string request_id;
  };

  // The whole call, on a worker thread, one phase after the other; returns the status to send.
  grpc::Status Run(UploadCall* call, bool store);
  // Phase 1: the bearer token (Upload only). UNAUTHENTICATED without it.
  absl::Status Authorize(const UploadCall& call, bool store) const;
  // Phase 2: the first message, which must carry valid options; they become the session's.
  absl::StatusOr<UploadSessionOptions> ReadOptions(UploadCall* call, IdleWatchdog::Lease* lease);
  // Phase 3: every later message (data chunks) into the session until the stream ends; a stream
  // that was cut off (cancel, idle) aborts the session.
  absl::Status StreamChunks(UploadCall* call, UploadSession* session, IdleWatchdog::Lease* lease);
  // Phase 4: the last batch, metrics and commit; the summary goes into the response.
  static absl::Status FinishUpload(UploadSession* session, v1::UploadResponse* response);
  // Phase 5 (always): the summary trailer of a failed upload, the metrics and the log line.
  static void Report(const CallReport& report, UploadCall* call, const UploadSession* session,
                     const absl::Status& status);

  const IngestOptions options_;
  std::unique_ptr<storage::v1::StorageService::Stub> storage_;
  std::unique_ptr<inference::v1::InferenceService::Stub> inference_;
  IdleWatchdog watchdog_;
  // Last: destroyed first, waiting for the workers, which use everything above.
  WorkerPool workers_;
};

// Makes a client-supplied file name safe to store and show: invalid UTF-8 -> InvalidArgument;
// control characters become '_'; cut to 255 bytes at a character boundary.
absl::StatusOr<std::string> SanitizeFileName(const std::string& name);

}  // namespace fraud::ingest
