// Training and scoring: every family trains in-process on small synthetic data.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "services/common/model/artifact.h"
#include "services/common/model/model_runtime.h"
#include "services/common/model/trainer.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/model/test_models.h"

namespace fraud::model {
namespace {

using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::HasSubstr;
using testing::kAllFamilies;
using testing::MakeSyntheticData;
using testing::TinyModel;
using testing::TinySpec;
using testing::TinyTest;
using testing::TinyTrain;
using testing::TinyValidation;

std::vector<float> ScoreAll(const ModelRuntime& model, const Dataset& d) {
  std::vector<float> out(d.rows());
  EXPECT_THAT(model.Score(d.features.data(), d.rows(), out.data()), IsOk());
  return out;
}

class FamilyTest : public ::testing::TestWithParam<ModelFamily> {};

INSTANTIATE_TEST_SUITE_P(AllFamilies, FamilyTest, ::testing::ValuesIn(kAllFamilies),
                         [](const ::testing::TestParamInfo<ModelFamily>& info) {
                           return FamilyName(info.param);
                         });
// The ensemble passes the same per-family checks (its own artifact tests are in ensemble_test.cc).
INSTANTIATE_TEST_SUITE_P(Ensemble, FamilyTest,
                         ::testing::Values(common::v1::MODEL_FAMILY_ENSEMBLE),
                         [](const ::testing::TestParamInfo<ModelFamily>& info) {
                           return FamilyName(info.param);
                         });

TEST_P(FamilyTest, TrainsAModelWithACompleteManifest) {
  const TrainedCandidate& c = TinyModel(GetParam());
  const ModelManifest& m = c.manifest();
  EXPECT_EQ(m.family(), GetParam());
  EXPECT_EQ(m.feature_names_size(), 30);
  EXPECT_EQ(m.feature_names(0), "Time");
  EXPECT_EQ(m.feature_names(29), "Amount");
  EXPECT_EQ(m.preprocessing().mean_size(), 30);
  EXPECT_TRUE(m.preprocessing().log_amount());
  EXPECT_TRUE(m.preprocessing().time_of_day());
  EXPECT_GT(m.threshold(), 0.0);
  EXPECT_LT(m.threshold(), 1.0);
  EXPECT_EQ(m.lineage().train_rows(), 3000);
  EXPECT_EQ(m.lineage().validation_rows(), 1000);
  EXPECT_GT(m.lineage().train_frauds(), 0);
  EXPECT_EQ(m.smoke().rows().num_rows(), 16u);
  EXPECT_EQ(m.smoke().expected_scores_size(), 16);
  EXPECT_EQ(m.reference_size(), 30);
  EXPECT_EQ(m.params().count("best_epoch"), 1u);
  EXPECT_EQ(m.validation_metrics().rows(), 1000);
  EXPECT_EQ(m.validation_metrics().threshold(), m.threshold());
  EXPECT_GT(m.validation_metrics().auprc_ci_high(), 0.0);
  // Alert-budget thresholds on the same 1000 validation rows, one per budget: each flags at most
  // its budget unless the top scores tie (a saturated model), and a larger budget never has a
  // higher threshold.
  ASSERT_EQ(m.budget_thresholds_size(), 3);
  EXPECT_DOUBLE_EQ(m.budget_thresholds(2).alert_fraction(), 0.01);
  for (int i = 0; i < m.budget_thresholds_size(); ++i) {
    const common::v1::BudgetThreshold& b = m.budget_thresholds(i);
    EXPECT_GE(b.alerts(), 1);
    if (b.alerts() > b.alert_fraction() * 1000 + 1e-9) {
      // Over budget only as the top tie group, which every smaller budget shares.
      EXPECT_EQ(b.threshold(), m.budget_thresholds(0).threshold());
      EXPECT_EQ(b.alerts(), m.budget_thresholds(0).alerts());
    }
    EXPECT_GE(b.precision(), 0.0);
    EXPECT_LE(b.precision(), 1.0);
    if (i > 0) {
      EXPECT_LE(b.threshold(), m.budget_thresholds(i - 1).threshold());
    }
  }
  EXPECT_FALSE(c.curve.empty());
  EXPECT_GE(c.best_epoch, 1);
  EXPECT_LE(c.best_epoch, static_cast<int>(c.curve.size()));
  EXPECT_GT(c.train_seconds, 0.0);
}

TEST_P(FamilyTest, SeparatesTheClassesOfAnEasySet) {
  const TrainedCandidate& c = TinyModel(GetParam());
  EXPECT_GT(c.validation_metrics().auprc(), 0.8);
  EXPECT_GT(c.validation_metrics().roc_auc(), 0.95);
}

TEST_P(FamilyTest, ScoresAreProbabilities) {
  for (float s : ScoreAll(*TinyModel(GetParam()).runtime, TinyTest())) {
    EXPECT_GE(s, 0.0f);
    EXPECT_LE(s, 1.0f);
  }
}

TEST_P(FamilyTest, ScoringInChunksEqualsScoringAtOnce) {
  const ModelRuntime& model = *TinyModel(GetParam()).runtime;
  const Dataset& d = TinyTest();
  const std::vector<float> all = ScoreAll(model, d);
  for (size_t r = 0; r < d.rows(); r += 97) {
    float one = -1;
    ASSERT_THAT(model.Score(d.features.data() + r * kNumFeatures, 1, &one), IsOk());
    EXPECT_NEAR(one, all[r], 1e-6) << "row " << r;
  }
  // Every row in chunks of 15: the torch families score batches under 16 rows with plain float
  // loops (dense_net.h) and larger ones with LibTorch; both must agree on every row.
  constexpr size_t kChunk = 15;
  for (size_t r = 0; r < d.rows(); r += kChunk) {
    const size_t n = std::min(kChunk, d.rows() - r);
    std::vector<float> chunk(n, -1);
    ASSERT_THAT(model.Score(d.features.data() + r * kNumFeatures, n, chunk.data()), IsOk());
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR(chunk[i], all[r + i], 1e-6) << "row " << r + i;
  }
}

TEST_P(FamilyTest, RejectsNonFiniteInputNamingTheRow) {
  const ModelRuntime& model = *TinyModel(GetParam()).runtime;
  std::vector<double> rows(TinyTest().features.begin(),
                           TinyTest().features.begin() + 3 * kNumFeatures);
  rows[2 * kNumFeatures + 5] = std::numeric_limits<double>::quiet_NaN();
  std::vector<float> out(3);
  EXPECT_THAT(model.Score(rows.data(), 3, out.data()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("row 2: feature V5")));
  rows[2 * kNumFeatures + 5] = 0;
  rows[kNumFeatures - 1] = std::numeric_limits<double>::infinity();
  EXPECT_THAT(model.Score(rows.data(), 3, out.data()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("row 0: feature Amount")));
}

TEST_P(FamilyTest, RejectsAWrongFeatureCount) {
  const ModelRuntime& model = *TinyModel(GetParam()).runtime;
  std::vector<double> rows(2 * kNumFeatures - 1, 0.0);
  std::vector<float> out(2);
  EXPECT_THAT(model.Score(absl::MakeConstSpan(rows), absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("multiple of 30")));
  std::vector<double> full(2 * kNumFeatures, 0.0);
  std::vector<float> short_out(1);
  EXPECT_THAT(model.Score(absl::MakeConstSpan(full), absl::MakeSpan(short_out)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(model.Score(absl::MakeConstSpan(full), absl::MakeSpan(out)), IsOk());
}

TEST_P(FamilyTest, ScoresConcurrentlyFromFourThreadsLikeSerially) {
  const ModelRuntime& model = *TinyModel(GetParam()).runtime;
  const Dataset& d = TinyTest();
  const std::vector<float> expected = ScoreAll(model, d);
  std::vector<std::vector<float>> got(4, std::vector<float>(d.rows()));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 20; ++rep) {
        // Mixed batch sizes: whole set, then row by row on some reps.
        if (rep % 5 == 0) {
          for (size_t r = 0; r < d.rows(); ++r) {
            if (!model.Score(d.features.data() + r * kNumFeatures, 1, &got[t][r]).ok()) {
              ++failures;
            }
          }
        } else if (!model.Score(d.features.data(), d.rows(), got[t].data()).ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < 4; ++t) {
    for (size_t r = 0; r < d.rows(); ++r) ASSERT_NEAR(got[t][r], expected[r], 1e-6);
  }
}

TEST_P(FamilyTest, ReportsProgressOncePerEpoch) {
  std::vector<EpochProgress> seen;
  TrainCallbacks callbacks;
  callbacks.on_epoch = [&](const EpochProgress& p) { seen.push_back(p); };
  absl::StatusOr<TrainedCandidate> c =
      TrainCandidate(TinySpec(GetParam()), TinyTrain(), TinyValidation(), callbacks);
  ASSERT_THAT(c, IsOk());
  ASSERT_EQ(seen.size(), c->curve.size());
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].epoch, static_cast<int>(i + 1));
    EXPECT_GT(seen[i].train_loss, 0.0);
    EXPECT_GT(seen[i].validation_loss, 0.0);
    EXPECT_GT(seen[i].validation_auprc, 0.0);
    EXPECT_LE(seen[i].validation_auprc, 1.0);
  }
}

TEST_P(FamilyTest, StopsWithCancelledWhenTheFlagIsSet) {
  std::atomic<bool> cancel{false};
  int epochs_seen = 0;
  TrainCallbacks callbacks;
  callbacks.cancel = &cancel;
  callbacks.on_epoch = [&](const EpochProgress&) {
    ++epochs_seen;
    cancel = true;  // cancel after the first epoch/round
  };
  absl::StatusOr<TrainedCandidate> c =
      TrainCandidate(TinySpec(GetParam()), TinyTrain(), TinyValidation(), callbacks);
  if (GetParam() == common::v1::MODEL_FAMILY_RANDOM_FOREST) {
    // One round only: the flag is read before it, so the forest finishes.
    EXPECT_THAT(c, IsOk());
  } else {
    EXPECT_THAT(c, StatusIs(absl::StatusCode::kCancelled));
    EXPECT_EQ(epochs_seen, 1);
  }
  cancel = true;
  EXPECT_THAT(TrainCandidate(TinySpec(GetParam()), TinyTrain(), TinyValidation(), callbacks),
              StatusIs(absl::StatusCode::kCancelled));
}

TEST_P(FamilyTest, RejectsUnknownParameters) {
  CandidateSpec spec = TinySpec(GetParam());
  spec.params["learning_rat"] = "0.1";
  EXPECT_THAT(TrainCandidate(spec, TinyTrain(), TinyValidation()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("learning_rat")));
}

TEST(TrainerTest, StopOnLossKeepsTheEpochWithTheLowestValidationLoss) {
  CandidateSpec spec = TinySpec(common::v1::MODEL_FAMILY_MLP);
  spec.params["stop_on"] = "loss";
  spec.params["patience"] = spec.params["epochs"];  // every epoch runs
  absl::StatusOr<TrainedCandidate> c = TrainCandidate(spec, TinyTrain(), TinyValidation());
  ASSERT_THAT(c, IsOk());
  ASSERT_FALSE(c->curve.empty());
  size_t lowest = 0;
  for (size_t i = 1; i < c->curve.size(); ++i) {
    if (c->curve[i].validation_loss < c->curve[lowest].validation_loss) lowest = i;
  }
  EXPECT_EQ(c->best_epoch, static_cast<int>(lowest + 1));
  EXPECT_EQ(c->manifest().params().at("stop_on"), "loss");
  spec.params["stop_on"] = "f1";
  EXPECT_THAT(TrainCandidate(spec, TinyTrain(), TinyValidation()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stop_on")));
}

TEST(TrainerTest, ReachesHighAuprcWithMlpAndXgboostOnASeparableSet) {
  const Dataset train = MakeSyntheticData(20000, 0.02, 3.0, 21);
  const Dataset validation = MakeSyntheticData(5000, 0.02, 3.0, 22);
  for (ModelFamily family : {common::v1::MODEL_FAMILY_MLP, common::v1::MODEL_FAMILY_XGBOOST}) {
    CandidateSpec spec = DefaultGrid(family).front();
    spec.threads = 1;
    // 20k rows make few steps per epoch at the default batch size of 2048.
    if (family == common::v1::MODEL_FAMILY_MLP) spec.params["batch_size"] = "256";
    absl::StatusOr<TrainedCandidate> c = TrainCandidate(spec, train, validation);
    ASSERT_THAT(c, IsOk());
    EXPECT_GT(c->validation_metrics().auprc(), 0.9) << c->name;
  }
}

TEST(TrainerTest, FitsThePreprocessingOnTrainingRowsOnly) {
  const TrainedCandidate& c = TinyModel(common::v1::MODEL_FAMILY_LOGREG);
  const Dataset& train = TinyTrain();
  double sum_v1 = 0;
  double sum_log_amount = 0;
  for (size_t r = 0; r < train.rows(); ++r) {
    sum_v1 += train.features[r * kNumFeatures + 1];
    sum_log_amount += std::log1p(train.features[r * kNumFeatures + kAmountColumn]);
  }
  const auto& pre = c.manifest().preprocessing();
  EXPECT_NEAR(pre.mean(1), sum_v1 / train.rows(), 1e-9);
  EXPECT_NEAR(pre.mean(29), sum_log_amount / train.rows(), 1e-9);
}

TEST(TrainerTest, RequiresBothClassesInTrainingAndValidation) {
  Dataset no_frauds = TinyTrain();
  std::fill(no_frauds.labels.begin(), no_frauds.labels.end(), 0);
  EXPECT_THAT(
      TrainCandidate(TinySpec(common::v1::MODEL_FAMILY_XGBOOST), no_frauds, TinyValidation()),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("training")));
  EXPECT_THAT(TrainCandidate(TinySpec(common::v1::MODEL_FAMILY_XGBOOST), TinyTrain(), no_frauds),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("validation")));
}

TEST(TrainerTest, RejectsMalformedData) {
  Dataset bad = TinyTrain();
  bad.features.pop_back();
  EXPECT_THAT(TrainCandidate(TinySpec(common::v1::MODEL_FAMILY_LOGREG), bad, TinyValidation()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  bad = TinyTrain();
  bad.features[7 * kNumFeatures + 3] = std::nan("");
  EXPECT_THAT(TrainCandidate(TinySpec(common::v1::MODEL_FAMILY_LOGREG), bad, TinyValidation()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("row 7")));
  bad = TinyTrain();
  bad.labels[4] = 2;
  EXPECT_THAT(TrainCandidate(TinySpec(common::v1::MODEL_FAMILY_LOGREG), bad, TinyValidation()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("label")));
}

TEST(TrainerTest, UsesRowWeights) {
  // Zero weight on every fraud row of the training set leaves no positives to learn from.
  Dataset weighted = TinyTrain();
  weighted.weights.assign(weighted.rows(), 1.0);
  for (size_t r = 0; r < weighted.rows(); ++r) {
    if (weighted.labels[r] == 1) weighted.weights[r] = 0.0;
  }
  EXPECT_THAT(TrainCandidate(TinySpec(common::v1::MODEL_FAMILY_MLP), weighted, TinyValidation()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // Doubling every weight keeps training valid and marks the metrics as weighted.
  Dataset doubled = TinyValidation();
  doubled.weights.assign(doubled.rows(), 2.0);
  absl::StatusOr<TrainedCandidate> c =
      TrainCandidate(TinySpec(common::v1::MODEL_FAMILY_XGBOOST), TinyTrain(), doubled);
  ASSERT_THAT(c, IsOk());
  EXPECT_TRUE(c->validation_metrics().weighted());
  EXPECT_EQ(c->validation_metrics().rows(), 2000);
}

TEST(TrainerTest, DefaultCandidatesCoverEveryFamilyWithDistinctNames) {
  const std::vector<CandidateSpec> all = DefaultCandidates();
  std::set<ModelFamily> families;
  std::set<std::string> names;
  for (const CandidateSpec& s : all) {
    families.insert(s.family);
    names.insert(s.Name());
  }
  EXPECT_EQ(families.size(), Families().size());
  EXPECT_EQ(names.size(), all.size());
  EXPECT_GE(DefaultGrid(common::v1::MODEL_FAMILY_MLP).size(), 2u);
  EXPECT_LE(DefaultGrid(common::v1::MODEL_FAMILY_MLP).size(), 4u);
}

TEST(TrainerTest, NamesFamiliesBothWays) {
  for (ModelFamily f : kAllFamilies) EXPECT_EQ(*ParseFamily(FamilyName(f)), f);
  EXPECT_EQ(*ParseFamily("XGBoost"), common::v1::MODEL_FAMILY_XGBOOST);
  EXPECT_THAT(ParseFamily("svm"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_P(FamilyTest, ScoresOneRowInTensOfMicroseconds) {
  const ModelRuntime& model = *TinyModel(GetParam()).runtime;
  const double* row = TinyTest().features.data();
  float out = 0;
  std::vector<double> micros;
  for (int i = 0; i < 2000; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_THAT(model.Score(row, 1, &out), IsOk());
    micros.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(micros.begin(), micros.end());
  const double median = micros[micros.size() / 2];
  RecordProperty("single_row_median_us", std::to_string(median));
  std::printf("%s single-row Score median %.1f us\n", FamilyName(GetParam()).c_str(), median);
  EXPECT_LT(median, 500.0);  // generous: the machine is shared with other builds
}

}  // namespace
}  // namespace fraud::model
