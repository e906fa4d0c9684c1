// TreeForest against XGBoost itself: the same model JSON loaded into an XGBoost booster through
// the C API and into a TreeForest must give the same probabilities, margins and TreeSHAP
// contributions (pred_contribs), for boosted trees and for a random forest deep enough that
// features repeat along a path (TreeSHAP's unwind step), including rows whose values sit exactly
// on split conditions (value < condition goes left).
#include "services/common/model/tree_forest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <xgboost/c_api.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "services/common/model/xgb_model_check.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/model/test_models.h"

namespace fraud::model {
namespace {

using ::fraud::testing::IsOk;
using internal::TreeForest;
namespace mt = ::fraud::model::testing;

// The model JSON of a family trained on the tiny data with `params`.
std::string TrainedModelJson(ModelFamily family, std::map<std::string, std::string> params) {
  CandidateSpec spec = mt::TinySpec(family);
  for (const auto& [k, v] : params) spec.params[k] = v;
  absl::StatusOr<TrainedCandidate> c = TrainCandidate(spec, mt::TinyTrain(), mt::TinyValidation());
  EXPECT_THAT(c, IsOk());
  if (!c.ok()) return "";
  absl::StatusOr<std::vector<WeightFile>> files = c->runtime->SerializeWeights();
  EXPECT_THAT(files, IsOk());
  return files.ok() && files->size() == 1 ? (*files)[0].bytes : "";
}

// Test rows: the tiny test set as floats, then copies of its first rows with one feature set to
// a split condition of the model, exactly.
std::vector<float> RowsWithValuesOnSplits(const std::string& json) {
  const Dataset& d = mt::TinyTest();
  std::vector<float> x(d.features.begin(), d.features.end());
  const nlohmann::json doc = nlohmann::json::parse(json);
  const auto& trees = doc["learner"]["gradient_booster"]["model"]["trees"];
  size_t added = 0;
  for (const auto& tree : trees) {
    const auto& left = tree["left_children"];
    for (size_t i = 0; i < left.size() && added < 200; ++i) {
      if (left[i].get<int>() < 0) continue;
      std::vector<float> row(x.begin() + added * kNumFeatures,
                             x.begin() + (added + 1) * kNumFeatures);
      row[tree["split_indices"][i].get<size_t>()] = tree["split_conditions"][i].get<float>();
      x.insert(x.end(), row.begin(), row.end());
      ++added;
    }
  }
  EXPECT_GT(added, 20u);
  return x;
}

struct XgbResult {
  std::vector<float> probabilities;
  std::vector<float> margins;
  std::vector<float> contributions;  // rows x (kNumFeatures + 1), bias last
};

XgbResult PredictWithXgboost(const std::string& json, const std::vector<float>& x) {
  XgbResult out;
  const size_t rows = x.size() / kNumFeatures;
  BoosterHandle booster = nullptr;
  DMatrixHandle m = nullptr;
  EXPECT_EQ(XGBoosterCreate(nullptr, 0, &booster), 0);
  EXPECT_EQ(XGBoosterLoadModelFromBuffer(booster, json.data(), json.size()), 0)
      << XGBGetLastError();
  EXPECT_EQ(XGDMatrixCreateFromMat(x.data(), rows, kNumFeatures, std::nanf(""), &m), 0);
  for (int type : {0, 1, 2}) {
    const std::string config = "{\"type\": " + std::to_string(type) +
                               ", \"training\": false, \"iteration_begin\": 0, "
                               "\"iteration_end\": 0, \"strict_shape\": false}";
    const bst_ulong* shape = nullptr;
    bst_ulong dim = 0;
    const float* result = nullptr;
    EXPECT_EQ(XGBoosterPredictFromDMatrix(booster, m, config.c_str(), &shape, &dim, &result), 0)
        << XGBGetLastError();
    const size_t n = type == 2 ? rows * (kNumFeatures + 1) : rows;
    std::vector<float>& target =
        type == 0 ? out.probabilities : type == 1 ? out.margins : out.contributions;
    target.assign(result, result + n);
  }
  XGDMatrixFree(m);
  XGBoosterFree(booster);
  return out;
}

void ExpectSameAsXgboost(const std::string& json) {
  ASSERT_FALSE(json.empty());
  // What the runtime loads: the checked, canonical document.
  absl::StatusOr<std::string> canonical = CanonicalXgboostModel(json, kNumFeatures);
  ASSERT_THAT(canonical, IsOk());
  absl::StatusOr<TreeForest> forest = TreeForest::FromXgboostJson(*canonical);
  ASSERT_THAT(forest, IsOk());
  const std::vector<float> x = RowsWithValuesOnSplits(json);
  const size_t rows = x.size() / kNumFeatures;
  const XgbResult want = PredictWithXgboost(json, x);
  ASSERT_EQ(want.probabilities.size(), rows);

  std::vector<float> probabilities(rows);
  std::vector<float> margins(rows);
  forest->Predict(x.data(), rows, probabilities.data());
  forest->Margins(x.data(), rows, margins.data());
  for (size_t r = 0; r < rows; ++r) {
    EXPECT_NEAR(probabilities[r], want.probabilities[r], 1e-7) << "row " << r;
    EXPECT_NEAR(margins[r], want.margins[r], 1e-6 * std::max(1.0f, std::abs(want.margins[r])))
        << "row " << r;
    RowExplanation e;
    forest->Explain(x.data() + r * kNumFeatures, &e);
    const float* c = want.contributions.data() + r * (kNumFeatures + 1);
    for (size_t j = 0; j < kNumFeatures; ++j) {
      EXPECT_NEAR(e.contributions[j], c[j], 2e-5 * std::max(1.0f, std::abs(c[j])))
          << "row " << r << " feature " << j;
    }
    EXPECT_NEAR(e.bias, c[kNumFeatures], 2e-5 * std::max(1.0f, std::abs(c[kNumFeatures])));
    EXPECT_NEAR(e.margin, want.margins[r], 1e-6 * std::max(1.0f, std::abs(want.margins[r])));
  }
}

TEST(TreeForestTest, BoostedTreesScoreAndExplainLikeXgboost) {
  ExpectSameAsXgboost(TrainedModelJson(common::v1::MODEL_FAMILY_XGBOOST,
                                       {{"max_depth", "6"}, {"scale_pos_weight", "sqrt"}}));
}

TEST(TreeForestTest, ARandomForestWithRepeatedFeaturesOnAPathScoresAndExplainsLikeXgboost) {
  ExpectSameAsXgboost(TrainedModelJson(common::v1::MODEL_FAMILY_RANDOM_FOREST,
                                       {{"max_depth", "10"}, {"trees", "20"}}));
}

TEST(TreeForestTest, RefusesADocumentThatIsNotAModel) {
  EXPECT_EQ(TreeForest::FromXgboostJson("{").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(TreeForest::FromXgboostJson(R"({"learner": {}})").status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace fraud::model
