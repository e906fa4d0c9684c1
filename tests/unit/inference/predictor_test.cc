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

TEST_F(PredictorTest, ExplainingAModelThatCannotExplainIsUnimplementedAndLeavesNoScores) {
  Load(3, 0.5);
  common::v1::ScoreBatch out;
  google::protobuf::RepeatedPtrField<common::v1::Explanation> why;
  EXPECT_THAT(predictor_.PredictExplained(Batch(2), 0, &out, &why),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("cannot explain")));
  EXPECT_EQ(out.scores_size(), 0);
  EXPECT_EQ(why.size(), 0);
}

TEST_F(PredictorTest, ExplainedPredictionsValidateTopKBeforeAnythingElse) {
  common::v1::ScoreBatch out;
  google::protobuf::RepeatedPtrField<common::v1::Explanation> why;
  // No model loaded: the bad top_k is still what is reported.
  EXPECT_THAT(predictor_.PredictExplained(Batch(1), 31, &out, &why),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("top_k is 31")));
  EXPECT_THAT(ValidateExplainOptions(true, -2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("between 0 and 30")));
  EXPECT_THAT(ValidateExplainOptions(false, 4),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("explain is false")));
  EXPECT_THAT(ValidateExplainOptions(false, 0), IsOk());
  EXPECT_THAT(ValidateExplainOptions(true, 30), IsOk());
}

TEST(ExplanationToProtoTest, ListsTheTopKWithValuesAndPutsTheRestInRest) {
  model::RowExplanation e;
  e.bias = -3;
  e.contributions[14] = 2.0;
  e.contributions[29] = -1.5;
  e.contributions[1] = 0.25;
  e.contributions[2] = 0.125;
  e.margin = e.bias + 2.0 - 1.5 + 0.25 + 0.125;
  std::vector<double> row(kNumFeatures);
  for (size_t j = 0; j < kNumFeatures; ++j) row[j] = 10.0 + static_cast<double>(j);
  common::v1::Explanation two;
  ExplanationToProto(e, row.data(), 2, &two);
  ASSERT_EQ(two.top_size(), 2);
  EXPECT_EQ(two.top(0).feature(), "V14");
  EXPECT_EQ(two.top(0).index(), 14);
  EXPECT_EQ(two.top(0).value(), 24.0);
  EXPECT_EQ(two.top(0).contribution(), 2.0);
  EXPECT_EQ(two.top(1).feature(), "Amount");
  EXPECT_EQ(two.top(1).contribution(), -1.5);
  EXPECT_DOUBLE_EQ(two.rest(), 0.375);
  EXPECT_DOUBLE_EQ(two.margin(), -2.125);
  EXPECT_DOUBLE_EQ(two.bias(), -3.0);
  common::v1::Explanation by_default;
  ExplanationToProto(e, row.data(), 0, &by_default);
  EXPECT_EQ(by_default.top_size(), kDefaultTopK);
  common::v1::Explanation all;
  ExplanationToProto(e, row.data(), 30, &all);
  EXPECT_EQ(all.top_size(), 30);
  EXPECT_EQ(all.rest(), 0.0);
}

}  // namespace
}  // namespace fraud::inference
