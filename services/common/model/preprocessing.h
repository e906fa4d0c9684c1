// Feature preprocessing stored in the manifest (fraud.common.v1.Preprocessing) and applied to raw
// rows before every model: Time -> Time mod 86400 (when time_of_day), Amount -> log1p(max(0,
// Amount)) (when log_amount), then x' = (x - mean) / std per feature. Output is float, the type
// every model consumes.
#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fraud/common/v1/types.pb.h"
#include "services/common/model/features.h"

namespace fraud::model {

class Preprocessor {
 public:
  // Identity: no transforms, mean 0, std 1.
  Preprocessor();

  // InvalidArgument unless mean and std have kNumFeatures finite entries with std > 0.
  static absl::StatusOr<Preprocessor> FromProto(const common::v1::Preprocessing& proto);
  // Fits mean/std on `rows` raw rows (row-major, kNumFeatures each) after the transforms. A
  // constant feature gets std 1. The rows must be finite (checked by the caller).
  static Preprocessor Fit(const double* features, size_t rows, bool log_amount, bool time_of_day);

  common::v1::Preprocessing ToProto() const;

  // Transforms `rows` raw rows into out[rows * kNumFeatures]. InvalidArgument naming the row
  // (first_row + index) and feature when a raw value is NaN or infinite. Thread-safe.
  absl::Status Apply(const double* raw, size_t rows, float* out, size_t first_row = 0) const;

 private:
  double mean_[kNumFeatures];
  double std_[kNumFeatures];
  double inv_std_[kNumFeatures];
  bool log_amount_ = false;
  bool time_of_day_ = false;
};

}  // namespace fraud::model
