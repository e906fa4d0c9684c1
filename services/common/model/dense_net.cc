#include "services/common/model/dense_net.h"

#include <algorithm>

namespace fraud::model::internal {

SmallBatchNet::SmallBatchNet(absl::Span<const DenseLayer> layers) {
  for (const DenseLayer& l : layers) {
    Layer t;
    t.in = l.in;
    t.out = l.out;
    t.wt.resize(l.in * l.out);
    for (size_t o = 0; o < l.out; ++o) {
      for (size_t i = 0; i < l.in; ++i) t.wt[i * l.out + o] = static_cast<float>(l.w[o * l.in + i]);
    }
    t.b.assign(l.b.begin(), l.b.end());
    widest_ = std::max({widest_, l.in, l.out});
    layers_.push_back(std::move(t));
  }
}

float SmallBatchNet::Margin(const float* x) const {
  // Two activation buffers, swapped layer by layer.
  std::vector<float> buffers(2 * widest_);
  float* a = buffers.data();
  float* y = a + widest_;
  std::copy(x, x + layers_.front().in, a);
  for (size_t k = 0; k < layers_.size(); ++k) {
    const Layer& l = layers_[k];
    std::copy(l.b.begin(), l.b.end(), y);
    for (size_t i = 0; i < l.in; ++i) {
      const float xi = a[i];
      const float* w = l.wt.data() + i * l.out;
      for (size_t o = 0; o < l.out; ++o) y[o] += xi * w[o];
    }
    if (k + 1 < layers_.size()) {
      for (size_t o = 0; o < l.out; ++o) y[o] = std::max(y[o], 0.0f);
    }
    std::swap(a, y);
  }
  return a[0];
}

}  // namespace fraud::model::internal
