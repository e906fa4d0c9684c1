// Bootstrap of an empty system: initial data through StoreUpload, then a "bootstrap" run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "services/common/core/sha256.h"
#include "services/common/csv/synthetic_generator.h"
#include "services/training/bootstrap.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/training/fakes.h"

namespace fraud::training {
namespace {

using ::fraud::testing::StatusIs;
using ::fraud::training::testing::FakeStorage;
using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + name;
}

TEST(StoreInitialDataTest, StoresTheSyntheticSetWithTheSameHashAsTheGeneratedFile) {
  FakeStorage storage;
  BootstrapOptions o;
  o.rows = 3000;
  o.seed = 5;
  o.batch_rows = 1000;
  absl::StatusOr<storage_pb::Upload> upload = StoreInitialData(storage, o);
  FRAUD_ASSERT_OK(upload);
  EXPECT_EQ(upload->rows(), 3000);
  EXPECT_EQ(storage.row_count(), 3000u);
  absl::StatusOr<storage_pb::GetDataStatsResponse> stats = storage.GetDataStats(0);
  FRAUD_ASSERT_OK(stats);
  EXPECT_EQ(stats->labelled_rows(), 3000);
  EXPECT_GT(stats->frauds(), 0);
  // Same bytes as `fraudctl generate --rows 3000 --seed 5`.
  csv::GeneratorOptions g;
  g.rows = 3000;
  g.seed = 5;
  std::ostringstream file;
  FRAUD_ASSERT_OK(csv::WriteSyntheticCsv(g, file));
  EXPECT_EQ(upload->sha256(), Sha256Hex(file.str()));
  // Storing it again is recognised as the same upload.
  absl::StatusOr<storage_pb::Upload> again = StoreInitialData(storage, o);
  FRAUD_ASSERT_OK(again);
  EXPECT_EQ(again->id(), upload->id());
  EXPECT_EQ(storage.row_count(), 3000u);
}

TEST(StoreInitialDataTest, InvalidCsvStoresNothingAndNamesTheLine) {
  const std::string path = TempPath("bad.csv");
  {
    csv::GeneratorOptions g;
    g.rows = 50;
    std::ofstream out(path);
    FRAUD_ASSERT_OK(csv::WriteSyntheticCsv(g, out));
    out << "1,2,3\n";
  }
  FakeStorage storage;
  BootstrapOptions o;
  o.csv_path = path;
  EXPECT_THAT(StoreInitialData(storage, o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 52")));
  EXPECT_EQ(storage.row_count(), 0u);
}

TEST(StoreInitialDataTest, UnlabelledCsvIsRefused) {
  const std::string path = TempPath("unlabelled.csv");
  {
    csv::GeneratorOptions g;
    g.rows = 50;
    g.with_labels = false;
    std::ofstream out(path);
    FRAUD_ASSERT_OK(csv::WriteSyntheticCsv(g, out));
  }
  FakeStorage storage;
  BootstrapOptions o;
  o.csv_path = path;
  EXPECT_THAT(StoreInitialData(storage, o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("labelled")));
  EXPECT_EQ(storage.row_count(), 0u);
}

TEST(StoreInitialDataTest, MissingCsvIsNotFound) {
  FakeStorage storage;
  BootstrapOptions o;
  o.csv_path = TempPath("does-not-exist.csv");
  EXPECT_THAT(StoreInitialData(storage, o), StatusIs(absl::StatusCode::kNotFound));
}

TEST(MaybeBootstrapTest, EmptySystemGetsDataAndABootstrapRun) {
  FakeStorage storage;
  BootstrapOptions o;
  o.rows = 1000;
  std::vector<training::v1::StartRunRequest> submitted;
  absl::StatusOr<int64_t> run = MaybeBootstrap(
      storage, o, [&](const training::v1::StartRunRequest& r) -> absl::StatusOr<storage_pb::TrainingRun> {
        submitted.push_back(r);
        storage_pb::TrainingRun created;
        created.set_id(7);
        return created;
      });
  FRAUD_ASSERT_OK(run);
  EXPECT_EQ(*run, 7);
  EXPECT_EQ(storage.row_count(), 1000u);
  ASSERT_EQ(submitted.size(), 1u);
  EXPECT_EQ(submitted[0].trigger(), "bootstrap");
  EXPECT_THAT(submitted[0].description(), HasSubstr("1000 rows"));
}

TEST(MaybeBootstrapTest, ExistingLabelledDataIsTrainedOnWithoutStoringMore) {
  FakeStorage storage;
  storage.AddSyntheticUpload(500, 1);
  BootstrapOptions o;
  o.rows = 1000;
  int submitted = 0;
  absl::StatusOr<int64_t> run = MaybeBootstrap(
      storage, o, [&](const training::v1::StartRunRequest&) -> absl::StatusOr<storage_pb::TrainingRun> {
        ++submitted;
        storage_pb::TrainingRun created;
        created.set_id(1);
        return created;
      });
  FRAUD_ASSERT_OK(run);
  EXPECT_EQ(submitted, 1);
  EXPECT_EQ(storage.row_count(), 500u);
}

TEST(MaybeBootstrapTest, RegistryWithAModelIsLeftAlone) {
  FakeStorage storage;
  storage_pb::ModelVersion m;
  m.set_version(1);
  storage.AddModel(m);
  int submitted = 0;
  absl::StatusOr<int64_t> run = MaybeBootstrap(
      storage, BootstrapOptions{},
      [&](const training::v1::StartRunRequest&) -> absl::StatusOr<storage_pb::TrainingRun> {
        ++submitted;
        return storage_pb::TrainingRun();
      });
  FRAUD_ASSERT_OK(run);
  EXPECT_EQ(*run, 0);
  EXPECT_EQ(submitted, 0);
  EXPECT_EQ(storage.row_count(), 0u);
}

// A submit that fails with `code` `failures` times, then creates run 9.
SubmitRunFn FailingSubmit(int failures, absl::StatusCode code, int* calls) {
  return [=](const training::v1::StartRunRequest&) -> absl::StatusOr<storage_pb::TrainingRun> {
    if (++*calls <= failures) return absl::Status(code, "run queue not ready");
    storage_pb::TrainingRun created;
    created.set_id(9);
    return created;
  };
}

TEST(BootstrapWithRetryTest, RetriesATransientFailureUntilTheRunIsSubmitted) {
  FakeStorage storage;
  storage.AddSyntheticUpload(500, 1);
  absl::Notification stopping;
  int calls = 0;
  absl::StatusOr<int64_t> run = BootstrapWithRetry(
      storage, BootstrapOptions{}, FailingSubmit(2, absl::StatusCode::kUnavailable, &calls),
      stopping, absl::Milliseconds(1), absl::Milliseconds(2));
  FRAUD_ASSERT_OK(run);
  EXPECT_EQ(*run, 9);
  EXPECT_EQ(calls, 3);
}

TEST(BootstrapWithRetryTest, ABadCsvIsNotRetried) {
  FakeStorage storage;
  BootstrapOptions o;
  o.csv_path = TempPath("does-not-exist.csv");
  absl::Notification stopping;
  int calls = 0;
  absl::StatusOr<int64_t> run =
      BootstrapWithRetry(storage, o, FailingSubmit(0, absl::StatusCode::kOk, &calls), stopping,
                         absl::Milliseconds(1), absl::Milliseconds(2));
  EXPECT_THAT(run.status(), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(calls, 0);
}

TEST(BootstrapWithRetryTest, StoppingEndsTheRetries) {
  FakeStorage storage;
  storage.AddSyntheticUpload(500, 1);
  absl::Notification stopping;
  int calls = 0;
  std::thread stopper([&] {
    absl::SleepFor(absl::Milliseconds(50));
    stopping.Notify();
  });
  // Fails forever with a retryable error: only `stopping` ends it.
  absl::StatusOr<int64_t> run = BootstrapWithRetry(
      storage, BootstrapOptions{}, FailingSubmit(1 << 30, absl::StatusCode::kUnavailable, &calls),
      stopping, absl::Milliseconds(1), absl::Milliseconds(5));
  stopper.join();
  EXPECT_THAT(run.status(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_GE(calls, 2);
}

}  // namespace
}  // namespace fraud::training
