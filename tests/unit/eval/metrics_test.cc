#include "services/common/eval/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tests/testing/status_matchers.h"

namespace fraud::eval {
namespace {

using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Example A (no ties), rows sorted by score:
//   score 0.9 0.8 0.7 0.6 0.5 0.4
//   label  1   0   1   1   0   0      P = 3, N = 3
// Recall rises at 0.9 (P=1/1, R=1/3), 0.7 (P=2/3, R=2/3), 0.6 (P=3/4, R=1):
//   AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/4 = 29/36.
// ROC-AUC = pairs (pos, neg) ranked correctly / (P * N): 0.9 beats 3, 0.7 beats 2, 0.6 beats 2
//   = 7/9.
const std::vector<float> kScoresA = {0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f};
const std::vector<int32_t> kLabelsA = {1, 0, 1, 1, 0, 0};

TEST(AveragePrecisionTest, MatchesHandComputedValueWithoutTies) {
  absl::StatusOr<double> ap = AveragePrecision(kScoresA, kLabelsA);
  ASSERT_THAT(ap, IsOk());
  EXPECT_NEAR(*ap, 29.0 / 36.0, 1e-12);
}

TEST(AveragePrecisionTest, MatchesScikitLearnDocumentationExample) {
  // sklearn.metrics.average_precision_score docs: y=[0,0,1,1], s=[0.1,0.4,0.35,0.8] -> 0.8333.
  // By hand: 0.8 (P=1, R=1/2), 0.4 (P=1/2, no recall gain), 0.35 (P=2/3, R=1):
  //   AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
  absl::StatusOr<double> ap = AveragePrecision({0.1f, 0.4f, 0.35f, 0.8f}, {0, 0, 1, 1});
  ASSERT_THAT(ap, IsOk());
  EXPECT_NEAR(*ap, 5.0 / 6.0, 1e-12);
}

TEST(AveragePrecisionTest, GroupsTiedScoresIntoOneThreshold) {
  // score 0.8 0.8 0.3 / label 1 0 1. The tie is one threshold: at 0.8 TP=1 FP=1 (P=1/2, R=1/2),
  // at 0.3 TP=2 FP=1 (P=2/3, R=1): AP = 1/4 + 1/3 = 7/12. Ranking the positive of the tie first
  // would give 1/2 + 1/3 = 5/6 instead.
  absl::StatusOr<double> ap = AveragePrecision({0.8f, 0.8f, 0.3f}, {1, 0, 1});
  ASSERT_THAT(ap, IsOk());
  EXPECT_NEAR(*ap, 7.0 / 12.0, 1e-12);
}

TEST(AveragePrecisionTest, IsOneWhenEveryRowIsPositive) {
  absl::StatusOr<double> ap = AveragePrecision({0.2f, 0.9f, 0.5f}, {1, 1, 1});
  ASSERT_THAT(ap, IsOk());
  EXPECT_DOUBLE_EQ(*ap, 1.0);
}

TEST(AveragePrecisionTest, IsUndefinedWithoutPositives) {
  EXPECT_THAT(AveragePrecision({0.2f, 0.9f}, {0, 0}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no positive")));
}

TEST(AveragePrecisionTest, RejectsBadInputs) {
  EXPECT_THAT(AveragePrecision({0.1f, 0.2f}, {1}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(AveragePrecision({0.1f, 0.2f}, {1, 2}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("row 1")));
  EXPECT_THAT(AveragePrecision({0.1f, std::numeric_limits<float>::quiet_NaN()}, {1, 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not finite")));
  EXPECT_THAT(AveragePrecision({0.1f, 0.2f}, {1, 0}, {1.0, -1.0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight")));
  EXPECT_THAT(AveragePrecision({0.1f, 0.2f}, {1, 0}, {1.0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RocAucTest, MatchesHandComputedValueWithoutTies) {
  absl::StatusOr<double> auc = RocAuc(kScoresA, kLabelsA);
  ASSERT_THAT(auc, IsOk());
  EXPECT_NEAR(*auc, 7.0 / 9.0, 1e-12);
}

TEST(RocAucTest, MatchesScikitLearnDocumentationExample) {
  // roc_auc_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.75: of the 4 pairs only (0.35, 0.4) is
  // ranked wrongly.
  absl::StatusOr<double> auc = RocAuc({0.1f, 0.4f, 0.35f, 0.8f}, {0, 0, 1, 1});
  ASSERT_THAT(auc, IsOk());
  EXPECT_NEAR(*auc, 0.75, 1e-12);
}

TEST(RocAucTest, CountsTiedPairsAsOneHalf) {
  // score 0.8 0.8 0.3 / label 1 0 1: pairs (0.8+, 0.8-) tie = 1/2, (0.3+, 0.8-) wrong = 0;
  // AUC = 0.5 / 2 = 0.25.
  absl::StatusOr<double> auc = RocAuc({0.8f, 0.8f, 0.3f}, {1, 0, 1});
  ASSERT_THAT(auc, IsOk());
  EXPECT_NEAR(*auc, 0.25, 1e-12);
}

TEST(RocAucTest, IsUndefinedForOneClass) {
  EXPECT_THAT(RocAuc({0.2f, 0.9f}, {1, 1}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("one class")));
  EXPECT_THAT(RocAuc({0.2f, 0.9f}, {0, 0}), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(MetricsAtThresholdTest, CountsScoresAtOrAboveTheThresholdAsFlagged) {
  // At 0.7: flagged 0.9(1) 0.8(0) 0.7(1) -> TP 2, FP 1; kept 0.6(1) -> FN 1; 0.5 0.4 -> TN 2.
  for (double threshold : {0.65, 0.7}) {
    absl::StatusOr<ThresholdMetrics> m = MetricsAtThreshold(kScoresA, kLabelsA, threshold);
    ASSERT_THAT(m, IsOk());
    EXPECT_EQ(m->true_positives, 2);
    EXPECT_EQ(m->false_positives, 1);
    EXPECT_EQ(m->false_negatives, 1);
    EXPECT_EQ(m->true_negatives, 2);
    EXPECT_NEAR(m->precision, 2.0 / 3.0, 1e-12);
    EXPECT_NEAR(m->recall, 2.0 / 3.0, 1e-12);
    EXPECT_NEAR(m->f1, 2.0 / 3.0, 1e-12);
    EXPECT_NEAR(m->accuracy, 4.0 / 6.0, 1e-12);
  }
}

TEST(MetricsAtThresholdTest, ReportsZeroPrecisionWhenNothingIsFlagged) {
  absl::StatusOr<ThresholdMetrics> m = MetricsAtThreshold(kScoresA, kLabelsA, 0.95);
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->precision, 0);
  EXPECT_EQ(m->recall, 0);
  EXPECT_EQ(m->f1, 0);
  EXPECT_NEAR(m->accuracy, 0.5, 1e-12);
}

TEST(MetricsAtThresholdTest, RejectsEmptyInput) {
  EXPECT_THAT(MetricsAtThreshold({}, {}, 0.5), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PrecisionAtTopKTest, CountsPositivesAmongTheHighestScores) {
  // Top 1: {0.9+} = 1; top 2: {0.9+, 0.8-} = 1/2; top 4: 3/4; k beyond the rows: all 6 = 1/2.
  const std::vector<int> ks = {1, 2, 4, 10};
  absl::StatusOr<std::vector<double>> p = PrecisionAtTopK(kScoresA, kLabelsA, ks);
  ASSERT_THAT(p, IsOk());
  EXPECT_THAT(*p, ElementsAre(1.0, 0.5, 0.75, 0.5));
  const std::vector<int> zero = {0};
  EXPECT_THAT(PrecisionAtTopK(kScoresA, kLabelsA, zero),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PrecisionRecallCurveTest, ListsTheCornersAveragePrecisionSums) {
  absl::StatusOr<std::vector<PrPoint>> curve = PrecisionRecallCurve(kScoresA, kLabelsA);
  ASSERT_THAT(curve, IsOk());
  ASSERT_EQ(curve->size(), 3u);
  EXPECT_NEAR((*curve)[0].recall, 1.0 / 3.0, 1e-12);
  EXPECT_NEAR((*curve)[0].precision, 1.0, 1e-12);
  EXPECT_NEAR((*curve)[0].threshold, 0.9, 1e-6);
  EXPECT_NEAR((*curve)[1].recall, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR((*curve)[1].precision, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR((*curve)[2].recall, 1.0, 1e-12);
  EXPECT_NEAR((*curve)[2].precision, 0.75, 1e-12);
  EXPECT_NEAR((*curve)[2].threshold, 0.6, 1e-6);
}

TEST(PrecisionRecallCurveTest, DownSamplesLongCurvesKeepingBothEnds) {
  std::vector<float> scores;
  std::vector<int32_t> labels;
  for (int i = 0; i < 1000; ++i) {
    scores.push_back(1.0f - static_cast<float>(i) / 1000.0f);
    labels.push_back(i % 2 == 0 ? 1 : 0);
  }
  absl::StatusOr<std::vector<PrPoint>> curve = PrecisionRecallCurve(scores, labels, 200);
  ASSERT_THAT(curve, IsOk());
  ASSERT_EQ(curve->size(), 200u);
  EXPECT_NEAR(curve->front().recall, 1.0 / 500.0, 1e-12);
  EXPECT_NEAR(curve->back().recall, 1.0, 1e-12);
  for (size_t i = 1; i < curve->size(); ++i) {
    EXPECT_GT((*curve)[i].recall, (*curve)[i - 1].recall);
  }
}

TEST(PrecisionRecallCurveTest, SampledPointsAreEvenlySpacedCornersOfTheFullCurve) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> bucket(0, 400);  // ties: several rows share a score
  std::vector<float> scores;
  std::vector<int32_t> labels;
  for (int i = 0; i < 2000; ++i) {
    const int b = bucket(rng);
    scores.push_back(static_cast<float>(b) / 400.0f);
    labels.push_back(static_cast<int32_t>(rng() % 400) < b ? 1 : 0);
  }
  absl::StatusOr<std::vector<PrPoint>> full = PrecisionRecallCurve(scores, labels, 1u << 20);
  ASSERT_THAT(full, IsOk());
  ASSERT_GT(full->size(), 50u);
  for (size_t max_points : {2u, 7u, 50u}) {
    absl::StatusOr<std::vector<PrPoint>> sampled = PrecisionRecallCurve(scores, labels, max_points);
    ASSERT_THAT(sampled, IsOk());
    ASSERT_EQ(sampled->size(), max_points);
    const double step = static_cast<double>(full->size() - 1) / static_cast<double>(max_points - 1);
    for (size_t j = 0; j < max_points; ++j) {
      const PrPoint& want = (*full)[static_cast<size_t>(std::llround(step * j))];
      EXPECT_EQ((*sampled)[j].recall, want.recall) << max_points << " " << j;
      EXPECT_EQ((*sampled)[j].precision, want.precision) << max_points << " " << j;
      EXPECT_EQ((*sampled)[j].threshold, want.threshold) << max_points << " " << j;
    }
  }
}

TEST(SelectThresholdMaxF1Test, PicksTheScoreWithTheBestF1) {
  // F1 = 2TP / (TP + FP + P) at each score: 0.9 -> 2/4, 0.8 -> 2/5, 0.7 -> 4/6, 0.6 -> 6/7,
  // 0.5 -> 6/8, 0.4 -> 6/9. Best: 0.6.
  absl::StatusOr<double> t = SelectThresholdMaxF1(kScoresA, kLabelsA);
  ASSERT_THAT(t, IsOk());
  EXPECT_NEAR(*t, 0.6, 1e-6);
  absl::StatusOr<ThresholdMetrics> m = MetricsAtThreshold(kScoresA, kLabelsA, *t);
  ASSERT_THAT(m, IsOk());
  EXPECT_NEAR(m->f1, 6.0 / 7.0, 1e-12);
  EXPECT_THAT(SelectThresholdMaxF1({0.1f}, {0}), StatusIs(absl::StatusCode::kFailedPrecondition));
}

// Random data with integer weights and the same data with every row repeated `weight` times.
struct WeightedAndDuplicated {
  std::vector<float> scores;
  std::vector<int32_t> labels;
  std::vector<double> weights;
  std::vector<float> dup_scores;
  std::vector<int32_t> dup_labels;
};

WeightedAndDuplicated MakeWeightedData() {
  WeightedAndDuplicated d;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> weight(0, 3);
  std::uniform_int_distribution<int> coarse(0, 20);  // coarse scores force many ties
  std::bernoulli_distribution fraud(0.2);
  for (int i = 0; i < 300; ++i) {
    const int32_t label = fraud(rng) ? 1 : 0;
    const float score = static_cast<float>(coarse(rng) + 4 * label) / 24.0f;
    const int w = weight(rng);
    d.scores.push_back(score);
    d.labels.push_back(label);
    d.weights.push_back(w);
    for (int k = 0; k < w; ++k) {
      d.dup_scores.push_back(score);
      d.dup_labels.push_back(label);
    }
  }
  return d;
}

TEST(WeightsTest, IntegerWeightsEqualDuplicatedRows) {
  const WeightedAndDuplicated d = MakeWeightedData();
  EXPECT_NEAR(*AveragePrecision(d.scores, d.labels, d.weights),
              *AveragePrecision(d.dup_scores, d.dup_labels), 1e-12);
  EXPECT_NEAR(*RocAuc(d.scores, d.labels, d.weights), *RocAuc(d.dup_scores, d.dup_labels), 1e-12);
  EXPECT_NEAR(*SelectThresholdMaxF1(d.scores, d.labels, d.weights),
              *SelectThresholdMaxF1(d.dup_scores, d.dup_labels), 1e-7);
  const ThresholdMetrics w = *MetricsAtThreshold(d.scores, d.labels, 0.5, d.weights);
  const ThresholdMetrics u = *MetricsAtThreshold(d.dup_scores, d.dup_labels, 0.5);
  EXPECT_EQ(w.true_positives, u.true_positives);
  EXPECT_EQ(w.false_positives, u.false_positives);
  EXPECT_NEAR(w.f1, u.f1, 1e-12);
  EXPECT_NEAR(w.accuracy, u.accuracy, 1e-12);
  const std::vector<PrPoint> cw = *PrecisionRecallCurve(d.scores, d.labels, 1000, d.weights);
  const std::vector<PrPoint> cu = *PrecisionRecallCurve(d.dup_scores, d.dup_labels, 1000);
  ASSERT_EQ(cw.size(), cu.size());
  for (size_t i = 0; i < cw.size(); ++i) {
    EXPECT_NEAR(cw[i].precision, cu[i].precision, 1e-12);
    EXPECT_NEAR(cw[i].recall, cu[i].recall, 1e-12);
  }
}

TEST(WeightsTest, UnitWeightsChangeNothing) {
  const std::vector<double> ones(kScoresA.size(), 1.0);
  EXPECT_DOUBLE_EQ(*AveragePrecision(kScoresA, kLabelsA, ones), 29.0 / 36.0);
  EXPECT_DOUBLE_EQ(*RocAuc(kScoresA, kLabelsA, ones), 7.0 / 9.0);
}

std::vector<float> NoisyScores(const std::vector<int32_t>& labels, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  std::vector<float> scores;
  for (int32_t y : labels) scores.push_back(noise(rng) + 1.5f * static_cast<float>(y));
  return scores;
}

TEST(BootstrapTest, SegmentResamplingMatchesRowByRowResampling) {
  // Unweighted rankings resample per segment (binomials); weights of 1 force the row-by-row
  // multinomial. Same distribution: the intervals agree within Monte Carlo noise. Ties included.
  std::vector<int32_t> labels;
  for (int i = 0; i < 20000; ++i) labels.push_back(i % 50 == 0 ? 1 : 0);
  std::vector<float> scores = NoisyScores(labels, 5);
  for (size_t i = 0; i < scores.size(); i += 7) scores[i] = std::round(scores[i] * 4) / 4;
  const std::vector<double> ones(labels.size(), 1.0);
  absl::StatusOr<Interval> fast = BootstrapAveragePrecision(scores, labels, 400, 11);
  absl::StatusOr<Interval> rows = BootstrapAveragePrecision(scores, labels, 400, 11, 0.95, ones);
  ASSERT_THAT(fast, IsOk());
  ASSERT_THAT(rows, IsOk());
  const double width = rows->high - rows->low;
  EXPECT_NEAR(fast->low, rows->low, 0.15 * width);
  EXPECT_NEAR(fast->high, rows->high, 0.15 * width);
  EXPECT_NEAR(fast->high - fast->low, width, 0.15 * width);
}

TEST(BootstrapTest, IsSeededAndBracketsThePointEstimate) {
  std::vector<int32_t> labels;
  for (int i = 0; i < 2000; ++i) labels.push_back(i % 10 == 0 ? 1 : 0);
  const std::vector<float> scores = NoisyScores(labels, 3);
  const double ap = *AveragePrecision(scores, labels);
  absl::StatusOr<Interval> a = BootstrapAveragePrecision(scores, labels, 200, 42);
  absl::StatusOr<Interval> b = BootstrapAveragePrecision(scores, labels, 200, 42);
  absl::StatusOr<Interval> c = BootstrapAveragePrecision(scores, labels, 200, 43);
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->low, b->low);
  EXPECT_EQ(a->high, b->high);
  EXPECT_NE(a->low, c->low);
  EXPECT_LT(a->low, ap);
  EXPECT_GT(a->high, ap);
  EXPECT_LT(a->high - a->low, 0.25);
  EXPECT_GT(a->high - a->low, 0.01);
  EXPECT_THAT(BootstrapAveragePrecision(scores, labels, 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PairedBootstrapTest, AModelAgainstItselfDiffersByExactlyZero) {
  std::vector<int32_t> labels;
  for (int i = 0; i < 1000; ++i) labels.push_back(i % 20 == 0 ? 1 : 0);
  const std::vector<float> scores = NoisyScores(labels, 5);
  absl::StatusOr<PairedDifference> d = PairedBootstrapAveragePrecision(scores, scores, labels, 100);
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ(d->difference, 0);
  EXPECT_EQ(d->low, 0);
  EXPECT_EQ(d->high, 0);
  EXPECT_EQ(d->share_a_better, 0);
  EXPECT_EQ(d->resamples, 100);
}

TEST(PairedBootstrapTest, PairingNarrowsTheIntervalOfACloseDifference) {
  // b is a with a little extra noise: the two AUPRCs move together across resamples, so the
  // paired interval of their difference is much narrower than the two marginal intervals.
  std::vector<int32_t> labels;
  for (int i = 0; i < 3000; ++i) labels.push_back(i % 15 == 0 ? 1 : 0);
  const std::vector<float> a = NoisyScores(labels, 7);
  std::vector<float> b = a;
  std::mt19937 rng(9);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  for (float& x : b) x += noise(rng);
  absl::StatusOr<PairedDifference> d = PairedBootstrapAveragePrecision(a, b, labels, 300, 11);
  ASSERT_THAT(d, IsOk());
  EXPECT_NEAR(d->difference, *AveragePrecision(a, labels) - *AveragePrecision(b, labels), 1e-12);
  EXPECT_GT(d->difference, 0);  // the noisier copy ranks worse
  EXPECT_LT(d->low, d->difference);
  EXPECT_GT(d->high, d->difference);
  absl::StatusOr<Interval> ia = BootstrapAveragePrecision(a, labels, 300, 11);
  ASSERT_THAT(ia, IsOk());
  EXPECT_LT(d->high - d->low, 0.5 * (ia->high - ia->low));
  EXPECT_GT(d->share_a_better, 0.5);
  // Seeded: the same call gives the same interval.
  EXPECT_EQ(PairedBootstrapAveragePrecision(a, b, labels, 300, 11)->low, d->low);
}

TEST(PairedBootstrapTest, RejectsMismatchedOrUnusableInputs) {
  const std::vector<int32_t> labels = {0, 1, 0, 1};
  const std::vector<float> a = {0.1f, 0.9f, 0.2f, 0.8f};
  const std::vector<float> short_b = {0.1f, 0.9f};
  EXPECT_THAT(PairedBootstrapAveragePrecision(a, short_b, labels),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(PairedBootstrapAveragePrecision(a, a, labels, 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const std::vector<int32_t> no_fraud = {0, 0, 0, 0};
  EXPECT_THAT(PairedBootstrapAveragePrecision(a, a, no_fraud),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(PairedBootstrapTest, OverBlocksTheDifferenceIsTheMeanOfTheBlocksDifferences) {
  std::vector<int32_t> y1, y2;
  for (int i = 0; i < 1500; ++i) y1.push_back(i % 12 == 0 ? 1 : 0);
  for (int i = 0; i < 900; ++i) y2.push_back(i % 9 == 0 ? 1 : 0);
  const std::vector<float> a1 = NoisyScores(y1, 3), a2 = NoisyScores(y2, 4);
  std::vector<float> b1 = a1, b2 = a2;
  std::mt19937 rng(5);
  std::normal_distribution<float> noise(0.0f, 0.4f);
  for (float& x : b1) x += noise(rng);
  for (float& x : b2) x += noise(rng);
  const std::vector<PairedBlock> blocks = {{a1, b1, y1, {}}, {a2, b2, y2, {}}};
  absl::StatusOr<PairedDifference> d = PairedBootstrapMeanAveragePrecision(blocks, 300, 3);
  ASSERT_THAT(d, IsOk());
  const double d1 = *AveragePrecision(a1, y1) - *AveragePrecision(b1, y1);
  const double d2 = *AveragePrecision(a2, y2) - *AveragePrecision(b2, y2);
  EXPECT_NEAR(d->difference, (d1 + d2) / 2, 1e-12);
  EXPECT_LT(d->low, d->difference);
  EXPECT_GT(d->high, d->difference);
  EXPECT_EQ(d->resamples, 300);
  // One block is exactly the single-block comparison (same draws, same interval).
  const std::vector<PairedBlock> one = {{a1, b1, y1, {}}};
  absl::StatusOr<PairedDifference> single = PairedBootstrapAveragePrecision(a1, b1, y1, 300, 3);
  absl::StatusOr<PairedDifference> as_blocks = PairedBootstrapMeanAveragePrecision(one, 300, 3);
  ASSERT_THAT(single, IsOk());
  ASSERT_THAT(as_blocks, IsOk());
  EXPECT_EQ(single->difference, as_blocks->difference);
  EXPECT_EQ(single->low, as_blocks->low);
  EXPECT_EQ(single->high, as_blocks->high);
  // A block without a fraud, or none at all, cannot be compared.
  const std::vector<int32_t> no_fraud(a1.size(), 0);
  const std::vector<PairedBlock> bad = {{a1, b1, y1, {}}, {a1, b1, no_fraud, {}}};
  EXPECT_THAT(PairedBootstrapMeanAveragePrecision(bad, 10),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(PairedBootstrapMeanAveragePrecision({}, 10),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(AlertBudgetTest, TheThresholdFlagsAtMostTheBudgetWithItsPrecisionAndRecall) {
  // 10 rows; scores 1.0 (fraud), 0.9 (fraud), 0.8 (normal), 0.7 (fraud), then normals.
  const std::vector<float> scores = {0.8f, 0.1f, 1.0f, 0.2f, 0.7f, 0.3f, 0.9f, 0.4f, 0.5f, 0.6f};
  const std::vector<int32_t> labels = {0, 0, 1, 0, 1, 0, 1, 0, 0, 0};
  const std::vector<double> budgets = {0.2, 0.35, 0.05};
  absl::StatusOr<std::vector<BudgetPoint>> b = ThresholdsForAlertBudgets(scores, labels, budgets);
  ASSERT_THAT(b, IsOk());
  ASSERT_EQ(b->size(), 2u);  // 5% of 10 rows allows no alert: left out
  EXPECT_DOUBLE_EQ((*b)[0].fraction, 0.2);
  EXPECT_FLOAT_EQ((*b)[0].threshold, 0.9f);  // the top 2
  EXPECT_EQ((*b)[0].alerts, 2);
  EXPECT_DOUBLE_EQ((*b)[0].precision, 1.0);
  EXPECT_DOUBLE_EQ((*b)[0].recall, 2.0 / 3.0);
  EXPECT_FLOAT_EQ((*b)[1].threshold, 0.8f);  // 3.5 rows: the top 3
  EXPECT_EQ((*b)[1].alerts, 3);
  EXPECT_DOUBLE_EQ((*b)[1].precision, 2.0 / 3.0);
  // The figures are exactly those at that threshold.
  absl::StatusOr<ThresholdMetrics> at = MetricsAtThreshold(scores, labels, (*b)[1].threshold);
  ASSERT_THAT(at, IsOk());
  EXPECT_DOUBLE_EQ(at->precision, (*b)[1].precision);
  EXPECT_DOUBLE_EQ(at->recall, (*b)[1].recall);
}

TEST(AlertBudgetTest, TiesAreNeverSplitAndBadBudgetsAreRefused) {
  const std::vector<float> scores = {0.9f, 0.9f, 0.9f, 0.1f};
  const std::vector<int32_t> labels = {1, 0, 1, 0};
  // Two alerts allowed, but the top tie group has three rows: it is the threshold, and the
  // alert count shows the budget is exceeded.
  absl::StatusOr<std::vector<BudgetPoint>> b =
      ThresholdsForAlertBudgets(scores, labels, std::vector<double>{0.5});
  ASSERT_THAT(b, IsOk());
  ASSERT_EQ(b->size(), 1u);
  EXPECT_FLOAT_EQ((*b)[0].threshold, 0.9f);
  EXPECT_EQ((*b)[0].alerts, 3);
  EXPECT_DOUBLE_EQ((*b)[0].precision, 2.0 / 3.0);
  EXPECT_THAT(ThresholdsForAlertBudgets(scores, labels, std::vector<double>{0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ThresholdsForAlertBudgets(scores, labels, std::vector<double>{1.5}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ClassificationMetricsTest, FillsEveryField) {
  MetricsOptions options;
  options.threshold = 0.65;
  options.top_k = {1, 4};
  options.bootstrap_resamples = 50;
  absl::StatusOr<ClassificationMetrics> m =
      ComputeClassificationMetrics(kScoresA, kLabelsA, options);
  ASSERT_THAT(m, IsOk());
  EXPECT_EQ(m->rows(), 6);
  EXPECT_EQ(m->positives(), 3);
  EXPECT_NEAR(m->auprc(), 29.0 / 36.0, 1e-12);
  EXPECT_NEAR(m->roc_auc(), 7.0 / 9.0, 1e-12);
  EXPECT_LE(m->auprc_ci_low(), m->auprc_ci_high());
  EXPECT_GT(m->auprc_ci_high(), 0);
  EXPECT_EQ(m->threshold(), 0.65);
  EXPECT_NEAR(m->precision(), 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(m->recall(), 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(m->accuracy(), 4.0 / 6.0, 1e-12);
  EXPECT_EQ(m->confusion().true_positives(), 2);
  EXPECT_EQ(m->confusion().false_positives(), 1);
  EXPECT_EQ(m->confusion().true_negatives(), 2);
  EXPECT_EQ(m->confusion().false_negatives(), 1);
  ASSERT_EQ(m->precision_at_k_size(), 2);
  EXPECT_EQ(m->precision_at_k(0).k(), 1);
  EXPECT_EQ(m->precision_at_k(0).precision(), 1.0);
  EXPECT_EQ(m->precision_at_k(1).precision(), 0.75);
  EXPECT_EQ(m->pr_curve_size(), 3);
  EXPECT_FALSE(m->weighted());
  EXPECT_FALSE(m->single_class());
}

TEST(ClassificationMetricsTest, ByteLabelsGiveTheSameMetricsAsInt32Labels) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> bucket(0, 300);
  std::vector<float> scores;
  std::vector<int32_t> labels;
  std::vector<int8_t> bytes;
  for (int i = 0; i < 3000; ++i) {
    const int b = bucket(rng);
    scores.push_back(static_cast<float>(b) / 300.0f);
    labels.push_back(static_cast<int32_t>(rng() % 300) < b ? 1 : 0);
    bytes.push_back(static_cast<int8_t>(labels.back()));
  }
  MetricsOptions o;
  o.bootstrap_resamples = 20;
  absl::StatusOr<ClassificationMetrics> wide = ComputeClassificationMetrics(scores, labels, o);
  absl::StatusOr<ClassificationMetrics> narrow = ComputeClassificationMetricsInt8(scores, bytes, o);
  ASSERT_THAT(wide, IsOk());
  ASSERT_THAT(narrow, IsOk());
  EXPECT_GT(wide->pr_curve_size(), 10);
  EXPECT_EQ(wide->SerializeAsString(), narrow->SerializeAsString());
  bytes[17] = 2;
  EXPECT_THAT(ComputeClassificationMetricsInt8(scores, bytes, o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("row 17: label 2")));
}

TEST(ClassificationMetricsTest, MarksOneClassLabelsAndStillReportsThresholdFigures) {
  absl::StatusOr<ClassificationMetrics> m =
      ComputeClassificationMetrics({0.1f, 0.7f, 0.2f}, {0, 0, 0});
  ASSERT_THAT(m, IsOk());
  EXPECT_TRUE(m->single_class());
  EXPECT_EQ(m->auprc(), 0);
  EXPECT_EQ(m->roc_auc(), 0);
  EXPECT_EQ(m->pr_curve_size(), 0);
  EXPECT_EQ(m->positives(), 0);
  EXPECT_EQ(m->confusion().false_positives(), 1);
  EXPECT_EQ(m->confusion().true_negatives(), 2);
  EXPECT_NEAR(m->accuracy(), 2.0 / 3.0, 1e-12);
}

TEST(ClassificationMetricsTest, ReportsWeightedCounts) {
  const WeightedAndDuplicated d = MakeWeightedData();
  MetricsOptions options;
  options.bootstrap_resamples = 0;
  absl::StatusOr<ClassificationMetrics> w =
      ComputeClassificationMetrics(d.scores, d.labels, options, d.weights);
  absl::StatusOr<ClassificationMetrics> u =
      ComputeClassificationMetrics(d.dup_scores, d.dup_labels, options);
  ASSERT_THAT(w, IsOk());
  ASSERT_THAT(u, IsOk());
  EXPECT_TRUE(w->weighted());
  EXPECT_EQ(w->rows(), static_cast<int64_t>(d.dup_scores.size()));
  EXPECT_EQ(w->positives(), u->positives());
  EXPECT_EQ(w->confusion().true_positives(), u->confusion().true_positives());
  EXPECT_NEAR(w->auprc(), u->auprc(), 1e-12);
  EXPECT_EQ(w->auprc_ci_low(), 0);
}

TEST(ScoreHistogramTest, SplitsBinsByLabelAndClampsOutliers) {
  ScoreHistogram h(20);
  const std::vector<float> scores = {0.0f, 0.049f, 0.05f, 0.999f, 1.0f, -0.1f, 1.5f, 0.5f};
  const std::vector<int32_t> labels = {0, 1, 0, 1, 0, 0, 1, -1};
  h.AddBatch(scores, labels);
  google::protobuf::RepeatedPtrField<common::v1::ScoreBin> bins;
  h.AppendTo(&bins);
  ASSERT_EQ(bins.size(), 20);
  EXPECT_DOUBLE_EQ(bins[0].lower(), 0.0);
  EXPECT_DOUBLE_EQ(bins[0].upper(), 0.05);
  EXPECT_EQ(bins[0].count_normal(), 2);  // 0.0 and the clamped -0.1
  EXPECT_EQ(bins[0].count_fraud(), 1);   // 0.049
  EXPECT_EQ(bins[1].count_normal(), 1);  // 0.05 opens bin 1
  EXPECT_EQ(bins[10].count_unlabelled(), 1);
  EXPECT_EQ(bins[19].count_fraud(), 2);   // 0.999 and the clamped 1.5
  EXPECT_EQ(bins[19].count_normal(), 1);  // 1.0 belongs to the last bin
  int64_t total = 0;
  for (const auto& b : bins) total += b.count_normal() + b.count_fraud() + b.count_unlabelled();
  EXPECT_EQ(total, 8);
}

}  // namespace
}  // namespace fraud::eval
