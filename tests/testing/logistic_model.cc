#include "tests/testing/logistic_model.h"

#include <cmath>
#include <string>
#include <utility>

#include "services/common/csv/transaction_row.h"

namespace fraud::testing {

double Logistic(const double* f) {
  const double z = -0.8 * f[14] - 0.5 * f[12] - 0.4 * f[10] + 0.3 * f[4] - 4.0;
  return 1.0 / (1.0 + std::exp(-z));
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
