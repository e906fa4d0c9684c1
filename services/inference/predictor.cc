#include "services/inference/predictor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/common/core/metrics.h"

namespace fraud::inference {
namespace {

using ::fraud::layout::FeatureName;

struct PredictMetrics {
  PredictMetrics()
      : predictions(metrics::Counter("fraud_inference_predictions_total",
                                     "Rows scored, by decision at the model's threshold")),
        fraud(predictions.Add({{"decision", "fraud"}})),
        normal(predictions.Add({{"decision", "normal"}})),
        score(metrics::Histogram("fraud_inference_score", "Scores produced, one per row")
                  .Add({}, metrics::ScoreBuckets())),
        latency(metrics::Histogram("fraud_inference_latency_seconds",
                                   "Time to validate and score one Predict request (or one "
                                   "PredictStream message)")
                    .Add({}, metrics::LatencyBuckets())) {}
  prometheus::Family<prometheus::Counter>& predictions;
  prometheus::Counter& fraud;
  prometheus::Counter& normal;
  prometheus::Histogram& score;
  prometheus::Histogram& latency;
};

PredictMetrics& Metrics() {
  static auto* m = new PredictMetrics();
  return *m;
}

// Records n scores, `flagged` of them at or above the threshold. One score (the one-row call) is
// one Observe; more are sorted into the histogram's buckets locally and recorded with one locked
// update (Observe per row would take the histogram's mutex 284,807 times for one large upload).
void ObserveScores(const float* scores, size_t n, int64_t flagged) {
  PredictMetrics& m = Metrics();
  if (n == 1) {
    m.score.Observe(scores[0]);
  } else {
    const std::vector<double>& bounds = metrics::ScoreBuckets();
    std::vector<double> counts(bounds.size() + 1, 0.0);
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      const double s = scores[i];
      // Prometheus buckets are "less or equal": the first bound >= s.
      counts[std::lower_bound(bounds.begin(), bounds.end(), s) - bounds.begin()] += 1;
      sum += s;
    }
    m.score.ObserveMultiple(counts, sum);
  }
  const int64_t normal = static_cast<int64_t>(n) - flagged;
  if (flagged > 0) m.fraud.Increment(static_cast<double>(flagged));
  if (normal > 0) m.normal.Increment(static_cast<double>(normal));
}

// An empty request is a client mistake (grpcurl's `Predict {}` used to answer OK with nothing);
// GetModel is the call that asks for the serving version.
absl::Status EmptyBatchError() {
  return absl::InvalidArgumentError(
      "rows.num_rows is 0: send at least one row of 30 features (GetModel names the serving "
      "version)");
}

}  // namespace

absl::Status ValidateBatch(const common::v1::TransactionBatch& rows) {
  const uint64_t expected = static_cast<uint64_t>(rows.num_rows()) * kNumFeatures;
  if (static_cast<uint64_t>(rows.features_size()) != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "features has ", rows.features_size(), " values but num_rows=", rows.num_rows(),
        " needs num_rows * ", kNumFeatures, " = ", expected));
  }
  const double* f = rows.features().data();
  for (uint64_t i = 0; i < expected; ++i) {
    if (std::isfinite(f[i])) continue;
    const uint64_t row = i / kNumFeatures;
    std::string where = absl::StrCat("row ", row);
    if (static_cast<uint64_t>(rows.line_numbers_size()) > row) {
      absl::StrAppend(&where, " (line ", rows.line_numbers(static_cast<int>(row)), ")");
    }
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": feature ", FeatureName(static_cast<int>(i % kNumFeatures)), " is ",
        std::isnan(f[i]) ? "NaN" : "infinite", "; every feature must be a finite number"));
  }
  return absl::OkStatus();
}

absl::Status ValidateExplainOptions(bool explain, int top_k) {
  if (top_k < 0 || top_k > static_cast<int>(kNumFeatures)) {
    return absl::InvalidArgumentError(absl::StrCat("top_k is ", top_k,
                                                   ": it must be between 0 and ", kNumFeatures,
                                                   " (0 means ", kDefaultTopK, ")"));
  }
  if (!explain && top_k != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k is ", top_k, " but explain is false: set explain to get reasons"));
  }
  return absl::OkStatus();
}

void ExplanationToProto(const model::RowExplanation& e, const double* row, int top_k,
                        common::v1::Explanation* out) {
  const size_t k = top_k == 0 ? kDefaultTopK : static_cast<size_t>(top_k);
  double rest = e.margin - e.bias;
  for (size_t j : model::TopContributions(e, k)) {
    common::v1::FeatureContribution* c = out->add_top();
    c->set_feature(std::string(FeatureName(static_cast<int>(j))));
    c->set_index(static_cast<int32_t>(j));
    c->set_value(row[j]);
    c->set_contribution(e.contributions[j]);
    rest -= e.contributions[j];
  }
  out->set_bias(e.bias);
  out->set_margin(e.margin);
  out->set_rest(k >= kNumFeatures ? 0.0 : rest);
}

Predictor::Predictor(const ModelHolder* holder, BatcherOptions batching)
    : holder_(holder), batcher_(batching, holder) {
  Metrics();
}

absl::Status Predictor::Predict(const common::v1::TransactionBatch& rows,
                                common::v1::ScoreBatch* out) {
  const auto start = std::chrono::steady_clock::now();
  out->Clear();
  if (absl::Status s = ValidateBatch(rows); !s.ok()) return s;
  const size_t n = rows.num_rows();
  if (n == 0) return EmptyBatchError();
  // Scores are written straight into the response (no intermediate copy).
  out->mutable_scores()->Resize(static_cast<int>(n), 0.0f);
  absl::StatusOr<std::shared_ptr<const LoadedModel>> scored =
      batcher_.Score(rows.features().data(), n, out->mutable_scores()->mutable_data());
  if (!scored.ok()) {
    out->Clear();
    return scored.status();
  }
  Finish(**scored, start, out);
  return absl::OkStatus();
}

absl::Status Predictor::PredictExplained(
    const common::v1::TransactionBatch& rows, int top_k, common::v1::ScoreBatch* out,
    google::protobuf::RepeatedPtrField<common::v1::Explanation>* explanations) {
  const auto start = std::chrono::steady_clock::now();
  out->Clear();
  explanations->Clear();
  if (absl::Status s = ValidateExplainOptions(true, top_k); !s.ok()) return s;
  if (absl::Status s = ValidateBatch(rows); !s.ok()) return s;
  const size_t n = rows.num_rows();
  if (n == 0) return EmptyBatchError();
  std::shared_ptr<const LoadedModel> model = holder_->Get();
  if (model == nullptr) return absl::UnavailableError("no model loaded yet");
  const double* features = rows.features().data();
  out->mutable_scores()->Resize(static_cast<int>(n), 0.0f);
  std::vector<model::RowExplanation> explained(n);
  absl::Status s = model->model->Score(features, n, out->mutable_scores()->mutable_data());
  if (s.ok()) s = model->model->Explain(features, n, explained.data());
  if (!s.ok()) {
    out->Clear();
    return s;
  }
  explanations->Reserve(static_cast<int>(n));
  for (size_t i = 0; i < n; ++i) {
    ExplanationToProto(explained[i], features + i * kNumFeatures, top_k, explanations->Add());
  }
  Finish(*model, start, out);
  return absl::OkStatus();
}

void Predictor::Finish(const LoadedModel& model, std::chrono::steady_clock::time_point start,
                       common::v1::ScoreBatch* out) {
  const size_t n = static_cast<size_t>(out->scores_size());
  out->set_model_version(model.version);
  out->set_threshold(model.threshold);
  const float* scores = out->scores().data();
  out->mutable_decisions()->Resize(static_cast<int>(n), false);
  bool* decisions = out->mutable_decisions()->mutable_data();
  // Compared in float, as services/common/model defines the decision (ModelRuntime::threshold).
  const float threshold = static_cast<float>(model.threshold);
  int64_t flagged = 0;
  for (size_t i = 0; i < n; ++i) {
    decisions[i] = scores[i] >= threshold;
    flagged += decisions[i];
  }
  if (n > 0) ObserveScores(scores, n, flagged);
  Metrics().latency.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace fraud::inference
