// Internal to fraud_model: the attribution arithmetic of RowExplanation (model_runtime.h) that
// needs no model library: exact integrated gradients of a ReLU network (the torch families) and the
// residual fix-up shared by the attributions. Plain C++.
#pragma once

#include <cstddef>
#include <vector>

#include "absl/types/span.h"
#include "services/common/model/model_runtime.h"

namespace fraud::model::internal {

// One fully connected layer, y = W x + b, with W row-major (out x in). Copied out of the model
// library so that the attribution runs on plain doubles.
struct DenseLayer {
  size_t in = 0;
  size_t out = 0;
  std::vector<double> w;
  std::vector<double> b;
};

// The network Dense-ReLU-...-Dense(->1) built from `layers` (every layer but the last is followed
// by a ReLU; the last has one output, the margin). Explains the preprocessed row x[kNumFeatures]:
// integrated gradients along the straight path from the baseline x' = 0 (the training mean after
// standardisation) to x. The network is linear between the points of the path where some unit
// switches on or off, so the integral is computed exactly as a sum over those segments (no
// sampling error); bias = margin at the baseline, margin = the network at x. With no hidden layer
// (logistic regression) there is one segment and the contributions are w_j * x_j. Requires
// layers.front().in == kNumFeatures and layers.back().out == 1.
void ExplainReluNetwork(absl::Span<const DenseLayer> layers, const float* x, RowExplanation* out);

// Spreads margin - bias - sum(contributions) over the contributions in proportion to their
// magnitude (evenly when all are 0), so that the sum is exact after floating-point error or an
// approximation. Returns the residual that was spread.
double SpreadResidual(RowExplanation* explanation);

// log(p / (1 - p)), with p clamped to [1e-12, 1 - 1e-12] so that it stays finite.
double Logit(double p);

}  // namespace fraud::model::internal
