// The model currently serving: a std::shared_ptr<const LoadedModel> swapped atomically under a
// mutex (ARCHITECTURE.md "Model artifacts and hot reload", STYLE.md §7).
//
// Each request calls Get() once and scores with that snapshot, so a request that started before
// a swap finishes on the model it started with; the old model is freed when its last request
// returns. Thread-safety: every method may be called from any thread.
#pragma once

#include <functional>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/inference/loaded_model.h"

namespace fraud::inference {

class ModelHolder {
 public:
  // Called with the new model (nullptr = none) after every swap, in swap order.
  using Listener = std::function<void(const LoadedModel* model)>;

  ModelHolder() = default;
  // Releases the model under mu_: its memory is then ordered after the Swap that published it
  // even when the destroying thread synchronised with the publisher only through code
  // ThreadSanitizer cannot see (gRPC's completion of a Reload call).
  ~ModelHolder();
  ModelHolder(const ModelHolder&) = delete;
  ModelHolder& operator=(const ModelHolder&) = delete;

  // The serving model, or nullptr before the first load. Cheap: one mutex-guarded pointer copy.
  std::shared_ptr<const LoadedModel> Get() const ABSL_LOCKS_EXCLUDED(mu_);

  // Publishes `model` and returns the one it replaces (nullptr if none).
  std::shared_ptr<const LoadedModel> Swap(std::shared_ptr<const LoadedModel> model)
      ABSL_LOCKS_EXCLUDED(mu_, notify_mu_);

  // Registers the (single) listener and calls it at once with the current model, so the
  // subscriber never misses a state. The listener must not call Swap or SetListener.
  void SetListener(Listener listener) ABSL_LOCKS_EXCLUDED(mu_, notify_mu_);

 private:
  // Serializes swaps with their notifications, so listeners see them in order; never held by Get.
  absl::Mutex notify_mu_;
  Listener listener_ ABSL_GUARDED_BY(notify_mu_);
  mutable absl::Mutex mu_ ABSL_ACQUIRED_AFTER(notify_mu_);
  std::shared_ptr<const LoadedModel> model_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fraud::inference
