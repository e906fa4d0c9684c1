#include "services/ingest/upload_session.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "services/common/core/log.h"
#include "services/common/core/status_macros.h"

namespace fraud::ingest {
namespace {

using common::v1::ModelManifest;
using ingest::v1::UploadSummary;

constexpr int kMaxBootstrapResamples = 200;
constexpr int kMinBootstrapResamples = 20;
constexpr int kMaxTopK = 1000;
constexpr int64_t kMaxErrorsCap = 10000;

csv::CsvReaderOptions ReaderOptions(const UploadSessionOptions& o) {
  csv::CsvReaderOptions r;
  r.mode = o.mode == storage::v1::UPLOAD_MODE_LENIENT ? csv::Mode::kLenient : csv::Mode::kStrict;
  r.batch_rows = std::max<int64_t>(1, o.batch_rows);
  r.max_line_bytes = o.max_line_bytes;
  r.max_errors = std::clamp<int64_t>(o.max_errors, 0, kMaxErrorsCap);
  return r;
}

std::vector<std::string> FeatureColumns() {
  return std::vector<std::string>(csv::kFeatureNames.begin(), csv::kFeatureNames.end());
}

void ToProto(const csv::RowError& e, common::v1::RowError* out) {
  out->set_line(e.line);
  out->set_column(e.column);
  out->set_column_index(e.column_index);
  out->set_reason(e.reason);
}

}  // namespace

std::string FormatByteLimit(int64_t bytes) {
  constexpr int64_t kKiB = 1024;
  constexpr int64_t kMiB = kKiB * 1024;
  constexpr int64_t kGiB = kMiB * 1024;
  if (bytes > 0 && bytes % kGiB == 0) return absl::StrCat(bytes / kGiB, " GiB");
  if (bytes > 0 && bytes % kMiB == 0) return absl::StrCat(bytes / kMiB, " MiB");
  if (bytes > 0 && bytes % kKiB == 0) return absl::StrCat(bytes / kKiB, " KiB");
  return absl::StrCat(bytes, " bytes");
}

namespace {
// Scores computed before StartScore returned.
class ReadyScore final : public PendingScore {
 public:
  explicit ReadyScore(absl::StatusOr<common::v1::ScoreBatch> result) : result_(std::move(result)) {}
  absl::StatusOr<common::v1::ScoreBatch> Wait() override { return std::move(result_); }

 private:
  absl::StatusOr<common::v1::ScoreBatch> result_;
};
}  // namespace

std::unique_ptr<PendingScore> Scorer::StartScore(absl::Span<const double> features,
                                                 absl::Span<const int64_t> line_numbers) {
  return std::make_unique<ReadyScore>(Score(features, line_numbers));
}

absl::StatusOr<ExplainedRows> Scorer::Explain(absl::Span<const double> /*features*/,
                                               int /*top_k*/) {
  return absl::UnimplementedError("this scorer does not explain rows");
}

bool UploadSession::LessSuspiciousFirst::operator()(const Suspicious& a,
                                                    const Suspicious& b) const {
  // std heap keeps the "largest" on top: make that the least suspicious row, so it is the one
  // replaced. a is more suspicious than b when its score is higher, or equal with an earlier line.
  if (a.score != b.score) return a.score > b.score;
  return a.line < b.line;
}

UploadSession::UploadSession(UploadSessionOptions options, Scorer* scorer, UploadSink* sink)
    : options_(std::move(options)),
      scorer_(scorer),
      sink_(sink),
      clock_(options_.clock != nullptr ? options_.clock : &RealClock::Get()),
      started_(clock_->Now()),
      reader_(ReaderOptions(options_), [this](csv::RowBatch& batch) { return OnBatch(batch); }) {
  options_.top_k = std::clamp(options_.top_k, 0, kMaxTopK);
  top_.reserve(static_cast<size_t>(options_.top_k));
}

UploadSession::~UploadSession() {
  // A session dropped before Finish() must not leave a half-written upload behind.
  if (!finished_) Abort();
}

absl::Status UploadSession::Start() {
  if (!status_.ok()) return status_;
  if (sink_ != nullptr) {
    absl::Status s = sink_->Begin(options_.file_name, options_.mode);
    if (!s.ok()) return Fail(UploadFailure::kStorage, std::move(s));
    started_sink_ = true;
  }
  if (scorer_ != nullptr) {
    absl::StatusOr<ModelManifest> model = scorer_->ServingModel();
    if (model.ok()) {
      scoring_ = true;
      model_version_ = model->version();
      threshold_ = model->threshold();
      budgets_version_ = model->version();
      for (const common::v1::BudgetThreshold& b : model->budget_thresholds()) {
        budgets_.push_back(BudgetCount{b});
      }
      if (model->reference_size() > 0) {
        absl::StatusOr<eval::DriftAccumulator> drift =
            eval::DriftAccumulator::Create(model->reference(), FeatureColumns());
        if (drift.ok()) {
          drift_.emplace(std::move(*drift));
        } else {
          FRAUD_LOG(WARNING) << "model reference unusable; no drift report"
                             << Kv("model_version", model_version_)
                             << Kv("error", drift.status().ToString());
        }
      }
    } else if (model.status().code() == absl::StatusCode::kNotFound) {
      scoring_message_ = kNoModelMessage;
    } else {
      scoring_message_ = absl::StrCat("inference unavailable (", model.status().message(),
                                      "); rows stored unscored");
      FRAUD_LOG(WARNING) << "inference unavailable; storing unscored"
                         << Kv("error", model.status().ToString());
    }
  }
  return absl::OkStatus();
}

absl::Status UploadSession::Feed(std::string_view chunk) {
  if (!status_.ok()) return status_;
  if (finished_) return absl::FailedPreconditionError("UploadSession::Feed called after Finish");
  if (static_cast<int64_t>(chunk.size()) > options_.max_upload_bytes - bytes_) {
    bytes_ += static_cast<int64_t>(chunk.size());
    return Fail(UploadFailure::kTooLarge,
                absl::ResourceExhaustedError(absl::StrCat(
                    "upload exceeds the ", FormatByteLimit(options_.max_upload_bytes), " limit")));
  }
  bytes_ += static_cast<int64_t>(chunk.size());
  if (!first_byte_.has_value() && !chunk.empty()) first_byte_ = clock_->Now();
  sha_.Update(chunk);
  absl::Status s = reader_.Feed(chunk);
  if (!header_seen_ && reader_.header_done()) {
    header_seen_ = true;
    stages_.set_header_validated(SinceFirstByte());
  }
  if (!s.ok()) {
    return Fail(batch_error_ ? batch_failure_ : UploadFailure::kInvalid, std::move(s));
  }
  return absl::OkStatus();
}

absl::StatusOr<UploadSummary> UploadSession::Finish() {
  if (!status_.ok()) return status_;
  if (finished_) return absl::FailedPreconditionError("UploadSession::Finish called twice");
  absl::Status s = reader_.Finish();
  if (s.ok() && holding_) s = CompleteHeld();
  if (!s.ok()) return Fail(batch_error_ ? batch_failure_ : UploadFailure::kInvalid, std::move(s));
  stages_.set_last_batch_sent(SinceFirstByte());
  const csv::CsvCounters& c = reader_.counters();
  if (c.rows_accepted == 0) {
    return Fail(UploadFailure::kInvalid,
                absl::InvalidArgumentError(absl::StrCat(
                    "no valid rows: all ", c.rows_rejected, " data rows were rejected; first: ",
                    reader_.errors().empty() ? "?" : reader_.errors().front().ToString())));
  }

  // Storage writes what it still holds while the summary below is computed.
  if (sink_ != nullptr) {
    if (absl::Status e = sink_->EndRows(); !e.ok()) return Fail(UploadFailure::kStorage, e);
  }

  UploadSummary summary;
  FillCounts(&summary);
  summary.set_sha256(sha_.HexDigest());
  summary.set_scored(scoring_);
  summary.set_scoring_message(scoring_message_);
  if (scoring_) {
    summary.set_model_version(model_version_);
    summary.set_predicted_frauds(predicted_frauds_);
    summary.set_alerts_explained(alerts_explained_);
    summary.set_explanation_message(explanation_message_);
    if (versions_seen_.size() > 1) {
      summary.set_scoring_message(
          absl::StrCat("the model was reloaded during the upload: rows were scored by versions ",
                       absl::StrJoin(versions_seen_, ", "), "; metrics use version ",
                       model_version_, "'s threshold"));
    }
    std::vector<Suspicious> top = top_;
    std::sort(top.begin(), top.end(), LessSuspiciousFirst());
    for (const Suspicious& r : top) {
      ingest::v1::SuspiciousRow* row = summary.add_top_suspicious();
      row->set_line(r.line);
      row->set_score(r.score);
      row->set_label(r.label);
      row->set_time(r.time);
      row->set_amount(r.amount);
    }
    histogram_.AppendTo(summary.mutable_score_histogram());
    FillBudgets(&summary);
    if (labelled_) {
      absl::Status m = FillMetrics(&summary);
      if (!m.ok()) return Fail(UploadFailure::kScoring, Annotate(m, "computing metrics"));
    }
  }
  FillReport(summary.mutable_report());

  if (sink_ != nullptr) {
    UploadSummary for_json = summary;
    if (for_json.errors_size() > kMaxJsonErrors) {
      for_json.mutable_errors()->DeleteSubrange(kMaxJsonErrors,
                                                for_json.errors_size() - kMaxJsonErrors);
      for_json.set_errors_truncated(true);
    }
    for_json.set_elapsed_seconds(ElapsedSeconds());
    storage::v1::UploadCommit commit;
    commit.set_sha256(summary.sha256());
    commit.set_rows_rejected(summary.rows_rejected());
    commit.set_bytes(summary.bytes());
    if (!google::protobuf::util::MessageToJsonString(for_json, commit.mutable_summary_json())
             .ok()) {
      commit.clear_summary_json();
    }
    stages_.set_summary_computed(SinceFirstByte());
    absl::StatusOr<storage::v1::StoreUploadResponse> stored = sink_->Commit(commit);
    if (!stored.ok()) return Fail(UploadFailure::kStorage, stored.status());
    stages_.set_committed(SinceFirstByte());
    stages_.set_last_copy(
        std::max(0.0, stages_.committed() - stored->last_copy_to_commit_seconds()));
    stages_.set_storage_copy_seconds(stored->copy_seconds());
    stages_.set_storage_commit_seconds(stored->commit_seconds());
    if (stored->duplicate_of() != 0) {
      summary.set_duplicate_of(stored->duplicate_of());
      summary.set_upload_id(stored->duplicate_of());
      if (stored->predictions_added() > 0) {
        summary.set_scoring_message(absl::StrCat(
            "already stored as upload ", stored->duplicate_of(), ", without scores from model ",
            model_version_, ": its ", stored->predictions_added(), " predictions were stored now"));
      }
    } else {
      summary.set_upload_id(stored->upload().id());
    }
  }
  finished_ = true;
  summary.set_elapsed_seconds(ElapsedSeconds());
  stages_.set_summary_returned(SinceFirstByte());
  *summary.mutable_stages() = stages_;
  return summary;
}

void UploadSession::Abort() {
  if (failure_ == UploadFailure::kNone && !finished_) {
    failure_ = UploadFailure::kCancelled;
    status_ = absl::CancelledError("upload cancelled");
  }
  DropHeld();
  if (started_sink_ && !aborted_ && !finished_) {
    aborted_ = true;
    sink_->Abort();
  }
}

UploadSummary UploadSession::PartialSummary() const {
  UploadSummary summary;
  FillCounts(&summary);
  summary.set_elapsed_seconds(ElapsedSeconds());
  return summary;
}

absl::Status UploadSession::OnBatch(csv::RowBatch& batch) {
  if (batch.num_rows() == 0) return absl::OkStatus();
  if (!scoring_) return StoreBatch(batch, nullptr);
  // Start scoring this batch first, so inference works while the previous batch is stored and
  // the next chunk is parsed.
  std::unique_ptr<PendingScore> pending = scorer_->StartScore(
      absl::MakeConstSpan(batch.features), absl::MakeConstSpan(batch.line_numbers));
  if (holding_) FRAUD_RETURN_IF_ERROR(CompleteHeld());
  if (!scoring_) {
    // The held batch turned scoring off: this batch is stored unscored too.
    pending.reset();
    return StoreBatch(batch, nullptr);
  }
  // Keep the rows without copying: the reader hands us the batch to modify or swap out.
  std::swap(held_, batch);
  held_score_ = std::move(pending);
  holding_ = true;
  return absl::OkStatus();
}

absl::Status UploadSession::CompleteHeld() {
  holding_ = false;
  absl::StatusOr<common::v1::ScoreBatch> result = held_score_->Wait();
  held_score_.reset();
  const size_t n = held_.num_rows();
  if (result.ok() && (static_cast<size_t>(result->scores_size()) != n ||
                      static_cast<size_t>(result->decisions_size()) != n)) {
    result = absl::InternalError(
        absl::StrCat("the scorer returned ", result->scores_size(), " scores for ", n, " rows"));
  }
  const int64_t first_line = held_.line_numbers.empty() ? 0 : held_.line_numbers.front();
  if (!result.ok()) {
    if (batches_scored_ == 0) {
      // Nothing was stored with scores yet: the whole upload can still be stored consistently
      // unscored.
      DisableScoring(result.status(), first_line);
      return StoreBatch(held_, nullptr);
    }
    batch_error_ = true;
    batch_failure_ = UploadFailure::kScoring;
    return absl::UnavailableError(absl::StrCat(
        "scoring failed at line ", first_line, " after ", batches_scored_,
        " batches were scored: ", result.status().message(), "; nothing stored, retry the upload"));
  }
  if (batches_scored_ == 0) {
    model_version_ = result->model_version();
    threshold_ = result->threshold();
    stages_.set_first_batch_scored(SinceFirstByte());
  }
  versions_seen_.insert(result->model_version());
  ++batches_scored_;
  return StoreBatch(held_, &*result, ExplainAlerts(held_, *result));
}

RowExplanations UploadSession::ExplainAlerts(const csv::RowBatch& batch,
                                             const common::v1::ScoreBatch& scores) {
  RowExplanations out;
  if (options_.explain_top_k <= 0 || sink_ == nullptr) return out;
  std::vector<int> alerts;
  for (int i = 0; i < scores.decisions_size(); ++i) {
    if (scores.decisions(i)) alerts.push_back(i);
  }
  if (alerts.empty()) return out;
  std::vector<double> features;
  features.reserve(alerts.size() * csv::kNumFeatures);
  for (int i : alerts) {
    const double* row = batch.row(static_cast<size_t>(i));
    features.insert(features.end(), row, row + csv::kNumFeatures);
  }
  // Alerts are ~0.2% of the rows, so this call is small next to the batch's scoring; it runs
  // while the next batch is being scored. A failure costs the reasons, never the upload.
  absl::StatusOr<ExplainedRows> explained =
      scorer_->Explain(absl::MakeConstSpan(features), options_.explain_top_k);
  if (explained.ok() && explained->model_version != scores.model_version()) {
    explained = absl::FailedPreconditionError(
        absl::StrCat("model ", explained->model_version, " explained the alerts scored by model ",
                     scores.model_version(), " (reloaded meanwhile)"));
  } else if (explained.ok() && explained->explanations.size() != alerts.size()) {
    explained = absl::InternalError(absl::StrCat("the scorer returned ",
                                                 explained->explanations.size(),
                                                 " explanations for ", alerts.size(), " rows"));
  }
  if (!explained.ok()) {
    if (explanation_message_.empty()) {
      explanation_message_ = absl::StrCat("some alerts were stored without reasons: ",
                                          explained.status().message());
      FRAUD_LOG(WARNING) << "alerts stored without reasons"
                         << Kv("error", explained.status().ToString());
    }
    return out;
  }
  const absl::Time now = absl::Now();
  for (size_t k = 0; k < alerts.size(); ++k) {
    storage::v1::RowExplanation* x = out.Add();
    x->set_row(alerts[k]);
    *x->mutable_explanation() = std::move(explained->explanations[k]);
    x->mutable_computed_at()->set_seconds(absl::ToUnixSeconds(now));
  }
  alerts_explained_ += static_cast<int64_t>(alerts.size());
  return out;
}

absl::Status UploadSession::StoreBatch(const csv::RowBatch& batch,
                                       const common::v1::ScoreBatch* scores,
                                       const RowExplanations& explanations) {
  if (sink_ != nullptr) {
    if (absl::Status s = sink_->Append(batch, scores, explanations); !s.ok()) {
      batch_error_ = true;
      batch_failure_ = UploadFailure::kStorage;
      return s;
    }
  }
  Accumulate(batch, scores);
  return absl::OkStatus();
}

void UploadSession::DisableScoring(const absl::Status& why, int64_t first_line) {
  scoring_ = false;
  scoring_message_ =
      why.code() == absl::StatusCode::kNotFound
          ? std::string(kNoModelMessage)
          : absl::StrCat("scoring failed (", why.message(), "); rows stored unscored");
  FRAUD_LOG(WARNING) << "scoring unavailable; storing unscored" << Kv("line", first_line)
                     << Kv("error", why.ToString());
}

void UploadSession::DropHeld() {
  held_score_.reset();
  holding_ = false;
  held_.Clear();
}

void UploadSession::Accumulate(const csv::RowBatch& batch, const common::v1::ScoreBatch* scores) {
  const size_t n = batch.num_rows();
  if (rows_ == 0) {
    labelled_ = reader_.has_labels();
    time_min_ = std::numeric_limits<double>::infinity();
    time_max_ = -std::numeric_limits<double>::infinity();
    amount_max_ = -std::numeric_limits<double>::infinity();
    last_time_ = batch.row(0)[csv::kTimeIndex];
  }
  for (size_t i = 0; i < n; ++i) {
    const double* row = batch.row(i);
    const double time = row[csv::kTimeIndex];
    const double amount = row[csv::kAmountIndex];
    time_min_ = std::min(time_min_, time);
    time_max_ = std::max(time_max_, time);
    if (time < last_time_) ++time_decreases_;
    last_time_ = time;
    amount_sum_ += amount;
    amount_max_ = std::max(amount_max_, amount);
    const int32_t label = batch.has_labels() ? batch.labels[i] : -1;
    if (label == 1) ++frauds_;
    if (scores == nullptr) continue;
    const float score = scores->scores(static_cast<int>(i));
    if (scores->decisions(static_cast<int>(i))) ++predicted_frauds_;
    ++rows_scored_;
    for (BudgetCount& b : budgets_) {
      if (score >= b.budget.threshold()) {
        ++b.alerts;
        b.true_alerts += label == 1;
      }
    }
    if (labelled_) {
      scores_.push_back(score);
      labels_.push_back(static_cast<int8_t>(label));
    }
    histogram_.Add(score, label);
    if (options_.top_k > 0) {
      Suspicious s{score, batch.line_numbers.empty() ? 0 : batch.line_numbers[i], label, time,
                   amount};
      if (static_cast<int>(top_.size()) < options_.top_k) {
        top_.push_back(s);
        std::push_heap(top_.begin(), top_.end(), LessSuspiciousFirst());
      } else if (LessSuspiciousFirst()(s, top_.front())) {
        std::pop_heap(top_.begin(), top_.end(), LessSuspiciousFirst());
        top_.back() = s;
        std::push_heap(top_.begin(), top_.end(), LessSuspiciousFirst());
      }
    }
  }
  if (drift_.has_value()) drift_->Add(batch.features.data(), n);
  rows_ += static_cast<int64_t>(n);
}

absl::Status UploadSession::Fail(UploadFailure kind, absl::Status status) {
  if (status_.ok()) {
    failure_ = kind;
    status_ = std::move(status);
  }
  DropHeld();
  if (started_sink_ && !aborted_ && !finished_) {
    aborted_ = true;
    sink_->Abort();
  }
  return status_;
}

void UploadSession::FillCounts(UploadSummary* summary) const {
  const csv::CsvCounters& c = reader_.counters();
  summary->set_file_name(options_.file_name);
  summary->set_mode(options_.mode == storage::v1::UPLOAD_MODE_LENIENT
                        ? storage::v1::UPLOAD_MODE_LENIENT
                        : storage::v1::UPLOAD_MODE_STRICT);
  summary->set_bytes(bytes_);
  summary->set_rows_total(c.rows_seen);
  summary->set_rows_accepted(c.rows_accepted);
  summary->set_rows_rejected(c.rows_rejected);
  for (const csv::RowError& e : reader_.errors()) ToProto(e, summary->add_errors());
  summary->set_errors_truncated(reader_.errors_truncated());
}

void UploadSession::FillReport(ingest::v1::DataReport* report) const {
  report->set_rows(rows_);
  if (rows_ == 0) return;
  report->set_labelled_rows(labelled_ ? rows_ : 0);
  report->set_frauds(frauds_);
  report->set_fraud_rate(labelled_ ? static_cast<double>(frauds_) / static_cast<double>(rows_)
                                   : 0.0);
  report->set_time_min(time_min_);
  report->set_time_max(time_max_);
  report->set_time_monotonic(time_decreases_ == 0);
  report->set_time_decreases(time_decreases_);
  report->set_amount_mean(amount_sum_ / static_cast<double>(rows_));
  report->set_amount_max(amount_max_);
  if (drift_.has_value()) {
    int32_t flagged = 0;
    for (const eval::FeatureDrift& d : drift_->Result()) {
      ingest::v1::FeatureDrift* out = report->add_drift();
      out->set_feature(d.feature);
      out->set_psi(d.psi);
      out->set_ks(d.ks);
      out->set_flagged(d.flagged);
      out->set_judged(d.judged);
      if (d.flagged) ++flagged;
    }
    report->set_drift_flagged(flagged);
    report->set_drift_min_rows(drift_->min_rows());
    report->set_drift_note(eval::kDriftNote);
  }
}

absl::Status UploadSession::FillMetrics(UploadSummary* summary) const {
  if (scores_.empty()) return absl::OkStatus();
  eval::MetricsOptions m;
  m.threshold = threshold_;
  m.top_k = options_.precision_at_k;
  const int64_t rows = static_cast<int64_t>(scores_.size());
  const int64_t resamples =
      std::min<int64_t>(kMaxBootstrapResamples, options_.bootstrap_row_budget / rows);
  m.bootstrap_resamples = resamples >= kMinBootstrapResamples ? static_cast<int>(resamples) : 0;
  FRAUD_ASSIGN_OR_RETURN(*summary->mutable_metrics(),
                         eval::ComputeClassificationMetricsInt8(scores_, labels_, m));
  return absl::OkStatus();
}

void UploadSession::FillBudgets(UploadSummary* summary) const {
  // The thresholds belong to the model Start() asked about; rows scored by another version (a
  // reload during the upload) would mix two models' scores.
  if (versions_seen_.size() != 1 || *versions_seen_.begin() != budgets_version_) return;
  for (const BudgetCount& b : budgets_) {
    ingest::v1::BudgetOutcome* out = summary->add_budgets();
    out->set_alert_fraction(b.budget.alert_fraction());
    out->set_threshold(b.budget.threshold());
    out->set_validation_precision(b.budget.precision());
    out->set_validation_recall(b.budget.recall());
    out->set_alerts(b.alerts);
    out->set_alert_rate(rows_scored_ > 0 ? static_cast<double>(b.alerts) / rows_scored_ : 0);
    if (!labelled_) continue;
    out->set_labelled(true);
    out->set_true_alerts(b.true_alerts);
    out->set_precision(b.alerts > 0 ? static_cast<double>(b.true_alerts) / b.alerts : 0);
    out->set_recall(frauds_ > 0 ? static_cast<double>(b.true_alerts) / frauds_ : 0);
  }
}

double UploadSession::SinceFirstByte() const {
  if (!first_byte_.has_value()) return 0;
  return absl::ToDoubleSeconds(clock_->Now() - *first_byte_);
}

double UploadSession::ElapsedSeconds() const {
  return absl::ToDoubleSeconds(clock_->Now() - started_);
}

}  // namespace fraud::ingest
