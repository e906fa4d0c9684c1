// The time-ordered split of a run: comparison set first, then the newest validation window.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "services/training/dataset.h"
#include "tests/testing/status_matchers.h"

namespace fraud::training {
namespace {

using ::fraud::testing::StatusIs;

// Row i has Time = times[i], label = i % 10 == 0, upload = uploads[i].
std::vector<double> Row(double time, double marker) {
  std::vector<double> r(kNumFeatures, 0.0);
  r[0] = time;
  r[1] = marker;  // identifies the row after the split
  return r;
}

std::set<double> Markers(const Dataset& d) {
  std::set<double> out;
  for (size_t i = 0; i < d.rows(); ++i) out.insert(d.row(i)[1]);
  return out;
}

TEST(RunSplitterTest, ComparisonUploadRowsNeverReachTrainingOrValidation) {
  SplitOptions options;
  options.comparison.upload_ids = {3};
  options.validation_fraction = 0.25;
  RunSplitter splitter(options);
  // Rows arrive out of time order and interleaved across uploads.
  for (int i = 0; i < 100; ++i) {
    const int64_t upload = i % 4 == 0 ? 3 : 1 + i % 2;
    const double time = (i * 37) % 100;
    splitter.AddRow(Row(time, i).data(), i % 10 == 0, upload);
  }
  absl::StatusOr<SplitData> split = std::move(splitter).Finish();
  FRAUD_ASSERT_OK(split);
  EXPECT_EQ(split->comparison.rows(), 25u);
  for (size_t i = 0; i < split->comparison.rows(); ++i) {
    EXPECT_EQ(split->comparison.upload_ids[i], 3);
  }
  for (const Dataset* d : {&split->train, &split->validation}) {
    for (int64_t id : d->upload_ids) EXPECT_NE(id, 3);
  }
  EXPECT_EQ(split->train.rows() + split->validation.rows(), 75u);
  EXPECT_FALSE(split->comparison_is_holdout);
}

TEST(RunSplitterTest, ValidationWindowIsTheNewestFractionOfTheRemainingRows) {
  SplitOptions options;
  options.validation_fraction = 0.2;
  options.holdout_fraction = 0;
  RunSplitter splitter(options);
  for (int i = 0; i < 50; ++i) {
    const double time = 1000 - i * 10;  // newest first
    splitter.AddRow(Row(time, i).data(), i % 5 == 0, 1);
  }
  absl::StatusOr<SplitData> split = std::move(splitter).Finish();
  FRAUD_ASSERT_OK(split);
  ASSERT_EQ(split->validation.rows(), 10u);
  ASSERT_EQ(split->train.rows(), 40u);
  EXPECT_GE(split->validation.time_min(), split->train.time_max());
  // Each part comes out sorted by Time.
  for (size_t i = 1; i < split->train.rows(); ++i) {
    EXPECT_LE(split->train.time(i - 1), split->train.time(i));
  }
  // Rows 0..9 (Time 1000..910) are the newest.
  EXPECT_EQ(Markers(split->validation), (std::set<double>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_TRUE(split->comparison.empty());
}

TEST(RunSplitterTest, ComparisonTimeRangeIsRemovedBeforeTheValidationWindowIsCut) {
  SplitOptions options;
  options.comparison.time_min = 800;
  options.comparison.time_max = 900;
  options.validation_fraction = 0.5;
  RunSplitter splitter(options);
  for (int i = 0; i < 100; ++i) splitter.AddRow(Row(i * 10, i).data(), i % 7 == 0, 1);
  absl::StatusOr<SplitData> split = std::move(splitter).Finish();
  FRAUD_ASSERT_OK(split);
  // Times 800..890 (10 rows) are the comparison set, even though newer rows exist.
  EXPECT_EQ(split->comparison.rows(), 10u);
  EXPECT_EQ(split->comparison.time_min(), 800);
  EXPECT_EQ(split->comparison.time_max(), 890);
  EXPECT_EQ(split->train.rows() + split->validation.rows(), 90u);
  for (const Dataset* d : {&split->train, &split->validation}) {
    for (size_t i = 0; i < d->rows(); ++i) {
      EXPECT_FALSE(d->time(i) >= 800 && d->time(i) < 900) << d->time(i);
    }
  }
  EXPECT_EQ(split->validation.rows(), 45u);
  EXPECT_GE(split->validation.time_min(), split->train.time_max());
}

TEST(RunSplitterTest, WithoutANamedComparisonSetTheNewestRowsAreHeldOut) {
  SplitOptions options;
  options.holdout_fraction = 0.1;
  options.validation_fraction = 0.2;
  RunSplitter splitter(options);
  for (int i = 0; i < 100; ++i) splitter.AddRow(Row(i, i).data(), i % 4 == 0, 1);
  absl::StatusOr<SplitData> split = std::move(splitter).Finish();
  FRAUD_ASSERT_OK(split);
  EXPECT_TRUE(split->comparison_is_holdout);
  EXPECT_EQ(split->comparison.rows(), 10u);
  EXPECT_EQ(split->comparison.time_min(), 90);
  EXPECT_EQ(split->validation.rows(), 18u);
  EXPECT_EQ(split->train.rows(), 72u);
  EXPECT_GE(split->validation.time_min(), split->train.time_max());
  EXPECT_GE(split->comparison.time_min(), split->validation.time_max());
}

TEST(RunSplitterTest, RowsAfterTrainTimeMaxAreDroppedButComparisonRowsAreKept) {
  SplitOptions options;
  options.comparison.upload_ids = {9};
  options.train_time_max = 50;
  RunSplitter splitter(options);
  for (int i = 0; i < 100; ++i) splitter.AddRow(Row(i, i).data(), i % 4 == 0, i >= 90 ? 9 : 1);
  absl::StatusOr<SplitData> split = std::move(splitter).Finish();
  FRAUD_ASSERT_OK(split);
  EXPECT_EQ(split->comparison.rows(), 10u);
  EXPECT_EQ(split->train.rows() + split->validation.rows(), 50u);
  EXPECT_LT(split->validation.time_max(), 50);
}

TEST(RunSplitterTest, MaxPoolRowsKeepsExactlyTheNewestRowsAcrossManyBlocks) {
  // More rows than several blocks, in Time order as storage scans them, so old blocks are freed
  // while the scan streams; the pool is exactly the newest max_pool_rows.
  const int n = static_cast<int>(RowBlocks::kRowsPerBlock) * 5 + 123;
  const size_t cap = RowBlocks::kRowsPerBlock * 2 + 7;
  SplitOptions options;
  options.holdout_fraction = 0.1;
  options.validation_fraction = 0.2;
  options.max_pool_rows = cap;
  RunSplitter splitter(options);
  for (int i = 0; i < n; ++i) splitter.AddRow(Row(i, i).data(), i % 4 == 0, 1);
  absl::StatusOr<SplitData> split = std::move(splitter).Finish();
  FRAUD_ASSERT_OK(split);
  EXPECT_EQ(split->train.rows() + split->validation.rows() + split->comparison.rows(), cap);
  EXPECT_EQ(split->rows_over_limit, static_cast<int64_t>(n - cap));
  EXPECT_EQ(split->train.time_min(), static_cast<double>(n - cap));
  EXPECT_EQ(split->comparison.time_max(), static_cast<double>(n - 1));
  EXPECT_EQ(split->comparison.rows(), static_cast<size_t>(std::llround(cap * 0.1)));
  // Every kept row is intact (its marker is its Time) and in Time order.
  for (const Dataset* d : {&split->train, &split->validation, &split->comparison}) {
    for (size_t i = 0; i < d->rows(); ++i) {
      ASSERT_EQ(d->row(i)[1], d->time(i));
      if (i > 0) {
        ASSERT_LT(d->time(i - 1), d->time(i));
      }
    }
  }
}

TEST(RunSplitterTest, MaxPoolRowsCutsByTimeAmongRowsArrivingOutOfOrder) {
  // Within what the splitter holds, the cut is exact by Time even when rows arrive shuffled.
  SplitOptions options;
  options.holdout_fraction = 0;
  options.validation_fraction = 0.5;
  options.max_pool_rows = 40;
  RunSplitter splitter(options);
  for (int i = 0; i < 100; ++i) {
    const int t = (i * 37) % 100;
    splitter.AddRow(Row(t, t).data(), i % 2, 1);
  }
  absl::StatusOr<SplitData> split = std::move(splitter).Finish();
  FRAUD_ASSERT_OK(split);
  EXPECT_EQ(split->train.rows() + split->validation.rows(), 40u);
  EXPECT_EQ(split->rows_over_limit, 60);
  EXPECT_EQ(split->train.time_min(), 60);
  EXPECT_EQ(split->validation.time_max(), 99);
}

TEST(RunSplitterTest, MaxPoolRowsLeavesANamedComparisonSetWhole) {
  SplitOptions options;
  options.comparison.upload_ids = {9};
  options.max_pool_rows = 30;
  RunSplitter splitter(options);
  for (int i = 0; i < 100; ++i) splitter.AddRow(Row(i, i).data(), i % 4 == 0, i < 20 ? 9 : 1);
  absl::StatusOr<SplitData> split = std::move(splitter).Finish();
  FRAUD_ASSERT_OK(split);
  EXPECT_EQ(split->comparison.rows(), 20u);
  EXPECT_EQ(split->train.rows() + split->validation.rows(), 30u);
  EXPECT_EQ(split->train.time_min(), 70);
}

TEST(RunSplitterTest, RejectsBadFractionsAndTooFewRows) {
  {
    SplitOptions options;
    options.validation_fraction = 1.0;
    RunSplitter splitter(options);
    for (int i = 0; i < 10; ++i) splitter.AddRow(Row(i, i).data(), 0, 1);
    EXPECT_THAT(std::move(splitter).Finish(), StatusIs(absl::StatusCode::kInvalidArgument));
  }
  {
    SplitOptions options;
    options.comparison.upload_ids = {1};
    RunSplitter splitter(options);
    for (int i = 0; i < 10; ++i) splitter.AddRow(Row(i, i).data(), 0, 1);
    EXPECT_THAT(std::move(splitter).Finish(), StatusIs(absl::StatusCode::kFailedPrecondition));
  }
}

TEST(RunSplitterTest, BatchesWithoutLabelsAreRejected) {
  RunSplitter splitter(SplitOptions{});
  common::v1::TransactionBatch batch;
  batch.set_num_rows(1);
  for (int i = 0; i < kNumFeatures; ++i) batch.add_features(1.0);
  EXPECT_THAT(splitter.Add(batch), StatusIs(absl::StatusCode::kInvalidArgument));
  batch.add_labels(1);
  batch.add_upload_ids(4);
  FRAUD_EXPECT_OK(splitter.Add(batch));
  EXPECT_EQ(splitter.rows_seen(), 1);
}

TEST(SplitNewestTest, KeepsAtLeastOneRowOnEachSide) {
  Dataset d;
  for (int i = 0; i < 3; ++i) d.Append(Row(i, i).data(), 0, 1);
  Dataset older, newest;
  SplitNewest(d, 0.01, &older, &newest);
  EXPECT_EQ(newest.rows(), 1u);
  EXPECT_EQ(older.rows(), 2u);
  SplitNewest(d, 0.99, &older, &newest);
  EXPECT_EQ(newest.rows(), 2u);
  EXPECT_EQ(older.rows(), 1u);
}

TEST(DatasetTest, CountsFraudsTimeRangeAndDistinctUploads) {
  Dataset d;
  d.Append(Row(5, 0).data(), 1, 7);
  d.Append(Row(1, 1).data(), 0, 3);
  d.Append(Row(9, 2).data(), 1, 7);
  EXPECT_EQ(d.frauds(), 2);
  EXPECT_EQ(d.time_min(), 1);
  EXPECT_EQ(d.time_max(), 9);
  EXPECT_EQ(d.DistinctUploads(), (std::vector<int64_t>{3, 7}));
}

}  // namespace
}  // namespace fraud::training
