#include "services/inference/runtime_loader.h"

#include <memory>
#include <utility>

#include "services/common/model/model_runtime.h"

namespace fraud::inference {
namespace {

class RuntimeModel final : public ScoringModel {
 public:
  explicit RuntimeModel(std::unique_ptr<model::ModelRuntime> runtime)
      : runtime_(std::move(runtime)) {}
  absl::Status Score(const double* features, size_t rows, float* out) const override {
    return runtime_->Score(features, rows, out);
  }
  const common::v1::ModelManifest& manifest() const override { return runtime_->manifest(); }
  absl::Status Explain(const double* features, size_t rows,
                       model::RowExplanation* out) const override {
    return runtime_->Explain(features, rows, out);
  }

 private:
  std::unique_ptr<model::ModelRuntime> runtime_;
};

}  // namespace

ModelLoader RuntimeModelLoader(RuntimeLoaderOptions options) {
  return [options](const std::string& dir) -> absl::StatusOr<std::unique_ptr<ScoringModel>> {
    model::LoadOptions load;
    load.torch_threads = options.torch_threads;
    absl::StatusOr<std::unique_ptr<model::ModelRuntime>> runtime = model::LoadModel(dir, load);
    if (!runtime.ok()) return runtime.status();
    return std::unique_ptr<ScoringModel>(std::make_unique<RuntimeModel>(*std::move(runtime)));
  };
}

}  // namespace fraud::inference
