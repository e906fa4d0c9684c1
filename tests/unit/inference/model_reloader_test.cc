#include "services/inference/model_reloader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <thread>

#include "absl/synchronization/mutex.h"

#include "services/inference/model_watcher.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/inference/fake_model.h"

namespace fraud::inference {
namespace {

using ::fraud::testing::FakeClock;
using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::FakeChampionSource;
using testing::FakeModelRepo;

class ModelReloaderTest : public ::testing::Test {
 protected:
  int64_t Serving() const {
    auto m = holder_.Get();
    return m == nullptr ? 0 : m->version;
  }
  FakeModelRepo repo_;
  ModelHolder holder_;
  FakeChampionSource champion_;
  FakeClock clock_;
  ModelReloader reloader_{repo_.root(), repo_.Loader(), &holder_, &champion_, nullptr, &clock_};
};

TEST_F(ModelReloaderTest, LoadsTheVersionDirectoryAndSwapsItIn) {
  repo_.AddVersion(3, 0.7);
  absl::StatusOr<ReloadResult> r = reloader_.Reload(3);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->previous_version, 0);
  EXPECT_EQ(r->version, 3);
  std::shared_ptr<const LoadedModel> m = holder_.Get();
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->version, 3);
  EXPECT_DOUBLE_EQ(m->threshold, 0.7);
  EXPECT_EQ(m->artifact_path, repo_.Dir(3));
  EXPECT_EQ(m->loaded_at, clock_.Now());
}

TEST_F(ModelReloaderTest, ReportsThePreviousVersionOnASwap) {
  repo_.AddVersion(1);
  repo_.AddVersion(2);
  ASSERT_THAT(reloader_.Reload(1), IsOk());
  absl::StatusOr<ReloadResult> r = reloader_.Reload(2);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->previous_version, 1);
  EXPECT_EQ(Serving(), 2);
}

TEST_F(ModelReloaderTest, MissingVersionIsNotFoundNamingTheVersionNotThePathAndKeepsServing) {
  repo_.AddVersion(1);
  ASSERT_THAT(reloader_.Reload(1), IsOk());
  absl::StatusOr<ReloadResult> r = reloader_.Reload(9);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kNotFound,
                          AllOf(HasSubstr("model version 9"), HasSubstr("no artifact"))));
  EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr(repo_.Dir(9))));
  EXPECT_EQ(Serving(), 1);
}

TEST_F(ModelReloaderTest, CorruptArtifactIsRefusedWithTheLoadersCodeAndTheOldModelKeepsServing) {
  repo_.AddVersion(1);
  repo_.AddVersion(2);
  repo_.Break(2, absl::DataLossError("weights.pt: sha256 mismatch"));
  ASSERT_THAT(reloader_.Reload(1), IsOk());
  EXPECT_THAT(reloader_.Reload(2),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("version 2"), HasSubstr("sha256 mismatch"))));
  EXPECT_EQ(Serving(), 1);
}

TEST_F(ModelReloaderTest, ManifestVersionThatDiffersFromTheDirectoryIsRefused) {
  repo_.AddVersion(4, 0.5, /*manifest_version=*/5);
  EXPECT_THAT(reloader_.Reload(4),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("manifest says version 5, expected 4")));
  EXPECT_EQ(holder_.Get(), nullptr);
}

TEST_F(ModelReloaderTest, ThresholdOutsideTheUnitIntervalIsRefused) {
  repo_.AddVersion(4, 1.5);
  EXPECT_THAT(reloader_.Reload(4),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("threshold")));
}

TEST_F(ModelReloaderTest, NegativeVersionIsInvalidArgument) {
  EXPECT_THAT(reloader_.Reload(-1), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ModelReloaderTest, VersionZeroLoadsTheChampion) {
  repo_.AddVersion(6);
  champion_.Set(6);
  absl::StatusOr<ReloadResult> r = reloader_.Reload(0);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->version, 6);
  EXPECT_EQ(Serving(), 6);
}

TEST_F(ModelReloaderTest, VersionZeroWithoutAChampionIsNotFound) {
  EXPECT_THAT(reloader_.Reload(0),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no champion")));
}

TEST_F(ModelReloaderTest, VersionZeroWithTheRegistryDownIsUnavailable) {
  champion_.Fail(absl::UnavailableError("connection refused"));
  EXPECT_THAT(reloader_.Reload(0), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(ModelReloaderTest, ReloadIfNotServingSkipsTheServingVersion) {
  repo_.AddVersion(1);
  ASSERT_THAT(reloader_.Reload(1), IsOk());
  const int64_t loads = repo_.loads();
  absl::StatusOr<bool> changed = reloader_.ReloadIfNotServing(1);
  ASSERT_THAT(changed, IsOk());
  EXPECT_FALSE(*changed);
  EXPECT_EQ(repo_.loads(), loads);
}

TEST_F(ModelReloaderTest, ConcurrentReloadsAreSerializedAndLeaveOneConsistentModel) {
  repo_.AddVersion(1);
  repo_.AddVersion(2);
  repo_.SetLoadDelay(absl::Milliseconds(20));
  std::thread a([&] { EXPECT_THAT(reloader_.Reload(1), IsOk()); });
  std::thread b([&] { EXPECT_THAT(reloader_.Reload(2), IsOk()); });
  a.join();
  b.join();
  const int64_t v = Serving();
  EXPECT_TRUE(v == 1 || v == 2);
  EXPECT_EQ(holder_.Get()->model->manifest().version(), v);
}

class ModelWatcherTest : public ModelReloaderTest {
 protected:
  WatcherOptions Options() {
    WatcherOptions o;
    o.poll_interval = absl::Seconds(5);
    o.max_retry_backoff = absl::Seconds(20);
    return o;
  }
};

TEST_F(ModelWatcherTest, FollowsTheChampionWhenItChanges) {
  repo_.AddVersion(1);
  repo_.AddVersion(2);
  ModelWatcher watcher(&champion_, &reloader_, Options(), &clock_);
  EXPECT_THAT(watcher.PollOnce(), IsOk());
  EXPECT_EQ(holder_.Get(), nullptr) << "no champion yet: nothing to load";
  champion_.Set(1);
  EXPECT_THAT(watcher.PollOnce(), IsOk());
  EXPECT_EQ(Serving(), 1);
  const int64_t loads = repo_.loads();
  EXPECT_THAT(watcher.PollOnce(), IsOk());
  EXPECT_EQ(repo_.loads(), loads) << "an unchanged champion must not be reloaded";
  champion_.Set(2);
  EXPECT_THAT(watcher.PollOnce(), IsOk());
  EXPECT_EQ(Serving(), 2);
  champion_.Set(1);  // rollback
  EXPECT_THAT(watcher.PollOnce(), IsOk());
  EXPECT_EQ(Serving(), 1);
}

TEST_F(ModelWatcherTest, KeepsServingWhileTheRegistryIsUnreachable) {
  repo_.AddVersion(1);
  champion_.Set(1);
  ModelWatcher watcher(&champion_, &reloader_, Options(), &clock_);
  ASSERT_THAT(watcher.PollOnce(), IsOk());
  champion_.Fail(absl::UnavailableError("storage down"));
  EXPECT_THAT(watcher.PollOnce(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(Serving(), 1);
}

TEST_F(ModelWatcherTest, BacksOffOnAChampionThatFailsToLoadAndRetriesLater) {
  repo_.AddVersion(1);
  repo_.AddVersion(2);
  repo_.Break(2, absl::DataLossError("checksum mismatch"));
  champion_.Set(1);
  ModelWatcher watcher(&champion_, &reloader_, Options(), &clock_);
  ASSERT_THAT(watcher.PollOnce(), IsOk());
  champion_.Set(2);
  EXPECT_THAT(watcher.PollOnce(), StatusIs(absl::StatusCode::kDataLoss));
  const int64_t loads = repo_.loads();
  EXPECT_THAT(watcher.PollOnce(), IsOk());
  EXPECT_EQ(repo_.loads(), loads) << "retried before the backoff elapsed";
  clock_.Advance(absl::Seconds(6));
  EXPECT_THAT(watcher.PollOnce(), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(repo_.loads(), loads + 1);
  // Backoff doubled to 10 s.
  clock_.Advance(absl::Seconds(6));
  EXPECT_THAT(watcher.PollOnce(), IsOk());
  EXPECT_EQ(repo_.loads(), loads + 1);
  EXPECT_EQ(Serving(), 1);
  // A repaired artifact (or a new champion) is picked up.
  repo_.AddVersion(2);
  clock_.Advance(absl::Seconds(6));
  EXPECT_THAT(watcher.PollOnce(), IsOk());
  EXPECT_EQ(Serving(), 2);
}

TEST_F(ModelWatcherTest, BackgroundThreadPollsAndConvergesOnTheChampion) {
  repo_.AddVersion(1);
  repo_.AddVersion(2);
  champion_.Set(1);
  WatcherOptions o;
  o.poll_interval = absl::Milliseconds(10);
  ModelWatcher watcher(&champion_, &reloader_, o);
  watcher.Start();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Serving() != 1 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(Serving(), 1);
  champion_.Set(2);
  while (Serving() != 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(Serving(), 2);
  watcher.Stop();
  const int64_t polls = watcher.polls();
  EXPECT_GE(polls, 2);
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(watcher.polls(), polls) << "no polling after Stop";
}

// Operating points from a fake storage: a threshold per version, or an error.
class FakeOperatingPoints final : public OperatingPointSource {
 public:
  absl::StatusOr<std::optional<double>> OperatingThreshold(int64_t version) override {
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (!error_.ok()) return error_;
    auto it = thresholds_.find(version);
    if (it == thresholds_.end()) return std::nullopt;
    return it->second;
  }
  void Set(int64_t version, double threshold) {
    absl::MutexLock lock(&mu_);
    thresholds_[version] = threshold;
  }
  void Fail(absl::Status s) {
    absl::MutexLock lock(&mu_);
    error_ = std::move(s);
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  absl::Mutex mu_;
  std::map<int64_t, double> thresholds_;
  absl::Status error_;
  int calls_ = 0;
};

class OperatingPointReloadTest : public ModelReloaderTest {
 protected:
  FakeOperatingPoints points_;
  ModelReloader with_points_{repo_.root(), repo_.Loader(), &holder_, &champion_, nullptr,
                             &clock_,      &points_};
};

TEST_F(OperatingPointReloadTest, AStoredOperatingPointReplacesTheManifestThresholdOnReload) {
  repo_.AddVersion(3, 0.7);
  absl::StatusOr<ReloadResult> first = with_points_.Reload(3);
  ASSERT_THAT(first, IsOk());
  EXPECT_DOUBLE_EQ(first->threshold, 0.7);
  EXPECT_EQ(holder_.Get()->threshold_source, ThresholdSource::kManifest);

  points_.Set(3, 0.91);
  absl::StatusOr<ReloadResult> second = with_points_.Reload(3);  // the serving version again
  ASSERT_THAT(second, IsOk());
  EXPECT_DOUBLE_EQ(second->threshold, 0.91);
  std::shared_ptr<const LoadedModel> m = holder_.Get();
  EXPECT_DOUBLE_EQ(m->threshold, 0.91);
  EXPECT_EQ(m->threshold_source, ThresholdSource::kOperatingPoint);
  EXPECT_DOUBLE_EQ(m->manifest().threshold(), 0.7);  // the manifest itself is unchanged
  EXPECT_EQ(points_.calls(), 2);
}

TEST_F(OperatingPointReloadTest, FallsBackToTheManifestWhenStorageCannotAnswer) {
  repo_.AddVersion(3, 0.7);
  points_.Set(3, 0.91);
  points_.Fail(absl::UnavailableError("storage down"));
  absl::StatusOr<ReloadResult> r = with_points_.Reload(3);
  ASSERT_THAT(r, IsOk());  // serving at the manifest's threshold beats not serving
  EXPECT_DOUBLE_EQ(holder_.Get()->threshold, 0.7);
  EXPECT_EQ(holder_.Get()->threshold_source, ThresholdSource::kManifest);
}

TEST_F(OperatingPointReloadTest, AnOutOfRangeStoredThresholdIsIgnored) {
  repo_.AddVersion(3, 0.7);
  points_.Set(3, 1.5);
  ASSERT_THAT(with_points_.Reload(3), IsOk());
  EXPECT_DOUBLE_EQ(holder_.Get()->threshold, 0.7);
}

}  // namespace
}  // namespace fraud::inference
