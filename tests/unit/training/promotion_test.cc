// The promotion gate's decisions and the promotion procedure (compare-and-set, reload, rollback).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "services/training/promotion.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/training/fakes.h"

namespace fraud::training {
namespace {

using ::fraud::testing::StatusIs;
using ::fraud::training::testing::FakeInference;
using ::fraud::training::testing::FakeStorage;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

common::v1::ClassificationMetrics Auprc(double v) {
  common::v1::ClassificationMetrics m;
  m.set_rows(1000);
  m.set_positives(10);
  m.set_auprc(v);
  return m;
}

GateInput Input(double challenger, std::optional<double> champion, double margin) {
  GateInput in;
  in.challenger = Auprc(challenger);
  in.champion_version = 3;
  if (champion.has_value()) in.champion = Auprc(*champion);
  in.margin = margin;
  return in;
}

TEST(DecideGateTest, ChallengerThatBeatsTheChampionIsPromoted) {
  GateDecision d = DecideGate(Input(0.82, 0.78, 0.0));
  EXPECT_TRUE(d.promote);
  EXPECT_THAT(d.reason, HasSubstr("0.8200 >= 0.7800"));
  EXPECT_THAT(d.reason, HasSubstr("v3"));
}

TEST(DecideGateTest, ChallengerBelowTheChampionIsNotPromoted) {
  GateDecision d = DecideGate(Input(0.70, 0.78, 0.0));
  EXPECT_FALSE(d.promote);
  EXPECT_THAT(d.reason, HasSubstr("not promoted"));
}

TEST(DecideGateTest, EqualAuprcIsPromotedWithZeroMargin) {
  EXPECT_TRUE(DecideGate(Input(0.78, 0.78, 0.0)).promote);
}

TEST(DecideGateTest, MarginMustBeCleared) {
  EXPECT_FALSE(DecideGate(Input(0.80, 0.78, 0.05)).promote);
  EXPECT_TRUE(DecideGate(Input(0.84, 0.78, 0.05)).promote);
  // A huge margin keeps any champion.
  EXPECT_FALSE(DecideGate(Input(1.0, 0.01, 10.0)).promote);
}

TEST(DecideGateTest, ThePairedDifferenceIsReportedBesideTheDecision) {
  GateInput in = Input(0.82, 0.78, 0.0);
  in.difference = eval::PairedDifference{0.04, -0.01, 0.09, 0.84, 200};
  GateDecision d = DecideGate(in);
  EXPECT_TRUE(d.promote);
  EXPECT_THAT(d.reason, HasSubstr("paired difference +0.0400 (95% -0.0100..+0.0900, challenger "
                                  "better in 84% of 200 resamples)"));
}

TEST(DecideGateTest, NoChampionMeansPromotion) {
  GateInput in;
  in.challenger = Auprc(0.1);
  in.margin = 10;
  GateDecision d = DecideGate(in);
  EXPECT_TRUE(d.promote);
  EXPECT_THAT(d.reason, HasSubstr("no champion"));
  // Even without a comparison set.
  EXPECT_TRUE(DecideGate(GateInput{}).promote);
}

TEST(DecideGateTest, UnscorableChampionIsReplaced) {
  GateInput in = Input(0.5, std::nullopt, 0.0);
  in.champion_error = "artifact missing";
  GateDecision d = DecideGate(in);
  EXPECT_TRUE(d.promote);
  EXPECT_THAT(d.reason, HasSubstr("artifact missing"));
}

TEST(DecideGateTest, ComparisonWithoutFraudsKeepsTheChampion) {
  GateInput in = Input(0.9, 0.1, 0.0);
  in.challenger->set_single_class(true);
  EXPECT_FALSE(DecideGate(in).promote);
  GateInput none;
  none.champion_version = 2;
  none.champion = Auprc(0.5);
  EXPECT_FALSE(DecideGate(none).promote);
}

BacktestEvidence Evidence(int64_t champion, double difference) {
  BacktestEvidence e;
  e.champion_version = champion;
  e.blocks = 2;
  e.challenger_mean_auprc = 0.80 + difference;
  e.champion_mean_auprc = 0.80;
  e.difference = eval::PairedDifference{difference, difference - 0.03, difference + 0.03, 0.7, 200};
  return e;
}

TEST(DecideGateTest, BacktestEvidenceOnNewerBlocksDecidesInsteadOfTheComparisonSet) {
  // The comparison set favours the champion, the newer blocks the challenger: the blocks decide.
  GateInput in = Input(0.70, 0.78, 0.0);
  in.backtest = Evidence(3, 0.02);
  GateDecision d = DecideGate(in);
  EXPECT_TRUE(d.promote);
  EXPECT_THAT(d.reason, HasSubstr("promoted on the backtest: mean AUPRC over 2 block(s) newer "
                                  "than v3's training rows 0.8200 vs 0.8000"));
  EXPECT_THAT(d.reason, HasSubstr("paired difference +0.0200 >= margin 0.0000"));
  EXPECT_THAT(d.reason, HasSubstr("comparison set AUPRC 0.7000 vs 0.7800"));
  // And the other way round.
  GateInput worse = Input(0.90, 0.78, 0.0);
  worse.backtest = Evidence(3, -0.01);
  d = DecideGate(worse);
  EXPECT_FALSE(d.promote);
  EXPECT_THAT(d.reason, HasSubstr("not promoted on the backtest"));
  // The margin applies to the block difference.
  GateInput margin = Input(0.90, 0.78, 0.05);
  margin.backtest = Evidence(3, 0.02);
  EXPECT_FALSE(DecideGate(margin).promote);
}

TEST(DecideGateTest, NotWorsePromotesUnlessTheWholeIntervalIsBelowMinusTheMargin) {
  // Evidence(v, d) has the interval d +- 0.03.
  GateInput weak = Input(0.70, 0.78, 0.0);
  weak.not_worse = true;
  weak.backtest = Evidence(3, -0.01);  // -0.04..+0.02: not clearly worse
  GateDecision d = DecideGate(weak);
  EXPECT_TRUE(d.promote);
  EXPECT_THAT(d.reason, HasSubstr("interval high +0.0200 >= -margin 0.0000"));
  GateInput worse = weak;
  worse.backtest = Evidence(3, -0.05);  // -0.08..-0.02: clearly worse
  d = DecideGate(worse);
  EXPECT_FALSE(d.promote);
  EXPECT_THAT(d.reason, HasSubstr("interval high -0.0200 < -margin 0.0000"));
  // A margin tolerates that much: -0.02 >= -0.05.
  GateInput tolerant = worse;
  tolerant.margin = 0.05;
  EXPECT_TRUE(DecideGate(tolerant).promote);
  // The default rule keeps the champion on the same weak evidence.
  weak.not_worse = false;
  EXPECT_FALSE(DecideGate(weak).promote);
}

TEST(DecideGateTest, BacktestEvidenceAgainstAnotherChampionIsIgnored) {
  // The champion changed between the backtest and the gate: back to the comparison set.
  GateInput in = Input(0.70, 0.78, 0.0);
  in.backtest = Evidence(2, 0.02);
  GateDecision d = DecideGate(in);
  EXPECT_FALSE(d.promote);
  EXPECT_THAT(d.reason, HasSubstr("0.7000 < 0.7800"));
}

class PromoteVersionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int64_t v : {1, 2, 3}) {
      storage_pb::ModelVersion m;
      m.set_version(v);
      storage_.AddModel(m);
    }
    storage_pb::SetChampionRequest r;
    r.set_version(1);
    ASSERT_TRUE(storage_.SetChampion(r).ok());
  }
  PromotionRequest Request(int64_t version, int64_t expected) {
    PromotionRequest r;
    r.version = version;
    r.expected_champion = expected;
    r.reason = "run 9: promoted";
    r.actor = "training";
    return r;
  }
  FakeStorage storage_;
  FakeInference inference_;
};

TEST_F(PromoteVersionTest, SetsTheChampionAndReloadsInference) {
  absl::StatusOr<PromotionResult> r = PromoteVersion(storage_, &inference_, Request(2, 1));
  FRAUD_ASSERT_OK(r);
  EXPECT_TRUE(r->promoted);
  EXPECT_TRUE(r->reloaded);
  EXPECT_FALSE(r->rolled_back);
  EXPECT_EQ(storage_.champion(), 2);
  EXPECT_EQ(r->change.previous_version(), 1);
  EXPECT_THAT(inference_.reloads(), ElementsAre(2));
}

TEST_F(PromoteVersionTest, ReloadFailureRollsBackToThePreviousChampion) {
  inference_.set_error(absl::FailedPreconditionError("smoke test failed"));
  absl::StatusOr<PromotionResult> r = PromoteVersion(storage_, &inference_, Request(3, 1));
  FRAUD_ASSERT_OK(r);
  EXPECT_FALSE(r->promoted);
  EXPECT_FALSE(r->reloaded);
  EXPECT_TRUE(r->rolled_back);
  EXPECT_EQ(storage_.champion(), 1);
  EXPECT_THAT(r->message, HasSubstr("smoke test failed"));
  EXPECT_THAT(r->message, HasSubstr("rolled back to v1"));
  // History: initial, promotion to 3, rollback to 1 (with the reason).
  std::vector<storage_pb::ChampionChange> h = storage_.history();
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[1].version(), 3);
  EXPECT_EQ(h[2].version(), 1);
  EXPECT_EQ(h[2].previous_version(), 3);
  EXPECT_THAT(h[2].reason(), HasSubstr("rollback"));
}

TEST_F(PromoteVersionTest, ChampionChangedMeanwhileIsAbortedAndChangesNothing) {
  EXPECT_THAT(PromoteVersion(storage_, &inference_, Request(3, 2)),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("champion changed")));
  EXPECT_EQ(storage_.champion(), 1);
  EXPECT_TRUE(inference_.reloads().empty());
  EXPECT_EQ(storage_.history().size(), 1u);
}

TEST_F(PromoteVersionTest, WithoutInferenceOnlyTheRegistryChanges) {
  absl::StatusOr<PromotionResult> r = PromoteVersion(storage_, nullptr, Request(2, 1));
  FRAUD_ASSERT_OK(r);
  EXPECT_TRUE(r->promoted);
  EXPECT_FALSE(r->reloaded);
  EXPECT_EQ(storage_.champion(), 2);
}

TEST(PromoteVersionNoChampionTest, ReloadFailureWithNothingToRollBackToKeepsTheNewChampion) {
  FakeStorage storage;
  FakeInference inference;
  storage_pb::ModelVersion m;
  m.set_version(1);
  storage.AddModel(m);
  inference.set_error(absl::UnavailableError("inference down"));
  PromotionRequest r;
  r.version = 1;
  absl::StatusOr<PromotionResult> result = PromoteVersion(storage, &inference, r);
  FRAUD_ASSERT_OK(result);
  EXPECT_TRUE(result->promoted);
  EXPECT_FALSE(result->reloaded);
  EXPECT_FALSE(result->rolled_back);
  EXPECT_EQ(storage.champion(), 1);
  EXPECT_THAT(result->message, HasSubstr("no previous champion"));
}

}  // namespace
}  // namespace fraud::training
