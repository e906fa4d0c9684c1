#include "services/inference/inference_service.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "services/common/core/log.h"
#include "services/common/core/status_macros.h"
#include "services/common/core/transaction_layout.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"

namespace fraud::inference {
namespace {

// One Predict request, plain or explained: a plain one takes the micro-batched path exactly as
// before (one extra comparison).
absl::Status Score(Predictor* predictor, const v1::PredictRequest& request,
                   v1::PredictResponse* response) {
  if (!request.explain()) {
    response->clear_explanations();
    if (request.top_k() != 0) return ValidateExplainOptions(false, request.top_k());
    return predictor->Predict(request.rows(), response->mutable_scores());
  }
  return predictor->PredictExplained(request.rows(), request.top_k(), response->mutable_scores(),
                                     response->mutable_explanations());
}

// The reason codes stored with the alerts of a recorded request: the response's own when the
// caller asked for explain, else computed now for just the alert rows (kDefaultTopK each; the
// caller's response is not changed). Explaining an alert costs tens of microseconds and alerts
// are rare, so the cost falls only on the calls that raise one. Empty (the alerts are stored
// without reasons) when explaining fails or another model version answered (a reload between
// the two calls).
google::protobuf::RepeatedPtrField<storage::v1::RowExplanation> AlertExplanations(
    Predictor* predictor, const v1::PredictRequest& request, const v1::PredictResponse& response) {
  google::protobuf::RepeatedPtrField<storage::v1::RowExplanation> out;
  const common::v1::ScoreBatch& scores = response.scores();
  std::vector<int> alerts;
  for (int i = 0; i < scores.decisions_size(); ++i) {
    if (scores.decisions(i)) alerts.push_back(i);
  }
  if (alerts.empty()) return out;
  if (request.explain() && response.explanations_size() == scores.decisions_size()) {
    for (int i : alerts) {
      storage::v1::RowExplanation* x = out.Add();
      x->set_row(i);
      *x->mutable_explanation() = response.explanations(i);
    }
    return out;
  }
  common::v1::TransactionBatch rows;
  rows.set_num_rows(static_cast<uint32_t>(alerts.size()));
  for (int i : alerts) {
    constexpr int kRowWidth = ::fraud::layout::kNumFeatures;
    const auto begin = request.rows().features().begin() + static_cast<int64_t>(i) * kRowWidth;
    rows.mutable_features()->Add(begin, begin + kRowWidth);
  }
  common::v1::ScoreBatch again;
  google::protobuf::RepeatedPtrField<common::v1::Explanation> explanations;
  const absl::Status s = predictor->PredictExplained(rows, kDefaultTopK, &again, &explanations);
  if (!s.ok() || again.model_version() != scores.model_version() ||
      explanations.size() != static_cast<int>(alerts.size())) {
    FRAUD_LOG(WARNING) << "alerts recorded without reasons" << Kv("alerts", alerts.size())
                       << Kv("error", s.ok() ? std::string("model reloaded") : s.ToString());
    return out;
  }
  for (size_t k = 0; k < alerts.size(); ++k) {
    storage::v1::RowExplanation* x = out.Add();
    x->set_row(alerts[k]);
    *x->mutable_explanation() = std::move(explanations[static_cast<int>(k)]);
  }
  return out;
}

// A request with transaction ids: scored as any other, then stored through storage before it is
// answered (synchronously: the caller must know whether its rows can be labelled later), with
// the reason codes of its alerts (AlertExplanations).
absl::Status ScoreAndRecord(Predictor* predictor, ScoreRecorder* recorder,
                            const v1::PredictRequest& request, v1::PredictResponse* response) {
  if (request.transaction_ids_size() != static_cast<int64_t>(request.rows().num_rows())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "transaction_ids: has ", request.transaction_ids_size(), " ids for ",
        request.rows().num_rows(), " rows, want exactly one per row (or none)"));
  }
  if (recorder == nullptr) {
    return absl::FailedPreconditionError(
        "transaction_ids: this inference service has no storage to record scores in");
  }
  FRAUD_RETURN_IF_ERROR(Score(predictor, request, response));
  absl::Status s = recorder->Record(request.rows(), request.transaction_ids(), response->scores(),
                                    AlertExplanations(predictor, request, *response));
  if (!s.ok()) response->Clear();
  return s;
}

// Requests without transaction ids stay on the scoring path as before (one extra comparison).
absl::Status Answer(Predictor* predictor, ScoreRecorder* recorder,
                    const v1::PredictRequest& request, v1::PredictResponse* response) {
  if (request.transaction_ids_size() != 0) {
    return ScoreAndRecord(predictor, recorder, request, response);
  }
  return Score(predictor, request, response);
}

}  // namespace

InferenceService::InferenceService(Predictor* predictor, ModelReloader* reloader,
                                   const ModelHolder* holder, std::string admin_token,
                                   ScoreRecorder* recorder)
    : predictor_(predictor),
      reloader_(reloader),
      holder_(holder),
      admin_token_(std::move(admin_token)),
      recorder_(recorder) {}

grpc::Status InferenceService::Predict(grpc::ServerContext* ctx,
                                       const v1::PredictRequest* request,
                                       v1::PredictResponse* response) {
  absl::Status s = Answer(predictor_, recorder_, *request, response);
  if (!s.ok()) {
    // Scoring is the hot path: failures are logged at DEBUG (the RPC metrics count them by code).
    FRAUD_LOG(DEBUG) << "Predict failed" << Kv("rpc", "Predict")
                     << Kv("request_id", rpc::RequestId(ctx)) << Kv("error", s.ToString());
  }
  return rpc::ToGrpcStatus(s);
}

grpc::Status InferenceService::PredictStream(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<v1::PredictResponse, v1::PredictRequest>* stream) {
  v1::PredictRequest request;
  v1::PredictResponse response;
  int64_t message = 0;
  int64_t rows = 0;
  while (stream->Read(&request)) {
    if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
    absl::Status s = Answer(predictor_, recorder_, request, &response);
    if (!s.ok()) {
      s = Annotate(s, absl::StrCat("message ", message));
      FRAUD_LOG(INFO) << "PredictStream failed" << Kv("rpc", "PredictStream")
                      << Kv("request_id", rpc::RequestId(ctx)) << Kv("messages", message)
                      << Kv("error", s.ToString());
      return rpc::ToGrpcStatus(s);
    }
    rows += request.rows().num_rows();
    if (!stream->Write(response)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client stopped reading the stream");
    }
    ++message;
  }
  FRAUD_LOG(DEBUG) << "PredictStream done" << Kv("rpc", "PredictStream")
                   << Kv("request_id", rpc::RequestId(ctx)) << Kv("messages", message)
                   << Kv("rows", rows);
  return grpc::Status::OK;
}

grpc::Status InferenceService::GetModel(grpc::ServerContext* ctx,
                                        const v1::GetModelRequest* request,
                                        v1::GetModelResponse* response) {
  std::shared_ptr<const LoadedModel> model = holder_->Get();
  if (model == nullptr) {
    return rpc::ToGrpcStatus(absl::UnavailableError("no model loaded yet"));
  }
  response->set_version(model->version);
  *response->mutable_manifest() = model->manifest();
  const int64_t nanos = absl::ToUnixNanos(model->loaded_at);
  response->mutable_loaded_at()->set_seconds(nanos / 1000000000);
  response->mutable_loaded_at()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  response->set_artifact_path(model->artifact_path);
  response->set_threshold(model->threshold);
  response->set_threshold_source(model->threshold_source == ThresholdSource::kOperatingPoint
                                     ? "operating_point"
                                     : "manifest");
  return grpc::Status::OK;
}

grpc::Status InferenceService::Reload(grpc::ServerContext* ctx, const v1::ReloadRequest* request,
                                      v1::ReloadResponse* response) {
  if (absl::Status auth = rpc::CheckBearerToken(*ctx, admin_token_); !auth.ok()) {
    FRAUD_LOG(WARNING) << "Reload refused" << Kv("rpc", "Reload")
                       << Kv("request_id", rpc::RequestId(ctx)) << Kv("error", auth.ToString());
    return rpc::ToGrpcStatus(auth);
  }
  absl::StatusOr<ReloadResult> result = reloader_->Reload(request->version());
  // Failures are logged once by the reloader, which owns the "old model kept" decision.
  if (!result.ok()) return rpc::ToGrpcStatus(result.status());
  response->set_previous_version(result->previous_version);
  response->set_version(result->version);
  response->set_load_seconds(absl::ToDoubleSeconds(result->load_time));
  response->set_threshold(result->threshold);
  FRAUD_LOG(INFO) << "Reload done" << Kv("rpc", "Reload") << Kv("request_id", rpc::RequestId(ctx))
                  << Kv("model_version", result->version)
                  << Kv("previous_version", result->previous_version)
                  << Kv("load_ms", absl::ToDoubleMilliseconds(result->load_time))
                  << Kv("threshold", result->threshold);
  return grpc::Status::OK;
}

std::function<bool()> ModelLoadedCheck(const ModelHolder* holder) {
  return [holder] { return holder->Get() != nullptr; };
}

void ConnectHealth(ModelHolder* holder, rpc::ServerRunner* runner) {
  holder->SetListener([runner](const LoadedModel* model) {
    const bool serving = model != nullptr;
    runner->SetServing("", serving);
    runner->SetServing(kHealthServiceName, serving);
  });
}

}  // namespace fraud::inference
