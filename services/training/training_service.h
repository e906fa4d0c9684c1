// gRPC handlers of fraud.training.v1.TrainingService: thin wrappers over the RunManager (runs),
// PromoteVersion (manual promotion/rollback) and EvaluateVersions.
//
// WhatIf and SetOperatingPoint go to a WhatIfEngine the service owns (its score cache lives as
// long as the service).
//
// Admin RPCs (StartRun, CancelRun, Promote, SetOperatingPoint) require "authorization: Bearer <token>" when a token
// is configured (UNAUTHENTICATED otherwise). Status codes: INVALID_ARGUMENT for bad requests
// (unknown family or parameter, bad fractions), RESOURCE_EXHAUSTED when the run queue is full,
// NOT_FOUND for unknown runs/versions, FAILED_PRECONDITION for cancelling a finished run,
// ABORTED when the champion changed during a promotion, UNAVAILABLE when storage is down.
//
// Thread-safety: handlers run concurrently; every dependency is thread-safe.
#pragma once

#include <string>

#include "fraud/training/v1/training.grpc.pb.h"
#include "services/training/clients.h"
#include "services/training/pipeline.h"
#include "services/training/run_manager.h"
#include "services/training/what_if.h"

namespace fraud::training {

struct TrainingServiceOptions {
  // Bearer token of the admin RPCs ("" = no auth).
  std::string admin_token;
  // Actor recorded in the champion history for manual promotions.
  std::string promote_actor = "admin";
};

class TrainingService final : public training::v1::TrainingService::Service {
 public:
  // Nothing is owned; everything must outlive the service. `inference` may be null.
  TrainingService(RunManager* runs, StorageApi* storage, InferenceApi* inference,
                  PipelineOptions pipeline, TrainingServiceOptions options);

  grpc::Status StartRun(grpc::ServerContext* ctx, const training::v1::StartRunRequest* request,
                        training::v1::StartRunResponse* response) override;
  grpc::Status WatchRun(grpc::ServerContext* ctx, const training::v1::WatchRunRequest* request,
                        grpc::ServerWriter<training::v1::WatchRunResponse>* writer) override;
  grpc::Status GetRun(grpc::ServerContext* ctx, const training::v1::GetRunRequest* request,
                      training::v1::GetRunResponse* response) override;
  grpc::Status ListRuns(grpc::ServerContext* ctx, const training::v1::ListRunsRequest* request,
                        training::v1::ListRunsResponse* response) override;
  grpc::Status CancelRun(grpc::ServerContext* ctx, const training::v1::CancelRunRequest* request,
                         training::v1::CancelRunResponse* response) override;
  grpc::Status Promote(grpc::ServerContext* ctx, const training::v1::PromoteRequest* request,
                       training::v1::PromoteResponse* response) override;
  grpc::Status Evaluate(grpc::ServerContext* ctx, const training::v1::EvaluateRequest* request,
                        training::v1::EvaluateResponse* response) override;
  grpc::Status WhatIf(grpc::ServerContext* ctx, const training::v1::WhatIfRequest* request,
                      training::v1::WhatIfResponse* response) override;
  grpc::Status SetOperatingPoint(grpc::ServerContext* ctx,
                                 const training::v1::SetOperatingPointRequest* request,
                                 training::v1::SetOperatingPointResponse* response) override;

  WhatIfEngine& what_if() { return what_if_; }

  // The logic of Promote, without transport or auth (used by tests and the RPC).
  absl::StatusOr<training::v1::PromoteResponse> DoPromote(const training::v1::PromoteRequest& request);

 private:
  RunManager* const runs_;
  StorageApi* const storage_;
  InferenceApi* const inference_;
  const PipelineOptions pipeline_;
  const TrainingServiceOptions options_;
  WhatIfEngine what_if_;
};

}  // namespace fraud::training
