// gRPC handlers of fraud.inference.v1.InferenceService. Thin: each unpacks the request, calls the
// transport-free logic (Predictor, ModelReloader, ModelHolder), maps the absl::Status once with
// rpc::ToGrpcStatus and packs the reply.
//
//   Predict        validate + score one packed batch (see Predictor for the status codes); with
//                  explain, also each row's reason codes (Predictor::PredictExplained); with
//                  transaction_ids (one per row, else INVALID_ARGUMENT), the scored rows are
//                  stored through the ScoreRecorder before answering: its error (UNAVAILABLE
//                  "scores were not recorded ...", INVALID_ARGUMENT, ALREADY_EXISTS) fails the
//                  call, FAILED_PRECONDITION when the service has no recorder
//   PredictStream  one response per request (transaction_ids as in Predict), in order; the first failing message ends the
//                  stream with its status ("message 3: ...")
//   GetModel       the serving model's version, manifest, load time and path; UNAVAILABLE
//                  before the first load
//   Reload         admin RPC (bearer token when one is configured, else UNAUTHENTICATED); loads,
//                  verifies and swaps a version (0 = champion); the old model keeps serving
//                  when anything fails
//
// Thread-safety: all handlers run concurrently on the gRPC thread pool.
#pragma once

#include <functional>
#include <string>

#include "fraud/inference/v1/inference.grpc.pb.h"
#include "services/common/rpc/server_runner.h"
#include "services/inference/model_holder.h"
#include "services/inference/model_reloader.h"
#include "services/inference/predictor.h"
#include "services/inference/score_recorder.h"

namespace fraud::inference {

// Health-check name of this service (grpc.health.v1).
inline constexpr char kHealthServiceName[] = "fraud.inference.v1.InferenceService";

class InferenceService final : public v1::InferenceService::Service {
 public:
  // None of the pointers is owned; all must outlive the server. `admin_token` "" disables the
  // Reload auth check. `recorder` stores rows scored with transaction ids (nullptr: such
  // requests are FAILED_PRECONDITION).
  InferenceService(Predictor* predictor, ModelReloader* reloader, const ModelHolder* holder,
                   std::string admin_token, ScoreRecorder* recorder = nullptr);

  grpc::Status Predict(grpc::ServerContext* ctx, const v1::PredictRequest* request,
                       v1::PredictResponse* response) override;
  grpc::Status PredictStream(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::PredictResponse, v1::PredictRequest>* stream) override;
  grpc::Status GetModel(grpc::ServerContext* ctx, const v1::GetModelRequest* request,
                        v1::GetModelResponse* response) override;
  grpc::Status Reload(grpc::ServerContext* ctx, const v1::ReloadRequest* request,
                      v1::ReloadResponse* response) override;

 private:
  Predictor* const predictor_;
  ModelReloader* const reloader_;
  const ModelHolder* const holder_;
  const std::string admin_token_;
  ScoreRecorder* const recorder_;
};

// For ServerRunner::SetReadyCheck (before Start): /healthz answers 503 until a model is loaded.
std::function<bool()> ModelLoadedCheck(const ModelHolder* holder);

// Makes the runner's grpc.health status follow the holder: "" and kHealthServiceName are
// NOT_SERVING while no model is loaded and SERVING once one is. Call right after runner->Start()
// (the runner ignores health updates before it starts). Both objects must outlive the server.
void ConnectHealth(ModelHolder* holder, rpc::ServerRunner* runner);

}  // namespace fraud::inference
