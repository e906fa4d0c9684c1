#include "services/common/model/model_runtime.h"

#include <algorithm>
#include <cmath>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "services/common/core/status_macros.h"

namespace fraud::model {
namespace {

// Rows preprocessed per step of Score(): bounds the temporary buffer (120 KB) for any batch size.
constexpr size_t kScoreChunkRows = 1024;

// Preprocesses `rows` raw rows in chunks of kScoreChunkRows into one buffer per call (on the
// stack for small batches: no per-row allocation) and hands each chunk to
// fn(preprocessed, first_row, rows_in_chunk).
template <typename Fn>
absl::Status ForEachPreprocessedChunk(const Preprocessor& preprocessor, const double* features,
                                      size_t rows, Fn fn) {
  absl::InlinedVector<float, kNumFeatures * 16> buf(std::min(rows, kScoreChunkRows) * kNumFeatures);
  for (size_t start = 0; start < rows; start += kScoreChunkRows) {
    const size_t n = std::min(kScoreChunkRows, rows - start);
    FRAUD_RETURN_IF_ERROR(
        preprocessor.Apply(features + start * kNumFeatures, n, buf.data(), start));
    FRAUD_RETURN_IF_ERROR(fn(buf.data(), start, n));
  }
  return absl::OkStatus();
}

}  // namespace

ModelRuntime::ModelRuntime(ModelManifest manifest, Preprocessor preprocessor)
    : manifest_(std::move(manifest)), preprocessor_(preprocessor) {}

ModelRuntime::~ModelRuntime() = default;

absl::Status ModelRuntime::Score(const double* features, size_t rows, float* out) const {
  return ForEachPreprocessedChunk(
      preprocessor_, features, rows, [&](const float* x, size_t start, size_t n) -> absl::Status {
        FRAUD_RETURN_IF_ERROR(ScorePreprocessed(x, n, out + start));
        // Loaded weights are checked finite, but finite weights can still overflow (a sum of huge
        // leaves is inf - inf): a score outside [0, 1] is never handed on as a probability.
        for (size_t i = start; i < start + n; ++i) {
          if (!(out[i] >= 0.0f && out[i] <= 1.0f)) {
            return absl::InternalError(absl::StrCat("row ", i, ": the model produced score ",
                                                    out[i], ", not a probability"));
          }
        }
        return absl::OkStatus();
      });
}

absl::Status ModelRuntime::Explain(const double* features, size_t rows, RowExplanation* out) const {
  return ForEachPreprocessedChunk(
      preprocessor_, features, rows, [&](const float* x, size_t start, size_t n) -> absl::Status {
        FRAUD_RETURN_IF_ERROR(ExplainPreprocessed(x, n, out + start));
        for (size_t i = start; i < start + n; ++i) {
          const RowExplanation& e = out[i];
          bool finite = std::isfinite(e.bias) && std::isfinite(e.margin);
          for (double c : e.contributions) finite = finite && std::isfinite(c);
          if (!finite) {
            return absl::InternalError(
                absl::StrCat("row ", i, ": the model's explanation is not a finite number"));
          }
        }
        return absl::OkStatus();
      });
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
