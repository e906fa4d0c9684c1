// Binary-classification metrics for fraud scores, computed as scikit-learn computes them.
//
// Inputs are parallel spans: `scores` (higher = more suspicious), `labels` (0 = normal, 1 = fraud)
// and optional per-row `weights` (empty = every row weighs 1). A weight acts exactly like
// duplicating the row that many times: every count below is a weighted count.
//
// Conventions shared by every function:
//   * a row is predicted positive at threshold t when score >= t, compared in float (the scores'
//     type), so t = 0.7 flags a score of 0.7f;
//   * rows with equal scores form one group (one point of a curve), as in scikit-learn;
//   * InvalidArgument: span sizes differ, a label is not 0/1, a score is NaN/inf, or a weight is
//     negative or not finite;
//   * FailedPrecondition: the metric is undefined for the data (for example ROC-AUC when the
//     labels hold one class only); the message says why.
// All functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "fraud/common/v1/types.pb.h"
#include "google/protobuf/repeated_field.h"

namespace fraud::eval {

using ::fraud::common::v1::ClassificationMetrics;

// Checks the conventions above; OK when the inputs are usable.
absl::Status ValidateInputs(absl::Span<const float> scores, absl::Span<const int32_t> labels,
                            absl::Span<const double> weights = {});

// Average precision, exactly scikit-learn's average_precision_score: the sum over distinct
// thresholds (descending) of (R_n - R_{n-1}) * P_n with R_0 = 0.
// FailedPrecondition when there is no positive row (weighted positives == 0).
absl::StatusOr<double> AveragePrecision(absl::Span<const float> scores,
                                        absl::Span<const int32_t> labels,
                                        absl::Span<const double> weights = {});

// Area under the ROC curve (scikit-learn's roc_auc_score: trapezoids between distinct thresholds,
// so tied scores count one half). FailedPrecondition when the labels hold one class only.
absl::StatusOr<double> RocAuc(absl::Span<const float> scores, absl::Span<const int32_t> labels,
                              absl::Span<const double> weights = {});

// Figures at one decision threshold (score >= threshold means "fraud").
struct ThresholdMetrics {
  double threshold = 0;
  // Weighted confusion counts.
  double true_positives = 0;
  double false_positives = 0;
  double true_negatives = 0;
  double false_negatives = 0;
  // precision = TP / (TP + FP), 0 when nothing is flagged (scikit-learn's zero_division=0);
  // recall = TP / (TP + FN), 0 when there is no positive; f1 = 2PR / (P + R), 0 when P + R = 0.
  double precision = 0;
  double recall = 0;
  double f1 = 0;
  double accuracy = 0;
};
// InvalidArgument on bad inputs or an empty input.
absl::StatusOr<ThresholdMetrics> MetricsAtThreshold(absl::Span<const float> scores,
                                                    absl::Span<const int32_t> labels,
                                                    double threshold,
                                                    absl::Span<const double> weights = {});

// For each budget fraction f in (0, 1]: the lowest threshold t (one of the scores) at which at
// most f of the rows (weighted) score >= t, with precision and recall there. Ties are never
// split: when the highest-scored tie group alone exceeds the budget, its score is the threshold
// and `alerts` (> the budget) says how many it flags. A budget of less than one row is left out.
// InvalidArgument for bad inputs or a fraction outside (0, 1].
struct BudgetPoint {
  double fraction = 0;
  double threshold = 0;
  double alerts = 0;
  double precision = 0;
  double recall = 0;
};
absl::StatusOr<std::vector<BudgetPoint>> ThresholdsForAlertBudgets(
    absl::Span<const float> scores, absl::Span<const int32_t> labels,
    absl::Span<const double> fractions, absl::Span<const double> weights = {});

// Precision among the k highest scores (ties broken by row order, first row first); with weights,
// sum(w * y) / sum(w) over those k rows. k larger than the number of rows uses every row. k must
// be >= 1 (InvalidArgument). Returns one value per requested k, in order.
absl::StatusOr<std::vector<double>> PrecisionAtTopK(absl::Span<const float> scores,
                                                    absl::Span<const int32_t> labels,
                                                    absl::Span<const int> ks,
                                                    absl::Span<const double> weights = {});

// One point of a precision-recall curve: reached by flagging every row with score >= threshold.
struct PrPoint {
  double recall = 0;
  double precision = 0;
  double threshold = 0;
};
// Precision-recall curve at the thresholds where recall increases (the corners that average
// precision sums), highest threshold first, evenly down-sampled by index to at most `max_points`
// (>= 2) points, always keeping the first and the last. FailedPrecondition without positives.
absl::StatusOr<std::vector<PrPoint>> PrecisionRecallCurve(absl::Span<const float> scores,
                                                          absl::Span<const int32_t> labels,
                                                          size_t max_points = 200,
                                                          absl::Span<const double> weights = {});

// Bootstrap percentile interval of the average precision: `resamples` resamples of the rows with
// replacement (row weights travel with their rows), seeded, so the result is deterministic.
// Resamples without any positive row are skipped (they have no AP). FailedPrecondition when the
// data has no positive row; InvalidArgument when resamples < 1 or confidence is not in (0, 1).
struct Interval {
  double low = 0;
  double high = 0;
};
absl::StatusOr<Interval> BootstrapAveragePrecision(absl::Span<const float> scores,
                                                   absl::Span<const int32_t> labels,
                                                   int resamples = 200, uint64_t seed = 1,
                                                   double confidence = 0.95,
                                                   absl::Span<const double> weights = {});

// Paired bootstrap of the AUPRC difference between two models scored on the same rows:
// each resample draws the rows once (with replacement) and scores both models on that draw, so
// the interval reflects the rows' shared difficulty, not two independent noises. `difference`
// is AP(a) - AP(b) on all rows; `share_a_better` is the fraction of resamples where a > b.
struct PairedDifference {
  double difference = 0;
  double low = 0;
  double high = 0;
  double share_a_better = 0;
  int resamples = 0;
};
absl::StatusOr<PairedDifference> PairedBootstrapAveragePrecision(
    absl::Span<const float> scores_a, absl::Span<const float> scores_b,
    absl::Span<const int32_t> labels, int resamples = 1000, uint64_t seed = 1,
    double confidence = 0.95, absl::Span<const double> weights = {});

// Two models scored on the same rows of one block (e.g. one time block of a backtest).
struct PairedBlock {
  absl::Span<const float> scores_a;
  absl::Span<const float> scores_b;
  absl::Span<const int32_t> labels;
  absl::Span<const double> weights;
};
// The mean over blocks of AP(a) - AP(b), with a stratified paired bootstrap interval: each
// resample draws rows within every block and averages the blocks' differences. With one block it
// is PairedBootstrapAveragePrecision. FailedPrecondition when a block has no fraud.
absl::StatusOr<PairedDifference> PairedBootstrapMeanAveragePrecision(
    absl::Span<const PairedBlock> blocks, int resamples = 1000, uint64_t seed = 1,
    double confidence = 0.95);

// The threshold that maximises F1 on (validation) data: one of the scores, the highest among
// equally good ones (fewest alerts). FailedPrecondition without positives.
absl::StatusOr<double> SelectThresholdMaxF1(absl::Span<const float> scores,
                                            absl::Span<const int32_t> labels,
                                            absl::Span<const double> weights = {});

// Options of ComputeClassificationMetrics.
struct MetricsOptions {
  double threshold = 0.5;
  std::vector<int> top_k = {50, 100, 500};
  // Bootstrap resamples for the AUPRC interval; 0 leaves auprc_ci_low/high at 0.
  int bootstrap_resamples = 200;
  uint64_t seed = 1;
  size_t max_curve_points = 200;
};

// Fills every field of ClassificationMetrics. rows/positives and the confusion matrix are weighted
// counts rounded to integers; `weighted` is set when weights were given. When the labels hold one
// class only, `single_class` is set and auprc, its interval, roc_auc and the curve stay empty/0;
// the threshold figures are still computed. InvalidArgument on bad or empty inputs.
absl::StatusOr<ClassificationMetrics> ComputeClassificationMetrics(
    absl::Span<const float> scores, absl::Span<const int32_t> labels,
    const MetricsOptions& options = {}, absl::Span<const double> weights = {});

// The same with one byte per label, for callers that hold millions of rows (ingest keeps every
// labelled row of an upload).
absl::StatusOr<ClassificationMetrics> ComputeClassificationMetricsInt8(
    absl::Span<const float> scores, absl::Span<const int8_t> labels,
    const MetricsOptions& options = {});

// Histogram of scores in [0, 1] split by label, for plotting. Bins are [i/n, (i+1)/n); the last
// bin also holds 1.0; scores outside [0, 1] (or NaN) are clamped into the first/last bin.
// Streaming: add batches of any size. Not thread-safe (one per upload).
class ScoreHistogram {
 public:
  static constexpr int kDefaultBins = 20;
  explicit ScoreHistogram(int bins = kDefaultBins);

  // label: 0 normal, 1 fraud, anything else (for example -1) unlabelled.
  void Add(float score, int32_t label);
  // labels may be empty (every row unlabelled); otherwise one per score.
  void AddBatch(absl::Span<const float> scores, absl::Span<const int32_t> labels);

  int bins() const { return static_cast<int>(normal_.size()); }
  // Appends one ScoreBin per bin, lowest first.
  void AppendTo(google::protobuf::RepeatedPtrField<common::v1::ScoreBin>* out) const;

 private:
  std::vector<int64_t> normal_;
  std::vector<int64_t> fraud_;
  std::vector<int64_t> unlabelled_;
};

}  // namespace fraud::eval
