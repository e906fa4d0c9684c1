// SmallBatchNet: the forward pass of a Dense-ReLU-...-Dense(->1) network (the torch families'
// shape, attribution.h's DenseLayer) in plain float loops, for a few rows at a time.
//
//   SmallBatchNet net(layers);             // once, at load
//   float margin = net.Margin(x);          // one preprocessed row of kNumFeatures floats
//
// Why: a LibTorch forward of one row costs ~8 us of tensor set-up and dispatch around ~1 us of
// arithmetic (issue 23's one-row latency); large batches stay with LibTorch, whose GEMM is faster
// per row. Weights are stored transposed (in x out) so that the inner loop runs over independent
// outputs and vectorises without reassociating sums. Float32 like LibTorch; the two differ only in
// summation order (|difference| ~1e-7 on a probability).
#pragma once

#include <cstddef>
#include <vector>

#include "absl/types/span.h"
#include "services/common/model/attribution.h"

namespace fraud::model::internal {

class SmallBatchNet {
 public:
  explicit SmallBatchNet(absl::Span<const DenseLayer> layers);
  // The network's output (the logit) for one row of layers.front().in floats. Thread-safe.
  float Margin(const float* x) const;

 private:
  struct Layer {
    size_t in = 0;
    size_t out = 0;
    std::vector<float> wt;  // in x out
    std::vector<float> b;
  };
  std::vector<Layer> layers_;
  size_t widest_ = 0;
};

}  // namespace fraud::model::internal
