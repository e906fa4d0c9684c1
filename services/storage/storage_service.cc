#include "services/storage/storage_service.h"

#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/core/log.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"
#include "services/storage/append_worker.h"
#include "services/storage/artifact_store.h"
#include "services/storage/feedback_store.h"
#include "services/storage/live_scoring.h"
#include "services/storage/operating_point_store.h"
#include "services/storage/realised_metrics.h"
#include "services/storage/review_store.h"
#include "services/storage/storage_metrics.h"
#include "services/storage/upload_writer.h"

namespace fraud::storage {
namespace {

using rpc::ToGrpcStatus;

const grpc::Status& NotReady() {
  static const grpc::Status* const kStatus = new grpc::Status(
      grpc::StatusCode::UNAVAILABLE, "storage is starting: schema migrations not applied yet");
  return *kStatus;
}

absl::Time Deadline(const grpc::ServerContext* ctx) {
  const auto d = ctx->deadline();
  if (d == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(d);
}

// Logs a failed call once, at the edge (no feature values, only ids and codes).
grpc::Status Finish(const char* rpc_name, const grpc::ServerContext* ctx, const absl::Status& s) {
  if (!s.ok()) {
    const bool server_side =
        s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kUnavailable ||
        s.code() == absl::StatusCode::kUnknown || s.code() == absl::StatusCode::kResourceExhausted;
    if (server_side) {
      FRAUD_LOG(WARNING) << "call failed" << Kv("rpc", rpc_name)
                         << Kv("request_id", rpc::RequestId(ctx))
                         << Kv("code", rpc::CodeName(s.code())) << Kv("error", s.message());
    } else {
      FRAUD_LOG(DEBUG) << "call rejected" << Kv("rpc", rpc_name)
                       << Kv("request_id", rpc::RequestId(ctx))
                       << Kv("code", rpc::CodeName(s.code())) << Kv("error", s.message());
    }
  }
  return ToGrpcStatus(s);
}

const char* UploadResult(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
      return "invalid";
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kDeadlineExceeded:
      return "cancelled";
    default:
      return "failed";
  }
}

}  // namespace

grpc::Status StorageService::Admit(const grpc::ServerContext* ctx, bool write) const {
  if (!ready()) return NotReady();
  if (!write) return grpc::Status::OK;
  return ToGrpcStatus(rpc::CheckServiceToken(*ctx, service_token_));
}

grpc::Status StorageService::StoreUpload(grpc::ServerContext* ctx,
                                         grpc::ServerReader<v1::StoreUploadRequest>* reader,
                                         v1::StoreUploadResponse* response) {
  if (grpc::Status s = Admit(ctx, true); !s.ok()) return s;
  UploadWriter writer(pool_, Deadline(ctx));
  // After begin, rows and rows_end go to a worker that writes them up to
  // kUploadReadAheadMessages behind this thread's reads (append_worker.h). Other messages first
  // wait for it, so the writer is only ever used by one thread at a time.
  auto write_rows = [&writer](const v1::StoreUploadRequest& r) {
    return r.has_rows() ? writer.Append(r.rows()) : writer.EndRows();
  };
  std::optional<AppendWorker> worker;
  auto drain = [&]() -> absl::Status {
    if (!worker.has_value()) return absl::OkStatus();
    absl::Status s = worker->Drain();
    worker.reset();
    return s;
  };
  auto fail = [&](const absl::Status& s) {
    worker.reset();
    writer.Rollback();
    Metrics().Upload(UploadResult(s));
    return Finish("StoreUpload", ctx, s);
  };
  v1::StoreUploadRequest request;
  // HTTP/2 flow control holds the sender back once the worker is kUploadReadAheadMessages (or
  // kUploadReadAheadBytes) behind, so memory holds at most that much besides the batch in hand.
  while (reader->Read(&request)) {
    if (ctx->IsCancelled()) return fail(absl::CancelledError("upload cancelled; nothing stored"));
    absl::Status s;
    switch (request.kind_case()) {
      case v1::StoreUploadRequest::kBegin:
        s = drain();
        if (s.ok()) s = writer.Begin(request.begin());
        if (s.ok()) worker.emplace(write_rows);
        break;
      case v1::StoreUploadRequest::kRows:
      case v1::StoreUploadRequest::kRowsEnd:
        if (worker.has_value()) {
          s = worker->Push(std::move(request));
        } else {  // before begin: the writer's protocol error
          s = write_rows(request);
        }
        break;
      case v1::StoreUploadRequest::kCommit: {
        if (absl::Status d = drain(); !d.ok()) return fail(d);
        absl::StatusOr<v1::StoreUploadResponse> r = writer.Commit(request.commit());
        if (!r.ok()) return fail(r.status());
        *response = *std::move(r);
        FRAUD_LOG(INFO) << "upload stored" << Kv("request_id", rpc::RequestId(ctx))
                        << Kv("upload_id", response->upload().id())
                        << Kv("rows", response->upload().rows())
                        << Kv("duplicate_of", response->duplicate_of());
        return grpc::Status::OK;
      }
      default:
        s = drain();
        if (s.ok()) {
          s = absl::InvalidArgumentError(
              "empty StoreUploadRequest (no begin, rows, rows_end or commit)");
        }
    }
    if (!s.ok()) return fail(s);
  }
  if (ctx->IsCancelled()) return fail(absl::CancelledError("upload cancelled; nothing stored"));
  // A message the worker has not reported on yet may have failed: that error says more.
  if (absl::Status d = drain(); !d.ok()) return fail(d);
  return fail(absl::InvalidArgumentError("upload stream ended before commit; nothing stored"));
}

grpc::Status StorageService::GetUpload(grpc::ServerContext* ctx, const v1::GetUploadRequest* req,
                                       v1::GetUploadResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<v1::Upload> r = store_->GetUpload(req->upload_id());
  if (r.ok()) *resp->mutable_upload() = *std::move(r);
  return Finish("GetUpload", ctx, r.status());
}

grpc::Status StorageService::ListUploads(grpc::ServerContext* ctx,
                                         const v1::ListUploadsRequest* req,
                                         v1::ListUploadsResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<v1::ListUploadsResponse> r = store_->ListUploads(*req);
  if (r.ok()) *resp = *std::move(r);
  return Finish("ListUploads", ctx, r.status());
}

grpc::Status StorageService::ScanTransactions(
    grpc::ServerContext* ctx, const v1::ScanTransactionsRequest* req,
    grpc::ServerWriter<v1::ScanTransactionsResponse>* writer) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::Status s = store_->ScanTransactions(*req, [&](v1::ScanTransactionsResponse& batch) {
    // Write blocks while the client is slow (flow control), which in turn stops reading from
    // PostgreSQL: memory holds about one batch.
    return !ctx->IsCancelled() && writer->Write(batch);
  });
  return Finish("ScanTransactions", ctx, s);
}

grpc::Status StorageService::GetDataStats(grpc::ServerContext* ctx,
                                          const v1::GetDataStatsRequest* req,
                                          v1::GetDataStatsResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<v1::GetDataStatsResponse> r = store_->GetDataStats(*req);
  if (r.ok()) *resp = *std::move(r);
  return Finish("GetDataStats", ctx, r.status());
}

grpc::Status StorageService::RecordPredictions(grpc::ServerContext* ctx,
                                               const v1::RecordPredictionsRequest* req,
                                               v1::RecordPredictionsResponse* resp) {
  if (grpc::Status s = Admit(ctx, true); !s.ok()) return s;
  absl::StatusOr<int64_t> r = store_->RecordPredictions(*req);
  if (r.ok()) resp->set_recorded(*r);
  return Finish("RecordPredictions", ctx, r.status());
}

grpc::Status StorageService::ListPredictions(grpc::ServerContext* ctx,
                                             const v1::ListPredictionsRequest* req,
                                             v1::ListPredictionsResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<v1::ListPredictionsResponse> r = store_->ListPredictions(*req);
  if (r.ok()) *resp = *std::move(r);
  return Finish("ListPredictions", ctx, r.status());
}

grpc::Status StorageService::RegisterModel(grpc::ServerContext* ctx,
                                           const v1::RegisterModelRequest* req,
                                           v1::RegisterModelResponse* resp) {
  if (grpc::Status s = Admit(ctx, true); !s.ok()) return s;
  absl::StatusOr<v1::ModelVersion> r = store_->RegisterModel(req->model());
  if (r.ok()) {
    *resp->mutable_model() = *std::move(r);
    FRAUD_LOG(INFO) << "model registered" << Kv("request_id", rpc::RequestId(ctx))
                    << Kv("model_version", resp->model().version());
  }
  return Finish("RegisterModel", ctx, r.status());
}

grpc::Status StorageService::GetModel(grpc::ServerContext* ctx, const v1::GetModelRequest* req,
                                      v1::GetModelResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<v1::ModelVersion> r = store_->GetModel(req->version());
  if (r.ok()) *resp->mutable_model() = *std::move(r);
  return Finish("GetModel", ctx, r.status());
}

grpc::Status StorageService::ListModels(grpc::ServerContext* ctx, const v1::ListModelsRequest*,
                                        v1::ListModelsResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<std::vector<v1::ModelVersion>> r = store_->ListModels();
  if (r.ok()) {
    for (v1::ModelVersion& m : *r) *resp->add_models() = std::move(m);
  }
  return Finish("ListModels", ctx, r.status());
}

grpc::Status StorageService::SetChampion(grpc::ServerContext* ctx,
                                         const v1::SetChampionRequest* req,
                                         v1::SetChampionResponse* resp) {
  if (grpc::Status s = Admit(ctx, true); !s.ok()) return s;
  absl::StatusOr<v1::ChampionChange> r = store_->SetChampion(*req);
  if (r.ok()) {
    *resp->mutable_change() = *std::move(r);
    FRAUD_LOG(INFO) << "champion changed" << Kv("request_id", rpc::RequestId(ctx))
                    << Kv("model_version", resp->change().version())
                    << Kv("previous_version", resp->change().previous_version())
                    << Kv("actor", resp->change().actor());
  }
  return Finish("SetChampion", ctx, r.status());
}

grpc::Status StorageService::GetChampion(grpc::ServerContext* ctx, const v1::GetChampionRequest*,
                                         v1::GetChampionResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<v1::GetChampionResponse> r = store_->GetChampion();
  if (r.ok()) *resp = *std::move(r);
  return Finish("GetChampion", ctx, r.status());
}

grpc::Status StorageService::ListChampionHistory(grpc::ServerContext* ctx,
                                                 const v1::ListChampionHistoryRequest*,
                                                 v1::ListChampionHistoryResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<std::vector<v1::ChampionChange>> r = store_->ListChampionHistory();
  if (r.ok()) {
    for (v1::ChampionChange& c : *r) *resp->add_changes() = std::move(c);
  }
  return Finish("ListChampionHistory", ctx, r.status());
}

grpc::Status StorageService::AllocateModelVersion(grpc::ServerContext* ctx,
                                                  const v1::AllocateModelVersionRequest*,
                                                  v1::AllocateModelVersionResponse* resp) {
  if (grpc::Status s = Admit(ctx, true); !s.ok()) return s;
  absl::StatusOr<int64_t> r = store_->AllocateModelVersion();
  if (r.ok()) resp->set_version(*r);
  return Finish("AllocateModelVersion", ctx, r.status());
}

grpc::Status StorageService::PutModelArtifact(
    grpc::ServerContext* ctx, grpc::ServerReader<v1::PutModelArtifactRequest>* reader,
    v1::PutModelArtifactResponse* response) {
  if (grpc::Status s = Admit(ctx, true); !s.ok()) return s;
  ArtifactWriter writer(pool_, Deadline(ctx));
  v1::PutModelArtifactRequest request;
  // One chunk at a time, as StoreUpload: flow control holds the sender back.
  while (reader->Read(&request)) {
    if (ctx->IsCancelled()) break;
    absl::Status s;
    switch (request.kind_case()) {
      case v1::PutModelArtifactRequest::kBegin:
        s = writer.Begin(request.begin());
        break;
      case v1::PutModelArtifactRequest::kChunk:
        s = writer.Append(request.chunk());
        break;
      case v1::PutModelArtifactRequest::kCommit: {
        absl::StatusOr<v1::PutModelArtifactResponse> r = writer.Commit();
        if (!r.ok()) return Finish("PutModelArtifact", ctx, r.status());
        *response = *std::move(r);
        FRAUD_LOG(INFO) << "model artifact stored" << Kv("request_id", rpc::RequestId(ctx))
                        << Kv("version", response->version()) << Kv("files", response->files())
                        << Kv("bytes", response->total_bytes());
        return grpc::Status::OK;
      }
      default:
        s = absl::InvalidArgumentError(
            "empty PutModelArtifactRequest (no begin, chunk or commit)");
    }
    if (!s.ok()) return Finish("PutModelArtifact", ctx, s);
  }
  writer.Rollback();
  if (ctx->IsCancelled()) {
    return Finish("PutModelArtifact", ctx, absl::CancelledError("cancelled; nothing stored"));
  }
  return Finish("PutModelArtifact", ctx,
                absl::InvalidArgumentError("artifact stream ended before commit; nothing stored"));
}

grpc::Status StorageService::GetModelArtifact(
    grpc::ServerContext* ctx, const v1::GetModelArtifactRequest* req,
    grpc::ServerWriter<v1::GetModelArtifactResponse>* writer) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::Status s = ReadArtifact(*pool_, req->version(), [&](v1::GetModelArtifactResponse& msg) {
    return !ctx->IsCancelled() && writer->Write(msg);
  });
  return Finish("GetModelArtifact", ctx, s);
}

grpc::Status StorageService::CreateRun(grpc::ServerContext* ctx, const v1::CreateRunRequest* req,
                                       v1::CreateRunResponse* resp) {
  if (grpc::Status s = Admit(ctx, true); !s.ok()) return s;
  absl::StatusOr<v1::TrainingRun> r = store_->CreateRun(req->run());
  if (r.ok()) *resp->mutable_run() = *std::move(r);
  return Finish("CreateRun", ctx, r.status());
}

grpc::Status StorageService::UpdateRun(grpc::ServerContext* ctx, const v1::UpdateRunRequest* req,
                                       v1::UpdateRunResponse* resp) {
  if (grpc::Status s = Admit(ctx, true); !s.ok()) return s;
  absl::StatusOr<v1::TrainingRun> r = store_->UpdateRun(req->run());
  if (r.ok()) *resp->mutable_run() = *std::move(r);
  return Finish("UpdateRun", ctx, r.status());
}

grpc::Status StorageService::GetRun(grpc::ServerContext* ctx, const v1::GetRunRequest* req,
                                    v1::GetRunResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<v1::TrainingRun> r = store_->GetRun(req->run_id());
  if (r.ok()) *resp->mutable_run() = *std::move(r);
  return Finish("GetRun", ctx, r.status());
}

grpc::Status StorageService::ListRuns(grpc::ServerContext* ctx, const v1::ListRunsRequest* req,
                                      v1::ListRunsResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<v1::ListRunsResponse> r = store_->ListRuns(*req);
  if (r.ok()) *resp = *std::move(r);
  return Finish("ListRuns", ctx, r.status());
}

grpc::Status StorageService::RecordFeedback(grpc::ServerContext* ctx,
                                            grpc::ServerReader<v1::RecordFeedbackRequest>* reader,
                                            v1::RecordFeedbackResponse* response) {
  if (grpc::Status s = Admit(ctx, true); !s.ok()) return s;
  FeedbackWriter writer(pool_, Deadline(ctx));
  v1::RecordFeedbackRequest request;
  // One message at a time (flow control holds the sender back): memory holds one batch.
  while (reader->Read(&request)) {
    if (ctx->IsCancelled()) break;
    if (absl::Status s = writer.Add(request); !s.ok()) return Finish("RecordFeedback", ctx, s);
  }
  if (ctx->IsCancelled()) {
    writer.Rollback();
    return Finish("RecordFeedback", ctx, absl::CancelledError("feedback cancelled; nothing stored"));
  }
  absl::StatusOr<v1::RecordFeedbackResponse> r = writer.Finish();
  if (r.ok()) {
    *response = *std::move(r);
    FRAUD_LOG(INFO) << "feedback recorded" << Kv("request_id", rpc::RequestId(ctx))
                    << Kv("received", response->received()) << Kv("applied", response->applied())
                    << Kv("unchanged", response->unchanged())
                    << Kv("conflicts", response->conflicts())
                    << Kv("unknown", response->unknown());
  }
  return Finish("RecordFeedback", ctx, r.status());
}

grpc::Status StorageService::ListLabelHistory(grpc::ServerContext* ctx,
                                              const v1::ListLabelHistoryRequest* req,
                                              v1::ListLabelHistoryResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<v1::ListLabelHistoryResponse> r = fraud::storage::ListLabelHistory(*pool_, *req);
  if (r.ok()) *resp = *std::move(r);
  return Finish("ListLabelHistory", ctx, r.status());
}

grpc::Status StorageService::GetRealisedMetrics(grpc::ServerContext* ctx,
                                                const v1::GetRealisedMetricsRequest* req,
                                                v1::GetRealisedMetricsResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<v1::GetRealisedMetricsResponse> r =
      fraud::storage::GetRealisedMetrics(*pool_, *req);
  if (r.ok()) *resp = *std::move(r);
  return Finish("GetRealisedMetrics", ctx, r.status());
}

grpc::Status StorageService::RecordScoredTransactions(
    grpc::ServerContext* ctx, const v1::RecordScoredTransactionsRequest* req,
    v1::RecordScoredTransactionsResponse* resp) {
  if (grpc::Status s = Admit(ctx, true); !s.ok()) return s;
  absl::StatusOr<v1::RecordScoredTransactionsResponse> r =
      fraud::storage::RecordScoredTransactions(*pool_, *req);
  if (r.ok()) *resp = *std::move(r);
  return Finish("RecordScoredTransactions", ctx, r.status());
}

grpc::Status StorageService::ListReviewQueue(grpc::ServerContext* ctx,
                                             const v1::ListReviewQueueRequest* req,
                                             v1::ListReviewQueueResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<v1::ListReviewQueueResponse> r = fraud::storage::ListReviewQueue(*pool_, *req);
  if (r.ok()) *resp = *std::move(r);
  return Finish("ListReviewQueue", ctx, r.status());
}

grpc::Status StorageService::SubmitReview(grpc::ServerContext* ctx,
                                          const v1::SubmitReviewRequest* req,
                                          v1::SubmitReviewResponse* resp) {
  if (grpc::Status s = Admit(ctx, true); !s.ok()) return s;
  absl::StatusOr<v1::SubmitReviewResponse> r =
      fraud::storage::SubmitReview(*pool_, Deadline(ctx), *req);
  if (r.ok()) {
    *resp = *std::move(r);
    FRAUD_LOG(INFO) << "review recorded" << Kv("request_id", rpc::RequestId(ctx))
                    << Kv("upload_id", resp->upload_id()) << Kv("line", resp->line())
                    << Kv("disposition", static_cast<int>(req->disposition()))
                    << Kv("label_outcome", resp->label_outcome());
  }
  return Finish("SubmitReview", ctx, r.status());
}

grpc::Status StorageService::SetOperatingPoint(grpc::ServerContext* ctx,
                                               const v1::SetOperatingPointRequest* req,
                                               v1::SetOperatingPointResponse* resp) {
  if (grpc::Status s = Admit(ctx, true); !s.ok()) return s;
  absl::StatusOr<v1::OperatingPoint> r = fraud::storage::SetOperatingPoint(*pool_, req->point());
  if (r.ok()) {
    *resp->mutable_point() = *std::move(r);
    FRAUD_LOG(INFO) << "operating point changed" << Kv("request_id", rpc::RequestId(ctx))
                    << Kv("model_version", resp->point().version())
                    << Kv("threshold", resp->point().threshold())
                    << Kv("previous_threshold", resp->point().previous_threshold())
                    << Kv("actor", resp->point().actor());
  }
  return Finish("SetOperatingPoint", ctx, r.status());
}

grpc::Status StorageService::GetOperatingPoint(grpc::ServerContext* ctx,
                                               const v1::GetOperatingPointRequest* req,
                                               v1::GetOperatingPointResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<v1::GetOperatingPointResponse> r =
      fraud::storage::GetOperatingPoint(*pool_, req->version(), req->include_history());
  if (r.ok()) *resp = *std::move(r);
  return Finish("GetOperatingPoint", ctx, r.status());
}

grpc::Status StorageService::ListOperatingPointHistory(
    grpc::ServerContext* ctx, const v1::ListOperatingPointHistoryRequest* req,
    v1::ListOperatingPointHistoryResponse* resp) {
  if (grpc::Status s = Admit(ctx, false); !s.ok()) return s;
  absl::StatusOr<std::vector<v1::OperatingPoint>> r =
      fraud::storage::ListOperatingPointHistory(*pool_, req->version());
  if (r.ok()) {
    for (v1::OperatingPoint& p : *r) *resp->add_points() = std::move(p);
  }
  return Finish("ListOperatingPointHistory", ctx, r.status());
}

}  // namespace fraud::storage
