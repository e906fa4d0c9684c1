#include "clients/replay/label_delay.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

namespace fraud::replay {

size_t LabelClock::AddRows(std::vector<PendingRow> rows) {
  const size_t first = rows_.size();
  if (!rows.empty()) {
    spans_[rows.front().upload_id] = Span{first, rows.size(), rows.front().line};
  }
  for (PendingRow& r : rows) rows_.push_back(std::move(r));
  return first;
}

bool LabelClock::SetScore(int64_t upload_id, int64_t line, float score) {
  auto it = spans_.find(upload_id);
  if (it == spans_.end() || line < it->second.first_line) return false;
  const size_t offset = static_cast<size_t>(line - it->second.first_line);
  if (offset >= it->second.count) return false;
  PendingRow& row = rows_[it->second.first + offset];
  row.scored = true;
  row.score = score;
  return true;
}

Arrivals LabelClock::AdvanceTo(double now) {
  Arrivals out;
  if (review_budget_ > 0) {
    // Candidates per day: scored rows up to now whose label is unknown.
    std::map<int64_t, std::vector<size_t>> by_day;
    for (size_t i = 0; i < rows_.size(); ++i) {
      const PendingRow& r = rows_[i];
      if (r.scored && r.known == PendingRow::Known::kUnknown && r.time <= now) {
        by_day[layout::DayOf(r.time)].push_back(i);
      }
    }
    for (auto& [day, candidates] : by_day) {
      int64_t& spent = reviewed_per_day_[day];
      // Analysts work through the day at a steady rate: by `now` they have had the elapsed share
      // of the day's budget.
      constexpr double kDay = layout::kSecondsPerDay;
      const double elapsed = std::clamp((now - static_cast<double>(day) * kDay) / kDay, 0.0, 1.0);
      const auto allowed = static_cast<int64_t>(
          std::floor(static_cast<double>(review_budget_) * elapsed + 1e-9));
      const int64_t left = allowed - spent;
      if (left <= 0) continue;
      const size_t take = std::min(candidates.size(), static_cast<size_t>(left));
      std::partial_sort(candidates.begin(), candidates.begin() + static_cast<ptrdiff_t>(take),
                        candidates.end(), [this](size_t a, size_t b) {
                          const PendingRow& x = rows_[a];
                          const PendingRow& y = rows_[b];
                          if (x.score != y.score) return x.score > y.score;
                          return std::tie(x.upload_id, x.line) < std::tie(y.upload_id, y.line);
                        });
      for (size_t k = 0; k < take; ++k) {
        rows_[candidates[k]].known = PendingRow::Known::kReview;
        out.reviewed.push_back(candidates[k]);
      }
      spent += static_cast<int64_t>(take);
    }
  }
  for (size_t i = 0; i < rows_.size(); ++i) {
    PendingRow& r = rows_[i];
    if (r.known == PendingRow::Known::kUnknown && r.time + delay_seconds_ <= now) {
      r.known = PendingRow::Known::kDelay;
      out.delayed.push_back(i);
    }
  }
  return out;
}

std::vector<size_t> LabelClock::ArriveAll() {
  std::vector<size_t> out;
  for (size_t i = 0; i < rows_.size(); ++i) {
    if (rows_[i].known != PendingRow::Known::kUnknown) continue;
    rows_[i].known = PendingRow::Known::kFinal;
    out.push_back(i);
  }
  return out;
}

int64_t LabelClock::known() const {
  return std::count_if(rows_.begin(), rows_.end(), [](const PendingRow& r) {
    return r.known != PendingRow::Known::kUnknown;
  });
}

}  // namespace fraud::replay
