// A tiny InferenceService used to exercise the server plumbing: Predict sleeps for
// `rows.num_rows` milliseconds (returning early when cancelled) and echoes the row count as the model version.
#pragma once

#include <chrono>
#include <thread>

#include "fraud/inference/v1/inference.grpc.pb.h"

namespace fraud::testing {

class SleepyInference final : public fraud::inference::v1::InferenceService::Service {
 public:
  grpc::Status Predict(grpc::ServerContext* ctx, const fraud::inference::v1::PredictRequest* req,
                       fraud::inference::v1::PredictResponse* resp) override {
    // Sleeps in steps and stops when the call is cancelled, as long handlers must.
    const auto end = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(req->rows().num_rows());
    while (std::chrono::steady_clock::now() < end) {
      if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    resp->mutable_scores()->set_model_version(req->rows().num_rows());
    return grpc::Status::OK;
  }
};

}  // namespace fraud::testing
