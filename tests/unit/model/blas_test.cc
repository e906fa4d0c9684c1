// LibTorch's matrix products (whatever libblas.so.3 resolves to) against a plain loop in double:
// a BLAS built for another CPU, or told the wrong core type (OPENBLAS_CORETYPE), computes fast
// and wrong, and every model trained on it would be silently off.
#include "services/common/model/blas.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace fraud::model {
namespace {

void ExpectProductMatchesLoop(int64_t m, int64_t k, int64_t n) {
  std::mt19937 rng(static_cast<uint32_t>(m * 131 + k * 17 + n));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> a(m * k), b(k * n), c(m * n);
  for (float& v : a) v = normal(rng);
  for (float& v : b) v = normal(rng);
  MatMul(a.data(), b.data(), m, k, n, c.data());
  double worst = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double want = 0;
      double scale = 0;
      for (int64_t p = 0; p < k; ++p) {
        want += static_cast<double>(a[i * k + p]) * b[p * n + j];
        scale += std::fabs(static_cast<double>(a[i * k + p]) * b[p * n + j]);
      }
      // float32 accumulation error grows with k; relative to the sum of magnitudes.
      worst = std::max(worst, std::fabs(c[i * n + j] - want) / (scale + 1e-30));
    }
  }
  EXPECT_LT(worst, 1e-5) << m << "x" << k << " * " << k << "x" << n << " via "
                         << LoadedBlasLibrary();
}

TEST(BlasTest, MatrixProductsMatchAPlainLoopAtOddAndBlockedSizes) {
  ExpectProductMatchesLoop(1, 1, 1);
  ExpectProductMatchesLoop(3, 30, 1);      // one MLP row through the last layer
  ExpectProductMatchesLoop(67, 129, 45);   // odd sizes: kernel edges
  ExpectProductMatchesLoop(256, 30, 64);   // a training mini-batch through a 64-wide layer
  ExpectProductMatchesLoop(300, 300, 300); // large enough for blocked, threaded kernels
}

TEST(BlasTest, GemmThroughputIsMeasurable) {
  const double gflops = GemmGflops(128, 3, 1);
  EXPECT_GT(gflops, 0.01) << LoadedBlasLibrary();
}

}  // namespace
}  // namespace fraud::model
