// Automatic retraining: threshold on new labelled rows since the last run's data, interval.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/training/auto_trigger.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/training/fakes.h"

namespace fraud::training {
namespace {

using ::fraud::testing::FakeClock;
using ::fraud::training::testing::FakeStorage;
using ::testing::HasSubstr;

TEST(DecideAutoTrainTest, StartsOnlyAtTheThresholdAndWhenIdle) {
  EXPECT_FALSE(DecideAutoTrain(19999, 20000, false).start);
  EXPECT_TRUE(DecideAutoTrain(20000, 20000, false).start);
  EXPECT_TRUE(DecideAutoTrain(50000, 20000, false).start);
  AutoDecision busy = DecideAutoTrain(50000, 20000, true);
  EXPECT_FALSE(busy.start);
  EXPECT_THAT(busy.reason, HasSubstr("active"));
  EXPECT_THAT(DecideAutoTrain(5, 20000, false).reason, HasSubstr("5 new labelled rows"));
}

TEST(LastTrainedUploadIdTest, UsesTheNewestRunThatRecordedItsData) {
  storage_pb::TrainingRun queued;  // newest: not loaded yet
  storage_pb::TrainingRun loaded;
  (*loaded.mutable_params())["data.max_upload_id"] = "7";
  storage_pb::TrainingRun older;
  (*older.mutable_params())["data.max_upload_id"] = "3";
  EXPECT_EQ(LastTrainedUploadId({queued, loaded, older}), 7);
  storage_pb::TrainingRun lineage_only;
  lineage_only.mutable_lineage()->add_upload_ids(2);
  lineage_only.mutable_lineage()->add_upload_ids(5);
  EXPECT_EQ(LastTrainedUploadId({queued, lineage_only}), 5);
  EXPECT_EQ(LastTrainedUploadId({}), 0);
}

class AutoTriggerTest : public ::testing::Test {
 protected:
  AutoTrigger MakeTrigger(int64_t min_rows) {
    AutoTriggerOptions o;
    o.min_new_rows = min_rows;
    o.check_interval = absl::Seconds(60);
    o.params = {{"grid", "small"}};
    return AutoTrigger(
        &storage_, [this] { return busy_; },
        [this](const training::v1::StartRunRequest& r) -> absl::StatusOr<storage_pb::TrainingRun> {
          submitted_.push_back(r);
          storage_pb::TrainingRun run;
          run.set_trigger(r.trigger());
          return storage_.CreateRun(run);
        },
        o, &clock_);
  }
  // Records a finished run that read data up to `max_upload_id`.
  void RecordRun(int64_t max_upload_id) {
    storage_pb::TrainingRun run;
    run.set_status(storage_pb::RUN_STATUS_SUCCEEDED);
    (*run.mutable_params())["data.max_upload_id"] = std::to_string(max_upload_id);
    FRAUD_ASSERT_OK(storage_.CreateRun(run));
  }

  FakeStorage storage_;
  FakeClock clock_;
  bool busy_ = false;
  std::vector<training::v1::StartRunRequest> submitted_;
};

TEST_F(AutoTriggerTest, NothingStartsBelowTheThreshold) {
  storage_.AddUpload(std::vector<double>(500, 1.0), std::vector<int32_t>(500, 0));
  AutoTrigger trigger = MakeTrigger(1000);
  absl::StatusOr<int64_t> started = trigger.CheckOnce();
  FRAUD_ASSERT_OK(started);
  EXPECT_EQ(*started, 0);
  EXPECT_TRUE(submitted_.empty());
  EXPECT_THAT(trigger.last_reason(), HasSubstr("500 new labelled rows"));
}

TEST_F(AutoTriggerTest, StartsAnAutoRunAtTheThresholdCountingOnlyRowsAfterTheLastRun) {
  const int64_t first = storage_.AddUpload(std::vector<double>(800, 1.0), std::vector<int32_t>(800, 0));
  RecordRun(first);
  storage_.AddUpload(std::vector<double>(600, 2.0), std::vector<int32_t>(600, 0));
  AutoTrigger trigger = MakeTrigger(1000);
  // 600 rows after the last run: not enough, although 1400 exist.
  FRAUD_ASSERT_OK(trigger.CheckOnce());
  EXPECT_TRUE(submitted_.empty());
  storage_.AddUpload(std::vector<double>(400, 3.0), std::vector<int32_t>(400, 1));
  absl::StatusOr<int64_t> started = trigger.CheckOnce();
  FRAUD_ASSERT_OK(started);
  EXPECT_GT(*started, 0);
  ASSERT_EQ(submitted_.size(), 1u);
  EXPECT_EQ(submitted_[0].trigger(), "auto");
  EXPECT_EQ(submitted_[0].params().at("grid"), "small");
  EXPECT_THAT(submitted_[0].description(), HasSubstr("1000 new labelled rows"));
}

TEST_F(AutoTriggerTest, DelayedLabelsOnOldUploadsCountAsNewLabelledRows) {
  // 800 labelled rows and 1,000 unlabelled ones (scored, labels to come), both before the run.
  const int64_t labelled = storage_.AddUpload(std::vector<double>(800, 1.0), std::vector<int32_t>(800, 0));
  const int64_t unlabelled =
      storage_.AddUpload(std::vector<double>(1000, 2.0), std::vector<int32_t>(1000, -1));
  ASSERT_GT(unlabelled, labelled);
  storage_pb::TrainingRun run;
  run.set_status(storage_pb::RUN_STATUS_SUCCEEDED);
  (*run.mutable_params())["data.max_upload_id"] = std::to_string(unlabelled);
  (*run.mutable_params())["data.labelled_rows"] = "800";
  FRAUD_ASSERT_OK(storage_.CreateRun(run));
  AutoTrigger trigger = MakeTrigger(1000);
  FRAUD_ASSERT_OK(trigger.CheckOnce());
  EXPECT_TRUE(submitted_.empty());
  EXPECT_THAT(trigger.last_reason(), HasSubstr("0 new labelled rows"));
  // Feedback labels 999 of the old upload's rows: not yet; one more: a run starts, although no
  // upload came after the run's data.
  for (size_t i = 800; i < 1799; ++i) storage_.SetLabel(i, i % 50 == 0 ? 1 : 0);
  FRAUD_ASSERT_OK(trigger.CheckOnce());
  EXPECT_TRUE(submitted_.empty());
  EXPECT_THAT(trigger.last_reason(), HasSubstr("999 new labelled rows"));
  storage_.SetLabel(1799, 0);
  absl::StatusOr<int64_t> started = trigger.CheckOnce();
  FRAUD_ASSERT_OK(started);
  EXPECT_GT(*started, 0);
  ASSERT_EQ(submitted_.size(), 1u);
  EXPECT_THAT(submitted_[0].description(), HasSubstr("1000 new labelled rows since the last run"));
}

TEST(LastTrainedLabelledRowsTest, UsesTheNewestRunThatReadItsDataOrNone) {
  storage_pb::TrainingRun queued;  // newest: not loaded yet
  storage_pb::TrainingRun loaded;
  (*loaded.mutable_params())["data.max_upload_id"] = "7";
  (*loaded.mutable_params())["data.labelled_rows"] = "1234";
  storage_pb::TrainingRun before_the_param;
  (*before_the_param.mutable_params())["data.max_upload_id"] = "3";
  EXPECT_EQ(LastTrainedLabelledRows({queued, loaded, before_the_param}), 1234);
  // The newest run that read data predates the param: the caller falls back to upload ids.
  EXPECT_EQ(LastTrainedLabelledRows({queued, before_the_param, loaded}), -1);
  EXPECT_EQ(LastTrainedLabelledRows({}), -1);
}

TEST_F(AutoTriggerTest, NoRunStartsWhileAnotherIsActive) {
  storage_.AddUpload(std::vector<double>(2000, 1.0), std::vector<int32_t>(2000, 0));
  busy_ = true;
  AutoTrigger trigger = MakeTrigger(1000);
  FRAUD_ASSERT_OK(trigger.CheckOnce());
  EXPECT_TRUE(submitted_.empty());
  busy_ = false;
  FRAUD_ASSERT_OK(trigger.CheckOnce());
  EXPECT_EQ(submitted_.size(), 1u);
}

TEST_F(AutoTriggerTest, ChecksAtMostOncePerInterval) {
  AutoTrigger trigger = MakeTrigger(1000);
  EXPECT_EQ(trigger.MaybeCheck(), 0);  // first call checks: no data
  storage_.AddUpload(std::vector<double>(2000, 1.0), std::vector<int32_t>(2000, 0));
  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(trigger.MaybeCheck(), 0);  // too early: not checked
  EXPECT_TRUE(submitted_.empty());
  clock_.Advance(absl::Seconds(31));
  EXPECT_GT(trigger.MaybeCheck(), 0);
  EXPECT_EQ(submitted_.size(), 1u);
}

TEST_F(AutoTriggerTest, StorageErrorsAreReportedNotFatal) {
  storage_.AddUpload(std::vector<double>(20, 1.0), std::vector<int32_t>(20, 0));
  // A failing submit surfaces from CheckOnce and is swallowed by MaybeCheck.
  AutoTriggerOptions o;
  o.min_new_rows = 10;
  AutoTrigger failing(
      &storage_, [] { return false; },
      [](const training::v1::StartRunRequest&) -> absl::StatusOr<storage_pb::TrainingRun> {
        return absl::ResourceExhaustedError("queue full");
      },
      o, &clock_);
  EXPECT_FALSE(failing.CheckOnce().ok());
  EXPECT_EQ(failing.MaybeCheck(), 0);
}

}  // namespace
}  // namespace fraud::training
