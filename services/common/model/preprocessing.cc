#include "services/common/model/preprocessing.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "services/common/core/day.h"

namespace fraud::model {
namespace {

constexpr double kMinStd = 1e-9;

inline double Transform(double x, size_t col, bool log_amount, bool time_of_day) {
  if (col == kTimeColumn && time_of_day) return std::fmod(x, layout::kSecondsPerDay);
  if (col == kAmountColumn && log_amount) return std::log1p(std::max(0.0, x));
  return x;
}

}  // namespace

const std::vector<std::string>& FeatureNames() {
  static const std::vector<std::string>* const names = new std::vector<std::string>(
      ::fraud::layout::kFeatureNames.begin(), ::fraud::layout::kFeatureNames.end());
  return *names;
}

Preprocessor::Preprocessor() {
  std::fill(std::begin(mean_), std::end(mean_), 0.0);
  std::fill(std::begin(std_), std::end(std_), 1.0);
  std::fill(std::begin(inv_std_), std::end(inv_std_), 1.0);
}

absl::StatusOr<Preprocessor> Preprocessor::FromProto(const common::v1::Preprocessing& proto) {
  if (proto.mean_size() != static_cast<int>(kNumFeatures) ||
      proto.std_size() != static_cast<int>(kNumFeatures)) {
    return absl::InvalidArgumentError(absl::StrCat("preprocessing needs ", kNumFeatures,
                                                   " means and stds, got ", proto.mean_size(),
                                                   " and ", proto.std_size()));
  }
  Preprocessor p;
  for (size_t c = 0; c < kNumFeatures; ++c) {
    const double mean = proto.mean(static_cast<int>(c));
    const double sd = proto.std(static_cast<int>(c));
    if (!std::isfinite(mean) || !std::isfinite(sd) || sd <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("preprocessing of ", FeatureNames()[c], " has mean ", mean, " std ", sd));
    }
    p.mean_[c] = mean;
    p.std_[c] = sd;
    p.inv_std_[c] = 1.0 / sd;
  }
  p.log_amount_ = proto.log_amount();
  p.time_of_day_ = proto.time_of_day();
  return p;
}

Preprocessor Preprocessor::Fit(const double* features, size_t rows, bool log_amount,
                               bool time_of_day) {
  Preprocessor p;
  p.log_amount_ = log_amount;
  p.time_of_day_ = time_of_day;
  if (rows == 0) return p;
  // Two passes (mean, then squared deviations) for numerical stability.
  double sum[kNumFeatures] = {};
  for (size_t r = 0; r < rows; ++r) {
    const double* row = features + r * kNumFeatures;
    for (size_t c = 0; c < kNumFeatures; ++c)
      sum[c] += Transform(row[c], c, log_amount, time_of_day);
  }
  for (size_t c = 0; c < kNumFeatures; ++c) p.mean_[c] = sum[c] / static_cast<double>(rows);
  double sq[kNumFeatures] = {};
  for (size_t r = 0; r < rows; ++r) {
    const double* row = features + r * kNumFeatures;
    for (size_t c = 0; c < kNumFeatures; ++c) {
      const double d = Transform(row[c], c, log_amount, time_of_day) - p.mean_[c];
      sq[c] += d * d;
    }
  }
  for (size_t c = 0; c < kNumFeatures; ++c) {
    const double sd = std::sqrt(sq[c] / static_cast<double>(rows));
    // std_ is what the manifest stores; inv_std_ derives from it the same way on load, so a
    // trained and a reloaded model preprocess bit-identically.
    p.std_[c] = sd > kMinStd ? sd : 1.0;
    p.inv_std_[c] = 1.0 / p.std_[c];
  }
  return p;
}

common::v1::Preprocessing Preprocessor::ToProto() const {
  common::v1::Preprocessing proto;
  for (size_t c = 0; c < kNumFeatures; ++c) {
    proto.add_mean(mean_[c]);
    proto.add_std(std_[c]);
  }
  proto.set_log_amount(log_amount_);
  proto.set_time_of_day(time_of_day_);
  return proto;
}

absl::Status Preprocessor::Apply(const double* raw, size_t rows, float* out,
                                 size_t first_row) const {
  for (size_t r = 0; r < rows; ++r) {
    const double* in = raw + r * kNumFeatures;
    float* o = out + r * kNumFeatures;
    for (size_t c = 0; c < kNumFeatures; ++c) {
      if (!std::isfinite(in[c])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "row ", first_row + r, ": feature ", FeatureNames()[c], " is not a finite number"));
      }
      o[c] = static_cast<float>((Transform(in[c], c, log_amount_, time_of_day_) - mean_[c]) *
                                inv_std_[c]);
    }
  }
  return absl::OkStatus();
}

}  // namespace fraud::model
