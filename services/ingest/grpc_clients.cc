#include "services/ingest/grpc_clients.h"

#include <functional>
#include <iterator>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"

namespace fraud::ingest {

void ToProto(const csv::RowBatch& rows, common::v1::TransactionBatch* out) {
  out->set_num_rows(static_cast<uint32_t>(rows.num_rows()));
  out->mutable_features()->Assign(rows.features.begin(), rows.features.end());
  out->mutable_labels()->Assign(rows.labels.begin(), rows.labels.end());
  out->mutable_line_numbers()->Assign(rows.line_numbers.begin(), rows.line_numbers.end());
}

void FillPredictRequest(absl::Span<const double> features, absl::Span<const int64_t> line_numbers,
                        inference::v1::PredictRequest* request) {
  common::v1::TransactionBatch* rows = request->mutable_rows();
  rows->Clear();
  rows->set_num_rows(static_cast<uint32_t>(line_numbers.size()));
  rows->mutable_features()->Assign(features.begin(), features.end());
  rows->mutable_line_numbers()->Assign(line_numbers.begin(), line_numbers.end());
}

absl::Status MapInferenceError(const grpc::Status& status) {
  // The inference service answers UNAVAILABLE "no model loaded yet" until its first load; that is
  // a state of the service, not a failure to reach it.
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      absl::StrContains(status.error_message(), "no model")) {
    return absl::NotFoundError(status.error_message());
  }
  return rpc::FromGrpcStatus(status);
}

grpc::Status RetryWhileBusy(const std::string& request_id, absl::Time deadline,
                            const std::function<grpc::Status(grpc::ClientContext*)>& call,
                            grpc::Status status) {
  absl::Duration backoff = kBusyFirstBackoff;
  while (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
         absl::Now() + backoff < deadline) {
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, kBusyMaxBackoff);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(deadline));
    ctx.AddMetadata("x-request-id", request_id);
    status = call(&ctx);
  }
  return status;
}

namespace {

// One Predict in flight on the callback API. The context, request and response live here until
// the callback has run, so destroying the handle early cancels the call and waits for it.
class GrpcPendingScore final : public PendingScore {
 public:
  GrpcPendingScore(inference::v1::InferenceService::StubInterface* stub,
                   const std::string& request_id, absl::Duration timeout,
                   absl::Span<const double> features, absl::Span<const int64_t> line_numbers)
      : stub_(stub), request_id_(request_id), deadline_(absl::Now() + timeout) {
    ctx_.set_deadline(absl::ToChronoTime(deadline_));
    ctx_.AddMetadata("x-request-id", request_id);
    FillPredictRequest(features, line_numbers, &request_);
    stub->async()->Predict(&ctx_, &request_, &response_, [this](grpc::Status s) {
      status_ = std::move(s);
      done_.Notify();
    });
  }
  ~GrpcPendingScore() override {
    if (!done_.HasBeenNotified()) ctx_.TryCancel();
    done_.WaitForNotification();
  }
  absl::StatusOr<common::v1::ScoreBatch> Wait() override {
    done_.WaitForNotification();
    // Inference sheds load when its threads are busy; within the deadline that is worth waiting
    // for (synchronously: this batch loses its overlap, the upload does not fail).
    status_ = RetryWhileBusy(
        request_id_, deadline_,
        [this](grpc::ClientContext* ctx) { return stub_->Predict(ctx, request_, &response_); },
        std::move(status_));
    if (!status_.ok()) return MapInferenceError(status_);
    return std::move(*response_.mutable_scores());
  }

 private:
  inference::v1::InferenceService::StubInterface* const stub_;
  const std::string request_id_;
  const absl::Time deadline_;
  grpc::ClientContext ctx_;
  inference::v1::PredictRequest request_;
  inference::v1::PredictResponse response_;
  grpc::Status status_;
  absl::Notification done_;
};

}  // namespace

GrpcScorer::GrpcScorer(inference::v1::InferenceService::StubInterface* stub, std::string request_id,
                       absl::Duration rpc_timeout)
    : stub_(stub), request_id_(std::move(request_id)), rpc_timeout_(rpc_timeout) {}

absl::StatusOr<common::v1::ModelManifest> GrpcScorer::ServingModel() {
  grpc::ClientContext ctx;
  const absl::Time deadline = absl::Now() + rpc_timeout_;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  ctx.AddMetadata("x-request-id", request_id_);
  const inference::v1::GetModelRequest request;
  inference::v1::GetModelResponse response;
  grpc::Status s = stub_->GetModel(&ctx, request, &response);
  s = RetryWhileBusy(
      request_id_, deadline,
      [&](grpc::ClientContext* c) { return stub_->GetModel(c, request, &response); },
      std::move(s));
  if (!s.ok()) return MapInferenceError(s);
  common::v1::ModelManifest manifest = std::move(*response.mutable_manifest());
  if (manifest.version() == 0) manifest.set_version(response.version());
  return manifest;
}

absl::StatusOr<common::v1::ScoreBatch> GrpcScorer::Score(absl::Span<const double> features,
                                                         absl::Span<const int64_t> line_numbers) {
  grpc::ClientContext ctx;
  const absl::Time deadline = absl::Now() + rpc_timeout_;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  ctx.AddMetadata("x-request-id", request_id_);
  // Only features and line numbers travel: labels stay in ingest.
  FillPredictRequest(features, line_numbers, &request_);
  inference::v1::PredictResponse response;
  grpc::Status s = stub_->Predict(&ctx, request_, &response);
  s = RetryWhileBusy(
      request_id_, deadline,
      [&](grpc::ClientContext* c) { return stub_->Predict(c, request_, &response); },
      std::move(s));
  if (!s.ok()) return MapInferenceError(s);
  return std::move(*response.mutable_scores());
}

absl::StatusOr<ExplainedRows> GrpcScorer::Explain(absl::Span<const double> features,
                                                  int top_k) {
  grpc::ClientContext ctx;
  const absl::Time deadline = absl::Now() + rpc_timeout_;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  ctx.AddMetadata("x-request-id", request_id_);
  inference::v1::PredictRequest request;
  common::v1::TransactionBatch* rows = request.mutable_rows();
  rows->set_num_rows(static_cast<uint32_t>(features.size() / csv::kNumFeatures));
  rows->mutable_features()->Assign(features.begin(), features.end());
  request.set_explain(true);
  request.set_top_k(top_k);
  inference::v1::PredictResponse response;
  grpc::Status s = stub_->Predict(&ctx, request, &response);
  s = RetryWhileBusy(
      request_id_, deadline,
      [&](grpc::ClientContext* c) { return stub_->Predict(c, request, &response); },
      std::move(s));
  if (!s.ok()) return MapInferenceError(s);
  ExplainedRows out;
  out.model_version = response.scores().model_version();
  out.explanations.assign(std::make_move_iterator(response.mutable_explanations()->begin()),
                          std::make_move_iterator(response.mutable_explanations()->end()));
  return out;
}

std::unique_ptr<PendingScore> GrpcScorer::StartScore(absl::Span<const double> features,
                                                     absl::Span<const int64_t> line_numbers) {
  if (stub_->async() == nullptr) return Scorer::StartScore(features, line_numbers);  // a mock
  return std::make_unique<GrpcPendingScore>(stub_, request_id_, rpc_timeout_, features,
                                            line_numbers);
}

GrpcStorageSink::GrpcStorageSink(storage::v1::StorageService::StubInterface* stub,
                                 std::string request_id, absl::Duration stream_timeout,
                                 const grpc::ServerContextBase* incoming)
    : stub_(stub),
      request_id_(std::move(request_id)),
      stream_timeout_(stream_timeout),
      incoming_(incoming) {}

GrpcStorageSink::~GrpcStorageSink() {
  Abort();
  JoinEndRows();
}

absl::Status GrpcStorageSink::MapStorageError(const grpc::Status& status, const char* step) {
  const absl::Status s = rpc::FromGrpcStatus(status);
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
      return absl::UnavailableError(
          absl::StrCat("storage service unavailable: ", s.message(), "; nothing stored"));
    case absl::StatusCode::kDeadlineExceeded:
      return absl::DeadlineExceededError(absl::StrCat("storage did not finish the upload in time (",
                                                      step, "): ", s.message(),
                                                      "; nothing stored"));
    default:
      return absl::Status(s.code(), absl::StrCat("storage (", step, "): ", s.message()));
  }
}

absl::Status GrpcStorageSink::StreamFailed(const char* step) {
  done_ = true;
  const grpc::Status status = writer_->Finish();
  if (status.ok()) {
    // The server closed the stream early without an error: treat it as a broken stream.
    return absl::UnavailableError(
        absl::StrCat("storage closed the upload stream during ", step, "; nothing stored"));
  }
  return MapStorageError(status, step);
}

absl::Status GrpcStorageSink::Begin(const std::string& file_name, storage::v1::UploadMode mode) {
  ctx_ = std::make_unique<grpc::ClientContext>();
  rpc::SetDeadline(ctx_.get(), stream_timeout_);
  ctx_->AddMetadata("x-request-id", request_id_);
  writer_ = stub_->StoreUpload(ctx_.get(), &response_);
  request_.Clear();
  request_.mutable_begin()->set_file_name(file_name);
  request_.mutable_begin()->set_mode(mode);
  if (!writer_->Write(request_)) return StreamFailed("begin");
  return absl::OkStatus();
}

absl::Status GrpcStorageSink::Append(const csv::RowBatch& rows,
                                     const common::v1::ScoreBatch* scores,
                                     const RowExplanations& explanations) {
  if (writer_ == nullptr || done_ || end_rows_.joinable()) {
    return absl::FailedPreconditionError("storage stream is not open");
  }
  storage::v1::UploadRows* out = request_.mutable_rows();
  ToProto(rows, out->mutable_rows());
  if (scores != nullptr) {
    *out->mutable_scores() = *scores;
  } else {
    out->clear_scores();
  }
  *out->mutable_explanations() = explanations;
  if (!writer_->Write(request_)) return StreamFailed("rows");
  return absl::OkStatus();
}

absl::Status GrpcStorageSink::EndRows() {
  if (writer_ == nullptr || done_ || end_rows_.joinable()) {
    return absl::FailedPreconditionError("storage stream is not open");
  }
  end_rows_request_.mutable_rows_end();
  end_rows_ = std::thread([this] { end_rows_ok_ = writer_->Write(end_rows_request_); });
  return absl::OkStatus();
}

bool GrpcStorageSink::JoinEndRows() {
  if (end_rows_.joinable()) end_rows_.join();
  return end_rows_ok_;
}

absl::StatusOr<storage::v1::StoreUploadResponse> GrpcStorageSink::Commit(
    const storage::v1::UploadCommit& commit) {
  if (writer_ == nullptr || done_) {
    return absl::FailedPreconditionError("storage stream is not open");
  }
  if (!JoinEndRows()) return StreamFailed("rows_end");
  if (incoming_ != nullptr && incoming_->IsCancelled()) {
    Abort();
    return absl::CancelledError("the client cancelled the upload; nothing stored");
  }
  request_.Clear();
  *request_.mutable_commit() = commit;
  if (!writer_->Write(request_)) return StreamFailed("commit");
  writer_->WritesDone();
  done_ = true;
  const grpc::Status status = writer_->Finish();
  if (!status.ok()) return MapStorageError(status, "commit");
  return response_;
}

void GrpcStorageSink::Abort() {
  if (writer_ == nullptr || done_) return;
  done_ = true;
  // Cancelling the stream makes storage roll its transaction back (and ends a rows_end write
  // that flow control holds).
  ctx_->TryCancel();
  JoinEndRows();
  writer_->Finish();
}

}  // namespace fraud::ingest
