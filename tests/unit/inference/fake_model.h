// Fakes for the inference service's unit tests: a deterministic scoring model whose scores depend
// on its version (so a response's version can be checked against its scores), a loader backed by
// a table of directories and a settable champion source (the settable clock is
// tests/testing/fake_clock.h).
#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/inference/champion_source.h"
#include "services/inference/loaded_model.h"

namespace fraud::inference::testing {

// What a fake model does; shared between the test and every model built from it.
struct FakeModelBehavior {
  std::atomic<int64_t> score_calls{0};
  std::atomic<int64_t> rows_scored{0};
  std::atomic<int64_t> max_rows_per_call{0};
  // Sleep inside every Score call (to make calls overlap).
  std::atomic<int64_t> score_delay_us{0};
  std::atomic<bool> fail_scoring{false};
};

// score(row) = sigmoid(0.5 * row[1] - 0.25 * row[2] + 0.1 * version - 1): different per version.
inline float FakeScore(const double* row, int64_t version) {
  const double z = 0.5 * row[1] - 0.25 * row[2] + 0.1 * static_cast<double>(version) - 1.0;
  return static_cast<float>(1.0 / (1.0 + std::exp(-z)));
}

class FakeScoringModel final : public ScoringModel {
 public:
  FakeScoringModel(int64_t version, double threshold, std::shared_ptr<FakeModelBehavior> behavior)
      : behavior_(std::move(behavior)) {
    manifest_.set_version(version);
    manifest_.set_threshold(threshold);
    manifest_.set_family(common::v1::MODEL_FAMILY_LOGREG);
  }
  absl::Status Score(const double* features, size_t rows, float* out) const override {
    behavior_->score_calls++;
    behavior_->rows_scored += static_cast<int64_t>(rows);
    int64_t prev = behavior_->max_rows_per_call.load();
    while (static_cast<int64_t>(rows) > prev &&
           !behavior_->max_rows_per_call.compare_exchange_weak(prev, static_cast<int64_t>(rows))) {
    }
    if (const int64_t us = behavior_->score_delay_us.load(); us > 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(us));
    }
    if (behavior_->fail_scoring) return absl::InternalError("fake scoring failure");
    for (size_t i = 0; i < rows; ++i) out[i] = FakeScore(features + i * kNumFeatures, version());
    return absl::OkStatus();
  }
  const common::v1::ModelManifest& manifest() const override { return manifest_; }
  int64_t version() const { return manifest_.version(); }

 private:
  common::v1::ModelManifest manifest_;
  std::shared_ptr<FakeModelBehavior> behavior_;
};

// A temporary model root with one (empty) directory per version, and a loader that "loads" a
// directory into a FakeScoringModel unless the test marked it broken.
class FakeModelRepo {
 public:
  FakeModelRepo() {
    std::mt19937_64 rng(std::random_device{}());
    root_ = std::filesystem::temp_directory_path() /
            ("fraud-inference-test-" + std::to_string(rng()));
    std::filesystem::create_directories(root_);
  }
  ~FakeModelRepo() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  // Creates <root>/<version>; the model's manifest claims `manifest_version` (default: version).
  void AddVersion(int64_t version, double threshold = 0.5, int64_t manifest_version = -1) {
    std::filesystem::create_directories(root_ / std::to_string(version));
    absl::MutexLock lock(&mu_);
    specs_[Dir(version)] = {manifest_version < 0 ? version : manifest_version, threshold,
                            absl::OkStatus()};
  }
  // Loading `version` fails with `error` (for example DataLoss "checksum mismatch").
  void Break(int64_t version, absl::Status error) {
    absl::MutexLock lock(&mu_);
    specs_[Dir(version)].error = std::move(error);
  }
  void SetLoadDelay(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    load_delay_ = d;
  }

  std::string root() const { return root_.string(); }
  std::string Dir(int64_t version) const { return (root_ / std::to_string(version)).string(); }
  int64_t loads() const {
    absl::MutexLock lock(&mu_);
    return loads_;
  }
  const std::shared_ptr<FakeModelBehavior>& behavior() const { return behavior_; }

  ModelLoader Loader() {
    return [this](const std::string& dir) -> absl::StatusOr<std::unique_ptr<ScoringModel>> {
      absl::Duration delay;
      Spec spec;
      {
        absl::MutexLock lock(&mu_);
        ++loads_;
        delay = load_delay_;
        auto it = specs_.find(dir);
        if (it == specs_.end()) return absl::NotFoundError(dir + "/manifest.textproto missing");
        spec = it->second;
      }
      absl::SleepFor(delay);
      if (!spec.error.ok()) return spec.error;
      return std::unique_ptr<ScoringModel>(
          std::make_unique<FakeScoringModel>(spec.version, spec.threshold, behavior_));
    };
  }

 private:
  struct Spec {
    int64_t version = 0;
    double threshold = 0.5;
    absl::Status error;
  };
  std::filesystem::path root_;
  std::shared_ptr<FakeModelBehavior> behavior_ = std::make_shared<FakeModelBehavior>();
  mutable absl::Mutex mu_;
  std::map<std::string, Spec> specs_ ABSL_GUARDED_BY(mu_);
  absl::Duration load_delay_ ABSL_GUARDED_BY(mu_);
  int64_t loads_ ABSL_GUARDED_BY(mu_) = 0;
};

class FakeChampionSource final : public ChampionSource {
 public:
  absl::StatusOr<int64_t> ChampionVersion() override {
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (!error_.ok()) return error_;
    return champion_;
  }
  void Set(int64_t version) {
    absl::MutexLock lock(&mu_);
    champion_ = version;
    error_ = absl::OkStatus();
  }
  void Fail(absl::Status error) {
    absl::MutexLock lock(&mu_);
    error_ = std::move(error);
  }
  int64_t calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  mutable absl::Mutex mu_;
  int64_t champion_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  int64_t calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// `rows` rows of deterministic pseudo-random features.
inline std::vector<double> RandomRows(size_t rows, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0, 2);
  std::vector<double> f(rows * kNumFeatures);
  for (double& v : f) v = normal(rng);
  return f;
}

}  // namespace fraud::inference::testing
