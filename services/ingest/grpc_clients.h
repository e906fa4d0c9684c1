// The production Scorer and UploadSink of an upload: gRPC clients of the inference and storage
// services. One instance per upload (they carry the upload's request id and its storage stream).
//
// Every call carries a deadline and the upload's x-request-id:
//   - GetModel / Predict: `rpc_timeout` each;
//   - StoreUpload (one client stream for the whole upload, so storage holds one transaction):
//     `stream_timeout` for the whole stream, since an upload lasts as long as its file takes to
//     arrive.
//
// Status mapping (absl codes, converted from gRPC with rpc::FromGrpcStatus):
//   GrpcScorer (every call)   RESOURCE_EXHAUSTED (inference shedding load) is retried with
//                             exponential backoff (10 ms .. 500 ms) until the call's rpc_timeout:
//                             a busy inference slows an upload down instead of failing it or
//                             leaving it unscored.
//   GrpcScorer::ServingModel  NotFound when inference answers "no model loaded yet"; the gRPC
//                             error otherwise (UNAVAILABLE when it cannot be reached).
//   GrpcStorageSink           UNAVAILABLE "storage service unavailable: ...; nothing stored" when
//                             storage cannot be reached or the stream breaks; storage's own error
//                             (annotated "storage: ...") otherwise; CANCELLED at Commit when the
//                             incoming call was cancelled (the commit is then never sent).
//
// Thread-safety: none; used by the one thread that runs the upload.
#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/sync_stream.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "fraud/inference/v1/inference.grpc.pb.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "services/ingest/upload_session.h"

namespace fraud::ingest {

class GrpcScorer final : public Scorer {
 public:
  // `stub` is not owned and must outlive this object.
  GrpcScorer(inference::v1::InferenceService::StubInterface* stub, std::string request_id,
             absl::Duration rpc_timeout);

  absl::StatusOr<common::v1::ModelManifest> ServingModel() override;
  absl::StatusOr<common::v1::ScoreBatch> Score(absl::Span<const double> features,
                                               absl::Span<const int64_t> line_numbers) override;
  // Asynchronous Predict (gRPC callback API): returns as soon as the request is sent.
  std::unique_ptr<PendingScore> StartScore(absl::Span<const double> features,
                                           absl::Span<const int64_t> line_numbers) override;
  // Synchronous Predict with explain = true and top_k (same deadline and busy retries).
  absl::StatusOr<ExplainedRows> Explain(absl::Span<const double> features, int top_k) override;

 private:
  inference::v1::InferenceService::StubInterface* const stub_;
  const std::string request_id_;
  const absl::Duration rpc_timeout_;
  inference::v1::PredictRequest request_;
};

class GrpcStorageSink final : public UploadSink {
 public:
  // `stub` is not owned and must outlive this object. `incoming` (may be null) is the upload's
  // server call: Commit refuses to commit once it is cancelled.
  GrpcStorageSink(storage::v1::StorageService::StubInterface* stub, std::string request_id,
                  absl::Duration stream_timeout, const grpc::ServerContextBase* incoming);
  ~GrpcStorageSink() override;

  absl::Status Begin(const std::string& file_name, storage::v1::UploadMode mode) override;
  absl::Status Append(const csv::RowBatch& rows, const common::v1::ScoreBatch* scores,
                      const RowExplanations& explanations) override;
  // Sends rows_end from another thread, so that a stream held back by flow control (storage
  // still writing the last batches) does not hold the caller's summary back; Commit and Abort
  // wait for it.
  absl::Status EndRows() override;
  absl::StatusOr<storage::v1::StoreUploadResponse> Commit(
      const storage::v1::UploadCommit& commit) override;
  void Abort() override;

 private:
  // Waits for EndRows' write; false when it failed.
  bool JoinEndRows();

  // Ends the broken stream and returns its status with context.
  absl::Status StreamFailed(const char* step);
  static absl::Status MapStorageError(const grpc::Status& status, const char* step);

  storage::v1::StorageService::StubInterface* const stub_;
  const std::string request_id_;
  const absl::Duration stream_timeout_;
  const grpc::ServerContextBase* const incoming_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientWriterInterface<storage::v1::StoreUploadRequest>> writer_;
  storage::v1::StoreUploadResponse response_;
  storage::v1::StoreUploadRequest request_;
  bool done_ = false;
  std::thread end_rows_;
  storage::v1::StoreUploadRequest end_rows_request_;
  bool end_rows_ok_ = true;  // written by end_rows_ until joined
};

inline constexpr absl::Duration kBusyFirstBackoff = absl::Milliseconds(10);
inline constexpr absl::Duration kBusyMaxBackoff = absl::Milliseconds(500);

// Calls `call` again (with a fresh context carrying `deadline` and `request_id`) while `status`
// is RESOURCE_EXHAUSTED and the next attempt can start before `deadline`, sleeping 10 ms, 20 ms,
// ... (at most 500 ms) in between; returns the last status. Other statuses return at once.
grpc::Status RetryWhileBusy(const std::string& request_id, absl::Time deadline,
                            const std::function<grpc::Status(grpc::ClientContext*)>& call,
                            grpc::Status status);

// Fills a Predict request with features and line numbers only (never labels).
void FillPredictRequest(absl::Span<const double> features, absl::Span<const int64_t> line_numbers,
                        inference::v1::PredictRequest* request);
// Maps a failed Predict/GetModel: "no model loaded yet" becomes NotFound, anything else keeps its
// code (rpc::FromGrpcStatus).
absl::Status MapInferenceError(const grpc::Status& status);

// Copies a validated batch into its proto twin (features, labels, line numbers).
void ToProto(const csv::RowBatch& rows, common::v1::TransactionBatch* out);

}  // namespace fraud::ingest
