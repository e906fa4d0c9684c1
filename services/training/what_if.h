// Alert budgets and the what-if of an operating point (issue 17 item 4).
//
// "The latest labelled data": the labelled rows of the newest `days` days of Time (day =
// floor(Time / 86400); the newest day is the day of the newest labelled row), at most `max_rows`
// rows (whole older days are left out beyond that; the newest day is always kept). Alerts per day
// divide by the number of distinct days among those rows, so a window of 7 on data spanning 2
// days counts 2.
//
// A version's scores of that window are computed once per (version, days, max_rows, data
// generation) and cached (scores and labels only, ~8 bytes a row); the generation is storage's
// max upload id with its labelled-row and fraud counts, so a new upload or feedback that changes
// the counts rescans. Every answer after that is O(points x log rows): moving a slider never
// rescans.
//
// Thresholds are compared in float, as inference decides (score >= float(threshold)).
//
// Thread-safety: WhatIfEngine is safe to call from several threads; cache misses are computed one
// at a time (a second caller waiting for the same key then finds it cached).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fraud/training/v1/training.pb.h"
#include "services/training/clients.h"
#include "services/training/dataset.h"

namespace fraud::training {

inline constexpr int kDefaultWhatIfDays = 7;
inline constexpr int kMaxWhatIfDays = 366;
inline constexpr int64_t kDefaultWhatIfMaxRows = 300000;
inline constexpr int64_t kMaxWhatIfMaxRows = 1000000;
inline constexpr int kDefaultWhatIfPoints = 150;
inline constexpr int kMaxWhatIfPoints = 1000;

// Collects the newest `days` days of a Time-ordered stream of labelled rows, holding at most
// max_rows rows (whole older days are dropped beyond that; see the file comment).
class WindowCollector {
 public:
  WindowCollector(int days, int64_t max_rows) : days_(days), max_rows_(max_rows) {}
  absl::Status Add(const common::v1::TransactionBatch& batch);
  void AddRow(const double* row, int32_t label);
  // The rows held, oldest day first; `distinct_days`, the day range and `truncated` describe them.
  Dataset Finish() &&;
  int64_t distinct_days() const { return static_cast<int64_t>(buckets_.size()); }
  int64_t first_day() const { return buckets_.empty() ? 0 : buckets_.front().day; }
  int64_t last_day() const { return buckets_.empty() ? 0 : buckets_.back().day; }
  bool truncated() const { return truncated_; }

 private:
  struct Bucket {
    int64_t day = 0;
    std::vector<double> features;
    std::vector<int32_t> labels;
  };
  const int days_;
  const int64_t max_rows_;
  std::deque<Bucket> buckets_;
  int64_t rows_ = 0;
  bool truncated_ = false;
};

// Scores and labels of the evaluated rows, by descending score, with prefix fraud counts.
struct ScoredWindow {
  std::vector<float> scores;          // descending
  std::vector<int64_t> frauds_above;  // frauds_above[i] = frauds among scores[0..i)
  double days = 0;
  int64_t first_day = 0;
  int64_t last_day = 0;
  bool truncated = false;
  int64_t rows() const { return static_cast<int64_t>(scores.size()); }
  int64_t frauds() const { return frauds_above.empty() ? 0 : frauds_above.back(); }
};

// Sorts `scores`/`labels` (same length) into a ScoredWindow.
ScoredWindow MakeScoredWindow(const std::vector<float>& scores, const std::vector<int32_t>& labels,
                              double days);

// The figures at `threshold` (flags score >= float(threshold)).
training::v1::WhatIfPoint PointAt(const ScoredWindow& w, double threshold);
// About `points` points at score quantiles (log-spaced alert counts 1..rows, so the top is dense),
// by ascending threshold, equal thresholds once.
std::vector<training::v1::WhatIfPoint> Curve(const ScoredWindow& w, int points);
// The lowest threshold that flags at most `max_alerts` rows of `w` (ties at the boundary are all
// left out; with max_alerts >= rows, the lowest score). 1.0 when even that flags more (every
// candidate ties at 1.0).
double ThresholdForMaxAlerts(const ScoredWindow& w, int64_t max_alerts);
// Most alerts a budget allows on `w`: floor(alerts_per_day x days) or floor(fraction x rows).
int64_t MaxAlertsPerDay(const ScoredWindow& w, double alerts_per_day);
int64_t MaxAlertsFraction(const ScoredWindow& w, double fraction);

// InvalidArgument naming the field for a bad WhatIfRequest (see training.proto).
absl::Status ValidateWhatIfRequest(const training::v1::WhatIfRequest& request);

class WhatIfEngine {
 public:
  // `storage` is not owned and must outlive the engine; versions load from `model_dir` (a cache
  // of the registry, as in Evaluate).
  WhatIfEngine(StorageApi* storage, std::string model_dir)
      : storage_(storage), model_dir_(std::move(model_dir)) {}

  // The WhatIf RPC without transport. Errors as documented on the RPC.
  absl::StatusOr<training::v1::WhatIfResponse> WhatIf(const training::v1::WhatIfRequest& request);

  // The SetOperatingPoint RPC without transport and auth: resolves, records, and reloads
  // inference (may be null) when the version is the champion. `default_actor` when the request
  // names none.
  absl::StatusOr<training::v1::SetOperatingPointResponse> SetOperatingPoint(
      const training::v1::SetOperatingPointRequest& request, const std::string& default_actor,
      InferenceApi* inference);

  // Cache misses so far (scans + scorings), for tests and metrics.
  int64_t computations() const;

 private:
  // version, days, max_rows, max upload id, labelled rows, frauds.
  using Key = std::tuple<int64_t, int, int64_t, int64_t, int64_t, int64_t>;
  absl::StatusOr<std::shared_ptr<const ScoredWindow>> Scored(const storage_pb::ModelVersion& model,
                                                             int days, int64_t max_rows,
                                                             int64_t* generation, bool* cached);
  absl::StatusOr<std::shared_ptr<const ScoredWindow>> Compute(const storage_pb::ModelVersion& model,
                                                              int days, int64_t max_rows);

  StorageApi* const storage_;
  const std::string model_dir_;
  absl::Mutex compute_mu_;  // one cache miss at a time
  mutable absl::Mutex mu_;
  std::map<Key, std::shared_ptr<const ScoredWindow>> cache_ ABSL_GUARDED_BY(mu_);
  std::deque<Key> order_ ABSL_GUARDED_BY(mu_);
  int64_t computations_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fraud::training
