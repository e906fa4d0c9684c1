// A deterministic scoring model for in-process tests: a fixed logistic function of the features
// most tied to fraud (V14, V12, V10, V4), behind the real inference::ScoringModel interface, so
// the real inference handlers serve it and a test can recompute every score itself.
//
//   common::v1::ModelManifest manifest;
//   manifest.set_version(3);
//   manifest.set_threshold(0.35);
//   holder_.Swap(LoadedLogisticModel(manifest));
//
// Thread-safety: Score is const and may run on any number of threads.
#pragma once

#include <memory>

#include "fraud/common/v1/types.pb.h"
#include "services/inference/loaded_model.h"

namespace fraud::testing {

// The model's score of one row of csv::kNumFeatures raw features (Time, V1..V28, Amount).
double Logistic(const double* features);

class LogisticModel final : public inference::ScoringModel {
 public:
  explicit LogisticModel(common::v1::ModelManifest manifest) : manifest_(std::move(manifest)) {}
  // Never fails.
  absl::Status Score(const double* features, size_t rows, float* out) const override;
  const common::v1::ModelManifest& manifest() const override { return manifest_; }
  // Exact: weight x value per input, bias = the intercept. Never fails.
  absl::Status Explain(const double* features, size_t rows,
                       model::RowExplanation* out) const override;

 private:
  common::v1::ModelManifest manifest_;
};

// A LogisticModel ready for ModelHolder::Swap: version and threshold from `manifest`,
// artifact_path "/test/<version>", loaded_at now.
std::shared_ptr<inference::LoadedModel> LoadedLogisticModel(common::v1::ModelManifest manifest);

}  // namespace fraud::testing
