#include "services/common/model/tree_forest.h"

#include <algorithm>
#include <cmath>
#include <limits>
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

// Gauss-Legendre nodes and weights on [0, 1] for n points (exact for polynomials of degree
// < 2n): Newton's iteration on the Legendre polynomial P_n from the usual first guesses.
void GaussLegendre01(int n, double* t, double* w) {
  for (int i = 0; i < n; ++i) {
    constexpr double kPi = 3.14159265358979323846;
    double x = std::cos(kPi * (i + 0.75) / (n + 0.5));
    double derivative = 1;
    for (int iteration = 0; iteration < 100; ++iteration) {
      double p0 = 1;
      double p1 = x;
      for (int k = 2; k <= n; ++k) {
        const double p2 = ((2 * k - 1) * x * p1 - (k - 1) * p0) / k;
        p0 = p1;
        p1 = p2;
      }
      derivative = n * (x * p1 - p0) / (x * x - 1);
      const double step = p1 / derivative;
      x -= step;
      if (std::abs(step) < 1e-16) break;
    }
    t[i] = (1 - x) / 2;
    w[i] = 1 / ((1 - x * x) * derivative * derivative);  // 2 / (...) on [-1, 1], halved
  }
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
      int depth = 0;
      while (!stack.empty()) {
        const Pending p = stack.back();
        stack.pop_back();
        if (p.old < 0 || static_cast<size_t>(p.old) >= n || p.depth > 64) {
          return NotAForest("a child index is outside its tree");
        }
        const auto o = static_cast<size_t>(p.old);
        f.cover_[p.slot] = hessian[o];
        if (left[o] < 0) {
          // A leaf points at itself through the row's extra -inf input, so Margin's lockstep
          // walk stays on it (its value must be finite for that comparison to hold).
          if (!std::isfinite(condition[o])) return NotAForest("a leaf value is not finite");
          f.nodes_[p.slot] = {condition[o], kLeaf, p.slot};
          depth = std::max(depth, p.depth);
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
      f.depth_.push_back(depth);
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
    if (node.feature == kLeaf) {
      f.mean_[i] = node.value;
    } else {
      const size_t l = static_cast<size_t>(node.left);
      f.mean_[i] = (f.mean_[l] * f.cover_[l] + f.mean_[l + 1] * f.cover_[l + 1]) / f.cover_[i];
    }
  }
  // Explain's quadrature: a path has at most max_depth unique features, so its integrands have
  // degree < max_depth <= 2 * lanes; lanes past the ones needed have weight 0 (t = 1/2).
  const int max_depth = *std::max_element(f.depth_.begin(), f.depth_.end());
  const int lanes = std::max(1, (max_depth + 1) / 2);
  if (lanes > static_cast<int>(kMaxLanes)) return NotAForest("a tree is deeper than 16");
  f.gauss_t_.fill(0.5);
  f.gauss_w_.fill(0);
  GaussLegendre01(lanes, f.gauss_t_.data(), f.gauss_w_.data());
  return f;
}

float TreeForest::Margin(const float* row) const {
  // One tree's walk is a chain of dependent loads, and between two requests the trees fall out
  // of cache: walking kBlock trees in lockstep (leaves loop onto themselves, so every tree of a
  // block takes the block's depth in steps, without branches) overlaps their cache misses. The
  // leaves are still added tree by tree, in XGBoost's order.
  float x[kNumFeatures + 1];
  std::copy(row, row + kNumFeatures, x);
  x[kLeaf] = -std::numeric_limits<float>::infinity();
  const Node* nodes = nodes_.data();
  const size_t trees = roots_.size();
  float margin = base_margin_;
  constexpr size_t kBlock = 8;
  size_t first = 0;
  for (; first + kBlock <= trees; first += kBlock) {
    int32_t at[kBlock];
    int depth = 0;
    for (size_t b = 0; b < kBlock; ++b) {
      at[b] = roots_[first + b];
      depth = std::max(depth, depth_[first + b]);
    }
    for (int d = 0; d < depth; ++d) {
      for (size_t b = 0; b < kBlock; ++b) {
        const Node& n = nodes[at[b]];
        at[b] = n.left + (x[n.feature] < n.value ? 0 : 1);
      }
    }
    for (size_t b = 0; b < kBlock; ++b) margin += nodes[at[b]].value;
  }
  for (; first < trees; ++first) {
    const Node* n = nodes + roots_[first];
    while (n->feature != kLeaf) n = nodes + n->left + (x[n->feature] < n->value ? 0 : 1);
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
  if (gauss_w_[kMaxLanes / 2] == 0) {
    ExplainWithLanes<kMaxLanes / 2>(row, out);
  } else {
    ExplainWithLanes<kMaxLanes>(row, out);
  }
}

template <size_t kLanes>
void TreeForest::ExplainWithLanes(const float* row, RowExplanation* out) const {
  // A leaf with value v whose path holds M unique features j, each with a zero fraction z_j (the
  // product of its splits' cover ratios on the path) and a one fraction o_j (1 when the row takes
  // every split on j along the path, else 0), adds to feature i's Shapley value
  //     v (o_i - z_i) * sum over S of P \ {i}: |S|! (M - |S| - 1)! / M! * prod_S o * prod_rest z,
  // the quantity XGBoost's TreeSHAP computes by extending and unwinding path weights (O(M^2) per
  // leaf). The Shapley weight is the Beta integral of t^|S| (1 - t)^(M - |S| - 1) on [0, 1], so
  // the sum is the integral of F(t) / f_i(t), F(t) being the product over P of the factors
  // f_j(t) = z_j (1 - t) + o_j t (Linear TreeShap, Yu et al. 2022): a polynomial of degree
  // M - 1 < 2 * kLanes, which Gauss-Legendre with kLanes nodes integrates exactly. So everything
  // is evaluated at kLanes points t_k, and summed over the tree in one depth-first pass:
  //   a[k]  = F(t_k) of the path so far (an edge multiplies it by its feature's new factor over
  //           the factor that feature had above: repeated features merge);
  //   T_c[k] = sum over the leaves l below node c of v_l F_l(t_k);
  //   the edge into c, on feature i, is the last split on i for the leaves below c except those
  //   below a deeper split on i, so it adds (o - z) * sum_k w_k (T_c - T of the topmost deeper
  //   splits on i)[k] / f_i(t_k) to phi_i; acc[i] collects those deeper T's on the way back up.
  // O(nodes * kLanes) per row, against O(leaves * depth^2) for path unwinding.
  struct Factor {
    double zero = 1;  // a feature not on the path has the factor 1 (1 - t) + 1 t = 1
    bool one = true;
  };
  Factor on_path[kNumFeatures];
  double acc[kNumFeatures][kLanes] = {};
  double phi[kNumFeatures] = {};
  const double* t = gauss_t_.data();
  const double* w = gauss_w_.data();
  const auto factor = [t](const Factor& f, size_t k) {
    return f.zero * (1 - t[k]) + (f.one ? t[k] : 0.0);
  };
  // Fills below[k] = T_c(t_k) for node c whose path product is a[k].
  const auto visit = [&](const auto& self, int32_t c, const double* a, double* below) -> void {
    const Node& node = nodes_[c];
    if (node.feature == kLeaf) {
      for (size_t k = 0; k < kLanes; ++k) below[k] = node.value * a[k];
      return;
    }
    for (size_t k = 0; k < kLanes; ++k) below[k] = 0;
    const int32_t i = node.feature;
    const int32_t hot = node.left + (row[i] < node.value ? 0 : 1);
    const float cover = cover_[c];
    const Factor above = on_path[i];
    for (int32_t child = node.left; child <= node.left + 1; ++child) {
      const Factor here = {above.zero * (cover_[child] / cover), above.one && child == hot};
      if (here.zero == 0 && !here.one) continue;  // F = 0 below: nothing to add anywhere
      double a_child[kLanes];
      double f_here[kLanes];
      for (size_t k = 0; k < kLanes; ++k) {
        f_here[k] = factor(here, k);
        const double f_above = factor(above, k);  // > 0: else a path above was skipped
        a_child[k] = a[k] * f_here[k] / f_above;
      }
      double saved[kLanes];
      std::copy(acc[i], acc[i] + kLanes, saved);
      std::fill(acc[i], acc[i] + kLanes, 0.0);
      on_path[i] = here;
      double t_child[kLanes];
      self(self, child, a_child, t_child);
      double sum = 0;
      for (size_t k = 0; k < kLanes; ++k) sum += w[k] * (t_child[k] - acc[i][k]) / f_here[k];
      phi[i] += ((here.one ? 1.0 : 0.0) - here.zero) * sum;
      for (size_t k = 0; k < kLanes; ++k) {
        acc[i][k] = saved[k] + t_child[k];
        below[k] += t_child[k];
      }
      on_path[i] = above;
    }
  };
  double bias = base_margin_;
  double ones[kLanes];
  std::fill(ones, ones + kLanes, 1.0);
  double total[kLanes];
  for (const int32_t root : roots_) {
    bias += mean_[root];
    visit(visit, root, ones, total);
  }
  for (size_t j = 0; j < kNumFeatures; ++j) out->contributions[j] = phi[j];
  out->bias = bias;
  out->margin = Margin(row);
}

}  // namespace fraud::model::internal
