#include "services/common/model/attribution.h"

#include <algorithm>
#include <cmath>

#include "services/common/core/status_macros.h"

namespace fraud::model::internal {
namespace {

// How far ahead (in path length, which runs from 0 to 1) a unit's state is read: a unit that sits
// on its switching point (after a step that ended there) takes the state it has just after it.
constexpr double kLookAhead = 1e-9;
// Bounds the walk for a pathological network (each segment ends where some unit switches, and
// a unit can switch several times): the rest of the path is then covered by the residual spread.
constexpr int kMaxSegments = 4096;

// y = W a + b and its derivative along the path, dy = W da.
void Affine(const DenseLayer& l, const std::vector<double>& a, const std::vector<double>& da,
            std::vector<double>* y, std::vector<double>* dy) {
  y->assign(l.out, 0.0);
  dy->assign(l.out, 0.0);
  for (size_t o = 0; o < l.out; ++o) {
    const double* w = l.w.data() + o * l.in;
    double s = l.b[o];
    double ds = 0;
    for (size_t i = 0; i < l.in; ++i) {
      s += w[i] * a[i];
      ds += w[i] * da[i];
    }
    (*y)[o] = s;
    (*dy)[o] = ds;
  }
}

// The network at the point p.
double Forward(absl::Span<const DenseLayer> layers, const std::vector<double>& p) {
  std::vector<double> a = p;
  std::vector<double> zero(p.size(), 0.0);
  std::vector<double> y;
  std::vector<double> dy;
  for (size_t l = 0; l < layers.size(); ++l) {
    zero.assign(a.size(), 0.0);
    Affine(layers[l], a, zero, &y, &dy);
    if (l + 1 < layers.size()) {
      for (double& v : y) v = std::max(v, 0.0);
    }
    a = y;
  }
  return a[0];
}

}  // namespace

double Logit(double p) {
  constexpr double kEps = 1e-12;
  p = std::clamp(p, kEps, 1.0 - kEps);
  return std::log(p / (1.0 - p));
}

double SpreadResidual(RowExplanation* e) {
  double sum = 0;
  double magnitude = 0;
  for (double c : e->contributions) {
    sum += c;
    magnitude += std::abs(c);
  }
  const double residual = e->margin - e->bias - sum;
  for (double& c : e->contributions) {
    c += magnitude > 0 ? residual * std::abs(c) / magnitude
                       : residual / static_cast<double>(kNumFeatures);
  }
  return residual;
}

void ExplainReluNetwork(absl::Span<const DenseLayer> layers, const float* x, RowExplanation* out) {
  FRAUD_CHECK(!layers.empty() && layers.front().in == kNumFeatures && layers.back().out == 1)
      << "ExplainReluNetwork needs a network from " << kNumFeatures << " inputs to one output";
  const std::vector<double> dx(x, x + kNumFeatures);  // the path's direction (baseline 0)
  const DenseLayer& first = layers.front();
  const size_t hidden = layers.size() - 1;
  // The first layer is affine in alpha along the whole path, z0(alpha) = b0 + alpha * u0, and
  // d margin / dx = W0^T (d margin / dz0): so the walk only needs u0 = W0 dx once, and it
  // integrates d margin / dz0 (one value per first-layer unit) instead of the input gradient.
  std::vector<double> u0(first.out, 0.0);
  for (size_t o = 0; o < first.out; ++o) {
    for (size_t j = 0; j < kNumFeatures; ++j) u0[o] += first.w[o * kNumFeatures + j] * dx[j];
  }
  std::vector<double> integral(first.out, 0.0);
  std::vector<std::vector<char>> active(hidden);
  std::vector<double> a;
  std::vector<double> da;
  std::vector<double> y;
  std::vector<double> dy;
  std::vector<double> g;
  std::vector<double> next_g;
  double alpha = 0;
  for (int segment = 0; segment < kMaxSegments && alpha < 1.0; ++segment) {
    // Forward along the path at alpha: each layer is affine in alpha until the first unit of any
    // layer switches, so every layer's switching points, extrapolated linearly, are valid up to
    // the earliest of them.
    double step = 1.0 - alpha;
    for (size_t l = 0; l < hidden; ++l) {
      if (l == 0) {
        y.resize(first.out);
        dy = u0;
        for (size_t k = 0; k < first.out; ++k) y[k] = first.b[k] + alpha * u0[k];
      } else {
        Affine(layers[l], a, da, &y, &dy);
      }
      active[l].assign(layers[l].out, 0);
      for (size_t k = 0; k < layers[l].out; ++k) {
        const bool on = y[k] + kLookAhead * dy[k] > 0;
        active[l][k] = on;
        // Switching off (on, falling) or on (off, rising): at distance -y/dy along the path.
        if ((on && dy[k] < 0) || (!on && dy[k] > 0)) step = std::min(step, -y[k] / dy[k]);
        if (!on) {
          y[k] = 0;
          dy[k] = 0;
        }
      }
      a.swap(y);
      da.swap(dy);
    }
    // d margin / dz0 on this segment (constant there): backwards through the units that are on,
    // down to the first layer's pre-activations.
    g.assign(1, 1.0);
    for (size_t l = hidden; l >= 1; --l) {
      const DenseLayer& layer = layers[l];
      next_g.assign(layer.in, 0.0);
      for (size_t o = 0; o < layer.out; ++o) {
        if (g[o] == 0) continue;
        const double* w = layer.w.data() + o * layer.in;
        for (size_t i = 0; i < layer.in; ++i) next_g[i] += g[o] * w[i];
      }
      for (size_t i = 0; i < layer.in; ++i) {
        if (!active[l - 1][i]) next_g[i] = 0;
      }
      g.swap(next_g);
    }
    step = std::max(step, kLookAhead);
    step = std::min(step, 1.0 - alpha);
    for (size_t o = 0; o < first.out; ++o) integral[o] += g[o] * step;
    alpha += step;
  }
  for (size_t j = 0; j < kNumFeatures; ++j) {
    double c = 0;
    for (size_t o = 0; o < first.out; ++o) c += first.w[o * kNumFeatures + j] * integral[o];
    out->contributions[j] = c * dx[j];
  }
  out->bias = Forward(layers, std::vector<double>(kNumFeatures, 0.0));
  out->margin = Forward(layers, dx);
  // What is left is rounding (and the tail of a walk cut at kMaxSegments).
  SpreadResidual(out);
}

}  // namespace fraud::model::internal
