// One upload, transport-free: bytes in, validated rows out to a sink (storage), features out to a
// scorer (inference), and an UploadSummary at the end.
//
//   UploadSession session(options, &scorer, &sink);   // scorer/sink null: validation only
//   FRAUD_RETURN_IF_ERROR(session.Start());           // opens the sink, asks for the model
//   while (Read(&chunk)) FRAUD_RETURN_IF_ERROR(session.Feed(chunk));
//   FRAUD_ASSIGN_OR_RETURN(UploadSummary summary, session.Finish());
//
// Pipeline per full batch of `batch_rows` validated rows (CsvReader emits them):
//   1. the features (never the labels) go to Scorer::StartScore;
//   2. while batch N is being scored, batch N-1 (whose scores are in) goes with its scores to
//      UploadSink::Append (one storage transaction per upload) and the next chunk is parsed;
//      with the reason codes of the batch's alerts (one Scorer::Explain call for just those rows,
//      ~0.2% of them; explain_top_k);
//   3. scores + labels are kept for the metrics, the top-k heap, the 20-bin score histogram, and
//      the data report (class ratio, Time range and order, Amount stats, drift) is accumulated.
// At most one batch waits for its scores; Feed() returns only after the batch before it has been
// handed to the sink, so a caller that does not read the next chunk before Feed() returns gets
// backpressure for free. Unscored uploads go to the sink batch by batch.
//
// Memory: two batches, one partial line, the top-k heap and, for the metrics, one float score and
// one int8 label per scored labelled row (5 bytes/row: 35 MB for the largest 2 GiB upload of
// about 7M rows). The metrics are exact (scikit-learn's average precision and ROC-AUC over every
// row), which a binned streaming estimate would not be; the bootstrap interval is skipped when
// rows x resamples would exceed `bootstrap_row_budget`.
//
// Failures. Any error makes the session abort the sink (nothing is stored) and every later call
// return the same status; failure() says what kind of failure it was:
//   INVALID_ARGUMENT   a file-level problem (header, empty file, UTF-16), any bad row in strict
//                      mode, or no acceptable row at all in lenient mode; the message names line,
//                      column and reason ("line 7, column Amount (30): not a number: 'abc'");
//   RESOURCE_EXHAUSTED more than max_upload_bytes were fed ("upload exceeds the 2 GiB limit");
//   sink errors        passed through with context (the gRPC sink maps an unreachable storage to
//                      UNAVAILABLE "storage service unavailable: ...");
//   UNAVAILABLE        scoring failed after earlier batches had been scored (a half-scored upload
//                      is never stored).
// Scoring that is unavailable from the start (no model serving, inference unreachable) is not an
// error: rows are stored unscored and the summary says why (scored = false, scoring_message).
//
// Thread-safety: none; one session per upload, used from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fraud/common/v1/types.pb.h"
#include "fraud/ingest/v1/ingest.pb.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/common/core/clock.h"
#include "services/common/core/sha256.h"
#include "services/common/csv/csv_reader.h"
#include "services/common/eval/drift.h"
#include "services/common/eval/metrics.h"

namespace fraud::ingest {

// Scores being computed for one batch (see Scorer::StartScore).
class PendingScore {
 public:
  // Destroying a handle that was not waited for abandons the call (and waits for it to end).
  virtual ~PendingScore() = default;
  // Blocks until the scores are there. Called at most once.
  virtual absl::StatusOr<common::v1::ScoreBatch> Wait() = 0;
};

// Reason codes of a few rows and the model version that computed them (Scorer::Explain).
struct ExplainedRows {
  int64_t model_version = 0;
  std::vector<common::v1::Explanation> explanations;
};

// Reason codes sent with one batch (UploadSink::Append): storage's RowExplanation list.
using RowExplanations = google::protobuf::RepeatedPtrField<storage::v1::RowExplanation>;

// Scores rows for one upload. Labels are never passed: the interface only carries features.
class Scorer {
 public:
  virtual ~Scorer() = default;
  // The serving model's manifest (version, threshold, drift reference). NotFound when the
  // inference service answers that no model serves yet; any other error when it cannot be asked.
  // Either way the upload is stored unscored.
  virtual absl::StatusOr<common::v1::ModelManifest> ServingModel() = 0;
  // Scores `line_numbers.size()` rows of packed features (csv::kNumFeatures per row, row-major).
  // Must return one score and one decision per row.
  virtual absl::StatusOr<common::v1::ScoreBatch> Score(absl::Span<const double> features,
                                                       absl::Span<const int64_t> line_numbers) = 0;
  // Starts scoring and returns at once, so the session can parse and store the previous batch
  // meanwhile (pipelining). The spans need to stay valid only during the call. The default
  // implementation calls Score() before returning.
  virtual std::unique_ptr<PendingScore> StartScore(absl::Span<const double> features,
                                                   absl::Span<const int64_t> line_numbers);
  // Explains rows (the alerts of a scored batch): packed features as for Score, `top_k`
  // contributions each. Answers one explanation per row and the model version that computed
  // them. The default answers Unimplemented (a scorer that cannot explain: alerts are stored
  // without reasons).
  virtual absl::StatusOr<ExplainedRows> Explain(absl::Span<const double> features, int top_k);
};

// Receives the accepted rows of one upload; everything between Begin and Commit is one
// all-or-nothing unit (one storage transaction).
class UploadSink {
 public:
  virtual ~UploadSink() = default;
  virtual absl::Status Begin(const std::string& file_name, storage::v1::UploadMode mode) = 0;
  // `scores` is null when the rows are stored unscored; `explanations` (row = index in `rows`)
  // are the reason codes of some of the alerts, empty when none were computed.
  virtual absl::Status Append(const csv::RowBatch& rows, const common::v1::ScoreBatch* scores,
                              const RowExplanations& explanations) = 0;
  // No Append follows: the sink may start writing what it holds while the caller computes the
  // commit. A failure may surface here or at Commit.
  virtual absl::Status EndRows() = 0;
  // Commits; the response names the stored upload, or the earlier one in duplicate_of.
  virtual absl::StatusOr<storage::v1::StoreUploadResponse> Commit(
      const storage::v1::UploadCommit& commit) = 0;
  // Abandons the upload: nothing is stored. Safe to call at any point, more than once.
  virtual void Abort() = 0;
};

struct UploadSessionOptions {
  std::string file_name;
  storage::v1::UploadMode mode = storage::v1::UPLOAD_MODE_STRICT;
  // Rows per batch sent to the scorer and the sink.
  int64_t batch_rows = 8192;
  // Row errors listed in the summary (lenient mode; strict stops at the first).
  int64_t max_errors = 100;
  // Most suspicious rows listed in the summary.
  int top_k = 20;
  // Upload size limit, checked before each chunk is parsed.
  int64_t max_upload_bytes = int64_t{2} << 30;
  // Longest accepted CSV line.
  int64_t max_line_bytes = int64_t{1} << 20;
  // Bootstrap resamples of the AUPRC interval: min(200, budget / rows); none below 20.
  int64_t bootstrap_row_budget = 20'000'000;
  // "precision among the k highest scores" figures of the metrics.
  std::vector<int> precision_at_k = {50, 100, 500};
  // Reason codes of the alerts: one extra Scorer::Explain per scored batch with alerts, for
  // just those rows, stored with them (0 = off).
  int explain_top_k = 5;
  // Time source for elapsed_seconds (not owned; null = the real clock).
  const Clock* clock = nullptr;
};

// What made a session fail.
enum class UploadFailure {
  kNone,
  kInvalid,    // validation (INVALID_ARGUMENT)
  kTooLarge,   // RESOURCE_EXHAUSTED
  kStorage,    // the sink failed
  kScoring,    // scoring failed mid-upload
  kCancelled,  // Abort() was called by the owner
};

// Message used when no model serves (summary.scoring_message).
inline constexpr char kNoModelMessage[] = "no model is serving yet; rows stored unscored";
// Summary errors kept in the JSON stored with the upload.
inline constexpr int kMaxJsonErrors = 100;

// Formats a byte limit for messages: "2 GiB", "512 MiB", "64 KiB", "1000 bytes".
std::string FormatByteLimit(int64_t bytes);

class UploadSession {
 public:
  // `scorer` and `sink` are not owned and may be null (no scoring / nothing stored, as
  // ValidateOnly does); non-null ones must outlive the session.
  UploadSession(UploadSessionOptions options, Scorer* scorer, UploadSink* sink);
  ~UploadSession();
  UploadSession(const UploadSession&) = delete;
  UploadSession& operator=(const UploadSession&) = delete;

  // Opens the sink (Begin) and asks the scorer for the serving model. Returns the sink's error
  // (the session is then failed with kStorage).
  absl::Status Start();
  // Consumes the next bytes of the file (any chunking). See the header comment for errors.
  absl::Status Feed(std::string_view chunk);
  // Ends the file: last line, last batch, metrics, commit. Returns the summary, with upload_id
  // (or duplicate_of) set when a sink stored it.
  absl::StatusOr<ingest::v1::UploadSummary> Finish();
  // Abandons the upload (client went away): aborts the sink. Idempotent.
  void Abort();

  // The summary of what was seen so far: counts, bytes, errors, mode, file name, elapsed time
  // (no metrics). Used to report a failed upload.
  ingest::v1::UploadSummary PartialSummary() const;

  // When each stage ended so far (seconds since the first byte; see v1::UploadStages). Complete
  // in the summary Finish() returns.
  const ingest::v1::UploadStages& stages() const { return stages_; }

  UploadFailure failure() const { return failure_; }
  const absl::Status& status() const { return status_; }
  const csv::CsvCounters& counters() const { return reader_.counters(); }
  bool scoring_enabled() const { return scoring_; }

 private:
  // One candidate for the top-k list.
  struct Suspicious {
    float score = 0;
    int64_t line = 0;
    int32_t label = -1;
    double time = 0;
    double amount = 0;
  };
  // Heap order: the "largest" element is the least suspicious (lowest score, then latest line).
  struct LessSuspiciousFirst {
    bool operator()(const Suspicious& a, const Suspicious& b) const;
  };

  absl::Status OnBatch(csv::RowBatch& batch);
  // Waits for the held batch's scores, then stores and accumulates it. The first batch's scoring
  // failure turns scoring off for the upload (stored unscored); a later one is an error.
  absl::Status CompleteHeld();
  // Hands a batch to the sink and accumulates it. Sets the batch failure kind on error.
  absl::Status StoreBatch(const csv::RowBatch& batch, const common::v1::ScoreBatch* scores,
                          const RowExplanations& explanations = RowExplanations());
  // The alerts of a scored batch explained by the scorer (empty, with explanation_message_ set,
  // when that fails or another model version answered: the alerts are then stored without).
  RowExplanations ExplainAlerts(const csv::RowBatch& batch, const common::v1::ScoreBatch& scores);
  void DisableScoring(const absl::Status& why, int64_t first_line);
  // Abandons the held batch and its scoring call, if any.
  void DropHeld();
  void Accumulate(const csv::RowBatch& batch, const common::v1::ScoreBatch* scores);
  // Records a failure (first one wins), aborts the sink and returns the status.
  absl::Status Fail(UploadFailure kind, absl::Status status);
  void FillCounts(ingest::v1::UploadSummary* summary) const;
  void FillReport(ingest::v1::DataReport* report) const;
  absl::Status FillMetrics(ingest::v1::UploadSummary* summary) const;
  void FillBudgets(ingest::v1::UploadSummary* summary) const;
  double ElapsedSeconds() const;
  // Seconds since the first byte was fed (0 before it).
  double SinceFirstByte() const;

  UploadSessionOptions options_;
  Scorer* const scorer_;
  UploadSink* const sink_;
  const Clock* const clock_;
  const absl::Time started_;

  csv::CsvReader reader_;
  Sha256 sha_;
  // Stage times (UploadStages), from the first non-empty Feed on.
  std::optional<absl::Time> first_byte_;
  bool header_seen_ = false;
  ingest::v1::UploadStages stages_;
  int64_t bytes_ = 0;
  bool started_sink_ = false;
  bool finished_ = false;
  bool aborted_ = false;
  UploadFailure failure_ = UploadFailure::kNone;
  absl::Status status_;
  // True when the last reader error came from OnBatch (sink or scorer), not from validation.
  bool batch_error_ = false;
  UploadFailure batch_failure_ = UploadFailure::kNone;

  // Scoring. `held_` is the batch whose scores `held_score_` is computing.
  bool scoring_ = false;
  bool holding_ = false;
  csv::RowBatch held_;
  std::unique_ptr<PendingScore> held_score_;
  std::string scoring_message_;
  int64_t batches_scored_ = 0;
  int64_t model_version_ = 0;
  double threshold_ = 0;
  std::set<int64_t> versions_seen_;
  int64_t predicted_frauds_ = 0;
  int64_t alerts_explained_ = 0;
  std::string explanation_message_;
  // The serving model's alert-budget thresholds (manifest budget_thresholds) with, per budget,
  // the rows at or above its threshold and the frauds among them.
  struct BudgetCount {
    common::v1::BudgetThreshold budget;
    int64_t alerts = 0;
    int64_t true_alerts = 0;
  };
  std::vector<BudgetCount> budgets_;
  // The version whose manifest `budgets_` came from.
  int64_t budgets_version_ = 0;
  int64_t rows_scored_ = 0;
  // Score and label of every labelled row, for the ranking metrics (5 bytes per row; the metrics
  // read them in place).
  std::vector<float> scores_;
  std::vector<int8_t> labels_;
  eval::ScoreHistogram histogram_;
  std::vector<Suspicious> top_;

  // Data report.
  bool labelled_ = false;
  int64_t rows_ = 0;
  int64_t frauds_ = 0;
  double time_min_ = 0;
  double time_max_ = 0;
  double last_time_ = 0;
  int64_t time_decreases_ = 0;
  double amount_sum_ = 0;
  double amount_max_ = 0;
  std::optional<eval::DriftAccumulator> drift_;
};

}  // namespace fraud::ingest
