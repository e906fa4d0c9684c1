// A tiny deterministic data maker for model tests (the project's generator lives elsewhere).
// Normal rows: V1..V28 ~ N(0, 1), Amount log-normal, Time ascending over two days. Fraud rows:
// V1..V6 shifted by +/- `shift` and larger amounts, so `shift` sets how separable the classes are.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

#include "services/common/model/features.h"
#include "services/common/model/trainer.h"

namespace fraud::model::testing {

inline Dataset MakeSyntheticData(size_t rows, double fraud_rate, double shift, uint32_t seed) {
  Dataset d;
  d.features.reserve(rows * kNumFeatures);
  d.labels.reserve(rows);
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::bernoulli_distribution fraud(fraud_rate);
  for (size_t r = 0; r < rows; ++r) {
    const bool is_fraud = fraud(rng);
    d.features.push_back(172800.0 * static_cast<double>(r) / static_cast<double>(rows));
    for (int v = 1; v <= 28; ++v) {
      double x = normal(rng);
      if (is_fraud && v <= 6) x += (v % 2 == 0 ? -shift : shift);
      d.features.push_back(x);
    }
    d.features.push_back(std::exp(3.0 + normal(rng) + (is_fraud ? 0.5 : 0.0)));
    d.labels.push_back(is_fraud ? 1 : 0);
  }
  return d;
}

}  // namespace fraud::model::testing
