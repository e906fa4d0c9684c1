#include "services/common/model/model_runtime.h"

#include <algorithm>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "services/common/core/status_macros.h"

namespace fraud::model {
namespace {

// Rows preprocessed per step of Score(): bounds the temporary buffer (120 KB) for any batch size.
constexpr size_t kScoreChunkRows = 1024;

}  // namespace

ModelRuntime::ModelRuntime(ModelManifest manifest, Preprocessor preprocessor)
    : manifest_(std::move(manifest)), preprocessor_(preprocessor) {}

ModelRuntime::~ModelRuntime() = default;

absl::Status ModelRuntime::Score(const double* features, size_t rows, float* out) const {
  if (rows == 0) return absl::OkStatus();
  // One buffer per call, on the stack for small batches: no per-row allocation.
  absl::InlinedVector<float, kNumFeatures * 16> buf(std::min(rows, kScoreChunkRows) * kNumFeatures);
  for (size_t start = 0; start < rows; start += kScoreChunkRows) {
    const size_t n = std::min(kScoreChunkRows, rows - start);
    FRAUD_RETURN_IF_ERROR(
        preprocessor_.Apply(features + start * kNumFeatures, n, buf.data(), start));
    FRAUD_RETURN_IF_ERROR(ScorePreprocessed(buf.data(), n, out + start));
    // Loaded weights are checked finite, but finite weights can still overflow (a sum of huge
    // leaves is inf - inf): a score outside [0, 1] is never handed on as a probability.
    for (size_t i = start; i < start + n; ++i) {
      if (!(out[i] >= 0.0f && out[i] <= 1.0f)) {
        return absl::InternalError(absl::StrCat("row ", i, ": the model produced score ", out[i],
                                                ", not a probability"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ModelRuntime::Score(absl::Span<const double> features, absl::Span<float> out) const {
  if (features.size() % kNumFeatures != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "got ", features.size(), " feature values, not a multiple of ", kNumFeatures, " per row"));
  }
  const size_t rows = features.size() / kNumFeatures;
  if (out.size() != rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("output holds ", out.size(), " scores for ", rows, " rows"));
  }
  return Score(features.data(), rows, out.data());
}

}  // namespace fraud::model
