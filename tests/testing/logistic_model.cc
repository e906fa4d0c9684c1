#include "tests/testing/logistic_model.h"

#include <cmath>
#include <iterator>
#include <string>
#include <utility>

#include "services/common/csv/transaction_row.h"

namespace fraud::testing {

namespace {

// The margin is kIntercept + sum of kWeights[i] * f[kInputs[i]].
constexpr int kInputs[] = {14, 12, 10, 4};
constexpr double kWeights[] = {-0.8, -0.5, -0.4, 0.3};
constexpr double kIntercept = -4.0;

}  // namespace

double Logistic(const double* f) {
  double z = kIntercept;
  for (size_t i = 0; i < std::size(kInputs); ++i) z += kWeights[i] * f[kInputs[i]];
  return 1.0 / (1.0 + std::exp(-z));
}

absl::Status LogisticModel::Explain(const double* features, size_t rows,
                                    model::RowExplanation* out) const {
  for (size_t r = 0; r < rows; ++r) {
    const double* f = features + r * csv::kNumFeatures;
    model::RowExplanation& e = out[r];
    e = model::RowExplanation();
    e.bias = kIntercept;
    e.margin = kIntercept;
    for (size_t i = 0; i < std::size(kInputs); ++i) {
      e.contributions[kInputs[i]] = kWeights[i] * f[kInputs[i]];
      e.margin += e.contributions[kInputs[i]];
    }
  }
  return absl::OkStatus();
}

absl::Status LogisticModel::Score(const double* features, size_t rows, float* out) const {
  for (size_t i = 0; i < rows; ++i) {
    out[i] = static_cast<float>(Logistic(features + i * csv::kNumFeatures));
  }
  return absl::OkStatus();
}

std::shared_ptr<inference::LoadedModel> LoadedLogisticModel(common::v1::ModelManifest manifest) {
  auto loaded = std::make_shared<inference::LoadedModel>();
  loaded->version = manifest.version();
  loaded->artifact_path = "/test/" + std::to_string(manifest.version());
  loaded->loaded_at = absl::Now();
  loaded->threshold = manifest.threshold();
  loaded->model = std::make_unique<LogisticModel>(std::move(manifest));
  return loaded;
}

}  // namespace fraud::testing
