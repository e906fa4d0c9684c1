// A loaded model version that scores raw transactions, and the loader that builds one from an
// artifact directory.
//
//   absl::StatusOr<std::unique_ptr<fraud::model::ModelRuntime>> model =
//       fraud::model::LoadModel("/models/7");
//   FRAUD_RETURN_IF_ERROR((*model)->Score(features.data(), rows, scores.data()));
//
// LibTorch (logreg, mlp) and XGBoost (xgboost, random_forest) stay behind this interface: no
// header of this library includes either. Which family backs a runtime is decided by the family
// table (families.h); Score() itself is in model_runtime.cc.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "fraud/common/v1/types.pb.h"
#include "services/common/model/explanation.h"
#include "services/common/model/features.h"
#include "services/common/model/preprocessing.h"

namespace fraud::model {

using ::fraud::common::v1::ModelFamily;
using ::fraud::common::v1::ModelManifest;

namespace internal {
struct RuntimeAccess;
}  // namespace internal

// One file of serialized weights (for example "weights.pt" or "model.json").
struct WeightFile {
  std::string name;
  std::string bytes;
};

// A model ready to score. Immutable after construction; Score() is thread-safe and may be called
// concurrently from any number of threads.
//
// Threading: LibTorch models run under torch::InferenceMode and, after LoadModel, with
// at::set_num_threads(1) (LoadOptions::torch_threads): on our 2-core machines the gRPC threads
// already provide the parallelism, and intra-op threads would only contend with them (OpenMP
// threads spin-wait, which is ruinous on an oversubscribed machine). Batches under 16 rows of the
// torch families skip LibTorch (dense_net.h), and tree models are evaluated by TreeForest
// (tree_forest.h), both single-threaded in the caller's thread.
class ModelRuntime {
 public:
  virtual ~ModelRuntime();
  ModelRuntime(const ModelRuntime&) = delete;
  ModelRuntime& operator=(const ModelRuntime&) = delete;

  // Scores `rows` RAW rows (row-major, kNumFeatures values per row in the order Time, V1..V28,
  // Amount): applies the manifest's preprocessing, then the model. Writes one fraud probability in
  // [0, 1] per row to out[0..rows). InvalidArgument naming the row (0-based index within this
  // call) and the feature when a value is NaN or infinite, for example "row 2: feature V5 is not
  // a finite number" (out is then unspecified); Internal when the model library fails.
  // rows == 0 is OK. Cost for one row: ~0.2 us (logreg), ~0.3 us (mlp 64,32), ~1 us (trees:
  // 100 trees of depth 8, or an early-stopped boosted model), plus ~0.1 us of preprocessing.
  absl::Status Score(const double* features, size_t rows, float* out) const;
  // Same, with sizes checked: InvalidArgument unless features.size() is a multiple of
  // kNumFeatures and out.size() == features.size() / kNumFeatures.
  absl::Status Score(absl::Span<const double> features, absl::Span<float> out) const;

  // Explains `rows` RAW rows (as for Score) into out[0..rows) (see RowExplanation). The same
  // InvalidArgument as Score for a non-finite value; Internal when the model library fails or the
  // attribution is not finite. Thread-safe. Cost for one row (2026-12-06): ~0.5 us (logreg),
  // ~10-15 us (mlp, by the number of linear segments), ~50 us (100 trees of depth 8: TreeSHAP
  // in O(nodes x depth / 2), tree_forest.h): far more than Score(), so it is only run when asked
  // for.
  absl::Status Explain(const double* features, size_t rows, RowExplanation* out) const;

  // The manifest this model was loaded from (or, for a freshly trained model, the manifest it
  // will be written with; version, files and created_at are then unset).
  const ModelManifest& manifest() const { return manifest_; }
  ModelFamily family() const { return manifest_.family(); }
  // Decision threshold: a score >= threshold() (compared in float) flags a fraud.
  double threshold() const { return manifest_.threshold(); }

  // The family-specific weight files, as WriteArtifact stores them.
  virtual absl::StatusOr<std::vector<WeightFile>> SerializeWeights() const = 0;

 protected:
  ModelRuntime(ModelManifest manifest, Preprocessor preprocessor);

  // Scores rows x kNumFeatures PREPROCESSED values. Must be thread-safe.
  virtual absl::Status ScorePreprocessed(const float* x, size_t rows, float* out) const = 0;
  // Explains rows x kNumFeatures PREPROCESSED values (contribution j belongs to model input j,
  // which comes from raw feature j). Must be thread-safe.
  virtual absl::Status ExplainPreprocessed(const float* x, size_t rows,
                                           RowExplanation* out) const = 0;

 private:
  friend struct internal::RuntimeAccess;

  ModelManifest manifest_;
  Preprocessor preprocessor_;
};

struct LoadOptions {
  // at::set_num_threads() applied when a LibTorch model is loaded; 0 leaves it unchanged.
  int torch_threads = 1;
};

// Loads the artifact directory `dir` (for example "<root>/7"):
//   1. parses manifest.textproto: NotFound when absent; InvalidArgument when it does not parse or
//      is inconsistent (unknown family, wrong feature names, bad preprocessing, file names with a
//      '/', a missing weight file entry, a malformed smoke batch);
//   2. verifies the sha256 of every listed file: NotFound when a file is missing, DataLoss on a
//      mismatch or when the weights do not deserialize;
//   3. rebuilds the architecture from the manifest's params and loads the weights;
//   4. scores the smoke batch and compares with the expected scores: FailedPrecondition when any
//      differs by more than the tolerance.
// Nothing partially loaded escapes: on any error no model is returned. LibTorch/XGBoost/std
// exceptions are converted to statuses. Thread-safe (loads may run concurrently with scoring).
absl::StatusOr<std::unique_ptr<ModelRuntime>> LoadModel(const std::string& dir,
                                                        const LoadOptions& options = {});

}  // namespace fraud::model
