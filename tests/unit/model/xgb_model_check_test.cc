// CanonicalXgboostModel: every defect a crafted model.json can carry is refused before XGBoost
// parses it (a fuzzed artifact whose num_trees disagreed with its tree list crashed XGBoost's
// predictor), and every model our trainer writes passes unchanged in meaning.
#include "services/common/model/xgb_model_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "services/common/model/artifact.h"
#include "services/common/model/model_runtime.h"
#include "tests/testing/fuzz_artifact.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/model/test_models.h"

namespace fraud::model {
namespace {

namespace fs = std::filesystem;
using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::HasSubstr;
using Json = nlohmann::json;

std::string ModelJson(ModelFamily family) {
  absl::StatusOr<std::vector<WeightFile>> files =
      testing::TinyModel(family).runtime->SerializeWeights();
  EXPECT_THAT(files, IsOk());
  return files.ok() ? (*files)[0].bytes : "";
}

Json& Trees(Json& m) { return m["learner"]["gradient_booster"]["model"]["trees"]; }

TEST(XgbModelCheckTest, AcceptsEveryTreeModelOurTrainerWrites) {
  for (ModelFamily family :
       {common::v1::MODEL_FAMILY_XGBOOST, common::v1::MODEL_FAMILY_RANDOM_FOREST}) {
    const std::string bytes = ModelJson(family);
    absl::StatusOr<std::string> canonical = CanonicalXgboostModel(bytes, kNumFeatures);
    ASSERT_THAT(canonical, IsOk()) << FamilyName(family);
    // Same document, only re-spelled.
    EXPECT_EQ(Json::parse(*canonical), Json::parse(bytes)) << FamilyName(family);
  }
}

struct Defect {
  const char* name;
  std::function<void(Json&)> mutate;
  const char* message;
};

TEST(XgbModelCheckTest, RefusesEachStructuralDefectAsDataLossNamingIt) {
  const Json good = Json::parse(ModelJson(common::v1::MODEL_FAMILY_XGBOOST));
  ASSERT_GE(Trees(const_cast<Json&>(good)).size(), 2u);
  ASSERT_GE(good["learner"]["gradient_booster"]["model"]["trees"][0]["left_children"].size(), 3u);
  const std::vector<Defect> defects = {
      {"num_trees disagrees (the fuzz finding)",
       [](Json& m) {
         m["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"] = "1";
       },
       "num_trees is 1 but \"trees\" holds"},
      {"child past the node array", [](Json& m) { Trees(m)[1]["right_children"][0] = 1000; },
       "tree 1 node 0: right child 1000 is outside the tree's"},
      {"negative child", [](Json& m) { Trees(m)[0]["left_children"][0] = -7; },
       "left child -7 is outside"},
      {"cycle back to the root", [](Json& m) { Trees(m)[0]["left_children"][0] = 0; },
       "left child 0 is outside"},
      {"shared child",
       [](Json& m) { Trees(m)[0]["right_children"][0] = Trees(m)[0]["left_children"][0]; },
       "is reached twice"},
      {"one child only", [](Json& m) { Trees(m)[0]["right_children"][0] = -1; },
       "has exactly one child"},
      {"parent disagrees", [](Json& m) { Trees(m)[0]["parents"][1] = 2; }, "names parent 2"},
      {"split on a missing feature", [](Json& m) { Trees(m)[0]["split_indices"][0] = 30; },
       "splits on feature 30, the model has 30"},
      {"array length", [](Json& m) { Trees(m)[0]["split_conditions"].erase(0); },
       "\"split_conditions\" is not an array of"},
      {"non-finite leaf", [](Json& m) { Trees(m)[0]["base_weights"][0] = "nan"; },
       "\"base_weights\"[0] is not a finite number"},
      {"tree count too large for its ids", [](Json& m) { Trees(m)[1]["id"] = 0; },
       "tree 1: \"id\" must be 1"},
      {"second output group",
       [](Json& m) { m["learner"]["gradient_booster"]["model"]["tree_info"][0] = 1; },
       "tree_info[0] is 1"},
      {"tree_info length",
       [](Json& m) { m["learner"]["gradient_booster"]["model"]["tree_info"].erase(0); },
       "\"tree_info\" is not an array of"},
      {"categorical split", [](Json& m) { Trees(m)[0]["split_type"][0] = 1; },
       "split_type is not numerical"},
      {"categories", [](Json& m) { Trees(m)[0]["categories"] = Json::array({1}); },
       "must be an empty array"},
      {"num_nodes disagrees", [](Json& m) { Trees(m)[0]["tree_param"]["num_nodes"] = "2"; },
       "is not an array of 2 integers"},
      {"unreachable nodes not counted as deleted",
       [](Json& m) {
         Trees(m)[0]["left_children"][0] = -1;  // the root becomes a leaf, its subtrees orphans
         Trees(m)[0]["right_children"][0] = -1;
       },
       "unreachable from the root"},
      {"base_score 1", [](Json& m) { m["learner"]["learner_model_param"]["base_score"] = "1"; },
       "base_score 1 is not a probability"},
      {"base_score inf", [](Json& m) { m["learner"]["learner_model_param"]["base_score"] = "inf"; },
       "\"base_score\" is not a finite number string"},
      {"feature count", [](Json& m) { m["learner"]["learner_model_param"]["num_feature"] = "31"; },
       "\"num_feature\" is 31, expected 30"},
      {"multi-class", [](Json& m) { m["learner"]["learner_model_param"]["num_class"] = "3"; },
       "\"num_class\" is 3, expected 0"},
      {"objective", [](Json& m) { m["learner"]["objective"]["name"] = "reg:squarederror"; },
       "name must be \"binary:logistic\""},
      {"dart booster", [](Json& m) { m["learner"]["gradient_booster"]["name"] = "dart"; },
       "name must be \"gbtree\""},
      {"unknown key", [](Json& m) { Trees(m)[0]["leaf_vector"] = Json::array(); },
       "has unknown key \"leaf_vector\""},
      {"missing key", [](Json& m) { Trees(m)[0].erase("parents"); }, "lacks \"parents\""},
      {"version 2",
       [](Json& m) {
         m["version"] = Json::array({2, 0, 0});
       },
       "\"version\" must be [1, minor, patch]"},
      {"not an object",
       [](Json& m) {
         m = Json::array({1, 2});
       },
       "is not a JSON object"},
      {"no trees", [](Json& m) { Trees(m) = Json::array(); }, "must be an array of 1 to"},
      {"parallel trees do not divide",
       [](Json& m) {
         m["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_parallel_tree"] =
             "1000";
       },
       "num_parallel_tree 1000 does not divide"},
  };
  for (const Defect& d : defects) {
    Json m = good;
    d.mutate(m);
    EXPECT_THAT(CanonicalXgboostModel(m.dump(), kNumFeatures),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr(d.message)))
        << d.name;
  }
}

TEST(XgbModelCheckTest, RefusesTextThatIsNotJsonOrHasADuplicateKeyThatDisagrees) {
  EXPECT_THAT(CanonicalXgboostModel("{\"learner\": ", kNumFeatures),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("not a JSON document")));
  // Two parsers could read a duplicate key differently; the canonical text has one value, and
  // here it (the last) disagrees with the tree list.
  Json m = Json::parse(ModelJson(common::v1::MODEL_FAMILY_XGBOOST));
  const size_t trees = Trees(m).size();
  std::string text = m.dump();
  const std::string key = "\"num_trees\":\"" + std::to_string(trees) + "\"";
  ASSERT_NE(text.find(key), std::string::npos);
  text.replace(text.find(key), key.size(), key + ",\"num_trees\":\"1\"");
  EXPECT_THAT(CanonicalXgboostModel(text, kNumFeatures),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("num_trees is 1")));
}

// The artifact of ../shared/findings/fuzz_manifest-crash-38fef195 (kept in the fuzz corpus):
// consistent checksums, three trees, num_trees "1". Loading it crashed XGBoost's predictor.
TEST(XgbModelCheckTest, TheFuzzFindingLoadsAsAClearDataLossError) {
  const fs::path input = fs::path(FRAUD_SOURCE_DIR) /
                         "tests/fuzz/corpus/manifest/"
                         "regression_xgboost_num_trees_disagrees_with_trees_38fef195";
  const std::string dir = testing::MakeTempDir();
  ASSERT_THAT(fraud::testing::WriteArtifactFromFuzzInput(input.string(), dir), IsOk());
  EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kDataLoss,
                                       HasSubstr("model.json: gbtree_model_param: num_trees is 1 "
                                                 "but \"trees\" holds 3")));
}

}  // namespace
}  // namespace fraud::model
