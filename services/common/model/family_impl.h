// Internal to fraud_model: the seam between the family-neutral code (artifact.cc, trainer.cc,
// families.cc) and the backend files of the families (torch_model.cc sees LibTorch, xgb_model.cc
// XGBoost). Each backend exports a trainer and a loader; the family table (families.cc) refers to
// them. Plain C++ only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/common/model/families.h"
#include "services/common/model/model_runtime.h"
#include "services/common/model/preprocessing.h"
#include "services/common/model/trainer.h"

namespace fraud::model::internal {

struct RuntimeAccess {
  static ModelManifest& MutableManifest(ModelRuntime& runtime) { return runtime.manifest_; }
  // The model without the preprocessing (for runtimes that wrap others: ensemble members).
  static absl::Status ScorePreprocessed(const ModelRuntime& runtime, const float* x, size_t rows,
                                        float* out) {
    return runtime.ScorePreprocessed(x, rows, out);
  }
  static absl::Status ExplainPreprocessed(const ModelRuntime& runtime, const float* x, size_t rows,
                                          RowExplanation* out) {
    return runtime.ExplainPreprocessed(x, rows, out);
  }
};

// Typed access to string parameters. Every read records the effective value (the given one or
// the default) in resolved(); Finish() reports the first parse error or an unread key.
class Params {
 public:
  explicit Params(const std::map<std::string, std::string>& raw) : raw_(raw) {}

  double Double(const std::string& key, double def);
  int Int(const std::string& key, int def);
  bool Bool(const std::string& key, bool def);
  std::string String(const std::string& key, const std::string& def);
  // Comma-separated positive integers, for example "64,32".
  std::vector<int> IntList(const std::string& key, const std::string& def);

  // Records `value` as the effective value of `key` (for a choice made while training, such as
  // the members an ensemble picked).
  void SetResolved(const std::string& key, const std::string& value) { resolved_[key] = value; }

  absl::Status Finish() const;
  const std::map<std::string, std::string>& resolved() const { return resolved_; }

 private:
  const std::string* Find(const std::string& key);
  void Fail(const std::string& key, const std::string& value, const char* want);

  std::map<std::string, std::string> raw_;
  std::map<std::string, std::string> resolved_;
  absl::Status status_;
};

// A split after preprocessing, in the layouts the trainers want.
struct PreparedSplit {
  size_t rows = 0;
  std::vector<float> x;         // rows * kNumFeatures, preprocessed
  std::vector<float> y;         // 0/1 as float
  std::vector<float> w;         // per-row weights, or empty
  std::vector<int32_t> labels;  // 0/1 (for the metrics)
  std::vector<double> weights;  // per-row weights, or empty (for the metrics)
  double positives = 0;         // weighted
  double negatives = 0;         // weighted
};

// Weighted mean log-loss and average precision of probabilities on a split.
struct SplitStats {
  double loss = 0;
  double auprc = 0;
};
SplitStats EvaluateProbabilities(const std::vector<float>& probs, const PreparedSplit& split);

// "1" / a number / "balanced" (neg/pos) / "sqrt" (sqrt(neg/pos)) -> the positive-class weight.
absl::StatusOr<double> ResolvePositiveWeight(const std::string& spec, const PreparedSplit& train);

struct TrainContext {
  ModelFamily family;
  int threads = 2;
  uint64_t seed = 42;
  const PreparedSplit* train = nullptr;
  const PreparedSplit* validation = nullptr;
  const TrainCallbacks* callbacks = nullptr;
  // Manifest so far (family, features, preprocessing) and the preprocessing itself, for the
  // runtime the family builds.
  ModelManifest manifest;
  Preprocessor preprocessor;
};

struct FamilyResult {
  std::unique_ptr<ModelRuntime> runtime;
  std::vector<EpochProgress> curve;
  int best_epoch = 0;
};

bool Cancelled(const TrainCallbacks& callbacks);

// artifact.cc: parses a ModelManifest in text format; InvalidArgument naming `what` otherwise.
absl::StatusOr<ModelManifest> ParseManifestText(const std::string& text, const std::string& what);
// artifact.cc: the runtime of a validated manifest through its family's loader (the table row):
// the preprocessing from the manifest, then Family::load. InvalidArgument for a family without a
// row.
absl::StatusOr<std::unique_ptr<ModelRuntime>> BuildRuntime(ModelManifest manifest,
                                                           const std::vector<WeightFile>& files,
                                                           const LoadOptions& options);

// torch_model.cc: logreg and mlp.
absl::StatusOr<FamilyResult> TrainTorch(const TrainContext& ctx, Params& params);
absl::StatusOr<std::unique_ptr<ModelRuntime>> MakeTorchRuntime(
    ModelManifest manifest, Preprocessor preprocessor, const std::vector<WeightFile>& files);
// at::set_num_threads(n) for n > 0.
void SetTorchThreads(int n);

// xgb_model.cc: xgboost and random_forest.
absl::StatusOr<FamilyResult> TrainXgboost(const TrainContext& ctx, Params& params);
absl::StatusOr<std::unique_ptr<ModelRuntime>> MakeXgboostRuntime(
    ModelManifest manifest, Preprocessor preprocessor, const std::vector<WeightFile>& files);

// ensemble_model.cc: ensemble (members of the other families, averaged).
absl::StatusOr<FamilyResult> TrainEnsemble(const TrainContext& ctx, Params& params);
absl::StatusOr<std::unique_ptr<ModelRuntime>> LoadEnsemble(ModelManifest manifest,
                                                          Preprocessor preprocessor,
                                                          const std::vector<WeightFile>& files,
                                                          const LoadOptions& options);
inline constexpr char kEnsembleFirstMemberManifest[] = "member0.manifest.textproto";

}  // namespace fraud::model::internal
