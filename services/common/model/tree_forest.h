// TreeForest: an XGBoost tree ensemble (binary:logistic, numerical splits) flattened into one
// node array, for one-row scoring and exact TreeSHAP without the C API's per-call cost.
//
//   absl::StatusOr<TreeForest> forest = TreeForest::FromXgboostJson(canonical_json);
//   forest->Predict(x, rows, probabilities);   // preprocessed rows, kNumFeatures floats each
//   forest->Explain(x, &why);                  // margin = why.bias + sum(why.contributions)
//
// Why: XGBoosterPredictFromDense parses a JSON config and an array interface and sets up its
// predictor on every call: 25-40 us for one row, most of a one-row Predict's model time, while
// walking 100 trees of depth 8 takes ~1 us. XGBoost still trains the trees and its JSON stays the
// artifact format; this only evaluates them.
//
// Semantics are XGBoost 1.7's CPU predictor's: a row goes left when value < split condition
// (inputs are finite, so the default direction for a missing value never applies); the margin is
// the base margin plus every tree's leaf, added tree by tree in float; the probability is the
// sigmoid of it. Explain() computes XGBoost's path-dependent TreeSHAP values (pred_contribs,
// Lundberg et al. 2018) on the same trees and covers (sum_hessian), but by the integral form of
// the Shapley weights (Linear TreeShap, Yu et al. 2022: O(depth) per leaf instead of O(depth^2)),
// so contributions agree with XGBoost's to float rounding (tested); bias = base margin + every
// tree's expected value.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/common/model/explanation.h"

namespace fraud::model::internal {

class TreeForest {
 public:
  // From a document that passed CanonicalXgboostModel (xgb_model_check.h) for kNumFeatures
  // features: its structure is trusted. DataLoss when it is not such a document.
  static absl::StatusOr<TreeForest> FromXgboostJson(absl::string_view json);

  // Probabilities of `rows` preprocessed rows (row-major, kNumFeatures each) into out[0..rows).
  void Predict(const float* x, size_t rows, float* out) const;
  // Margins (log-odds) of `rows` rows.
  void Margins(const float* x, size_t rows, float* out) const;
  // TreeSHAP of one preprocessed row.
  void Explain(const float* row, RowExplanation* out) const;

  size_t trees() const { return roots_.size(); }
  size_t nodes() const { return nodes_.size(); }

 private:
  // Scoring needs only these 12 bytes per node; a split's children are adjacent (left, left + 1).
  struct Node {
    float value;      // split condition, or the leaf value
    int32_t feature;  // split feature, or kLeaf
    int32_t left;     // index of the left child; a leaf's own index
  };
  // A leaf's "feature": the extra input Margin sets to -inf, so a leaf's step stays on it.
  static constexpr int32_t kLeaf = static_cast<int32_t>(kNumFeatures);

  float Margin(const float* row) const;
  template <size_t kLanes>
  void ExplainWithLanes(const float* row, RowExplanation* out) const;

  float base_margin_ = 0;
  std::vector<Node> nodes_;
  std::vector<int32_t> roots_;
  std::vector<int> depth_;  // per tree: its deepest leaf (root = 0)
  // TreeSHAP only: per node, its cover (sum of hessians) and its subtree's expected value.
  std::vector<float> cover_;
  std::vector<float> mean_;
  // Explain's Gauss-Legendre nodes and weights on [0, 1] (trees of depth <= 16: 8 lanes).
  static constexpr size_t kMaxLanes = 8;
  std::array<double, kMaxLanes> gauss_t_{};
  std::array<double, kMaxLanes> gauss_w_{};
};

}  // namespace fraud::model::internal
