// The rolling-origin backtest's plan, fold data and ranking (services/training/backtest.h).
#include "services/training/backtest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "services/common/core/transaction_layout.h"
#include "services/training/run_params.h"

namespace fraud::training {
namespace {

// Labels with a fraud every `every` rows.
std::vector<int32_t> Labels(size_t rows, size_t every) {
  std::vector<int32_t> out(rows, 0);
  for (size_t i = every - 1; i < rows; i += every) out[i] = 1;
  return out;
}

TEST(PlanBacktestTest, BlocksTileTheNewestRowsOldestFirstEachStoppedByTheSliceBeforeIt) {
  const std::vector<int32_t> labels = Labels(1000, 10);  // 100 frauds
  BacktestOptions o;
  o.blocks = 3;
  o.min_block_frauds = 5;
  const std::vector<BacktestFold> folds = PlanBacktest(labels, 700, o);
  ASSERT_EQ(folds.size(), 3u);
  for (size_t k = 0; k < folds.size(); ++k) {
    EXPECT_EQ(folds[k].block.size(), 100u);
    EXPECT_EQ(folds[k].stop.end, folds[k].block.begin);
    EXPECT_EQ(folds[k].stop.size(), folds[k].block.size());
    EXPECT_EQ(folds[k].fit.begin, 0u);
    EXPECT_EQ(folds[k].fit.end, folds[k].stop.begin);
    if (k > 0) {
      EXPECT_EQ(folds[k].stop.begin, folds[k - 1].block.begin);
    }
  }
  EXPECT_EQ(folds.back().block.end, 1000u);
  EXPECT_GE(folds.front().block.begin, 700u);
}

TEST(PlanBacktestTest, TooFewFraudsMeansFewerBlocksThenNone) {
  const std::vector<int32_t> labels = Labels(1000, 50);  // 20 frauds, 6 in the window
  BacktestOptions o;
  o.blocks = 3;
  o.min_block_frauds = 3;
  // The window [700, 1000) holds 6 frauds: two blocks of 3 qualify, three blocks of 2 do not.
  EXPECT_EQ(PlanBacktest(labels, 700, o).size(), 2u);
  o.min_block_frauds = 6;
  EXPECT_EQ(PlanBacktest(labels, 700, o).size(), 1u);
  o.min_block_frauds = 7;
  EXPECT_TRUE(PlanBacktest(labels, 700, o).empty());
  o.min_block_frauds = 1;
  o.blocks = 0;
  EXPECT_TRUE(PlanBacktest(labels, 700, o).empty());
}

TEST(PlanBacktestTest, ABlockOfOnlyFraudsDoesNotQualify) {
  std::vector<int32_t> labels = Labels(100, 5);
  for (size_t i = 90; i < 100; ++i) labels[i] = 1;
  BacktestOptions o;
  o.blocks = 1;
  o.min_block_frauds = 1;
  EXPECT_TRUE(PlanBacktest(labels, 90, o).empty());
}

model::Dataset Pool(const std::vector<int32_t>& labels) {
  model::Dataset d;
  d.labels = labels;
  d.features.resize(labels.size() * layout::kNumFeatures);
  for (size_t i = 0; i < labels.size(); ++i) {
    d.features[i * layout::kNumFeatures + layout::kTimeIndex] = static_cast<double>(i);
  }
  return d;
}

TEST(MakeFoldDataTest, LargeFitsKeepEveryFraudAndASampleOfNormalsWeightedBack) {
  const model::Dataset pool = Pool(Labels(20000, 100));  // 200 frauds
  BacktestFold fold{{0, 18000}, {18000, 19000}, {19000, 20000}};
  BacktestOptions o;
  o.max_fold_rows = 4000;
  const FoldData d = MakeFoldData(pool, fold, o);
  EXPECT_EQ(d.stop.rows(), 1000u);
  EXPECT_EQ(d.block.rows(), 1000u);
  EXPECT_EQ(d.block.features[layout::kTimeIndex], 19000.0);
  const int64_t fit_frauds = std::accumulate(d.fit.labels.begin(), d.fit.labels.end(), int64_t{0});
  EXPECT_EQ(fit_frauds, 180);  // every fraud of rows [0, 18000)
  EXPECT_NEAR(static_cast<double>(d.fit.rows()), 4000, 200);
  ASSERT_EQ(d.fit.weights.size(), d.fit.rows());
  double normal_weight = 0;
  for (size_t i = 0; i < d.fit.rows(); ++i) {
    if (d.fit.labels[i] == 1) {
      EXPECT_EQ(d.fit.weights[i], 1.0);
    } else {
      normal_weight += d.fit.weights[i];
    }
  }
  // The weighted normals stand for all 17,820 normal rows of the fit.
  EXPECT_NEAR(normal_weight, 17820, 17820 * 0.05);
  EXPECT_NEAR(d.normal_sample_rate, (4000.0 - 180) / 17820, 1e-9);
  // Deterministic: the same fold twice gives the same rows.
  EXPECT_EQ(MakeFoldData(pool, fold, o).fit.features, d.fit.features);
}

TEST(MakeFoldDataTest, SmallFitsAreCopiedWhole) {
  const model::Dataset pool = Pool(Labels(2000, 100));
  const FoldData d = MakeFoldData(pool, {{0, 1500}, {1500, 1750}, {1750, 2000}}, BacktestOptions{});
  EXPECT_EQ(d.fit.rows(), 1500u);
  EXPECT_TRUE(d.fit.weights.empty());
  EXPECT_EQ(d.normal_sample_rate, 1.0);
}

TEST(BacktestScoreTest, MeanFirstThenTheBetterWorstBlock) {
  const BacktestScore steady = Summarize({0.7, 0.7, 0.7});
  const BacktestScore uneven = Summarize({0.9, 0.5, 0.7});
  EXPECT_NEAR(steady.mean, 0.7, 1e-12);
  EXPECT_NEAR(uneven.mean, 0.7, 1e-12);
  EXPECT_DOUBLE_EQ(uneven.worst, 0.5);
  EXPECT_TRUE(RanksAbove(steady, uneven));
  EXPECT_FALSE(RanksAbove(uneven, steady));
  EXPECT_TRUE(RanksAbove(Summarize({0.8, 0.65}), steady));  // a higher mean wins over a steadier one
  EXPECT_EQ(Summarize({}).mean, 0);
}

TEST(ChooseByBacktestTest, PreferredWinsUnlessAnotherIsClearlyBetter) {
  const ScoredCandidate logreg{Summarize({0.70, 0.72}), false};
  const ScoredCandidate mlp{Summarize({0.80, 0.82}), false};  // mean 0.81
  const ScoredCandidate ensemble{Summarize({0.80, 0.80}), true};  // mean 0.80
  // 0.81 is not more than 0.80 + 0.02: the preferred candidate wins.
  EXPECT_EQ(ChooseByBacktest({logreg, mlp, ensemble}, 0.02), 2);
  // Without a margin the higher mean wins.
  EXPECT_EQ(ChooseByBacktest({logreg, mlp, ensemble}, 0.0), 1);
  // Clearly better by more than the margin: the other candidate wins.
  const ScoredCandidate strong{Summarize({0.90, 0.90}), false};
  EXPECT_EQ(ChooseByBacktest({ensemble, strong}, 0.02), 1);
  // The best of several preferred candidates; none preferred: the best of all.
  const ScoredCandidate ensemble2{Summarize({0.79, 0.79}), true};
  EXPECT_EQ(ChooseByBacktest({ensemble2, mlp, ensemble}, 0.02), 2);
  EXPECT_EQ(ChooseByBacktest({logreg, mlp}, 0.02), 1);
  EXPECT_EQ(ChooseByBacktest({}, 0.02), -1);
}

TEST(BacktestParamsTest, SelectionAndGateParamsResolveOrNameTheBadValue) {
  training::v1::StartRunRequest request;
  (*request.mutable_params())["backtest_preference_margin"] = "0.03";
  (*request.mutable_params())["backtest_refit_on_newest"] = "true";
  (*request.mutable_params())["backtest_gate"] = "not_worse";
  absl::StatusOr<RunSettings> s = ResolveRun(request, PipelineOptions());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_DOUBLE_EQ(s->backtest.preference_margin, 0.03);
  EXPECT_TRUE(s->backtest.refit_on_newest);
  EXPECT_TRUE(s->backtest.gate_not_worse);
  absl::StatusOr<std::map<std::string, std::string>> recorded =
      ResolveRunParams(request, PipelineOptions());
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  EXPECT_EQ(recorded->at("backtest_gate"), "not_worse");
  EXPECT_EQ(recorded->at("backtest_refit_on_newest"), "1");
  // Defaults: no preference margin, the refit leaves the newest block out, the "better" gate; a
  // request can turn both on.
  absl::StatusOr<RunSettings> d = ResolveRun(training::v1::StartRunRequest(), PipelineOptions());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->backtest.preference_margin, 0);
  EXPECT_FALSE(d->backtest.refit_on_newest);
  EXPECT_FALSE(d->backtest.gate_not_worse);
  training::v1::StartRunRequest e;
  (*e.mutable_params())["backtest_refit_on_newest"] = "true";
  (*e.mutable_params())["backtest_gate"] = "not_worse";
  absl::StatusOr<RunSettings> o = ResolveRun(e, PipelineOptions());
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->backtest.refit_on_newest);
  EXPECT_TRUE(o->backtest.gate_not_worse);
  for (const auto& [key, bad] : std::vector<std::pair<std::string, std::string>>{
           {"backtest_preference_margin", "-0.1"},
           {"backtest_preference_margin", "x"},
           {"backtest_refit_on_newest", "maybe"},
           {"backtest_gate", "best"}}) {
    training::v1::StartRunRequest r;
    (*r.mutable_params())[key] = bad;
    absl::StatusOr<RunSettings> bad_run = ResolveRun(r, PipelineOptions());
    EXPECT_EQ(bad_run.status().code(), absl::StatusCode::kInvalidArgument) << key << "=" << bad;
    EXPECT_THAT(std::string(bad_run.status().message()), ::testing::HasSubstr(key));
  }
}

}  // namespace
}  // namespace fraud::training
