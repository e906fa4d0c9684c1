// Reason codes: every family's explanation adds up to the margin it scored (the logit of its
// score), on real tiny models trained in-process and after a round trip through an artifact; the
// top contributions are ordered by magnitude; a feature a model cannot use gets nothing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

#include "services/common/model/artifact.h"
#include "services/common/model/attribution.h"
#include "services/common/model/families.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/model/test_models.h"

namespace fraud::model {
namespace {

using ::fraud::testing::IsOk;
namespace mt = ::fraud::model::testing;

double Sum(const RowExplanation& e) {
  return e.bias + std::accumulate(std::begin(e.contributions), std::end(e.contributions), 0.0);
}

double Sigmoid(double m) { return 1.0 / (1.0 + std::exp(-m)); }

// Explains and scores `d` with `model` and checks, row by row, that the contributions and the bias
// sum to the margin, and that the margin is the logit of the model's own score.
void ExpectExplanationsSumToTheMargin(const ModelRuntime& model, const Dataset& d) {
  std::vector<RowExplanation> explanations(d.rows());
  std::vector<float> scores(d.rows());
  ASSERT_THAT(model.Explain(d.features.data(), d.rows(), explanations.data()), IsOk());
  ASSERT_THAT(model.Score(d.features.data(), d.rows(), scores.data()), IsOk());
  size_t compared_logits = 0;
  for (size_t r = 0; r < d.rows(); ++r) {
    const RowExplanation& e = explanations[r];
    EXPECT_NEAR(Sum(e), e.margin, 1e-5 * std::max(1.0, std::abs(e.margin))) << "row " << r;
    EXPECT_NEAR(Sigmoid(e.margin), scores[r], 2e-6) << "row " << r;
    // The logit of a float score is only defined to ~1e-7 / (p (1 - p)): compare it where that
    // is below the tolerance.
    const double p = scores[r];
    if (p > 1e-3 && p < 1 - 1e-3) {
      ++compared_logits;
      EXPECT_NEAR(e.margin, std::log(p / (1 - p)), 2e-3) << "row " << r;
    }
  }
  EXPECT_GT(compared_logits, d.rows() / 20) << "too few rows with a well-defined logit";
  // The bias is a property of the model, not of the row.
  for (const RowExplanation& e : explanations) EXPECT_DOUBLE_EQ(e.bias, explanations[0].bias);
}

class ExplainFamilyTest : public ::testing::TestWithParam<ModelFamily> {};

TEST_P(ExplainFamilyTest, ContributionsAndBiasSumToTheMargin) {
  ExpectExplanationsSumToTheMargin(*mt::TinyModel(GetParam()).runtime, mt::TinyTest());
}

TEST_P(ExplainFamilyTest, ALoadedArtifactExplainsLikeTheTrainedModel) {
  const TrainedCandidate& c = mt::TinyModel(GetParam());
  absl::StatusOr<std::string> dir =
      WriteArtifact(mt::MakeTempDir(), c.ManifestForVersion(1), *c.runtime);
  ASSERT_THAT(dir, IsOk());
  absl::StatusOr<std::unique_ptr<ModelRuntime>> loaded = LoadModel(*dir);
  ASSERT_THAT(loaded, IsOk());
  const Dataset& d = mt::TinyTest();
  ExpectExplanationsSumToTheMargin(**loaded, d);
  constexpr size_t kRows = 20;
  std::vector<RowExplanation> a(kRows);
  std::vector<RowExplanation> b(kRows);
  ASSERT_THAT(c.runtime->Explain(d.features.data(), kRows, a.data()), IsOk());
  ASSERT_THAT((*loaded)->Explain(d.features.data(), kRows, b.data()), IsOk());
  for (size_t r = 0; r < kRows; ++r) {
    for (size_t j = 0; j < kNumFeatures; ++j) {
      EXPECT_NEAR(a[r].contributions[j], b[r].contributions[j], 1e-6) << r << "," << j;
    }
  }
}

// The fraud signal of the synthetic data is in V1..V6 and Amount: the largest contribution of a
// fraud row the model flags is one of them.
TEST_P(ExplainFamilyTest, TheTopReasonOfACaughtFraudIsAnInformativeFeature) {
  const TrainedCandidate& c = mt::TinyModel(GetParam());
  const Dataset& d = mt::TinyTest();
  std::vector<RowExplanation> explanations(d.rows());
  std::vector<float> scores(d.rows());
  ASSERT_THAT(c.runtime->Explain(d.features.data(), d.rows(), explanations.data()), IsOk());
  ASSERT_THAT(c.runtime->Score(d.features.data(), d.rows(), scores.data()), IsOk());
  size_t checked = 0;
  for (size_t r = 0; r < d.rows(); ++r) {
    if (d.labels[r] != 1 || scores[r] < c.runtime->threshold()) continue;
    ++checked;
    const size_t top = TopContributions(explanations[r], 1).at(0);
    EXPECT_TRUE((top >= 1 && top <= 6) || top == kAmountColumn)
        << "row " << r << ": top feature " << FeatureNames()[top];
  }
  EXPECT_GT(checked, 5u);
}

// A feature that is constant in the training data carries no information: trees never split on
// it, so TreeSHAP gives it exactly 0 whatever its value; for the others its standardised value at
// the training constant is 0, the baseline, so it gets 0 there.
TEST_P(ExplainFamilyTest, AFeatureConstantInTrainingGetsNoContribution) {
  constexpr size_t kConstant = 10;  // V10
  auto flatten = [](Dataset d) {
    for (size_t r = 0; r < d.rows(); ++r) d.features[r * kNumFeatures + kConstant] = 0.25;
    return d;
  };
  absl::StatusOr<TrainedCandidate> c = TrainCandidate(
      mt::TinySpec(GetParam()), flatten(mt::TinyTrain()), flatten(mt::TinyValidation()));
  ASSERT_THAT(c, IsOk());
  Dataset test = flatten(mt::TinyTest());
  const bool trees = GetParam() == common::v1::MODEL_FAMILY_XGBOOST ||
                     GetParam() == common::v1::MODEL_FAMILY_RANDOM_FOREST;
  if (trees) {
    for (size_t r = 0; r < test.rows(); ++r) test.features[r * kNumFeatures + kConstant] = r % 7;
  }
  std::vector<RowExplanation> explanations(test.rows());
  ASSERT_THAT(c->runtime->Explain(test.features.data(), test.rows(), explanations.data()), IsOk());
  for (size_t r = 0; r < test.rows(); ++r) {
    EXPECT_NEAR(explanations[r].contributions[kConstant], 0.0, 1e-9) << "row " << r;
  }
  ExpectExplanationsSumToTheMargin(*c->runtime, test);
}

INSTANTIATE_TEST_SUITE_P(
    EveryFamily, ExplainFamilyTest,
    ::testing::Values(common::v1::MODEL_FAMILY_LOGREG, common::v1::MODEL_FAMILY_MLP,
                      common::v1::MODEL_FAMILY_XGBOOST, common::v1::MODEL_FAMILY_RANDOM_FOREST,
                      common::v1::MODEL_FAMILY_ENSEMBLE),
    [](const ::testing::TestParamInfo<ModelFamily>& info) { return FamilyName(info.param); });

// Both ways an ensemble combines its members, with a tree and a network member.
TEST(ExplainEnsembleTest, RankAndMeanEnsemblesSumToTheLogitOfTheirScore) {
  for (const char* combine : {"mean", "rank"}) {
    SCOPED_TRACE(combine);
    CandidateSpec spec = mt::TinySpec(common::v1::MODEL_FAMILY_ENSEMBLE);
    spec.params["members"] = "xgboost,mlp";
    spec.params["combine"] = combine;
    absl::StatusOr<TrainedCandidate> c =
        TrainCandidate(spec, mt::TinyTrain(), mt::TinyValidation());
    ASSERT_THAT(c, IsOk());
    ExpectExplanationsSumToTheMargin(*c->runtime, mt::TinyTest());
  }
}

TEST(TopContributionsTest, OrdersByMagnitudeWithSignsKeptAndTiesInFeatureOrder) {
  RowExplanation e;
  e.contributions[3] = -2.0;
  e.contributions[7] = 1.5;
  e.contributions[0] = 0.5;
  e.contributions[29] = -0.5;
  e.contributions[12] = 3.0;
  e.contributions[20] = 0.1;
  EXPECT_THAT(TopContributions(e, 5), ::testing::ElementsAre(12, 3, 7, 0, 29));
  EXPECT_THAT(TopContributions(e, 2), ::testing::ElementsAre(12, 3));
  EXPECT_EQ(TopContributions(e, 100).size(), kNumFeatures);
}

// The exact walk against a hand-computed ReLU network: f(x) = relu(x0 - 1) + 2 relu(-x1) + 0*x2,
// output layer [1, 2]. From the baseline 0 to x = (3, -1, 5): unit 1 switches on at a third of the
// path, so IG gives x0 3 * (2/3) = 2 and x1 -1 * (-2) = 2; the margin is 2 + 2 = 4, the bias 0.
TEST(ExplainReluNetworkTest, MatchesAHandComputedNetworkAndGivesAnUnusedInputZero) {
  internal::DenseLayer hidden;
  hidden.in = kNumFeatures;
  hidden.out = 2;
  hidden.w.assign(2 * kNumFeatures, 0.0);
  hidden.w[0] = 1.0;                  // unit 0 reads x0
  hidden.w[kNumFeatures + 1] = -1.0;  // unit 1 reads -x1
  hidden.b = {-1.0, 0.0};
  internal::DenseLayer output;
  output.in = 2;
  output.out = 1;
  output.w = {1.0, 2.0};
  output.b = {0.0};
  const std::vector<internal::DenseLayer> net = {hidden, output};
  float x[kNumFeatures] = {};
  x[0] = 3;
  x[1] = -1;
  x[2] = 5;
  RowExplanation e;
  internal::ExplainReluNetwork(net, x, &e);
  EXPECT_NEAR(e.margin, 4.0, 1e-12);
  EXPECT_NEAR(e.bias, 0.0, 1e-12);
  EXPECT_NEAR(e.contributions[0], 2.0, 1e-7);
  EXPECT_NEAR(e.contributions[1], 2.0, 1e-7);
  EXPECT_EQ(e.contributions[2], 0.0);
  EXPECT_NEAR(Sum(e), e.margin, 1e-12);
}

// The segment walk against brute force on a random two-hidden-layer network: integrated gradients
// by a fine midpoint sum of central differences of the network itself. Agreement shows the walk
// is exact, not merely rescaled to the right total.
TEST(ExplainReluNetworkTest, AgreesWithABruteForcePathIntegralOnARandomNetwork) {
  std::mt19937 rng(7);
  std::normal_distribution<double> normal(0.0, 1.0);
  auto layer = [&](size_t in, size_t out) {
    internal::DenseLayer l;
    l.in = in;
    l.out = out;
    for (size_t i = 0; i < in * out; ++i) l.w.push_back(normal(rng) / std::sqrt(in));
    for (size_t o = 0; o < out; ++o) l.b.push_back(0.3 * normal(rng));
    return l;
  };
  const std::vector<internal::DenseLayer> net = {layer(kNumFeatures, 12), layer(12, 6),
                                                 layer(6, 1)};
  auto forward = [&](const std::vector<double>& p) {
    std::vector<double> a = p;
    for (size_t l = 0; l < net.size(); ++l) {
      std::vector<double> y(net[l].out);
      for (size_t o = 0; o < net[l].out; ++o) {
        y[o] = net[l].b[o];
        for (size_t i = 0; i < net[l].in; ++i) y[o] += net[l].w[o * net[l].in + i] * a[i];
        if (l + 1 < net.size()) y[o] = std::max(y[o], 0.0);
      }
      a = y;
    }
    return a[0];
  };
  float x[kNumFeatures];
  for (float& v : x) v = static_cast<float>(2 * normal(rng));
  RowExplanation e;
  internal::ExplainReluNetwork(net, x, &e);

  constexpr int kSteps = 4000;
  constexpr double kH = 1e-7;
  std::vector<double> brute(kNumFeatures, 0.0);
  std::vector<double> p(kNumFeatures);
  for (int k = 0; k < kSteps; ++k) {
    const double alpha = (k + 0.5) / kSteps;
    for (size_t j = 0; j < kNumFeatures; ++j) p[j] = alpha * x[j];
    for (size_t j = 0; j < kNumFeatures; ++j) {
      const double keep = p[j];
      p[j] = keep + kH;
      const double up = forward(p);
      p[j] = keep - kH;
      const double down = forward(p);
      p[j] = keep;
      brute[j] += (up - down) / (2 * kH) * x[j] / kSteps;
    }
  }
  std::vector<double> zero(kNumFeatures, 0.0);
  std::vector<double> at_x(x, x + kNumFeatures);
  EXPECT_NEAR(e.bias, forward(zero), 1e-12);
  EXPECT_NEAR(e.margin, forward(at_x), 1e-12);
  for (size_t j = 0; j < kNumFeatures; ++j) EXPECT_NEAR(e.contributions[j], brute[j], 2e-3) << j;
}

TEST(ExplainReluNetworkTest, ALinearModelGetsWeightTimesInput) {
  internal::DenseLayer linear;
  linear.in = kNumFeatures;
  linear.out = 1;
  linear.w.assign(kNumFeatures, 0.0);
  linear.w[5] = -0.5;
  linear.w[29] = 2.0;
  linear.b = {-3.0};
  float x[kNumFeatures] = {};
  x[5] = 4;
  x[29] = 0.25;
  x[9] = 100;  // weight 0: no contribution
  RowExplanation e;
  internal::ExplainReluNetwork({linear}, x, &e);
  EXPECT_DOUBLE_EQ(e.bias, -3.0);
  EXPECT_DOUBLE_EQ(e.contributions[5], -2.0);
  EXPECT_DOUBLE_EQ(e.contributions[29], 0.5);
  EXPECT_EQ(e.contributions[9], 0.0);
  EXPECT_DOUBLE_EQ(e.margin, -4.5);
}

}  // namespace
}  // namespace fraud::model
