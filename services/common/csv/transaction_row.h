// The transaction record of the ULB/Worldline "creditcardfraud" dataset as plain C++ types: the
// feature order shared by every service, the label column, and the packed row batch that the CSV
// reader produces and the storage/inference adapters turn into fraud.common.v1.TransactionBatch.
//
// No gRPC, no protobuf: this header is safe to include anywhere.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "services/common/core/transaction_layout.h"

namespace fraud::csv {

// The layout (30 features: Time, V1..V28, Amount; label column Class) is stated once in
// services/common/core/transaction_layout.h.
using ::fraud::layout::kAmountIndex;
using ::fraud::layout::kFeatureNames;
using ::fraud::layout::kLabelColumn;
using ::fraud::layout::kNumFeatures;
using ::fraud::layout::kTimeIndex;

// Index of a feature name in kFeatureNames, or -1 when `name` is not a feature (case-sensitive).
int FeatureIndex(std::string_view name);

// A batch of rows packed row-major, the plain-C++ twin of fraud.common.v1.TransactionBatch.
// Invariants: features.size() == num_rows() * kNumFeatures; labels is empty (unlabelled rows) or
// has num_rows() entries; line_numbers is empty or has num_rows() entries (1-based source lines,
// header = line 1). Not thread-safe (a value type).
struct RowBatch {
  std::vector<double> features;
  std::vector<int32_t> labels;
  std::vector<int64_t> line_numbers;

  size_t num_rows() const { return features.size() / kNumFeatures; }
  bool empty() const { return features.empty(); }
  bool has_labels() const { return !labels.empty(); }
  // Row i's features (kNumFeatures values).
  const double* row(size_t i) const { return features.data() + i * kNumFeatures; }
  // Empties the batch but keeps the allocated capacity.
  void Clear() {
    features.clear();
    labels.clear();
    line_numbers.clear();
  }
};

}  // namespace fraud::csv
