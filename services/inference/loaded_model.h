// What the inference service holds in memory: a verified, immutable model version, and the two
// small interfaces it is built from (a scoring model and a loader), so the service logic can be
// tested with fakes and wired to services/common/model in production (runtime_loader.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fraud/common/v1/types.pb.h"
#include "services/common/core/transaction_layout.h"
#include "services/common/model/explanation.h"

namespace fraud::inference {

// Raw features per row (Time, V1..V28, Amount), as in fraud.common.v1.TransactionBatch.
using ::fraud::layout::kNumFeatures;

// A model that turns raw feature rows into fraud probabilities.
// Thread-safety: Score is const and must be safe to call from many threads at once.
class ScoringModel {
 public:
  virtual ~ScoringModel() = default;
  // Scores `rows` rows of kNumFeatures raw features each (row-major, preprocessing is the model's
  // job) into out[0..rows). `out` must have room for `rows` floats. Internal on a runtime failure.
  virtual absl::Status Score(const double* features, size_t rows, float* out) const = 0;
  // The manifest the model was built from (threshold, family, files, smoke batch, ...).
  virtual const common::v1::ModelManifest& manifest() const = 0;
  // Explains `rows` raw rows into out[0..rows): each row's margin (logit of its score) as a bias
  // plus one signed contribution per feature (services/common/model/explanation.h). Unimplemented
  // for a model that cannot explain itself (the default); Internal on a runtime failure.
  virtual absl::Status Explain(const double* features, size_t rows,
                               model::RowExplanation* out) const {
    (void)features;
    (void)rows;
    (void)out;
    return absl::UnimplementedError("the serving model cannot explain its scores");
  }
};

// Loads, verifies (checksums, smoke batch) and returns the model in artifact directory `dir`.
// NotFound when the directory or a file is missing, DataLoss on a checksum mismatch,
// FailedPrecondition on a bad manifest or a failed smoke test; messages name the path.
// Must be safe to call while another model serves.
using ModelLoader =
    std::function<absl::StatusOr<std::unique_ptr<ScoringModel>>(const std::string& dir)>;

// Where a LoadedModel's decision threshold comes from.
enum class ThresholdSource { kManifest, kOperatingPoint };

// One loaded model version. Immutable once published in a ModelHolder; requests keep it alive
// through their std::shared_ptr copy, so a swap never frees a model that is still scoring.
struct LoadedModel {
  int64_t version = 0;
  // Artifact directory it was loaded from.
  std::string artifact_path;
  absl::Time loaded_at;
  // Decision threshold: score >= threshold flags fraud. The version's operating point when one is
  // set (threshold_source kOperatingPoint), else the manifest's.
  double threshold = 0.5;
  ThresholdSource threshold_source = ThresholdSource::kManifest;
  std::unique_ptr<const ScoringModel> model;

  const common::v1::ModelManifest& manifest() const { return model->manifest(); }
};

}  // namespace fraud::inference
