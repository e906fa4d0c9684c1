#include "services/inference/model_watcher.h"

#include <algorithm>

#include "services/common/core/log.h"

namespace fraud::inference {

ModelWatcher::ModelWatcher(ChampionSource* champion, ModelReloader* reloader,
                           WatcherOptions options, const Clock* clock)
    : champion_(champion), reloader_(reloader), options_(options), clock_(clock) {}

ModelWatcher::~ModelWatcher() { Stop(); }

void ModelWatcher::Start() {
  if (thread_.joinable() || stop_.HasBeenNotified()) return;
  thread_ = std::thread([this] { Run(); });
}

void ModelWatcher::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

int64_t ModelWatcher::polls() const {
  absl::MutexLock lock(&mu_);
  return polls_;
}

void ModelWatcher::Run() {
  do {
    // Errors are logged inside PollOnce (once per state change) and counted by the reloader.
    (void)PollOnce();
  } while (!stop_.WaitForNotificationWithTimeout(options_.poll_interval));
}

absl::Status ModelWatcher::PollOnce() {
  absl::StatusOr<int64_t> champion = champion_->ChampionVersion();
  absl::MutexLock lock(&mu_);
  ++polls_;
  if (!champion.ok()) {
    if (registry_reachable_) {
      FRAUD_LOG(WARNING) << "cannot ask the registry for the champion; will keep polling"
                         << Kv("error", champion.status().ToString());
    }
    registry_reachable_ = false;
    return champion.status();
  }
  if (!registry_reachable_) {
    FRAUD_LOG(INFO) << "registry reachable again";
  }
  registry_reachable_ = true;
  if (*champion == 0) return absl::OkStatus();
  if (*champion == failed_version_ && clock_->Now() < retry_at_) return absl::OkStatus();

  absl::StatusOr<bool> changed = reloader_->ReloadIfNotServing(*champion);
  if (!changed.ok()) {
    if (failed_version_ == *champion) {
      backoff_ = std::min(backoff_ * 2, options_.max_retry_backoff);
    } else {
      failed_version_ = *champion;
      backoff_ = std::min(options_.poll_interval, options_.max_retry_backoff);
    }
    retry_at_ = clock_->Now() + backoff_;
    return changed.status();
  }
  failed_version_ = 0;
  if (*changed) {
    FRAUD_LOG(INFO) << "followed the registry's champion" << Kv("model_version", *champion);
  }
  return absl::OkStatus();
}

}  // namespace fraud::inference
