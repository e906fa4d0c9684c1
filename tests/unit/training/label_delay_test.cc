// The replay's delayed-label clock (clients/replay/label_delay.h): which labels have arrived at a
// clock time, by review budget per day and by delay.
#include "clients/replay/label_delay.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "services/common/core/day.h"

namespace fraud::replay {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr double kDay = layout::kSecondsPerDay;

// Rows of upload 7 at lines 2.. with the given Times and labels.
std::vector<PendingRow> Rows(const std::vector<double>& times, const std::vector<int32_t>& labels) {
  std::vector<PendingRow> rows;
  for (size_t i = 0; i < times.size(); ++i) {
    PendingRow r;
    r.upload_id = 7;
    r.line = static_cast<int64_t>(i) + 2;
    r.time = times[i];
    r.label = labels[i];
    rows.push_back(r);
  }
  return rows;
}

TEST(DayOfTest, CountsWholeDaysOfTime) {
  EXPECT_EQ(layout::DayOf(0), 0);
  EXPECT_EQ(layout::DayOf(kDay - 1), 0);
  EXPECT_EQ(layout::DayOf(kDay), 1);
  EXPECT_EQ(layout::DayOf(2.5 * kDay), 2);
}

TEST(LabelClockTest, ReviewsTheHighestScoredRowsOfEachDayWithinTheBudget) {
  LabelClock clock(/*delay_days=*/7, /*review_budget=*/2);
  // Day 0: rows 0..3; day 1: rows 4..5.
  clock.AddRows(Rows({10, 20, 30, 40, kDay + 10, kDay + 20}, {0, 1, 0, 1, 1, 0}));
  const float scores[] = {0.9f, 0.1f, 0.8f, 0.95f, 0.2f, 0.3f};
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(clock.SetScore(7, i + 2, scores[i]));

  // At Time 30 no review is due yet (2 x 30/86400 rounds down to 0).
  Arrivals a = clock.AdvanceTo(30);
  EXPECT_THAT(a.reviewed, IsEmpty());
  EXPECT_THAT(a.delayed, IsEmpty());
  // Half way through day 0 one review is due: the best of the rows so far (row 3, 0.95).
  a = clock.AdvanceTo(0.5 * kDay);
  EXPECT_THAT(a.reviewed, ElementsAre(3u));
  // Day 0 over: its second review (row 0, 0.9); day 1 just begun: none of its rows yet.
  a = clock.AdvanceTo(kDay + 30);
  EXPECT_THAT(a.reviewed, ElementsAre(0u));
  // Day 1 over: both of its rows; day 0's budget stays spent (row 2, 0.8, is never reviewed).
  a = clock.AdvanceTo(2 * kDay);
  EXPECT_THAT(a.reviewed, UnorderedElementsAre(4u, 5u));
  EXPECT_EQ(clock.known(), 4);
  EXPECT_EQ(clock.pending(), 2);
  EXPECT_EQ(clock.rows()[0].known, PendingRow::Known::kReview);
  // The rest arrives at the end.
  EXPECT_THAT(clock.ArriveAll(), ElementsAre(1u, 2u));
  EXPECT_EQ(clock.rows()[2].known, PendingRow::Known::kFinal);
  EXPECT_EQ(clock.pending(), 0);
  EXPECT_THAT(clock.ArriveAll(), IsEmpty());
}

TEST(LabelClockTest, LabelsArriveTheDelayAfterTheirTime) {
  LabelClock clock(/*delay_days=*/0.5, /*review_budget=*/0);
  clock.AddRows(Rows({0, 100, 0.5 * kDay}, {1, 0, 1}));
  EXPECT_THAT(clock.AdvanceTo(0.5 * kDay - 1).delayed, IsEmpty());
  // Time 0 + half a day <= now; Time 100 not yet.
  EXPECT_THAT(clock.AdvanceTo(0.5 * kDay).delayed, ElementsAre(0u));
  EXPECT_THAT(clock.AdvanceTo(kDay).delayed, ElementsAre(1u, 2u));
  EXPECT_EQ(clock.rows()[2].known, PendingRow::Known::kDelay);
}

TEST(LabelClockTest, UnscoredRowsAreNeverReviewedAndTiesGoByLine) {
  LabelClock clock(/*delay_days=*/7, /*review_budget=*/1);
  clock.AddRows(Rows({1, 2, 3}, {0, 0, 1}));
  EXPECT_THAT(clock.AdvanceTo(kDay).reviewed, IsEmpty());  // nothing scored yet
  ASSERT_TRUE(clock.SetScore(7, 3, 0.5f));
  ASSERT_TRUE(clock.SetScore(7, 4, 0.5f));
  EXPECT_THAT(clock.AdvanceTo(kDay).reviewed, ElementsAre(1u));
}

TEST(LabelClockTest, SetScoreRejectsRowsItDoesNotHold) {
  LabelClock clock(1, 1);
  clock.AddRows(Rows({1, 2}, {0, 1}));
  EXPECT_FALSE(clock.SetScore(8, 2, 0.1f));  // other upload
  EXPECT_FALSE(clock.SetScore(7, 1, 0.1f));  // the header line
  EXPECT_FALSE(clock.SetScore(7, 4, 0.1f));  // past the last row
  EXPECT_TRUE(clock.SetScore(7, 3, 0.1f));
}

}  // namespace
}  // namespace fraud::replay
