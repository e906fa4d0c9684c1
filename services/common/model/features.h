// The model input layout: 30 raw features per row, in the dataset's column order.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace fraud::model {

// Time (seconds since the first transaction), V1..V28 (PCA components), Amount.
inline constexpr size_t kNumFeatures = 30;
inline constexpr size_t kTimeColumn = 0;
inline constexpr size_t kAmountColumn = 29;

// "Time", "V1", ..., "V28", "Amount".
const std::vector<std::string>& FeatureNames();

}  // namespace fraud::model
