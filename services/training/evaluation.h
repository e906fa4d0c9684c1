// Scoring models on labelled rows and measuring them: the comparison-set evaluation of a run, the
// Evaluate RPC and the replay all go through here, so every reported figure is computed one way.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "fraud/common/v1/types.pb.h"
#include "fraud/training/v1/training.pb.h"
#include "services/common/model/model_runtime.h"
#include "services/training/clients.h"
#include "services/training/dataset.h"

namespace fraud::training {

// Per-row weights that make frauds `rate` of the weighted rows: frauds weigh 1, every normal row
// weighs frauds * (1 - rate) / (rate * normals). InvalidArgument unless 0 < rate < 1;
// FailedPrecondition when the labels lack a fraud or a normal row.
absl::StatusOr<std::vector<double>> ClassRatioWeights(absl::Span<const int32_t> labels, double rate);

struct MeasureOptions {
  int bootstrap_resamples = 200;
  uint64_t seed = 1;
  // Also compute metrics weighted to this fraud rate (0 = no).
  double weight_to_rate = 0;
};

struct Measurement {
  common::v1::ClassificationMetrics metrics;
  // Set when weight_to_rate > 0 and the rows hold both classes.
  std::optional<common::v1::ClassificationMetrics> weighted;
};

// `model`'s scores of every row of `data`, in row order; the model's scoring errors.
absl::StatusOr<std::vector<float>> ScoreRows(const model::ModelRuntime& model, const Dataset& data);
// Scores `data` with `model` and computes the metrics at the model's threshold.
// InvalidArgument when data is empty; the model's scoring errors otherwise.
absl::StatusOr<Measurement> Measure(const model::ModelRuntime& model, const Dataset& data,
                                    const MeasureOptions& options);
// Same on scores already computed.
absl::StatusOr<Measurement> MeasureScores(absl::Span<const float> scores,
                                          absl::Span<const int32_t> labels, double threshold,
                                          const MeasureOptions& options);

// A local artifact directory of a registered version: <model_dir>/<version>, fetched from the
// registry when missing (model_dir is a cache); for a version the registry holds no artifact of
// (registered by path before artifacts lived in the registry) its artifact_uri when that is a
// directory. Errors: those of the fetch (NotFound when neither exists, DataLoss, Unavailable).
absl::StatusOr<std::string> LocalArtifactDir(StorageApi& storage, const std::string& model_dir,
                                             const storage_pb::ModelVersion& model);

// Reads the labelled rows matching the request's filters from storage.
absl::StatusOr<Dataset> LoadEvaluationRows(StorageApi& storage,
                                           const training::v1::EvaluateRequest& request);

// Loads each requested version (every registered one when the list is empty) and measures it on
// `rows`. A version that cannot be loaded or scored gets `error` set; an unknown version is
// NotFound. Versions come back in ascending order.
absl::StatusOr<training::v1::EvaluateResponse> EvaluateVersions(
    StorageApi& storage, const std::string& model_dir,
    const training::v1::EvaluateRequest& request, const Dataset& rows);

}  // namespace fraud::training
