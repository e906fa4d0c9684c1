// RowExplanation: one scored row's margin split into signed per-feature contributions (reason
// codes), as ModelRuntime::Explain computes them. Plain C++ (no model library, no protobuf), so
// services can hold explanations without depending on the runtimes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <vector>

#include "services/common/model/features.h"

namespace fraud::model {

// Why a model scored one row as it did: the row's margin (the logit of its score) split into one
// signed contribution per RAW feature (Time, V1..V28, Amount, in that order) plus a bias, with
// margin == bias + sum(contributions) (up to float rounding, ~1e-5). A positive contribution
// pushes the row towards fraud. Engineered inputs (Time of day, log1p(Amount), the
// standardisation) are attributed to the raw feature they are computed from: the preprocessing
// maps each raw feature to exactly one model input.
//
// Per family (the bias is the same for every row of one model):
//   logreg         exact: w_j * x'_j on the standardised input x' (the linear SHAP value
//                  relative to the training mean); bias = intercept.
//   mlp            integrated gradients from the training mean (x' = 0) to x', computed exactly:
//                  a ReLU network is linear between the points where a unit switches on or off,
//                  so the path integral is a sum over those segments; bias = margin at the mean.
//   xgboost,       path-dependent TreeSHAP, XGBoost's pred_contribs algorithm on the same trees
//                  (TreeForest, tree_forest.h; tested equal to XGBoost's); bias = the expected
//                  margin.
//   random_forest
//   ensemble       margin = logit(ensemble score), the score being the members' average
//                  (of probabilities or of ranks); bias = logit of that average with every
//                  member at its own bias; each member's contributions are scaled by the
//                  secant slope of its path from its bias to its score through the ensemble's
//                  combination and the logit (DeepLIFT's rescale rule), so they sum exactly.
struct RowExplanation {
  double contributions[kNumFeatures] = {};
  double bias = 0;
  double margin = 0;
};

// Indices of the (at most) k contributions of largest magnitude, largest first; ties keep feature
// order.
inline std::vector<size_t> TopContributions(const RowExplanation& explanation, size_t k) {
  std::vector<size_t> order(kNumFeatures);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::abs(explanation.contributions[a]) > std::abs(explanation.contributions[b]);
  });
  order.resize(std::min(k, order.size()));
  return order;
}

}  // namespace fraud::model
