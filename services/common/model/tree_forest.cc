#include "services/common/model/tree_forest.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/common/model/features.h"

namespace fraud::model::internal {
namespace {

using Json = nlohmann::json;

absl::Status NotAForest(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("xgboost model: ", what));
}

// One element of TreeSHAP's path of unique features (XGBoost's PathElement).
struct PathElement {
  int feature;
  float zero_fraction;
  float one_fraction;
  float weight;
};

void ExtendPath(PathElement* path, unsigned depth, float zero_fraction, float one_fraction,
                int feature) {
  path[depth] = {feature, zero_fraction, one_fraction, depth == 0 ? 1.0f : 0.0f};
  for (int i = static_cast<int>(depth) - 1; i >= 0; --i) {
    path[i + 1].weight += one_fraction * path[i].weight * static_cast<float>(i + 1) /
                          static_cast<float>(depth + 1);
    path[i].weight = zero_fraction * path[i].weight * static_cast<float>(depth - i) /
                     static_cast<float>(depth + 1);
  }
}

void UnwindPath(PathElement* path, unsigned depth, unsigned index) {
  const float one_fraction = path[index].one_fraction;
  const float zero_fraction = path[index].zero_fraction;
  float next_one_portion = path[depth].weight;
  for (int i = static_cast<int>(depth) - 1; i >= 0; --i) {
    if (one_fraction != 0) {
      const float tmp = path[i].weight;
      path[i].weight = next_one_portion * static_cast<float>(depth + 1) /
                       (static_cast<float>(i + 1) * one_fraction);
      next_one_portion = tmp - path[i].weight * zero_fraction * static_cast<float>(depth - i) /
                                   static_cast<float>(depth + 1);
    } else {
      path[i].weight = path[i].weight * static_cast<float>(depth + 1) /
                       (zero_fraction * static_cast<float>(depth - i));
    }
  }
  for (unsigned i = index; i < depth; ++i) {
    path[i].feature = path[i + 1].feature;
    path[i].zero_fraction = path[i + 1].zero_fraction;
    path[i].one_fraction = path[i + 1].one_fraction;
  }
}

// The total weight of the path with element `index` unwound (without modifying it).
float UnwoundPathSum(const PathElement* path, unsigned depth, unsigned index) {
  const float one_fraction = path[index].one_fraction;
  const float zero_fraction = path[index].zero_fraction;
  float next_one_portion = path[depth].weight;
  float total = 0;
  for (int i = static_cast<int>(depth) - 1; i >= 0; --i) {
    if (one_fraction != 0) {
      const float tmp = next_one_portion * static_cast<float>(depth + 1) /
                        (static_cast<float>(i + 1) * one_fraction);
      total += tmp;
      next_one_portion = path[i].weight - tmp * zero_fraction *
                                              (static_cast<float>(depth - i) /
                                               static_cast<float>(depth + 1));
    } else if (zero_fraction != 0) {
      total += (path[i].weight / zero_fraction) /
               (static_cast<float>(depth - i) / static_cast<float>(depth + 1));
    }
  }
  return total;
}

}  // namespace

absl::StatusOr<TreeForest> TreeForest::FromXgboostJson(absl::string_view json) {
  const Json doc = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("learner")) {
    return NotAForest("not a JSON model document");
  }
  TreeForest f;
  // Checked documents only (CanonicalXgboostModel), but nlohmann's at() throws rather than read
  // past anything, so a mistake here is an error, not a crash.
  try {
    const Json& learner = doc.at("learner");
    float base_score = 0.5f;
    if (!absl::SimpleAtof(learner.at("learner_model_param").at("base_score").get<std::string>(),
                          &base_score) ||
        !(base_score > 0 && base_score < 1)) {
      return NotAForest("base_score is not a probability in (0, 1)");
    }
    // XGBoost's RegLossObj<LogisticClassification>::ProbToMargin, in float.
    f.base_margin_ = -std::log(1.0f / base_score - 1.0f);
    const Json& trees = learner.at("gradient_booster").at("model").at("trees");
    for (const Json& tree : trees) {
      const auto left = tree.at("left_children").get<std::vector<int64_t>>();
      const auto right = tree.at("right_children").get<std::vector<int64_t>>();
      const auto feature = tree.at("split_indices").get<std::vector<int64_t>>();
      const auto condition = tree.at("split_conditions").get<std::vector<float>>();
      const auto hessian = tree.at("sum_hessian").get<std::vector<float>>();
      const size_t n = left.size();
      if (n == 0 || right.size() != n || feature.size() != n || condition.size() != n ||
          hessian.size() != n) {
        return NotAForest("a tree's node arrays disagree in length");
      }
      // Depth-first from the root, children placed side by side. (old node, new slot, depth)
      struct Pending {
        int64_t old;
        int32_t slot;
        int depth;
      };
      const auto root = static_cast<int32_t>(f.nodes_.size());
      f.roots_.push_back(root);
      f.nodes_.push_back({});
      f.cover_.push_back(0);
      std::vector<Pending> stack = {{0, root, 0}};
      while (!stack.empty()) {
        const Pending p = stack.back();
        stack.pop_back();
        if (p.old < 0 || static_cast<size_t>(p.old) >= n || p.depth > 64) {
          return NotAForest("a child index is outside its tree");
        }
        const auto o = static_cast<size_t>(p.old);
        f.cover_[p.slot] = hessian[o];
        if (left[o] < 0) {
          f.nodes_[p.slot] = {condition[o], -1, 0};
          f.max_depth_ = std::max(f.max_depth_, p.depth);
          continue;
        }
        if (feature[o] < 0 || feature[o] >= static_cast<int64_t>(kNumFeatures)) {
          return NotAForest("a split feature is outside the input");
        }
        const auto children = static_cast<int32_t>(f.nodes_.size());
        f.nodes_.push_back({});
        f.nodes_.push_back({});
        f.cover_.push_back(0);
        f.cover_.push_back(0);
        f.nodes_[p.slot] = {condition[o], static_cast<int32_t>(feature[o]), children};
        stack.push_back({right[o], children + 1, p.depth + 1});
        stack.push_back({left[o], children, p.depth + 1});
      }
    }
  } catch (const Json::exception& e) {
    return NotAForest(e.what());
  }
  if (f.roots_.empty()) return NotAForest("no trees");
  // Expected value of every subtree (XGBoost's FillNodeMeanValue): children come after their
  // parent, so one backward pass fills them bottom-up.
  f.mean_.assign(f.nodes_.size(), 0);
  for (size_t i = f.nodes_.size(); i-- > 0;) {
    const Node& node = f.nodes_[i];
    if (node.feature < 0) {
      f.mean_[i] = node.value;
    } else {
      const size_t l = static_cast<size_t>(node.left);
      f.mean_[i] = (f.mean_[l] * f.cover_[l] + f.mean_[l + 1] * f.cover_[l + 1]) / f.cover_[i];
    }
  }
  return f;
}

float TreeForest::Margin(const float* row) const {
  const Node* nodes = nodes_.data();
  float margin = base_margin_;
  for (const int32_t root : roots_) {
    const Node* n = nodes + root;
    while (n->feature >= 0) n = nodes + n->left + (row[n->feature] < n->value ? 0 : 1);
    margin += n->value;
  }
  return margin;
}

void TreeForest::Margins(const float* x, size_t rows, float* out) const {
  for (size_t r = 0; r < rows; ++r) out[r] = Margin(x + r * kNumFeatures);
}

void TreeForest::Predict(const float* x, size_t rows, float* out) const {
  for (size_t r = 0; r < rows; ++r) {
    // XGBoost's common::Sigmoid.
    out[r] = 1.0f / (1.0f + std::exp(-Margin(x + r * kNumFeatures)));
  }
}

void TreeForest::Explain(const float* row, RowExplanation* out) const {
  // Per tree, XGBoost's RegTree::TreeShap (condition = 0: plain contributions), iteratively over
  // an explicit stack of frames instead of by recursion; each frame owns a slice of `paths`.
  const size_t depth_bound = static_cast<size_t>(max_depth_) + 2;
  std::vector<PathElement> paths((depth_bound * (depth_bound + 1)) / 2 + depth_bound);
  struct Frame {
    int32_t node;
    unsigned depth;      // unique_depth of the parent's path
    size_t parent_path;  // offset of the parent's path in `paths`
    float zero_fraction;
    float one_fraction;
    int parent_feature;
  };
  std::vector<Frame> stack;
  stack.reserve(2 * depth_bound);
  float phi[kNumFeatures] = {};
  float bias = base_margin_;
  for (const int32_t root : roots_) {
    bias += mean_[root];
    // The root frame's "parent path" is an empty path at offset 0; its own path starts at 1.
    stack.push_back({root, 0, 0, 1.0f, 1.0f, -1});
    while (!stack.empty()) {
      const Frame fr = stack.back();
      stack.pop_back();
      unsigned depth = fr.depth;
      // This frame's path: a copy of the parent's (depth + 1 elements), right after it.
      PathElement* path = paths.data() + fr.parent_path + depth + 1;
      std::copy(paths.data() + fr.parent_path, paths.data() + fr.parent_path + depth + 1, path);
      ExtendPath(path, depth, fr.zero_fraction, fr.one_fraction, fr.parent_feature);
      const Node& node = nodes_[fr.node];
      if (node.feature < 0) {
        for (unsigned i = 1; i <= depth; ++i) {
          const float w = UnwoundPathSum(path, depth, i);
          const PathElement& el = path[i];
          phi[el.feature] += w * (el.one_fraction - el.zero_fraction) * node.value;
        }
        continue;
      }
      const int32_t hot = node.left + (row[node.feature] < node.value ? 0 : 1);
      const int32_t cold = hot == node.left ? node.left + 1 : node.left;
      const float w = cover_[fr.node];
      const float hot_zero = cover_[hot] / w;
      const float cold_zero = cover_[cold] / w;
      float incoming_zero = 1;
      float incoming_one = 1;
      // A feature already on the path is unwound and re-added with this split.
      unsigned index = 0;
      for (; index <= depth; ++index) {
        if (path[index].feature == node.feature) break;
      }
      if (index != depth + 1) {
        incoming_zero = path[index].zero_fraction;
        incoming_one = path[index].one_fraction;
        UnwindPath(path, depth, index);
        depth -= 1;
      }
      const size_t own = fr.parent_path + fr.depth + 1;
      // Both children extend this frame's path; the path slice after it is theirs. The hot
      // child is processed first (XGBoost's order; the sums do not depend on it).
      stack.push_back({cold, depth + 1, own, cold_zero * incoming_zero, 0.0f, node.feature});
      stack.push_back({hot, depth + 1, own, hot_zero * incoming_zero, incoming_one, node.feature});
    }
  }
  for (size_t j = 0; j < kNumFeatures; ++j) out->contributions[j] = phi[j];
  out->bias = bias;
  out->margin = Margin(row);
}

}  // namespace fraud::model::internal
