// The what-if arithmetic on known data: the window of the newest days, the figures at a threshold
// against an independent count, the curve, and budget resolution (the threshold meets the budget
// and is the loosest that does).
#include "services/training/what_if.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "services/common/core/day.h"
#include "tests/testing/status_matchers.h"

namespace fraud::training {
namespace {

using ::fraud::testing::StatusIs;
using ::testing::HasSubstr;

std::vector<double> RowAt(double time) {
  std::vector<double> row(kNumFeatures, 0.0);
  row[0] = time;
  return row;
}

// Independent count: rows with float score >= float(threshold), and frauds among them.
void Count(const std::vector<float>& scores, const std::vector<int32_t>& labels, double threshold,
           int64_t* alerts, int64_t* true_alerts) {
  *alerts = 0;
  *true_alerts = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (scores[i] >= static_cast<float>(threshold)) {
      ++*alerts;
      *true_alerts += labels[i];
    }
  }
}

struct Data {
  std::vector<float> scores;
  std::vector<int32_t> labels;
};

// 20000 rows, ~2% frauds scoring higher on average, many ties (scores rounded to 1/1000).
Data Synthetic() {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  Data d;
  for (int i = 0; i < 20000; ++i) {
    const int32_t y = u(rng) < 0.02 ? 1 : 0;
    const double s = y == 1 ? 0.5 + 0.49 * u(rng) : u(rng) * u(rng);
    d.scores.push_back(static_cast<float>(std::round(s * 1000) / 1000));
    d.labels.push_back(y);
  }
  return d;
}

TEST(WindowCollectorTest, KeepsTheNewestDaysAndDropsWholeOlderDaysBeyondTheRowCap) {
  WindowCollector window(/*days=*/2, /*max_rows=*/1000);
  // Days 0..3, 10 rows each, in Time order.
  for (int day = 0; day < 4; ++day) {
    for (int i = 0; i < 10; ++i) window.AddRow(RowAt(day * 86400.0 + i * 60).data(), i == 0);
  }
  EXPECT_EQ(window.distinct_days(), 2);
  EXPECT_EQ(window.first_day(), 2);
  EXPECT_EQ(window.last_day(), 3);
  EXPECT_FALSE(window.truncated());
  Dataset rows = std::move(window).Finish();
  EXPECT_EQ(rows.rows(), 20u);
  EXPECT_EQ(rows.frauds(), 2);
  EXPECT_EQ(layout::DayOf(rows.time(0)), 2);

  WindowCollector capped(/*days=*/7, /*max_rows=*/15);
  for (int day = 0; day < 3; ++day) {
    for (int i = 0; i < 10; ++i) capped.AddRow(RowAt(day * 86400.0 + i).data(), 0);
  }
  EXPECT_TRUE(capped.truncated());
  EXPECT_EQ(capped.distinct_days(), 1);  // two whole days would be 20 > 15 rows
  EXPECT_EQ(std::move(capped).Finish().rows(), 10u);
}

TEST(WhatIfMathTest, FiguresAtAThresholdEqualAnIndependentCount) {
  const Data d = Synthetic();
  const ScoredWindow w = MakeScoredWindow(d.scores, d.labels, /*days=*/2);
  int64_t frauds = 0;
  for (int32_t y : d.labels) frauds += y;
  ASSERT_EQ(w.frauds(), frauds);
  for (double t : {0.0, 0.1, 0.25, 0.5, 0.5005, 0.7, 0.999, 1.0}) {
    int64_t alerts = 0;
    int64_t true_alerts = 0;
    Count(d.scores, d.labels, t, &alerts, &true_alerts);
    const training::v1::WhatIfPoint p = PointAt(w, t);
    EXPECT_EQ(p.alerts(), alerts) << t;
    EXPECT_EQ(p.true_alerts(), true_alerts) << t;
    EXPECT_DOUBLE_EQ(p.alerts_per_day(), alerts / 2.0) << t;
    EXPECT_DOUBLE_EQ(p.alert_fraction(), static_cast<double>(alerts) / 20000) << t;
    EXPECT_DOUBLE_EQ(p.precision(), alerts > 0 ? static_cast<double>(true_alerts) / alerts : 0);
    EXPECT_DOUBLE_EQ(p.recall(), static_cast<double>(true_alerts) / frauds) << t;
  }
}

TEST(WhatIfMathTest, TheCurveAscendsInThresholdWithFallingAlertsAndMatchesTheCounts) {
  const Data d = Synthetic();
  const ScoredWindow w = MakeScoredWindow(d.scores, d.labels, 2);
  const std::vector<training::v1::WhatIfPoint> curve = Curve(w, 150);
  ASSERT_GE(curve.size(), 50u);
  ASSERT_LE(curve.size(), 150u);
  for (size_t i = 1; i < curve.size(); ++i) {
    EXPECT_LT(curve[i - 1].threshold(), curve[i].threshold());
    EXPECT_GE(curve[i - 1].alerts(), curve[i].alerts());
    EXPECT_GE(curve[i - 1].recall(), curve[i].recall());
  }
  EXPECT_EQ(curve.front().alerts(), 20000);  // the lowest score flags everything
  EXPECT_DOUBLE_EQ(curve.front().recall(), 1.0);
  for (const auto& p : curve) {
    int64_t alerts = 0;
    int64_t true_alerts = 0;
    Count(d.scores, d.labels, p.threshold(), &alerts, &true_alerts);
    EXPECT_EQ(p.alerts(), alerts);
    EXPECT_EQ(p.true_alerts(), true_alerts);
  }
}

TEST(WhatIfMathTest, ABudgetResolvesToTheLoosestThresholdThatMeetsIt) {
  const Data d = Synthetic();
  const ScoredWindow w = MakeScoredWindow(d.scores, d.labels, 2);
  for (double per_day : {0.5, 1.0, 10.0, 40.0, 123.0, 1000.0, 9999.0, 20000.0}) {
    const int64_t max_alerts = MaxAlertsPerDay(w, per_day);
    EXPECT_EQ(max_alerts, static_cast<int64_t>(std::floor(per_day * 2)));
    const double t = ThresholdForMaxAlerts(w, max_alerts);
    int64_t alerts = 0;
    int64_t true_alerts = 0;
    Count(d.scores, d.labels, t, &alerts, &true_alerts);
    EXPECT_LE(alerts, max_alerts) << per_day;  // meets the budget
    EXPECT_LE(PointAt(w, t).alerts_per_day(), per_day);
    // Loosest: the next lower distinct score would exceed the budget (ties at the boundary).
    if (alerts < w.rows()) {
      const float next_lower = w.scores[static_cast<size_t>(alerts)];
      int64_t looser = 0;
      Count(d.scores, d.labels, next_lower, &looser, &true_alerts);
      EXPECT_GT(looser, max_alerts) << per_day;
    }
  }
  // A fraction budget.
  const double t = ThresholdForMaxAlerts(w, MaxAlertsFraction(w, 0.01));
  EXPECT_LE(PointAt(w, t).alerts(), 200);
  // Everything allowed: the lowest score; nothing allowed: nothing flagged.
  EXPECT_EQ(PointAt(w, ThresholdForMaxAlerts(w, 20000)).alerts(), 20000);
  EXPECT_EQ(PointAt(w, ThresholdForMaxAlerts(w, 0)).alerts(), 0);
}

TEST(WhatIfMathTest, InvalidRequestsNameTheField) {
  training::v1::WhatIfRequest r;
  EXPECT_TRUE(ValidateWhatIfRequest(r).ok());
  r.set_days(400);
  EXPECT_THAT(ValidateWhatIfRequest(r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("days")));
  r.Clear();
  r.set_points(1);
  EXPECT_THAT(ValidateWhatIfRequest(r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("points")));
  r.Clear();
  r.set_threshold(1.2);
  EXPECT_THAT(ValidateWhatIfRequest(r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("threshold")));
  r.Clear();
  r.set_alerts_per_day(0);
  EXPECT_THAT(ValidateWhatIfRequest(r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("alerts_per_day")));
  r.Clear();
  r.set_alert_fraction(0.5);
  r.set_threshold(0.5);
  EXPECT_THAT(ValidateWhatIfRequest(r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most one")));
  r.Clear();
  r.set_max_rows(-1);
  EXPECT_THAT(ValidateWhatIfRequest(r), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_rows")));
}

}  // namespace
}  // namespace fraud::training
