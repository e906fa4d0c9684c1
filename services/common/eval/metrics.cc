#include "services/common/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "services/common/core/status_macros.h"

namespace fraud::eval {
namespace {

// Rows sorted by descending score, cut into groups of equal scores. Everything curve-shaped is a
// walk over the ranked rows, so the sort (the only O(n log n) step) happens once per call. Memory
// is 5 bytes per row (+8 with weights): ingest computes this over uploads of millions of rows.
struct Ranked {
  static constexpr uint8_t kFraud = 1;     // the row's label is 1
  static constexpr uint8_t kGroupEnd = 2;  // last row of a tie group
  std::vector<uint32_t> order;  // row indices, highest score first (stable among ties)
  std::vector<uint8_t> flags;   // kFraud | kGroupEnd of order[i]
  std::vector<double> w;        // weight of order[i]; empty when every row weighs 1
  double positives = 0;         // weighted
  double negatives = 0;         // weighted

  size_t size() const { return order.size(); }
  double weight(size_t i) const { return w.empty() ? 1.0 : w[i]; }
  bool fraud(size_t i) const { return (flags[i] & kFraud) != 0; }
  bool group_end(size_t i) const { return (flags[i] & kGroupEnd) != 0; }
};

template <typename Label>
Ranked Rank(absl::Span<const float> scores, absl::Span<const Label> labels,
            absl::Span<const double> weights) {
  Ranked r;
  const size_t n = scores.size();
  r.order.resize(n);
  std::iota(r.order.begin(), r.order.end(), 0u);
  // Row order among ties (what a stable sort keeps) without a stable sort's n-element buffer.
  std::sort(r.order.begin(), r.order.end(), [&](uint32_t a, uint32_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  r.flags.resize(n);
  if (!weights.empty()) r.w.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t row = r.order[i];
    const bool fraud = labels[row] == 1;
    const bool end = i + 1 == n || scores[r.order[i + 1]] != scores[row];
    r.flags[i] = static_cast<uint8_t>((fraud ? Ranked::kFraud : 0) | (end ? Ranked::kGroupEnd : 0));
    if (!weights.empty()) r.w[i] = weights[row];
    (fraud ? r.positives : r.negatives) += r.weight(i);
  }
  return r;
}

// Calls visit(tp, fp, i) at the last position i of every tie group with the cumulative weighted
// true/false positives there. `count` holds per-position multiplicities (bootstrap) or is null.
template <typename Visit>
void WalkGroups(const Ranked& r, const uint32_t* count, Visit&& visit) {
  double tp = 0;
  double fp = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    double wi = r.weight(i);
    if (count != nullptr) wi *= count[i];
    (r.fraud(i) ? tp : fp) += wi;
    if (r.group_end(i)) visit(tp, fp, i);
  }
}

double SafeDiv(double num, double den) { return den > 0 ? num / den : 0.0; }

// sum_n (R_n - R_{n-1}) * P_n over tie groups, with per-row multiplicities `count` (bootstrap) or
// none (count == nullptr). -1 when there is no positive.
double ApFromRanked(const Ranked& r, const uint32_t* count) {
  double total_pos = 0;
  if (count == nullptr) {
    total_pos = r.positives;
  } else {
    for (size_t i = 0; i < r.size(); ++i) {
      if (r.fraud(i)) total_pos += r.weight(i) * count[i];
    }
  }
  if (total_pos <= 0) return -1.0;
  double prev_tp = 0;
  double ap = 0;
  WalkGroups(r, count, [&](double tp, double fp, size_t) {
    if (tp > prev_tp) {
      ap += (tp - prev_tp) / total_pos * SafeDiv(tp, tp + fp);
      prev_tp = tp;
    }
  });
  return ap;
}

// Trapezoids between distinct thresholds; the caller checks that both classes are present.
double RocFromRanked(const Ranked& r) {
  double auc = 0;
  double prev_fpr = 0;
  double prev_tpr = 0;
  WalkGroups(r, nullptr, [&](double tp, double fp, size_t) {
    const double fpr = fp / r.negatives;
    const double tpr = tp / r.positives;
    auc += (fpr - prev_fpr) * (tpr + prev_tpr) / 2.0;
    prev_fpr = fpr;
    prev_tpr = tpr;
  });
  return auc;
}

// Precision among the first k ranked rows for every k (validated >= 1 by the caller).
std::vector<double> TopKFromRanked(const Ranked& r, absl::Span<const int> ks) {
  size_t longest = 0;
  for (int k : ks) longest = std::max(longest, std::min(static_cast<size_t>(k), r.size()));
  // Prefix sums over the first `longest` positions answer every k in O(1).
  std::vector<double> pos(longest + 1, 0.0);
  std::vector<double> all(longest + 1, 0.0);
  for (size_t i = 0; i < longest; ++i) {
    pos[i + 1] = pos[i] + (r.fraud(i) ? r.weight(i) : 0.0);
    all[i + 1] = all[i] + r.weight(i);
  }
  std::vector<double> out;
  out.reserve(ks.size());
  for (int k : ks) {
    const size_t top = std::min(static_cast<size_t>(k), r.size());
    out.push_back(SafeDiv(pos[top], all[top]));
  }
  return out;
}

absl::Status EnsureNonEmpty(absl::Span<const float> scores) {
  if (scores.empty()) return absl::InvalidArgumentError("no rows to evaluate");
  return absl::OkStatus();
}

absl::Status ValidateTopK(absl::Span<const int> ks) {
  for (int k : ks) {
    if (k < 1) return absl::InvalidArgumentError(absl::StrCat("top-k needs k >= 1, got ", k));
  }
  return absl::OkStatus();
}

absl::Status NoPositives(absl::string_view what) {
  return absl::FailedPreconditionError(
      absl::StrCat(what, " is undefined: the labels hold no positive (fraud) row"));
}

double LinearPercentile(const std::vector<double>& sorted, double q) {
  if (sorted.size() == 1) return sorted[0];
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

// The curve's corners (groups where recall increases), down-sampled while walking: a first walk
// counts them, the second keeps the evenly spaced ones, so memory is O(max_points), not O(rows).
std::vector<PrPoint> CurveFromRanked(const Ranked& r, absl::Span<const float> scores,
                                     size_t max_points) {
  size_t corners = 0;
  double prev_tp = 0;
  WalkGroups(r, nullptr, [&](double tp, double, size_t) {
    if (tp > prev_tp) {
      ++corners;
      prev_tp = tp;
    }
  });
  max_points = std::max<size_t>(max_points, 2);
  const bool sample = corners > max_points;
  const double step =
      sample ? static_cast<double>(corners - 1) / static_cast<double>(max_points - 1) : 1.0;
  std::vector<PrPoint> points;
  points.reserve(std::min(corners, max_points));
  size_t corner = 0;
  prev_tp = 0;
  WalkGroups(r, nullptr, [&](double tp, double fp, size_t i) {
    if (tp <= prev_tp) return;
    prev_tp = tp;
    // step > 1 when sampling, so the wanted corner indices are strictly increasing.
    const size_t wanted =
        sample ? static_cast<size_t>(std::llround(step * static_cast<double>(points.size())))
               : corner;
    if (corner++ != wanted || points.size() == max_points) return;
    points.push_back({tp / r.positives, SafeDiv(tp, tp + fp), scores[r.order[i]]});
  });
  return points;
}

// The ranked rows of an unweighted ranking, reduced to what average precision depends on: the
// rows of a tie group holding a positive (split into its positive and negative rows), and runs of
// consecutive all-negative groups, in rank order.
struct Segment {
  uint64_t positives = 0;
  uint64_t negatives = 0;
};

std::vector<Segment> Segments(const Ranked& r) {
  std::vector<Segment> out;
  Segment group;
  Segment run;  // all-negative groups since the last group with a positive
  for (size_t i = 0; i < r.size(); ++i) {
    (r.fraud(i) ? group.positives : group.negatives) += 1;
    if (!r.group_end(i)) continue;
    if (group.positives == 0) {
      run.negatives += group.negatives;
    } else {
      if (run.negatives > 0) out.push_back(run);
      run = Segment{};
      out.push_back(group);
    }
    group = Segment{};
  }
  return out;
}

// One bootstrap resample of an unweighted ranking's average precision (-1 without a positive).
// Drawing n rows with replacement is a multinomial over rows; the draws landing in each segment
// follow from sequential binomials (draws left, segment size / rows left), which is the same
// distribution as drawing row by row, in O(segments) instead of O(n) random draws.
double ResampledAp(const std::vector<Segment>& segments, uint64_t n, std::mt19937_64& rng) {
  uint64_t draws_left = n;
  uint64_t rows_left = n;
  auto draw = [&](uint64_t rows) -> uint64_t {
    if (rows == 0 || draws_left == 0) return 0;
    uint64_t c = draws_left;
    if (rows < rows_left) {
      std::binomial_distribution<uint64_t> binomial(
          draws_left, static_cast<double>(rows) / static_cast<double>(rows_left));
      c = binomial(rng);
    }
    draws_left -= c;
    rows_left -= rows;
    return c;
  };
  double tp = 0;
  double fp = 0;
  double prev_tp = 0;
  double weighted_precision = 0;  // sum of (tp - prev_tp) * precision; divided by tp at the end
  for (const Segment& s : segments) {
    tp += static_cast<double>(draw(s.positives));
    fp += static_cast<double>(draw(s.negatives));
    if (tp > prev_tp) {
      weighted_precision += (tp - prev_tp) * SafeDiv(tp, tp + fp);
      prev_tp = tp;
    }
  }
  return tp > 0 ? weighted_precision / tp : -1.0;
}

absl::StatusOr<Interval> BootstrapFromRanked(const Ranked& r, int resamples, uint64_t seed,
                                             double confidence) {
  if (resamples < 1) return absl::InvalidArgumentError("bootstrap needs at least one resample");
  if (!(confidence > 0 && confidence < 1)) {
    return absl::InvalidArgumentError("bootstrap confidence must be in (0, 1)");
  }
  const size_t n = r.size();
  std::mt19937_64 rng(seed);
  std::vector<double> aps;
  aps.reserve(static_cast<size_t>(resamples));
  if (r.w.empty()) {
    // Unweighted (every upload): ~2 segments per positive instead of n draws per resample. This
    // was ingest's one size-independent cost: 200 resamples x n rows capped at 20M draws, about
    // 0.3-0.9 s at the end of every upload of 100k-1M rows.
    const std::vector<Segment> segments = Segments(r);
    for (int b = 0; b < resamples; ++b) {
      const double ap = ResampledAp(segments, n, rng);
      if (ap >= 0) aps.push_back(ap);
    }
  } else {
    std::uniform_int_distribution<size_t> pick(0, n - 1);
    std::vector<uint32_t> count(n);
    for (int b = 0; b < resamples; ++b) {
      std::fill(count.begin(), count.end(), 0u);
      // Positions in the ranked order: resampling positions is resampling rows.
      for (size_t k = 0; k < n; ++k) ++count[pick(rng)];
      const double ap = ApFromRanked(r, count.data());
      if (ap >= 0) aps.push_back(ap);
    }
  }
  if (aps.empty()) return NoPositives("bootstrap average precision");
  std::sort(aps.begin(), aps.end());
  const double alpha = (1.0 - confidence) / 2.0;
  return Interval{LinearPercentile(aps, alpha), LinearPercentile(aps, 1.0 - alpha)};
}

// The entry points are templates over the label type so that callers holding millions of labels
// (ingest) can keep them as bytes; the public functions take int32_t, plus int8_t where needed.
template <typename Label>
absl::Status ValidateImpl(absl::Span<const float> scores, absl::Span<const Label> labels,
                          absl::Span<const double> weights) {
  if (labels.size() != scores.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("got ", scores.size(), " scores but ", labels.size(), " labels"));
  }
  if (!weights.empty() && weights.size() != scores.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("got ", scores.size(), " scores but ", weights.size(), " weights"));
  }
  if (scores.size() > UINT32_MAX) return absl::InvalidArgumentError("too many rows");
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i])) {
      return absl::InvalidArgumentError(absl::StrCat("row ", i, ": score is not finite"));
    }
    if (labels[i] != 0 && labels[i] != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("row ", i, ": label ", static_cast<int>(labels[i]), " is not 0 or 1"));
    }
    if (!weights.empty() && !(std::isfinite(weights[i]) && weights[i] >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("row ", i, ": weight must be finite and >= 0"));
    }
  }
  return absl::OkStatus();
}

// Inputs already validated and non-empty.
template <typename Label>
ThresholdMetrics ThresholdImpl(absl::Span<const float> scores, absl::Span<const Label> labels,
                               double threshold, absl::Span<const double> weights) {
  ThresholdMetrics m;
  m.threshold = threshold;
  // Scores are floats: compare in float so that a threshold of 0.7 flags a score of 0.7f.
  const float cut = static_cast<float>(threshold);
  for (size_t i = 0; i < scores.size(); ++i) {
    const double w = weights.empty() ? 1.0 : weights[i];
    const bool flagged = scores[i] >= cut;
    if (labels[i] == 1) {
      (flagged ? m.true_positives : m.false_negatives) += w;
    } else {
      (flagged ? m.false_positives : m.true_negatives) += w;
    }
  }
  m.precision = SafeDiv(m.true_positives, m.true_positives + m.false_positives);
  m.recall = SafeDiv(m.true_positives, m.true_positives + m.false_negatives);
  m.f1 = SafeDiv(2 * m.precision * m.recall, m.precision + m.recall);
  const double total = m.true_positives + m.false_positives + m.true_negatives + m.false_negatives;
  m.accuracy = SafeDiv(m.true_positives + m.true_negatives, total);
  return m;
}

template <typename Label>
absl::StatusOr<ClassificationMetrics> ComputeImpl(absl::Span<const float> scores,
                                                  absl::Span<const Label> labels,
                                                  const MetricsOptions& options,
                                                  absl::Span<const double> weights) {
  FRAUD_RETURN_IF_ERROR(ValidateImpl(scores, labels, weights));
  FRAUD_RETURN_IF_ERROR(EnsureNonEmpty(scores));
  FRAUD_RETURN_IF_ERROR(ValidateTopK(options.top_k));
  const Ranked r = Rank(scores, labels, weights);
  ClassificationMetrics m;
  m.set_rows(std::llround(r.positives + r.negatives));
  m.set_positives(std::llround(r.positives));
  m.set_weighted(!weights.empty());
  m.set_single_class(r.positives <= 0 || r.negatives <= 0);
  if (!m.single_class()) {
    m.set_auprc(ApFromRanked(r, nullptr));
    m.set_roc_auc(RocFromRanked(r));
    if (options.bootstrap_resamples > 0) {
      FRAUD_ASSIGN_OR_RETURN(
          Interval ci, BootstrapFromRanked(r, options.bootstrap_resamples, options.seed, 0.95));
      m.set_auprc_ci_low(ci.low);
      m.set_auprc_ci_high(ci.high);
    }
    for (const PrPoint& p : CurveFromRanked(r, scores, options.max_curve_points)) {
      common::v1::PrPoint* out = m.add_pr_curve();
      out->set_recall(p.recall);
      out->set_precision(p.precision);
      out->set_threshold(p.threshold);
    }
  }
  const ThresholdMetrics t = ThresholdImpl(scores, labels, options.threshold, weights);
  m.set_threshold(options.threshold);
  m.set_precision(t.precision);
  m.set_recall(t.recall);
  m.set_f1(t.f1);
  m.set_accuracy(t.accuracy);
  m.mutable_confusion()->set_true_positives(std::llround(t.true_positives));
  m.mutable_confusion()->set_false_positives(std::llround(t.false_positives));
  m.mutable_confusion()->set_true_negatives(std::llround(t.true_negatives));
  m.mutable_confusion()->set_false_negatives(std::llround(t.false_negatives));
  const std::vector<double> at_k = TopKFromRanked(r, options.top_k);
  for (size_t i = 0; i < at_k.size(); ++i) {
    common::v1::PrecisionAtK* p = m.add_precision_at_k();
    p->set_k(options.top_k[i]);
    p->set_precision(at_k[i]);
  }
  return m;
}

}  // namespace

absl::Status ValidateInputs(absl::Span<const float> scores, absl::Span<const int32_t> labels,
                            absl::Span<const double> weights) {
  return ValidateImpl(scores, labels, weights);
}

absl::StatusOr<double> AveragePrecision(absl::Span<const float> scores,
                                        absl::Span<const int32_t> labels,
                                        absl::Span<const double> weights) {
  FRAUD_RETURN_IF_ERROR(ValidateInputs(scores, labels, weights));
  const Ranked r = Rank(scores, labels, weights);
  if (r.positives <= 0) return NoPositives("average precision");
  return ApFromRanked(r, nullptr);
}

absl::StatusOr<double> RocAuc(absl::Span<const float> scores, absl::Span<const int32_t> labels,
                              absl::Span<const double> weights) {
  FRAUD_RETURN_IF_ERROR(ValidateInputs(scores, labels, weights));
  const Ranked r = Rank(scores, labels, weights);
  if (r.positives <= 0 || r.negatives <= 0) {
    return absl::FailedPreconditionError("ROC AUC is undefined: the labels hold one class only");
  }
  return RocFromRanked(r);
}

absl::StatusOr<ThresholdMetrics> MetricsAtThreshold(absl::Span<const float> scores,
                                                    absl::Span<const int32_t> labels,
                                                    double threshold,
                                                    absl::Span<const double> weights) {
  FRAUD_RETURN_IF_ERROR(ValidateImpl(scores, labels, weights));
  FRAUD_RETURN_IF_ERROR(EnsureNonEmpty(scores));
  return ThresholdImpl(scores, labels, threshold, weights);
}

absl::StatusOr<std::vector<double>> PrecisionAtTopK(absl::Span<const float> scores,
                                                    absl::Span<const int32_t> labels,
                                                    absl::Span<const int> ks,
                                                    absl::Span<const double> weights) {
  FRAUD_RETURN_IF_ERROR(ValidateInputs(scores, labels, weights));
  FRAUD_RETURN_IF_ERROR(EnsureNonEmpty(scores));
  FRAUD_RETURN_IF_ERROR(ValidateTopK(ks));
  return TopKFromRanked(Rank(scores, labels, weights), ks);
}

absl::StatusOr<std::vector<PrPoint>> PrecisionRecallCurve(absl::Span<const float> scores,
                                                          absl::Span<const int32_t> labels,
                                                          size_t max_points,
                                                          absl::Span<const double> weights) {
  FRAUD_RETURN_IF_ERROR(ValidateInputs(scores, labels, weights));
  const Ranked r = Rank(scores, labels, weights);
  if (r.positives <= 0) return NoPositives("the precision-recall curve");
  return CurveFromRanked(r, scores, max_points);
}

absl::StatusOr<Interval> BootstrapAveragePrecision(absl::Span<const float> scores,
                                                   absl::Span<const int32_t> labels, int resamples,
                                                   uint64_t seed, double confidence,
                                                   absl::Span<const double> weights) {
  FRAUD_RETURN_IF_ERROR(ValidateInputs(scores, labels, weights));
  const Ranked r = Rank(scores, labels, weights);
  if (r.positives <= 0) return NoPositives("bootstrap average precision");
  return BootstrapFromRanked(r, resamples, seed, confidence);
}

absl::StatusOr<PairedDifference> PairedBootstrapAveragePrecision(
    absl::Span<const float> scores_a, absl::Span<const float> scores_b,
    absl::Span<const int32_t> labels, int resamples, uint64_t seed, double confidence,
    absl::Span<const double> weights) {
  const PairedBlock block{scores_a, scores_b, labels, weights};
  return PairedBootstrapMeanAveragePrecision(absl::MakeConstSpan(&block, 1), resamples, seed,
                                             confidence);
}

absl::StatusOr<PairedDifference> PairedBootstrapMeanAveragePrecision(
    absl::Span<const PairedBlock> blocks, int resamples, uint64_t seed, double confidence) {
  if (blocks.empty()) return absl::InvalidArgumentError("no blocks to compare on");
  for (const PairedBlock& b : blocks) {
    FRAUD_RETURN_IF_ERROR(ValidateInputs(b.scores_a, b.labels, b.weights));
    FRAUD_RETURN_IF_ERROR(ValidateInputs(b.scores_b, b.labels, b.weights));
  }
  if (resamples < 1) return absl::InvalidArgumentError("bootstrap needs at least one resample");
  if (!(confidence > 0 && confidence < 1)) {
    return absl::InvalidArgumentError("bootstrap confidence must be in (0, 1)");
  }
  struct RankedBlock {
    Ranked a;
    Ranked b;
    std::vector<uint32_t> rows, count_a, count_b;
  };
  std::vector<RankedBlock> ranked;
  PairedDifference out;
  for (const PairedBlock& block : blocks) {
    RankedBlock r{Rank(block.scores_a, block.labels, block.weights),
                  Rank(block.scores_b, block.labels, block.weights), {}, {}, {}};
    if (r.a.positives <= 0) return NoPositives("the paired AUPRC difference");
    out.difference += ApFromRanked(r.a, nullptr) - ApFromRanked(r.b, nullptr);
    const size_t n = block.labels.size();
    r.rows.resize(n);
    r.count_a.resize(n);
    r.count_b.resize(n);
    ranked.push_back(std::move(r));
  }
  const double k = static_cast<double>(blocks.size());
  out.difference /= k;
  std::mt19937_64 rng(seed);
  std::vector<double> diffs;
  diffs.reserve(static_cast<size_t>(resamples));
  int a_better = 0;
  for (int draw = 0; draw < resamples; ++draw) {
    double sum = 0;
    bool usable = true;
    // Rows are drawn within each block (a stratified bootstrap), the same draw seen in each
    // model's ranked order.
    for (RankedBlock& r : ranked) {
      const size_t n = r.rows.size();
      std::uniform_int_distribution<size_t> pick(0, n - 1);
      std::fill(r.rows.begin(), r.rows.end(), 0u);
      for (size_t i = 0; i < n; ++i) ++r.rows[pick(rng)];
      for (size_t i = 0; i < n; ++i) {
        r.count_a[i] = r.rows[r.a.order[i]];
        r.count_b[i] = r.rows[r.b.order[i]];
      }
      const double ap_a = ApFromRanked(r.a, r.count_a.data());
      const double ap_b = ApFromRanked(r.b, r.count_b.data());
      if (ap_a < 0 || ap_b < 0) usable = false;  // a draw without a fraud
      sum += ap_a - ap_b;
    }
    if (!usable) continue;
    diffs.push_back(sum / k);
    a_better += sum > 0;
  }
  if (diffs.empty()) return NoPositives("the paired AUPRC difference");
  out.resamples = static_cast<int>(diffs.size());
  out.share_a_better = static_cast<double>(a_better) / static_cast<double>(diffs.size());
  std::sort(diffs.begin(), diffs.end());
  const double alpha = (1.0 - confidence) / 2.0;
  out.low = LinearPercentile(diffs, alpha);
  out.high = LinearPercentile(diffs, 1.0 - alpha);
  return out;
}

absl::StatusOr<std::vector<BudgetPoint>> ThresholdsForAlertBudgets(
    absl::Span<const float> scores, absl::Span<const int32_t> labels,
    absl::Span<const double> fractions, absl::Span<const double> weights) {
  FRAUD_RETURN_IF_ERROR(ValidateInputs(scores, labels, weights));
  if (scores.empty()) return absl::InvalidArgumentError("no rows");
  for (double f : fractions) {
    if (!(f > 0 && f <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("alert budget ", f, " is not a fraction in (0, 1]"));
    }
  }
  const Ranked r = Rank(scores, labels, weights);
  const double total = r.positives + r.negatives;
  std::vector<BudgetPoint> out;
  for (double f : fractions) {
    const double budget = f * total;
    // Walk tie groups from the top; keep the last group end whose cumulative weight fits.
    double tp = 0;
    double fp = 0;
    double kept_tp = -1;
    double kept_fp = 0;
    float kept_score = 0;
    if (budget < 1) continue;  // not one row's worth of alerts
    for (size_t i = 0; i < r.size(); ++i) {
      (r.fraud(i) ? tp : fp) += r.weight(i);
      if (!r.group_end(i)) continue;
      // The top tie group is kept even when it alone exceeds the budget (a saturated model
      // scores many rows exactly 1): no threshold can split a tie, and `alerts` says so.
      if (kept_tp >= 0 && tp + fp > budget * (1 + 1e-12)) break;
      kept_tp = tp;
      kept_fp = fp;
      kept_score = scores[r.order[i]];
    }
    BudgetPoint p;
    p.fraction = f;
    p.threshold = kept_score;
    p.alerts = kept_tp + kept_fp;
    p.precision = SafeDiv(kept_tp, kept_tp + kept_fp);
    p.recall = SafeDiv(kept_tp, r.positives);
    out.push_back(p);
  }
  return out;
}

absl::StatusOr<double> SelectThresholdMaxF1(absl::Span<const float> scores,
                                            absl::Span<const int32_t> labels,
                                            absl::Span<const double> weights) {
  FRAUD_RETURN_IF_ERROR(ValidateInputs(scores, labels, weights));
  const Ranked r = Rank(scores, labels, weights);
  if (r.positives <= 0) return NoPositives("the F1-maximising threshold");
  double best_f1 = -1;
  double best_threshold = 0;
  WalkGroups(r, nullptr, [&](double tp, double fp, size_t i) {
    // F1 = 2TP / (2TP + FP + FN) = 2TP / (TP + FP + P).
    const double f1 = 2 * tp / (tp + fp + r.positives);
    if (f1 > best_f1) {
      best_f1 = f1;
      best_threshold = scores[r.order[i]];
    }
  });
  return best_threshold;
}

absl::StatusOr<ClassificationMetrics> ComputeClassificationMetrics(
    absl::Span<const float> scores, absl::Span<const int32_t> labels, const MetricsOptions& options,
    absl::Span<const double> weights) {
  return ComputeImpl(scores, labels, options, weights);
}

absl::StatusOr<ClassificationMetrics> ComputeClassificationMetricsInt8(
    absl::Span<const float> scores, absl::Span<const int8_t> labels, const MetricsOptions& options) {
  return ComputeImpl(scores, labels, options, {});
}

ScoreHistogram::ScoreHistogram(int bins)
    : normal_(static_cast<size_t>(std::max(bins, 1))),
      fraud_(normal_.size()),
      unlabelled_(normal_.size()) {}

void ScoreHistogram::Add(float score, int32_t label) {
  const int n = bins();
  int bin = 0;
  if (score >= 1.0f) {
    bin = n - 1;
  } else if (score > 0.0f) {  // NaN and negatives stay in bin 0
    bin = std::min(n - 1, static_cast<int>(static_cast<double>(score) * n));
  }
  if (label == 0) {
    ++normal_[bin];
  } else if (label == 1) {
    ++fraud_[bin];
  } else {
    ++unlabelled_[bin];
  }
}

void ScoreHistogram::AddBatch(absl::Span<const float> scores, absl::Span<const int32_t> labels) {
  for (size_t i = 0; i < scores.size(); ++i) {
    Add(scores[i], i < labels.size() ? labels[i] : -1);
  }
}

void ScoreHistogram::AppendTo(google::protobuf::RepeatedPtrField<common::v1::ScoreBin>* out) const {
  const int n = bins();
  for (int i = 0; i < n; ++i) {
    common::v1::ScoreBin* bin = out->Add();
    bin->set_lower(static_cast<double>(i) / n);
    bin->set_upper(static_cast<double>(i + 1) / n);
    bin->set_count_normal(normal_[i]);
    bin->set_count_fraud(fraud_[i]);
    bin->set_count_unlabelled(unlabelled_[i]);
  }
}

}  // namespace fraud::eval
