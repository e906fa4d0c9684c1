#include "services/training/training_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/core/log.h"
#include "services/common/core/status_macros.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/grpc_status.h"
#include "services/training/evaluation.h"
#include "services/training/promotion.h"
#include "services/training/training_metrics.h"

namespace fraud::training {

using rpc::ToGrpcStatus;

TrainingService::TrainingService(RunManager* runs, StorageApi* storage, InferenceApi* inference,
                                 PipelineOptions pipeline, TrainingServiceOptions options)
    : runs_(runs),
      storage_(storage),
      inference_(inference),
      pipeline_(std::move(pipeline)),
      options_(std::move(options)),
      what_if_(storage, pipeline_.model_dir) {}

grpc::Status TrainingService::StartRun(grpc::ServerContext* ctx,
                                       const training::v1::StartRunRequest* request,
                                       training::v1::StartRunResponse* response) {
  if (absl::Status s = rpc::CheckBearerToken(*ctx, options_.admin_token); !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::StatusOr<std::map<std::string, std::string>> params = ResolveRunParams(*request, pipeline_);
  if (!params.ok()) return ToGrpcStatus(params.status());
  absl::StatusOr<storage_pb::TrainingRun> run = runs_->Submit(*request, *params);
  if (!run.ok()) return ToGrpcStatus(run.status());
  *response->mutable_run() = std::move(*run);
  return grpc::Status::OK;
}

grpc::Status TrainingService::WatchRun(grpc::ServerContext* ctx,
                                       const training::v1::WatchRunRequest* request,
                                       grpc::ServerWriter<training::v1::WatchRunResponse>* writer) {
  absl::Status s = runs_->Watch(
      request->run_id(),
      [&](const storage_pb::TrainingRun& run) {
        training::v1::WatchRunResponse message;
        *message.mutable_run() = run;
        return writer->Write(message);
      },
      [ctx] { return ctx->IsCancelled(); });
  return ToGrpcStatus(s);
}

grpc::Status TrainingService::GetRun(grpc::ServerContext*, const training::v1::GetRunRequest* request,
                                     training::v1::GetRunResponse* response) {
  absl::StatusOr<storage_pb::TrainingRun> run = runs_->Get(request->run_id());
  if (!run.ok()) return ToGrpcStatus(run.status());
  *response->mutable_run() = std::move(*run);
  return grpc::Status::OK;
}

grpc::Status TrainingService::ListRuns(grpc::ServerContext*,
                                       const training::v1::ListRunsRequest* request,
                                       training::v1::ListRunsResponse* response) {
  absl::StatusOr<storage_pb::ListRunsResponse> page =
      runs_->List(request->page_size(), request->before_id());
  if (!page.ok()) return ToGrpcStatus(page.status());
  response->mutable_runs()->Swap(page->mutable_runs());
  response->set_next_before_id(page->next_before_id());
  return grpc::Status::OK;
}

grpc::Status TrainingService::CancelRun(grpc::ServerContext* ctx,
                                        const training::v1::CancelRunRequest* request,
                                        training::v1::CancelRunResponse* response) {
  if (absl::Status s = rpc::CheckBearerToken(*ctx, options_.admin_token); !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::StatusOr<storage_pb::TrainingRun> run = runs_->Cancel(request->run_id());
  if (!run.ok()) return ToGrpcStatus(run.status());
  *response->mutable_run() = std::move(*run);
  return grpc::Status::OK;
}

absl::StatusOr<training::v1::PromoteResponse> TrainingService::DoPromote(
    const training::v1::PromoteRequest& request) {
  if (request.version() <= 0) {
    return absl::InvalidArgumentError("version must be a registered version number (>= 1)");
  }
  FRAUD_ASSIGN_OR_RETURN(storage_pb::ModelVersion model, storage_->GetModel(request.version()));
  FRAUD_ASSIGN_OR_RETURN(std::optional<storage_pb::ModelVersion> champion, storage_->GetChampion());
  const int64_t current = champion.has_value() ? champion->version() : 0;
  training::v1::PromoteResponse response;
  if (current == model.version()) {
    // Already champion: only make sure inference serves it.
    response.mutable_change()->set_version(current);
    response.mutable_change()->set_previous_version(current);
    if (inference_ == nullptr) {
      response.set_message(absl::StrCat("v", current, " is already champion"));
      return response;
    }
    absl::StatusOr<inference::v1::ReloadResponse> reload = inference_->Reload(current);
    response.set_reloaded(reload.ok());
    response.set_message(reload.ok() ? absl::StrCat("v", current, " is already champion; reloaded")
                                     : absl::StrCat("v", current,
                                                    " is already champion; inference reload failed: ",
                                                    reload.status().message()));
    return response;
  }
  PromotionRequest pr;
  pr.version = model.version();
  pr.expected_champion = current;
  pr.reason = request.reason().empty()
                  ? absl::StrCat(model.version() < current ? "rollback" : "manual promotion",
                                 " to v", model.version())
                  : request.reason();
  pr.actor = options_.promote_actor;
  absl::StatusOr<PromotionResult> result = PromoteVersion(*storage_, inference_, pr);
  if (!result.ok()) {
    metrics::CountPromotion(result.status().code() == absl::StatusCode::kAborted ? "conflict"
                                                                                 : "failed");
    return result.status();
  }
  metrics::CountPromotion(result->rolled_back ? "manual_rolled_back" : "manual");
  FRAUD_LOG(INFO) << "manual promotion" << Kv("version", model.version())
                  << Kv("previous", current) << Kv("reloaded", result->reloaded)
                  << Kv("rolled_back", result->rolled_back);
  *response.mutable_change() = result->change;
  response.set_reloaded(result->reloaded);
  response.set_message(result->message);
  return response;
}

grpc::Status TrainingService::Promote(grpc::ServerContext* ctx,
                                      const training::v1::PromoteRequest* request,
                                      training::v1::PromoteResponse* response) {
  if (absl::Status s = rpc::CheckBearerToken(*ctx, options_.admin_token); !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::StatusOr<training::v1::PromoteResponse> result = DoPromote(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status TrainingService::Evaluate(grpc::ServerContext*,
                                       const training::v1::EvaluateRequest* request,
                                       training::v1::EvaluateResponse* response) {
  if (request->weight_to_rate() < 0 || request->weight_to_rate() >= 1) {
    return ToGrpcStatus(absl::InvalidArgumentError("weight_to_rate must be in [0, 1)"));
  }
  absl::StatusOr<Dataset> rows = LoadEvaluationRows(*storage_, *request);
  if (!rows.ok()) return ToGrpcStatus(rows.status());
  absl::StatusOr<training::v1::EvaluateResponse> result =
      EvaluateVersions(*storage_, pipeline_.model_dir, *request, *rows);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status TrainingService::WhatIf(grpc::ServerContext*,
                                     const training::v1::WhatIfRequest* request,
                                     training::v1::WhatIfResponse* response) {
  absl::StatusOr<training::v1::WhatIfResponse> result = what_if_.WhatIf(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status TrainingService::SetOperatingPoint(
    grpc::ServerContext* ctx, const training::v1::SetOperatingPointRequest* request,
    training::v1::SetOperatingPointResponse* response) {
  if (absl::Status s = rpc::CheckBearerToken(*ctx, options_.admin_token); !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::StatusOr<training::v1::SetOperatingPointResponse> result =
      what_if_.SetOperatingPoint(*request, options_.promote_actor, inference_);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

}  // namespace fraud::training
