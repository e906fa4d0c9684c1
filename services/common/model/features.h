// The model input layout: 30 raw features per row, in the dataset's column order.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "services/common/core/transaction_layout.h"

namespace fraud::model {

// Time (seconds since the first transaction), V1..V28 (PCA components), Amount: the shared
// layout (services/common/core/transaction_layout.h) as sizes.
inline constexpr size_t kNumFeatures = ::fraud::layout::kNumFeatures;
inline constexpr size_t kTimeColumn = ::fraud::layout::kTimeIndex;
inline constexpr size_t kAmountColumn = ::fraud::layout::kAmountIndex;

// layout::kFeatureNames as strings (what a manifest's feature_names holds).
const std::vector<std::string>& FeatureNames();

}  // namespace fraud::model
