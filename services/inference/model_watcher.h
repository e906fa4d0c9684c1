// Polls the registry's champion and reloads when it changes, so the service converges on the
// champion even when a Reload signal from training was missed (or arrived while this process was
// down). A version that fails to load is retried with exponential backoff (poll interval doubling
// up to max_retry_backoff) instead of on every poll; the serving model is kept meanwhile.
//
// Note: an explicit Reload of a version other than the champion is therefore temporary; the
// watcher brings the champion back at its next poll. Rollback goes through the registry
// (training's Promote sets the champion), which keeps both in agreement.
//
// Thread-safety: Start/Stop from the owning thread; PollOnce is not for concurrent use with the
// background thread (tests call it with the thread not started).
#pragma once

#include <cstdint>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "services/common/core/clock.h"
#include "services/inference/champion_source.h"
#include "services/inference/model_reloader.h"

namespace fraud::inference {

struct WatcherOptions {
  absl::Duration poll_interval = absl::Seconds(5);
  // Longest wait before retrying a champion version that failed to load.
  absl::Duration max_retry_backoff = absl::Minutes(5);
};

class ModelWatcher {
 public:
  // `champion` and `reloader` are not owned and must outlive this object.
  ModelWatcher(ChampionSource* champion, ModelReloader* reloader, WatcherOptions options,
               const Clock* clock = &RealClock::Get());
  ~ModelWatcher();  // Stop()
  ModelWatcher(const ModelWatcher&) = delete;
  ModelWatcher& operator=(const ModelWatcher&) = delete;

  // Starts the background thread; it polls at once, then every poll_interval.
  void Start();
  // Stops and joins the thread (an in-progress load finishes first). Idempotent.
  void Stop();

  // One poll: ask for the champion and reload if it changed. Returns the error of the champion
  // query or of the load (the serving model is kept); OK when nothing needed doing.
  absl::Status PollOnce();

  // Polls done so far (for tests and logs).
  int64_t polls() const;

 private:
  void Run();

  ChampionSource* const champion_;
  ModelReloader* const reloader_;
  const WatcherOptions options_;
  const Clock* const clock_;
  absl::Notification stop_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  int64_t polls_ ABSL_GUARDED_BY(mu_) = 0;
  bool registry_reachable_ ABSL_GUARDED_BY(mu_) = true;
  int64_t failed_version_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_);
  absl::Time retry_at_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fraud::inference
