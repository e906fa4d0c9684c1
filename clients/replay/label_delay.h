// The delayed-label protocol of the replay (`fraudctl replay --label-delay-days D
// --review-budget K`; the handbook's protocol for card fraud, Le Borgne et al.): the parts after
// the initial one are uploaded without their labels and scored by the champion of the moment;
// once a part is in, the clock stands at its newest Time and
//   - analysts review the highest-scored rows of every day (of Time) so far: their labels are
//     known at once (source "review"), K per day at a steady rate (by a clock time inside a day,
//     the elapsed share of K; a finished day has had all K);
//   - every other row's label arrives D days after its Time (source "chargeback");
// and the next training run sees only the labels known by then.
//
// LabelClock holds the truth of every row uploaded unlabelled and decides, for a clock time,
// which labels have arrived. It talks to nobody: replay.cc sends what it returns as feedback.
//
// Thread-safety: none.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

#include "services/common/core/day.h"

namespace fraud::replay {

// One row uploaded without its label.
struct PendingRow {
  int64_t upload_id = 0;
  // 1-based source line in its upload (the header is line 1).
  int64_t line = 0;
  double time = 0;
  // The truth the replay withholds: 0 or 1.
  int32_t label = 0;
  // The score of the model that scored it on upload, once known.
  bool scored = false;
  float score = 0;
  // How its label became known (kUnknown until it arrives).
  enum class Known { kUnknown, kReview, kDelay, kFinal } known = Known::kUnknown;
};

struct Arrivals {
  // Indexes into LabelClock::rows().
  std::vector<size_t> reviewed;
  std::vector<size_t> delayed;
};

class LabelClock {
 public:
  LabelClock(double delay_days, int64_t review_budget)
      : delay_seconds_(delay_days * layout::kSecondsPerDay), review_budget_(review_budget) {}

  // Adds the rows of one upload, in line order with consecutive lines (one upload at a time);
  // returns the index of the first.
  size_t AddRows(std::vector<PendingRow> rows);
  // Sets a row's score (by upload and line); false when no such row is held.
  bool SetScore(int64_t upload_id, int64_t line, float score);

  // The labels that have arrived by `now` and were not known before, marked known: first the
  // reviews (per day of the rows with Time <= now, the highest-scored scored rows whose label
  // is unknown, until the day has had floor(review_budget x the share of the day elapsed by
  // `now`) reviews; ties by upload then line), then every row whose Time + delay <= now.
  Arrivals AdvanceTo(double now);
  // Every label still unknown (the end of the replay: all the truth has arrived), marked known.
  std::vector<size_t> ArriveAll();

  const std::vector<PendingRow>& rows() const { return rows_; }
  // Rows whose label is known / unknown now.
  int64_t known() const;
  int64_t pending() const { return static_cast<int64_t>(rows_.size()) - known(); }

 private:
  double delay_seconds_;
  int64_t review_budget_;
  std::vector<PendingRow> rows_;
  // Reviews spent per day.
  std::map<int64_t, int64_t> reviewed_per_day_;
  // Per upload: the index of its first row and the first row's line (rows are added in line
  // order, so a line maps to an index by offset).
  struct Span {
    size_t first = 0;
    size_t count = 0;
    int64_t first_line = 0;
  };
  std::map<int64_t, Span> spans_;
};

}  // namespace fraud::replay
