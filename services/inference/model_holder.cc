#include "services/inference/model_holder.h"

#include <utility>

namespace fraud::inference {

ModelHolder::~ModelHolder() {
  absl::MutexLock lock(&mu_);
  model_.reset();
}

std::shared_ptr<const LoadedModel> ModelHolder::Get() const {
  absl::MutexLock lock(&mu_);
  return model_;
}

std::shared_ptr<const LoadedModel> ModelHolder::Swap(std::shared_ptr<const LoadedModel> model) {
  absl::MutexLock notify(&notify_mu_);
  std::shared_ptr<const LoadedModel> previous;
  const LoadedModel* current = model.get();
  {
    absl::MutexLock lock(&mu_);
    previous = std::move(model_);
    model_ = std::move(model);
  }
  if (listener_) listener_(current);
  // The previous model is released here, outside mu_, so freeing a large model never blocks
  // readers (unless the caller keeps the returned pointer).
  return previous;
}

void ModelHolder::SetListener(Listener listener) {
  absl::MutexLock notify(&notify_mu_);
  listener_ = std::move(listener);
  std::shared_ptr<const LoadedModel> current = Get();
  if (listener_) listener_(current.get());
}

}  // namespace fraud::inference
