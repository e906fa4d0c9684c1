// The transaction layout of the ULB/Worldline "creditcardfraud" dataset, stated once for every
// service, client and test: 30 raw features per row in this order (the order of
// fraud.common.v1.TransactionBatch.features, of a model's input and of the CSV columns after
// the reader has matched them by name), and the optional label column.
//
//   Time    seconds since the dataset's first transaction
//   V1..V28 PCA components of the undisclosed original features
//   Amount  the transaction amount
//   Class   the label, 0 = normal, 1 = fraud (optional in uploads)
//
// Header-only and dependency-free: csv, model, inference, storage, ingest and the clients take
// their constants from here (csv::kNumFeatures, model::kNumFeatures, ... are these names).
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace fraud::layout {

inline constexpr int kNumFeatures = 30;
inline constexpr int kTimeIndex = 0;
inline constexpr int kAmountIndex = 29;

// Feature column names in model order.
inline constexpr std::array<std::string_view, kNumFeatures> kFeatureNames = {
    "Time", "V1",  "V2",  "V3",  "V4",  "V5",  "V6",  "V7",  "V8",  "V9",
    "V10",  "V11", "V12", "V13", "V14", "V15", "V16", "V17", "V18", "V19",
    "V20",  "V21", "V22", "V23", "V24", "V25", "V26", "V27", "V28", "Amount"};

inline constexpr std::string_view kLabelColumn = "Class";

// Name of feature column i (0 <= i < kNumFeatures) as a C string: the names are literals, so
// null-terminated (and usable where std::string_view is not, e.g. absl::StrCat here).
constexpr const char* FeatureName(int i) { return kFeatureNames[static_cast<size_t>(i)].data(); }

static_assert(kFeatureNames[kTimeIndex] == "Time" && kFeatureNames[kAmountIndex] == "Amount");

}  // namespace fraud::layout
