#include "services/inference/predictor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/testing/status_matchers.h"
#include "tests/unit/inference/fake_model.h"

namespace fraud::inference {
namespace {

using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::FakeModelBehavior;
using testing::FakeScore;
using testing::FakeScoringModel;
using testing::RandomRows;

common::v1::TransactionBatch Batch(size_t rows, uint64_t seed = 1) {
  common::v1::TransactionBatch b;
  b.set_num_rows(static_cast<uint32_t>(rows));
  for (double v : RandomRows(rows, seed)) b.add_features(v);
  return b;
}

class PredictorTest : public ::testing::Test {
 protected:
  void Load(int64_t version, double threshold) {
    auto m = std::make_shared<LoadedModel>();
    m->version = version;
    m->threshold = threshold;
    m->model = std::make_unique<FakeScoringModel>(version, threshold, behavior_);
    holder_.Swap(std::move(m));
  }
  std::shared_ptr<FakeModelBehavior> behavior_ = std::make_shared<FakeModelBehavior>();
  ModelHolder holder_;
  Predictor predictor_{&holder_, BatcherOptions{}};
};

TEST_F(PredictorTest, ScoresEveryRowAndStampsVersionThresholdAndDecisions) {
  Load(7, 0.4);
  const common::v1::TransactionBatch b = Batch(500);
  common::v1::ScoreBatch out;
  ASSERT_THAT(predictor_.Predict(b, &out), IsOk());
  ASSERT_EQ(out.scores_size(), 500);
  ASSERT_EQ(out.decisions_size(), 500);
  EXPECT_EQ(out.model_version(), 7);
  EXPECT_DOUBLE_EQ(out.threshold(), 0.4);
  int flagged = 0;
  for (int i = 0; i < 500; ++i) {
    const float expected = FakeScore(b.features().data() + i * kNumFeatures, 7);
    EXPECT_EQ(out.scores(i), expected) << "row " << i;
    EXPECT_EQ(out.decisions(i), expected >= 0.4f) << "row " << i;
    flagged += out.decisions(i);
  }
  EXPECT_GT(flagged, 0);
  EXPECT_LT(flagged, 500);
}

TEST_F(PredictorTest, SmallBatchesGoThroughTheBatcherWithTheSameResult) {
  Load(2, 0.5);
  const common::v1::TransactionBatch b = Batch(3, 9);
  common::v1::ScoreBatch out;
  ASSERT_THAT(predictor_.Predict(b, &out), IsOk());
  EXPECT_EQ(predictor_.batcher().stats().requests, 1);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(out.scores(i), FakeScore(b.features().data() + i * kNumFeatures, 2));
  }
}

TEST_F(PredictorTest, LabelsAreIgnored) {
  Load(1, 0.5);
  common::v1::TransactionBatch b = Batch(4);
  common::v1::ScoreBatch without;
  ASSERT_THAT(predictor_.Predict(b, &without), IsOk());
  for (int i = 0; i < 4; ++i) b.add_labels(1);
  b.add_labels(1);  // even a wrong number of labels is not looked at
  common::v1::ScoreBatch with;
  ASSERT_THAT(predictor_.Predict(b, &with), IsOk());
  EXPECT_EQ(with.SerializeAsString(), without.SerializeAsString());
}

TEST_F(PredictorTest, WrongFeatureCountIsInvalidArgumentWithTheNumbers) {
  Load(1, 0.5);
  common::v1::TransactionBatch b = Batch(2);
  b.add_features(1.0);
  common::v1::ScoreBatch out;
  EXPECT_THAT(predictor_.Predict(b, &out),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("61"), HasSubstr("num_rows=2"), HasSubstr("60"))));
  EXPECT_EQ(out.scores_size(), 0);
}

TEST_F(PredictorTest, FeaturesWithoutNumRowsAreInvalid) {
  Load(1, 0.5);
  common::v1::TransactionBatch b = Batch(1);
  b.set_num_rows(0);
  common::v1::ScoreBatch out;
  EXPECT_THAT(predictor_.Predict(b, &out), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(PredictorTest, NanIsInvalidArgumentNamingTheRowLineAndFeature) {
  Load(1, 0.5);
  common::v1::TransactionBatch b = Batch(5);
  b.set_features(3 * kNumFeatures + 29, std::numeric_limits<double>::quiet_NaN());
  for (int i = 0; i < 5; ++i) b.add_line_numbers(10 + i);
  common::v1::ScoreBatch out;
  EXPECT_THAT(predictor_.Predict(b, &out),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("row 3"), HasSubstr("line 13"), HasSubstr("Amount"),
                             HasSubstr("NaN"))));
  EXPECT_EQ(behavior_->score_calls.load(), 0);
}

TEST_F(PredictorTest, InfinityIsInvalidArgumentNamingTheRow) {
  Load(1, 0.5);
  common::v1::TransactionBatch b = Batch(2);
  b.set_features(kNumFeatures + 0, -std::numeric_limits<double>::infinity());
  common::v1::ScoreBatch out;
  EXPECT_THAT(predictor_.Predict(b, &out),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("row 1"), HasSubstr("Time"), HasSubstr("infinite"))));
}

TEST_F(PredictorTest, EmptyBatchIsInvalidArgument) {
  Load(5, 0.3);
  common::v1::ScoreBatch out;
  EXPECT_THAT(predictor_.Predict(common::v1::TransactionBatch(), &out),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_rows is 0")));
  EXPECT_EQ(out.scores_size(), 0);
  EXPECT_EQ(behavior_->score_calls.load(), 0);
}

TEST_F(PredictorTest, NoModelIsUnavailable) {
  common::v1::ScoreBatch out;
  EXPECT_THAT(predictor_.Predict(Batch(1), &out),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no model loaded yet")));
}

TEST_F(PredictorTest, InvalidInputIsReportedEvenWithoutAModel) {
  common::v1::TransactionBatch b = Batch(1);
  b.add_features(0);
  common::v1::ScoreBatch out;
  EXPECT_THAT(predictor_.Predict(b, &out), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(PredictorTest, ModelScoringErrorIsPassedOnAndLeavesNoPartialScores) {
  Load(1, 0.5);
  behavior_->fail_scoring = true;
  common::v1::ScoreBatch out;
  EXPECT_THAT(predictor_.Predict(Batch(300), &out), StatusIs(absl::StatusCode::kInternal));
  EXPECT_EQ(out.scores_size(), 0);
}

}  // namespace
}  // namespace fraud::inference
