#include "services/training/what_if.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/common/core/day.h"
#include "services/common/core/log.h"
#include "services/common/core/status_macros.h"
#include "services/common/model/model_runtime.h"
#include "services/training/evaluation.h"

namespace fraud::training {
namespace {

// Cached windows kept (a few versions x windows; each is ~8 bytes a row).
constexpr size_t kCacheEntries = 8;

absl::Status Field(const char* field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

int Days(int requested) { return requested == 0 ? kDefaultWhatIfDays : requested; }

// The champion for version 0, else the version (NotFound when unknown).
absl::StatusOr<storage_pb::ModelVersion> ResolveVersion(StorageApi& storage, int64_t version) {
  if (version < 0) return Field("version", "must be >= 0 (0 = the champion)");
  if (version > 0) return storage.GetModel(version);
  FRAUD_ASSIGN_OR_RETURN(std::optional<storage_pb::ModelVersion> champion, storage.GetChampion());
  if (!champion.has_value()) {
    return absl::FailedPreconditionError("no champion yet: name a version");
  }
  return *champion;
}

}  // namespace


absl::Status WindowCollector::Add(const common::v1::TransactionBatch& batch) {
  const size_t n = batch.num_rows();
  if (static_cast<size_t>(batch.features_size()) != n * kNumFeatures ||
      static_cast<size_t>(batch.labels_size()) != n) {
    return absl::InvalidArgumentError("malformed or unlabelled batch from storage");
  }
  for (size_t i = 0; i < n; ++i) AddRow(batch.features().data() + i * kNumFeatures, batch.labels(i));
  return absl::OkStatus();
}

void WindowCollector::AddRow(const double* row, int32_t label) {
  const int64_t day = layout::DayOf(row[csv::kTimeIndex]);
  if (!buckets_.empty() && day < buckets_.back().day - days_ + 1) return;  // older than the window
  // Storage scans in Time order; a row of an older day still inside the window (out of order)
  // goes to its bucket.
  auto it = std::find_if(buckets_.begin(), buckets_.end(),
                         [day](const Bucket& b) { return b.day == day; });
  if (it == buckets_.end()) {
    Bucket b;
    b.day = day;
    it = std::upper_bound(buckets_.begin(), buckets_.end(), day,
                          [](int64_t d, const Bucket& x) { return d < x.day; });
    it = buckets_.insert(it, std::move(b));
  }
  it->features.insert(it->features.end(), row, row + kNumFeatures);
  it->labels.push_back(label);
  ++rows_;
  const int64_t newest = buckets_.back().day;
  while (!buckets_.empty() && buckets_.front().day < newest - days_ + 1) {
    rows_ -= static_cast<int64_t>(buckets_.front().labels.size());
    buckets_.pop_front();
  }
  while (buckets_.size() > 1 && rows_ > max_rows_) {
    rows_ -= static_cast<int64_t>(buckets_.front().labels.size());
    buckets_.pop_front();
    truncated_ = true;
  }
}

Dataset WindowCollector::Finish() && {
  Dataset out;
  out.features.reserve(static_cast<size_t>(rows_) * kNumFeatures);
  out.labels.reserve(static_cast<size_t>(rows_));
  for (Bucket& b : buckets_) {
    out.features.insert(out.features.end(), b.features.begin(), b.features.end());
    out.labels.insert(out.labels.end(), b.labels.begin(), b.labels.end());
    std::vector<double>().swap(b.features);
  }
  out.upload_ids.assign(out.labels.size(), 0);
  return out;
}

ScoredWindow MakeScoredWindow(const std::vector<float>& scores, const std::vector<int32_t>& labels,
                              double days) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  ScoredWindow w;
  w.days = days;
  w.scores.reserve(scores.size());
  w.frauds_above.reserve(scores.size() + 1);
  w.frauds_above.push_back(0);
  for (size_t i : order) {
    w.scores.push_back(scores[i]);
    w.frauds_above.push_back(w.frauds_above.back() + (labels[i] == 1 ? 1 : 0));
  }
  return w;
}

training::v1::WhatIfPoint PointAt(const ScoredWindow& w, double threshold) {
  const float cut = static_cast<float>(threshold);
  // First index whose score is below the cut: every row before it is flagged.
  const auto end = std::partition_point(w.scores.begin(), w.scores.end(),
                                        [cut](float s) { return s >= cut; });
  const int64_t alerts = end - w.scores.begin();
  const int64_t true_alerts = w.frauds_above.empty() ? 0 : w.frauds_above[alerts];
  training::v1::WhatIfPoint p;
  p.set_threshold(threshold);
  p.set_alerts(alerts);
  p.set_alerts_per_day(w.days > 0 ? static_cast<double>(alerts) / w.days : 0);
  p.set_alert_fraction(w.rows() > 0 ? static_cast<double>(alerts) / w.rows() : 0);
  p.set_true_alerts(true_alerts);
  p.set_precision(alerts > 0 ? static_cast<double>(true_alerts) / alerts : 0);
  p.set_recall(w.frauds() > 0 ? static_cast<double>(true_alerts) / w.frauds() : 0);
  return p;
}

std::vector<training::v1::WhatIfPoint> Curve(const ScoredWindow& w, int points) {
  std::vector<training::v1::WhatIfPoint> out;
  const int64_t n = w.rows();
  if (n == 0 || points < 2) return out;
  std::vector<float> thresholds;
  const double log_n = std::log(static_cast<double>(n));
  for (int i = 0; i < points; ++i) {
    // Alert counts log-spaced from 1 to n: the k-th highest score is the threshold.
    const double k = std::exp(log_n * i / (points - 1));
    const int64_t idx = std::clamp<int64_t>(static_cast<int64_t>(std::llround(k)), 1, n) - 1;
    thresholds.push_back(w.scores[static_cast<size_t>(idx)]);
  }
  std::sort(thresholds.begin(), thresholds.end());
  thresholds.erase(std::unique(thresholds.begin(), thresholds.end()), thresholds.end());
  out.reserve(thresholds.size());
  for (float t : thresholds) out.push_back(PointAt(w, static_cast<double>(t)));
  return out;
}

double ThresholdForMaxAlerts(const ScoredWindow& w, int64_t max_alerts) {
  const int64_t n = w.rows();
  if (n == 0) return 0.5;
  if (max_alerts >= n) return static_cast<double>(w.scores.back());
  const float boundary = w.scores[static_cast<size_t>(std::max<int64_t>(max_alerts, 0))];
  // The smallest float above the boundary score: flags exactly the rows scoring higher (fewer
  // than or as many as max_alerts, since the boundary is the (max_alerts+1)-th highest score).
  const float above = std::nextafter(boundary, 2.0f);
  return std::min(1.0, static_cast<double>(above));
}

int64_t MaxAlertsPerDay(const ScoredWindow& w, double alerts_per_day) {
  // A small tolerance so that 40 alerts/day x 2.0 days allows 80, not 79.
  return static_cast<int64_t>(std::floor(alerts_per_day * w.days + 1e-9));
}

int64_t MaxAlertsFraction(const ScoredWindow& w, double fraction) {
  return static_cast<int64_t>(std::floor(fraction * static_cast<double>(w.rows()) + 1e-9));
}

absl::Status ValidateWhatIfRequest(const training::v1::WhatIfRequest& r) {
  if (r.version() < 0) return Field("version", "must be >= 0 (0 = the champion)");
  if (r.days() < 0 || r.days() > kMaxWhatIfDays) {
    return Field("days", absl::StrCat("must be in 1..", kMaxWhatIfDays, " (0 = ",
                                      kDefaultWhatIfDays, ")"));
  }
  if (r.max_rows() < 0 || r.max_rows() > kMaxWhatIfMaxRows) {
    return Field("max_rows", absl::StrCat("must be in 1..", kMaxWhatIfMaxRows, " (0 = ",
                                          kDefaultWhatIfMaxRows, ")"));
  }
  if (r.points() != 0 && (r.points() < 2 || r.points() > kMaxWhatIfPoints)) {
    return Field("points", absl::StrCat("must be in 2..", kMaxWhatIfPoints, " (0 = ",
                                        kDefaultWhatIfPoints, ")"));
  }
  const int candidates = r.has_threshold() + r.has_alerts_per_day() + r.has_alert_fraction();
  if (candidates > 1) {
    return Field("threshold", "give at most one of threshold, alerts_per_day, alert_fraction");
  }
  if (r.has_threshold() && !(std::isfinite(r.threshold()) && r.threshold() >= 0 &&
                             r.threshold() <= 1)) {
    return Field("threshold", "must be in [0, 1]");
  }
  if (r.has_alerts_per_day() && !(std::isfinite(r.alerts_per_day()) && r.alerts_per_day() > 0)) {
    return Field("alerts_per_day", "must be > 0");
  }
  if (r.has_alert_fraction() &&
      !(std::isfinite(r.alert_fraction()) && r.alert_fraction() > 0 && r.alert_fraction() <= 1)) {
    return Field("alert_fraction", "must be in (0, 1]");
  }
  return absl::OkStatus();
}

int64_t WhatIfEngine::computations() const {
  absl::MutexLock lock(&mu_);
  return computations_;
}

absl::StatusOr<std::shared_ptr<const ScoredWindow>> WhatIfEngine::Compute(
    const storage_pb::ModelVersion& model, int days, int64_t max_rows) {
  FRAUD_ASSIGN_OR_RETURN(std::string dir, LocalArtifactDir(*storage_, model_dir_, model));
  absl::StatusOr<std::unique_ptr<model::ModelRuntime>> runtime = model::LoadModel(dir);
  if (!runtime.ok()) {
    return absl::Status(runtime.status().code(), absl::StrCat("loading v", model.version(), ": ",
                                                              runtime.status().message()));
  }
  WindowCollector collector(days, max_rows);
  storage_pb::ScanTransactionsRequest scan;
  scan.set_labelled_only(true);
  FRAUD_RETURN_IF_ERROR(storage_->ScanTransactions(
      scan, [&](const common::v1::TransactionBatch& batch) { return collector.Add(batch); }));
  const int64_t distinct_days = collector.distinct_days();
  const int64_t first_day = collector.first_day();
  const int64_t last_day = collector.last_day();
  const bool truncated = collector.truncated();
  Dataset rows = std::move(collector).Finish();
  if (rows.empty()) {
    return absl::FailedPreconditionError("no labelled rows to evaluate the operating point on");
  }
  FRAUD_ASSIGN_OR_RETURN(std::vector<float> scores, ScoreRows(**runtime, rows));
  auto w = std::make_shared<ScoredWindow>(
      MakeScoredWindow(scores, rows.labels, static_cast<double>(distinct_days)));
  w->first_day = first_day;
  w->last_day = last_day;
  w->truncated = truncated;
  return std::shared_ptr<const ScoredWindow>(std::move(w));
}

absl::StatusOr<std::shared_ptr<const ScoredWindow>> WhatIfEngine::Scored(
    const storage_pb::ModelVersion& model, int days, int64_t max_rows, int64_t* generation,
    bool* cached) {
  FRAUD_ASSIGN_OR_RETURN(storage_pb::GetDataStatsResponse stats, storage_->GetDataStats(0));
  *generation = stats.max_upload_id();
  const Key key{model.version(), days,          max_rows, stats.max_upload_id(),
                stats.labelled_rows(), stats.frauds()};
  auto lookup = [&]() -> std::shared_ptr<const ScoredWindow> {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    return it == cache_.end() ? nullptr : it->second;
  };
  if (auto hit = lookup()) {
    *cached = true;
    return hit;
  }
  absl::MutexLock compute(&compute_mu_);
  if (auto hit = lookup()) {  // computed by the caller we waited for
    *cached = true;
    return hit;
  }
  *cached = false;
  const auto start = std::chrono::steady_clock::now();
  FRAUD_ASSIGN_OR_RETURN(std::shared_ptr<const ScoredWindow> w, Compute(model, days, max_rows));
  FRAUD_LOG(INFO) << "what-if rows scored" << Kv("model_version", model.version())
                  << Kv("rows", w->rows()) << Kv("frauds", w->frauds()) << Kv("days", w->days)
                  << Kv("seconds", std::chrono::duration<double>(
                                       std::chrono::steady_clock::now() - start)
                                       .count());
  absl::MutexLock lock(&mu_);
  ++computations_;
  cache_[key] = w;
  order_.push_back(key);
  while (order_.size() > kCacheEntries) {
    cache_.erase(order_.front());
    order_.pop_front();
  }
  return w;
}

absl::StatusOr<training::v1::WhatIfResponse> WhatIfEngine::WhatIf(
    const training::v1::WhatIfRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  FRAUD_RETURN_IF_ERROR(ValidateWhatIfRequest(request));
  FRAUD_ASSIGN_OR_RETURN(storage_pb::ModelVersion model, ResolveVersion(*storage_, request.version()));
  FRAUD_ASSIGN_OR_RETURN(storage_pb::GetOperatingPointResponse op,
                         storage_->GetOperatingPoint(model.version()));
  const int days = Days(request.days());
  const int64_t max_rows = request.max_rows() == 0 ? kDefaultWhatIfMaxRows : request.max_rows();
  int64_t generation = 0;
  bool cached = false;
  FRAUD_ASSIGN_OR_RETURN(std::shared_ptr<const ScoredWindow> w,
                         Scored(model, days, max_rows, &generation, &cached));
  training::v1::WhatIfResponse out;
  out.set_version(model.version());
  out.set_rows(w->rows());
  out.set_frauds(w->frauds());
  out.set_days(w->days);
  out.set_first_day(w->first_day);
  out.set_last_day(w->last_day);
  out.set_truncated(w->truncated);
  out.set_data_generation(generation);
  for (training::v1::WhatIfPoint& p :
       Curve(*w, request.points() == 0 ? kDefaultWhatIfPoints : request.points())) {
    *out.add_curve() = std::move(p);
  }
  *out.mutable_current() = PointAt(*w, op.threshold());
  out.set_current_source(op.has_point() ? "operating_point" : "manifest");
  if (op.has_point()) *out.mutable_operating_point() = op.point();
  *out.mutable_manifest() = PointAt(*w, model.manifest().threshold());
  for (const common::v1::BudgetThreshold& b : model.manifest().budget_thresholds()) {
    training::v1::WhatIfBudget* budget = out.add_budgets();
    *budget->mutable_validation() = b;
    *budget->mutable_latest() = PointAt(*w, b.threshold());
  }
  if (request.has_threshold()) {
    *out.mutable_candidate() = PointAt(*w, request.threshold());
  } else if (request.has_alerts_per_day()) {
    *out.mutable_candidate() =
        PointAt(*w, ThresholdForMaxAlerts(*w, MaxAlertsPerDay(*w, request.alerts_per_day())));
  } else if (request.has_alert_fraction()) {
    *out.mutable_candidate() =
        PointAt(*w, ThresholdForMaxAlerts(*w, MaxAlertsFraction(*w, request.alert_fraction())));
  }
  out.set_cached(cached);
  out.set_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return out;
}

absl::StatusOr<training::v1::SetOperatingPointResponse> WhatIfEngine::SetOperatingPoint(
    const training::v1::SetOperatingPointRequest& request, const std::string& default_actor,
    InferenceApi* inference) {
  if (request.version() < 0) return Field("version", "must be >= 0 (0 = the champion)");
  if (request.reason().empty()) return Field("reason", "required (why the operating point changes)");
  if (request.days() < 0 || request.days() > kMaxWhatIfDays) {
    return Field("days", absl::StrCat("must be in 1..", kMaxWhatIfDays, " (0 = ",
                                      kDefaultWhatIfDays, ")"));
  }
  training::v1::WhatIfRequest what_if;
  what_if.set_version(request.version());
  what_if.set_days(request.days());
  what_if.set_points(2);
  const double v = request.value();
  switch (request.kind()) {
    case storage_pb::OPERATING_POINT_KIND_THRESHOLD:
      if (!(std::isfinite(v) && v >= 0 && v <= 1)) return Field("value", "a threshold must be in [0, 1]");
      what_if.set_threshold(v);
      break;
    case storage_pb::OPERATING_POINT_KIND_ALERTS_PER_DAY:
      if (!(std::isfinite(v) && v > 0)) return Field("value", "alerts per day must be > 0");
      what_if.set_alerts_per_day(v);
      break;
    case storage_pb::OPERATING_POINT_KIND_FRACTION:
      if (!(std::isfinite(v) && v > 0 && v <= 1)) {
        return Field("value", "a fraction of transactions must be in (0, 1]");
      }
      what_if.set_alert_fraction(v);
      break;
    default:
      return Field("kind", "must be THRESHOLD, ALERTS_PER_DAY or FRACTION");
  }
  FRAUD_ASSIGN_OR_RETURN(storage_pb::ModelVersion model, ResolveVersion(*storage_, request.version()));
  what_if.set_version(model.version());
  storage_pb::OperatingPoint point;
  point.set_version(model.version());
  point.set_kind(request.kind());
  point.set_requested_value(v);
  point.set_reason(request.reason());
  point.set_actor(request.actor().empty() ? default_actor : request.actor());
  absl::StatusOr<training::v1::WhatIfResponse> figures = WhatIf(what_if);
  if (figures.ok()) {
    const training::v1::WhatIfPoint& c = figures->candidate();
    point.set_threshold(c.threshold());
    point.set_expected_alerts_per_day(c.alerts_per_day());
    point.set_expected_precision(c.precision());
    point.set_expected_recall(c.recall());
    point.set_evaluated_rows(figures->rows());
    point.set_evaluated_days(figures->days());
  } else if (request.kind() == storage_pb::OPERATING_POINT_KIND_THRESHOLD &&
             absl::IsFailedPrecondition(figures.status())) {
    // A plain threshold needs no data; without labelled rows nothing is expected.
    point.set_threshold(v);
  } else {
    return figures.status();
  }
  FRAUD_ASSIGN_OR_RETURN(storage_pb::OperatingPoint stored, storage_->SetOperatingPoint(point));
  training::v1::SetOperatingPointResponse out;
  *out.mutable_point() = stored;
  FRAUD_ASSIGN_OR_RETURN(std::optional<storage_pb::ModelVersion> champion, storage_->GetChampion());
  const bool is_champion = champion.has_value() && champion->version() == model.version();
  const std::string threshold = absl::StrFormat("%.6g", stored.threshold());
  if (!is_champion) {
    out.set_message(absl::StrCat("v", model.version(), " will serve at threshold ", threshold,
                                 " when it is champion"));
  } else if (inference == nullptr) {
    out.set_message(absl::StrCat("v", model.version(), " operating point set to threshold ",
                                 threshold, "; no inference service configured to reload"));
  } else {
    absl::StatusOr<inference::v1::ReloadResponse> reload = inference->Reload(model.version());
    out.set_reloaded(reload.ok());
    out.set_message(reload.ok() ? absl::StrCat("v", model.version(), " serves at threshold ",
                                               threshold)
                                : absl::StrCat("operating point recorded, but inference did not "
                                               "reload v", model.version(), ": ",
                                               reload.status().message()));
  }
  FRAUD_LOG(INFO) << "operating point set" << Kv("model_version", model.version())
                  << Kv("kind", storage_pb::OperatingPointKind_Name(request.kind()))
                  << Kv("value", v) << Kv("threshold", stored.threshold())
                  << Kv("previous_threshold", stored.previous_threshold())
                  << Kv("actor", stored.actor()) << Kv("reloaded", out.reloaded());
  return out;
}

}  // namespace fraud::training
