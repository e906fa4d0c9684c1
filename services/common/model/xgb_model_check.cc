#include "services/common/model/xgb_model_check.h"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/common/core/status_macros.h"
#include "services/common/model/artifact.h"

namespace fraud::model {
namespace {

using Json = nlohmann::json;

// XGBoost writes the root's parent as its invalid node id with the is-left-child bit masked off.
constexpr int64_t kRootParent = 2147483647;
constexpr int64_t kNoChild = -1;
// Far above anything a depth-16 tree can hold (2^17 nodes); bounds the work of a check.
constexpr int64_t kMaxNodesPerTree = int64_t{1} << 20;
constexpr int64_t kMaxTrees = 100000;

absl::Status Defect(absl::string_view where, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(kXgboostModelFileName, ": ", where, ": ", what));
}

// `obj` is an object whose keys are all in `allowed` and include every key of `required`.
absl::Status Keys(const Json& obj, absl::string_view where,
                  std::initializer_list<const char*> required,
                  std::initializer_list<const char*> optional = {}) {
  if (!obj.is_object()) return Defect(where, "is not a JSON object");
  for (const char* key : required) {
    if (!obj.contains(key)) return Defect(where, absl::StrCat("lacks \"", key, "\""));
  }
  for (const auto& item : obj.items()) {
    bool known = false;
    for (const char* key : required) known = known || item.key() == key;
    for (const char* key : optional) known = known || item.key() == key;
    if (!known) return Defect(where, absl::StrCat("has unknown key \"", item.key(), "\""));
  }
  return absl::OkStatus();
}

// An integer JSON number (XGBoost's arrays) as int64.
bool AsInt(const Json& v, int64_t* out) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  if (!v.is_number_integer()) return false;
  *out = v.get<int64_t>();
  return true;
}

// XGBoost stores its parameters as strings ("num_trees": "300").
absl::StatusOr<int64_t> IntParam(const Json& obj, const char* key, absl::string_view where) {
  const Json& v = obj.at(key);
  int64_t out = 0;
  if (!v.is_string() || !absl::SimpleAtoi(v.get_ref<const std::string&>(), &out)) {
    return Defect(where, absl::StrCat("\"", key, "\" is not an integer string"));
  }
  return out;
}

absl::StatusOr<double> DoubleParam(const Json& obj, const char* key, absl::string_view where) {
  const Json& v = obj.at(key);
  double out = 0;
  if (!v.is_string() || !absl::SimpleAtod(v.get_ref<const std::string&>(), &out) ||
      !std::isfinite(out)) {
    return Defect(where, absl::StrCat("\"", key, "\" is not a finite number string"));
  }
  return out;
}

absl::Status ExpectInt(const Json& obj, const char* key, absl::string_view where, int64_t want) {
  FRAUD_ASSIGN_OR_RETURN(int64_t got, IntParam(obj, key, where));
  if (got != want) {
    return Defect(where, absl::StrCat("\"", key, "\" is ", got, ", expected ", want));
  }
  return absl::OkStatus();
}

// `obj[key]` is an array of exactly n integers.
absl::StatusOr<std::vector<int64_t>> IntArray(const Json& obj, const char* key,
                                              absl::string_view where, size_t n) {
  const Json& v = obj.at(key);
  if (!v.is_array() || v.size() != n) {
    return Defect(where, absl::StrCat("\"", key, "\" is not an array of ", n, " integers"));
  }
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (!AsInt(v[i], &out[i])) {
      return Defect(where, absl::StrCat("\"", key, "\"[", i, "] is not an integer"));
    }
  }
  return out;
}

// `obj[key]` is an array of exactly n finite numbers.
absl::Status FiniteArray(const Json& obj, const char* key, absl::string_view where, size_t n) {
  const Json& v = obj.at(key);
  if (!v.is_array() || v.size() != n) {
    return Defect(where, absl::StrCat("\"", key, "\" is not an array of ", n, " numbers"));
  }
  for (size_t i = 0; i < n; ++i) {
    if (!v[i].is_number() || !std::isfinite(v[i].get<double>())) {
      return Defect(where, absl::StrCat("\"", key, "\"[", i, "] is not a finite number"));
    }
  }
  return absl::OkStatus();
}

absl::Status EmptyArray(const Json& obj, const char* key, absl::string_view where) {
  const Json& v = obj.at(key);
  if (!v.is_array() || !v.empty()) {
    return Defect(where,
                  absl::StrCat("\"", key, "\" must be an empty array (no categorical splits)"));
  }
  return absl::OkStatus();
}

absl::Status CheckTree(const Json& tree, size_t index, size_t num_features) {
  const std::string where = absl::StrCat("tree ", index);
  FRAUD_RETURN_IF_ERROR(Keys(
      tree, where,
      {"base_weights", "categories", "categories_nodes", "categories_segments", "categories_sizes",
       "default_left", "id", "left_children", "loss_changes", "parents", "right_children",
       "split_conditions", "split_indices", "split_type", "sum_hessian", "tree_param"}));
  int64_t id = -1;
  if (!AsInt(tree.at("id"), &id) || id != static_cast<int64_t>(index)) {
    return Defect(where, absl::StrCat("\"id\" must be ", index, " (trees are stored in order)"));
  }
  const Json& param = tree.at("tree_param");
  const std::string pwhere = absl::StrCat(where, " tree_param");
  FRAUD_RETURN_IF_ERROR(
      Keys(param, pwhere, {"num_deleted", "num_feature", "num_nodes", "size_leaf_vector"}));
  FRAUD_ASSIGN_OR_RETURN(int64_t num_nodes, IntParam(param, "num_nodes", pwhere));
  FRAUD_ASSIGN_OR_RETURN(int64_t num_deleted, IntParam(param, "num_deleted", pwhere));
  FRAUD_ASSIGN_OR_RETURN(int64_t tree_features, IntParam(param, "num_feature", pwhere));
  FRAUD_RETURN_IF_ERROR(ExpectInt(param, "size_leaf_vector", pwhere, 0));
  if (num_nodes < 1 || num_nodes > kMaxNodesPerTree) {
    return Defect(pwhere,
                  absl::StrCat("num_nodes ", num_nodes, " is outside [1, ", kMaxNodesPerTree, "]"));
  }
  if (num_deleted < 0 || num_deleted >= num_nodes) {
    return Defect(pwhere,
                  absl::StrCat("num_deleted ", num_deleted, " is outside [0, ", num_nodes, ")"));
  }
  if (tree_features < 1 || tree_features > static_cast<int64_t>(num_features)) {
    return Defect(
        pwhere, absl::StrCat("num_feature ", tree_features, " is outside [1, ", num_features, "]"));
  }
  const size_t n = static_cast<size_t>(num_nodes);
  FRAUD_ASSIGN_OR_RETURN(std::vector<int64_t> left, IntArray(tree, "left_children", where, n));
  FRAUD_ASSIGN_OR_RETURN(std::vector<int64_t> right, IntArray(tree, "right_children", where, n));
  FRAUD_ASSIGN_OR_RETURN(std::vector<int64_t> parents, IntArray(tree, "parents", where, n));
  FRAUD_ASSIGN_OR_RETURN(std::vector<int64_t> split, IntArray(tree, "split_indices", where, n));
  FRAUD_ASSIGN_OR_RETURN(std::vector<int64_t> split_type, IntArray(tree, "split_type", where, n));
  FRAUD_ASSIGN_OR_RETURN(std::vector<int64_t> default_left,
                         IntArray(tree, "default_left", where, n));
  for (const char* key : {"split_conditions", "base_weights", "loss_changes", "sum_hessian"}) {
    FRAUD_RETURN_IF_ERROR(FiniteArray(tree, key, where, n));
  }
  for (const char* key :
       {"categories", "categories_nodes", "categories_segments", "categories_sizes"}) {
    FRAUD_RETURN_IF_ERROR(EmptyArray(tree, key, where));
  }
  for (size_t i = 0; i < n; ++i) {
    if (split_type[i] != 0) {
      return Defect(absl::StrCat(where, " node ", i), "split_type is not numerical (0)");
    }
    if (default_left[i] != 0 && default_left[i] != 1) {
      return Defect(absl::StrCat(where, " node ", i), "default_left is not 0 or 1");
    }
    if (split[i] < 0 || split[i] > kRootParent) {
      return Defect(absl::StrCat(where, " node ", i), "split index is not a 31-bit index");
    }
  }
  if (parents[0] != kRootParent && parents[0] != kNoChild) {
    return Defect(absl::StrCat(where, " node 0"), "the root has a parent");
  }
  // Walk from the root: every child index in range, every node reached at most once (a tree,
  // so prediction ends at a leaf), parents agreeing with children, splits on real features.
  std::vector<char> reached(n, 0);
  std::vector<size_t> stack = {0};
  reached[0] = 1;
  size_t reached_count = 1;
  while (!stack.empty()) {
    const size_t node = stack.back();
    stack.pop_back();
    const std::string nwhere = absl::StrCat(where, " node ", node);
    const bool leaf_left = left[node] == kNoChild;
    const bool leaf_right = right[node] == kNoChild;
    if (leaf_left != leaf_right) return Defect(nwhere, "has exactly one child");
    if (leaf_left) continue;
    if (split[node] >= static_cast<int64_t>(num_features)) {
      return Defect(nwhere, absl::StrCat("splits on feature ", split[node], ", the model has ",
                                         num_features));
    }
    for (const int64_t child : {left[node], right[node]}) {
      const char* side = child == left[node] ? "left" : "right";
      if (child < 1 || child >= num_nodes) {
        return Defect(nwhere, absl::StrCat(side, " child ", child, " is outside the tree's ",
                                           num_nodes, " nodes"));
      }
      if (reached[child]) {
        return Defect(nwhere, absl::StrCat(side, " child ", child,
                                           " is reached twice (a cycle or a shared node)"));
      }
      if (parents[child] != static_cast<int64_t>(node)) {
        return Defect(nwhere,
                      absl::StrCat(side, " child ", child, " names parent ", parents[child]));
      }
      reached[child] = 1;
      ++reached_count;
      stack.push_back(static_cast<size_t>(child));
    }
  }
  // XGBoost keeps pruned nodes in the arrays, detached from the tree and counted as deleted.
  if (static_cast<int64_t>(n - reached_count) != num_deleted) {
    return Defect(where, absl::StrCat(n - reached_count,
                                      " nodes are unreachable from the root "
                                      "but num_deleted is ",
                                      num_deleted));
  }
  return absl::OkStatus();
}

absl::Status CheckStringArray(const Json& learner, const char* key, size_t num_features) {
  const Json& v = learner.at(key);
  if (!v.is_array() || (!v.empty() && v.size() != num_features)) {
    return Defect("learner",
                  absl::StrCat("\"", key, "\" must be empty or hold ", num_features, " strings"));
  }
  for (const Json& s : v) {
    if (!s.is_string()) return Defect("learner", absl::StrCat("\"", key, "\" holds a non-string"));
    if (std::string(key) == "feature_types" && s.get_ref<const std::string&>() == "c") {
      return Defect("learner", "categorical features are not supported");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLearner(const Json& learner, size_t num_features) {
  FRAUD_RETURN_IF_ERROR(Keys(learner, "learner",
                             {"attributes", "gradient_booster", "learner_model_param", "objective"},
                             {"feature_names", "feature_types"}));
  const Json& attributes = learner.at("attributes");
  if (!attributes.is_object()) return Defect("learner", "\"attributes\" is not an object");
  for (const auto& item : attributes.items()) {
    if (!item.value().is_string()) {
      return Defect("learner attributes", absl::StrCat("\"", item.key(), "\" is not a string"));
    }
  }
  for (const char* key : {"feature_names", "feature_types"}) {
    if (learner.contains(key)) FRAUD_RETURN_IF_ERROR(CheckStringArray(learner, key, num_features));
  }

  const Json& lmp = learner.at("learner_model_param");
  FRAUD_RETURN_IF_ERROR(Keys(lmp, "learner_model_param", {"base_score", "num_class", "num_feature"},
                             {"boost_from_average", "num_target"}));
  FRAUD_ASSIGN_OR_RETURN(double base_score, DoubleParam(lmp, "base_score", "learner_model_param"));
  if (!(base_score > 0 && base_score < 1)) {
    return Defect("learner_model_param",
                  absl::StrCat("base_score ", base_score, " is not a probability in (0, 1)"));
  }
  FRAUD_RETURN_IF_ERROR(ExpectInt(lmp, "num_class", "learner_model_param", 0));
  FRAUD_RETURN_IF_ERROR(
      ExpectInt(lmp, "num_feature", "learner_model_param", static_cast<int64_t>(num_features)));
  if (lmp.contains("num_target")) {
    FRAUD_RETURN_IF_ERROR(ExpectInt(lmp, "num_target", "learner_model_param", 1));
  }
  if (lmp.contains("boost_from_average")) {
    FRAUD_RETURN_IF_ERROR(IntParam(lmp, "boost_from_average", "learner_model_param").status());
  }

  const Json& objective = learner.at("objective");
  FRAUD_RETURN_IF_ERROR(Keys(objective, "objective", {"name"}, {"reg_loss_param"}));
  if (objective.at("name") != "binary:logistic") {
    return Defect("objective", "name must be \"binary:logistic\"");
  }
  if (objective.contains("reg_loss_param")) {
    const Json& p = objective.at("reg_loss_param");
    FRAUD_RETURN_IF_ERROR(Keys(p, "objective reg_loss_param", {}, {"scale_pos_weight"}));
    if (p.contains("scale_pos_weight")) {
      FRAUD_RETURN_IF_ERROR(
          DoubleParam(p, "scale_pos_weight", "objective reg_loss_param").status());
    }
  }

  const Json& booster = learner.at("gradient_booster");
  FRAUD_RETURN_IF_ERROR(Keys(booster, "gradient_booster", {"model", "name"}));
  if (booster.at("name") != "gbtree") {
    return Defect("gradient_booster", "name must be \"gbtree\"");
  }
  const Json& model = booster.at("model");
  FRAUD_RETURN_IF_ERROR(
      Keys(model, "gradient_booster model", {"gbtree_model_param", "tree_info", "trees"}));
  const Json& gmp = model.at("gbtree_model_param");
  FRAUD_RETURN_IF_ERROR(
      Keys(gmp, "gbtree_model_param", {"num_trees"}, {"num_parallel_tree", "size_leaf_vector"}));
  const Json& trees = model.at("trees");
  if (!trees.is_array() || trees.empty() || static_cast<int64_t>(trees.size()) > kMaxTrees) {
    return Defect("gradient_booster model",
                  absl::StrCat("\"trees\" must be an array of 1 to ", kMaxTrees, " trees"));
  }
  const int64_t num_trees = static_cast<int64_t>(trees.size());
  FRAUD_ASSIGN_OR_RETURN(int64_t declared, IntParam(gmp, "num_trees", "gbtree_model_param"));
  if (declared != num_trees) {
    return Defect("gbtree_model_param",
                  absl::StrCat("num_trees is ", declared, " but \"trees\" holds ", num_trees));
  }
  if (gmp.contains("size_leaf_vector")) {
    FRAUD_RETURN_IF_ERROR(ExpectInt(gmp, "size_leaf_vector", "gbtree_model_param", 0));
  }
  if (gmp.contains("num_parallel_tree")) {
    FRAUD_ASSIGN_OR_RETURN(int64_t parallel,
                           IntParam(gmp, "num_parallel_tree", "gbtree_model_param"));
    if (parallel < 1 || num_trees % parallel != 0) {
      return Defect("gbtree_model_param",
                    absl::StrCat("num_parallel_tree ", parallel, " does not divide the ", num_trees,
                                 " trees"));
    }
  }
  FRAUD_ASSIGN_OR_RETURN(std::vector<int64_t> tree_info,
                         IntArray(model, "tree_info", "gradient_booster model", trees.size()));
  for (size_t i = 0; i < tree_info.size(); ++i) {
    if (tree_info[i] != 0) {
      return Defect("gradient_booster model",
                    absl::StrCat("tree_info[", i, "] is ", tree_info[i],
                                 ": a binary model has one output group (0)"));
    }
  }
  for (size_t i = 0; i < trees.size(); ++i) {
    FRAUD_RETURN_IF_ERROR(CheckTree(trees[i], i, num_features));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> CanonicalXgboostModel(absl::string_view bytes, size_t num_features) {
  Json doc = Json::parse(bytes.begin(), bytes.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Defect("document", "is not a JSON document");
  FRAUD_RETURN_IF_ERROR(Keys(doc, "document", {"learner", "version"}));
  const Json& version = doc.at("version");
  std::vector<int64_t> v;
  if (version.is_array() && version.size() == 3) {
    for (const Json& part : version) {
      int64_t x = -1;
      if (AsInt(part, &x) && x >= 0) v.push_back(x);
    }
  }
  if (v.size() != 3 || v[0] != 1) {
    return Defect("document", "\"version\" must be [1, minor, patch] (an XGBoost 1.x model)");
  }
  FRAUD_RETURN_IF_ERROR(CheckLearner(doc.at("learner"), num_features));
  return doc.dump();
}

}  // namespace fraud::model
