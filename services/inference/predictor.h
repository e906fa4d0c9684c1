// Transport-free scoring logic behind Predict and PredictStream: validates a packed batch, scores
// it with one model snapshot (through the micro-batcher for small batches) and fills a ScoreBatch
// stamped with the version and threshold that produced it. Records the scoring metrics
// (fraud_inference_predictions_total{decision}, fraud_inference_score,
// fraud_inference_latency_seconds).
//
// Thread-safety: Predict may be called from any number of threads.
#pragma once

#include <chrono>

#include "absl/status/status.h"
#include "fraud/common/v1/types.pb.h"
#include "services/inference/micro_batcher.h"
#include "services/inference/model_holder.h"

namespace fraud::inference {

// InvalidArgument when features_size() != num_rows * kNumFeatures (the message gives both
// numbers) or when a feature is NaN or infinite (the message names the row, its source line when
// known, and the feature). Labels and other columns are not looked at.
absl::Status ValidateBatch(const common::v1::TransactionBatch& rows);

// Contributions an explanation lists when the request's top_k is 0.
inline constexpr int kDefaultTopK = 5;

// InvalidArgument naming the field when top_k is outside [0, kNumFeatures] or when it is set
// without explain; OK otherwise.
absl::Status ValidateExplainOptions(bool explain, int top_k);

// The proto form of `e` for the raw row `row`: the top_k contributions by magnitude (largest
// first), bias, margin and the rest of the sum.
void ExplanationToProto(const model::RowExplanation& e, const double* row, int top_k,
                        common::v1::Explanation* out);

class Predictor {
 public:
  // `holder` is not owned and must outlive this object.
  Predictor(const ModelHolder* holder, BatcherOptions batching);
  Predictor(const Predictor&) = delete;
  Predictor& operator=(const Predictor&) = delete;

  // Validates `rows`, scores them and overwrites `out` with one score and one decision
  // (score >= threshold, compared in float) per row, plus model_version and threshold. An empty batch gives an
  // empty ScoreBatch that still names the serving version. Errors: InvalidArgument (see
  // ValidateBatch), Unavailable "no model loaded yet", or the model's scoring error.
  absl::Status Predict(const common::v1::TransactionBatch& rows, common::v1::ScoreBatch* out);

  // Predict, and also one explanation per row into `explanations` (overwritten), listing the
  // top_k largest |contributions| (0 means kDefaultTopK). Scores and explanations come from one
  // model snapshot, scored directly (not through the micro-batcher: an explained request costs
  // its explanation anyway, and merging it would delay the plain ones). InvalidArgument for top_k
  // outside [0, kNumFeatures], besides Predict's errors; Unimplemented when the serving model
  // cannot explain itself.
  absl::Status PredictExplained(
      const common::v1::TransactionBatch& rows, int top_k, common::v1::ScoreBatch* out,
      google::protobuf::RepeatedPtrField<common::v1::Explanation>* explanations);

  const MicroBatcher& batcher() const { return batcher_; }

 private:
  // Decisions, version, threshold and metrics for the scores already in `out`.
  void Finish(const LoadedModel& model, std::chrono::steady_clock::time_point start,
              common::v1::ScoreBatch* out);

  const ModelHolder* const holder_;
  MicroBatcher batcher_;
};

}  // namespace fraud::inference
