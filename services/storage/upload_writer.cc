#include "services/storage/upload_writer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/common/core/status_macros.h"
#include "services/storage/explanation_store.h"
#include "services/storage/pg_copy.h"
#include "services/storage/pg_errors.h"
#include "services/storage/pg_util.h"
#include "services/storage/storage_metrics.h"
#include "services/storage/upload_record.h"
#include "services/storage/validation.h"

namespace fraud::storage {
namespace {

namespace v1 = ::fraud::storage::v1;
using fraud::common::v1::ScoreBatch;
using fraud::common::v1::TransactionBatch;

constexpr char kInsertUpload[] =
    "INSERT INTO uploads (file_name, mode) VALUES ($1, $2) RETURNING id";
constexpr char kCopyTransactions[] =
    "COPY transactions (upload_id, line, time, amount, v, class) FROM STDIN (FORMAT binary)";
constexpr char kCopyPredictions[] =
    "COPY predictions (upload_id, line, model_version, score, decision) FROM STDIN (FORMAT binary)";
constexpr char kFindCommitted[] =
    "SELECT " FRAUD_UPLOAD_COLUMNS " FROM uploads WHERE sha256 = $1 AND status = 1";
constexpr char kCommitUpload[] =
    "UPDATE uploads SET sha256 = $2, status = 1, committed_at = clock_timestamp(), rows = $3,"
    " rows_rejected = $4, labelled_rows = $5, frauds = $6, time_min = $7::float8,"
    " time_max = $8::float8, model_version = $9, bytes = $10,"
    " summary_json = NULLIF($11, '')::jsonb, line_map = true"
    " WHERE id = $1 RETURNING " FRAUD_UPLOAD_COLUMNS;
// A re-upload of content stored earlier without this model version's scores gives the earlier
// upload those scores (and, when it had no scoring model, this version), then discards its own
// rows; all in this stream's transaction.
constexpr char kHasPredictions[] =
    "SELECT EXISTS (SELECT 1 FROM predictions WHERE upload_id = $1 AND model_version = $2)";
constexpr char kAdoptPredictions[] =
    "INSERT INTO predictions (upload_id, line, model_version, score, decision)"
    " SELECT $1, line, model_version, score, decision FROM predictions WHERE upload_id = $2"
    " ON CONFLICT (upload_id, model_version, line) DO NOTHING";
constexpr char kAdoptExplanations[] =
    "INSERT INTO alert_explanations (upload_id, line, model_version, bias, margin, rest,"
    " feature_index, contribution, computed_at)"
    " SELECT $1, line, model_version, bias, margin, rest, feature_index, contribution, computed_at"
    " FROM alert_explanations WHERE upload_id = $2"
    " ON CONFLICT (upload_id, model_version, line) DO NOTHING";
constexpr char kDiscardExplanations[] = "DELETE FROM alert_explanations WHERE upload_id = $1";
constexpr char kDiscardPredictions[] = "DELETE FROM predictions WHERE upload_id = $1";
constexpr char kDiscardTransactions[] = "DELETE FROM transactions WHERE upload_id = $1";
constexpr char kDiscardUpload[] = "DELETE FROM uploads WHERE id = $1";
constexpr char kAdoptModelVersion[] =
    "UPDATE uploads SET model_version = $2 WHERE id = $1 AND model_version = 0";
constexpr char kSelectUpload[] = "SELECT " FRAUD_UPLOAD_COLUMNS " FROM uploads WHERE id = $1";
// Predictions waiting for the transactions COPY to end (UploadWriter::rows_copy_): ~50 bytes
// each, so at most ~6.5 MB.
constexpr int64_t kPendingPredictionRows = 131072;
// The upload's own predictions reach the realised summary from memory (RealisedBinsBuilder) at
// commit: the per-statement trigger would join every COPY batch to its transactions (measured
// 10x the COPY time of the predictions). Off again before the commit's own statements, so
// adoption and discard of a duplicate go through the trigger.
constexpr char kDeferRealised[] = "SET LOCAL fraud.realised_deferred = on";
constexpr char kUndeferRealised[] = "SET LOCAL fraud.realised_deferred = off";

}  // namespace

UploadWriter::UploadWriter(PgPool* pool, absl::Time deadline) : pool_(pool), deadline_(deadline) {}

UploadWriter::~UploadWriter() { Rollback(); }

absl::Status UploadWriter::Fail(absl::Status s) {
  Rollback();
  return s;
}

void UploadWriter::Rollback() {
  finished_ = true;
  if (rows_copy_ != nullptr) {
    // The server discards the COPY and the transaction; the rollback below then ends it. The
    // connection is closed rather than pooled: it was mid-COPY, and a rolled-back upload (client
    // gone, bad row) is rare enough that a fresh connection costs nothing worth the doubt.
    rows_copy_->Abort("upload rolled back");
    rows_copy_.reset();
    if (lease_.has_value()) lease_->Discard();
  }
  AbortStreamTransaction(txn_, lease_);
}

absl::Status UploadWriter::Begin(const v1::UploadBegin& begin) {
  if (finished_) return absl::FailedPreconditionError("upload stream already ended");
  if (begun()) return Fail(absl::InvalidArgumentError("second begin in one upload stream"));
  if (absl::Status s = ValidateUploadBegin(begin); !s.ok()) return Fail(s);
  mode_ = begin.mode() == v1::UPLOAD_MODE_LENIENT ? v1::UPLOAD_MODE_LENIENT
                                                  : v1::UPLOAD_MODE_STRICT;
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<PgPool::Lease> lease = pool_->Acquire(deadline_);
    if (!lease.ok()) return Fail(lease.status());
    lease_.emplace(*std::move(lease));
    absl::Status status;
    try {
      txn_ = std::make_unique<pqxx::work>(lease_->conn());
      upload_id_ = txn_->exec_params1(kInsertUpload, begin.file_name(), static_cast<int>(mode_))[0]
                       .as<int64_t>();
      txn_->exec(kDeferRealised);
      statement_timeout_ = txn_->exec1("SHOW statement_timeout")[0].c_str();
      return absl::OkStatus();
    } catch (const std::exception& e) {
      status = StatusFromException(e);
    }
    Metrics().DbError(status);
    txn_.reset();
    if (IsConnectionLoss(status)) lease_->Discard();
    const bool retry =
        status.code() == absl::StatusCode::kUnavailable && lease_->reused() && attempt == 0;
    lease_.reset();
    if (!retry) return Fail(status);
  }
}

absl::Status UploadWriter::Append(const v1::UploadRows& rows) {
  if (finished_) return absl::FailedPreconditionError("upload stream already ended");
  if (!begun()) return Fail(absl::InvalidArgumentError("rows before begin"));
  if (rows_ended_) return Fail(absl::InvalidArgumentError("rows after rows_end"));
  const TransactionBatch& batch = rows.rows();
  if (absl::Status s = ValidateTransactionBatch(batch); !s.ok()) return Fail(s);
  const int64_t n = batch.num_rows();
  if (rows.has_scores()) {
    if (absl::Status s = ValidateScoreBatch(rows.scores(), n); !s.ok()) return Fail(s);
  }
  if (absl::Status s = ValidateRowExplanations(rows.explanations(), batch,
                                               rows.has_scores() ? &rows.scores() : nullptr);
      !s.ok()) {
    return Fail(s);
  }
  std::vector<int64_t> lines(n);
  int64_t last = last_line_;
  for (int64_t i = 0; i < n; ++i) {
    lines[i] = batch.line_numbers_size() > 0 ? batch.line_numbers(i) : last + 1;
    if (lines[i] <= last) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "rows: line numbers must increase through the upload; row ", i, " has line ", lines[i],
          " after line ", last)));
    }
    last = lines[i];
  }
  if (n == 0) return absl::OkStatus();

  const absl::Time copy_start = absl::Now();
  if (absl::Status s = WriteTransactions(batch, lines); !s.ok()) return Fail(s);
  if (rows.has_scores()) {
    const ScoreBatch& scores = rows.scores();
    CopyEncoder& e = pending_predictions_;
    for (int64_t i = 0; i < n; ++i) {
      e.BeginTuple(5);
      e.Int64(upload_id_);
      e.Int64(lines[i]);
      e.Int64(scores.model_version());
      e.Float4(scores.scores(static_cast<int>(i)));
      e.Bool(scores.decisions(static_cast<int>(i)));
    }
    pending_prediction_rows_ += n;
    if (!rows.explanations().empty()) {
      pending_explanations_.push_back({rows.explanations(), lines, scores.model_version()});
    }
    scored_by_version_[scores.model_version()] += n;
    predictions_ += n;
    const bool labelled = batch.labels_size() > 0;
    for (int i = 0; i < static_cast<int>(n); ++i) {
      realised_.Add(scores.model_version(), batch.features(i * kNumFeatures), scores.scores(i),
                    scores.decisions(i), labelled ? batch.labels(i) : -1);
    }
  }
  if (pending_prediction_rows_ >= kPendingPredictionRows) {
    if (absl::Status s = WritePending(); !s.ok()) return Fail(s);
  }
  last_copy_end_ = absl::Now();
  copy_time_ += last_copy_end_ - copy_start;
  last_line_ = last;
  const double* f = batch.features().data();
  for (int64_t i = 0; i < n; ++i) {
    const double t = f[i * kNumFeatures];
    if (rows_ + i == 0 || t < time_min_) time_min_ = t;
    if (rows_ + i == 0 || t > time_max_) time_max_ = t;
  }
  rows_ += n;
  for (int64_t i = 0; i < n; ++i) {
    line_map_.Add(lines[i], batch.labels_size() > 0 ? batch.labels(static_cast<int>(i)) : -1);
  }
  if (batch.labels_size() > 0) {
    labelled_ += n;
    frauds_ += std::count(batch.labels().begin(), batch.labels().end(), 1);
  }
  return absl::OkStatus();
}

absl::Status UploadWriter::WriteTransactions(const TransactionBatch& batch,
                                             const std::vector<int64_t>& lines) {
  absl::Status status;
  try {
    if (rows_copy_ == nullptr) {
      // The COPY stays open while the client sends batches, as long as the upload takes; the
      // stream's deadline bounds that, not the per-statement timeout (restored in WritePending).
      txn_->exec("SET LOCAL statement_timeout = 0");
      auto copy = std::make_unique<CopyIn>(*txn_);
      status = copy->Start(kCopyTransactions);
      if (status.ok()) rows_copy_ = std::move(copy);
    }
    if (status.ok()) {
      CopyEncoder& e = rows_copy_->encoder();
      const double* f = batch.features().data();
      const bool labelled = batch.labels_size() > 0;
      for (size_t i = 0; status.ok() && i < lines.size(); ++i) {
        const double* row = f + i * kNumFeatures;
        e.BeginTuple(6);
        e.Int64(upload_id_);
        e.Int64(lines[i]);
        e.Float8(row[0]);
        e.Float8(row[kNumFeatures - 1]);
        e.Float8Bytes(row + 1, kNumV);
        if (labelled) {
          e.Int16(static_cast<int16_t>(batch.labels(static_cast<int>(i))));
        } else {
          e.Null();
        }
        status = rows_copy_->MaybeFlush();
      }
      // The whole batch goes to the server now, which takes it in while the next one arrives.
      if (status.ok()) status = rows_copy_->Flush();
    }
  } catch (const std::exception& e) {
    status = StatusFromException(e);
  }
  if (!status.ok()) {
    Metrics().DbError(status);
    // A COPY that failed half way leaves the connection in an unknown state.
    if (rows_copy_ != nullptr || IsConnectionLoss(status)) lease_->Discard();
  }
  return status;
}

absl::Status UploadWriter::CountDbError(absl::Status status) {
  if (!status.ok()) {
    Metrics().DbError(status);
    if (IsConnectionLoss(status)) lease_->Discard();
  }
  return status;
}

absl::Status UploadWriter::EndRows() {
  if (finished_) return absl::FailedPreconditionError("upload stream already ended");
  if (!begun()) return Fail(absl::InvalidArgumentError("rows_end before begin"));
  if (rows_ended_) return Fail(absl::InvalidArgumentError("second rows_end in one upload stream"));
  rows_ended_ = true;
  if (!HasPending()) return absl::OkStatus();
  if (absl::Status s = FlushPending(); !s.ok()) return Fail(s);
  return absl::OkStatus();
}

bool UploadWriter::HasPending() const {
  return rows_copy_ != nullptr || pending_prediction_rows_ > 0 || !pending_explanations_.empty();
}

absl::Status UploadWriter::FlushPending() {
  const absl::Time copy_start = absl::Now();
  if (absl::Status s = WritePending(); !s.ok()) return s;
  last_copy_end_ = absl::Now();
  copy_time_ += last_copy_end_ - copy_start;
  return absl::OkStatus();
}

absl::Status UploadWriter::WritePending() {
  absl::Status status;
  try {
    if (rows_copy_ != nullptr) {
      status = rows_copy_->Finish();
      rows_copy_.reset();
      if (!status.ok()) lease_->Discard();
      if (status.ok()) {
        txn_->exec("SET LOCAL statement_timeout = " + txn_->quote(statement_timeout_));
      }
    }
    if (status.ok() && pending_prediction_rows_ > 0) {
      CopyIn copy(*txn_);
      status = copy.Start(kCopyPredictions);
      if (status.ok()) {
        copy.encoder().buffer().append(pending_predictions_.buffer());
        status = copy.Finish();
        if (!status.ok()) lease_->Discard();
      }
    }
    for (size_t i = 0; status.ok() && i < pending_explanations_.size(); ++i) {
      const PendingExplanations& p = pending_explanations_[i];
      explanations_ += InsertExplanations(*txn_, p.explanations, upload_id_, p.lines,
                                          p.model_version, 0);
    }
  } catch (const std::exception& e) {
    status = StatusFromException(e);
  }
  pending_predictions_.Clear();
  pending_prediction_rows_ = 0;
  pending_explanations_.clear();
  return CountDbError(status);
}

absl::StatusOr<v1::StoreUploadResponse> UploadWriter::Commit(const v1::UploadCommit& commit) {
  absl::Time commit_start = absl::Now();
  // The stage times a caller reports (UploadStages): where the commit and the COPYs spent time.
  auto timed = [&](v1::StoreUploadResponse r) {
    const absl::Time end = absl::Now();
    r.set_copy_seconds(absl::ToDoubleSeconds(copy_time_));
    r.set_commit_seconds(absl::ToDoubleSeconds(end - commit_start));
    r.set_last_copy_to_commit_seconds(
        absl::ToDoubleSeconds(end - (last_copy_end_ == absl::InfinitePast() ? commit_start
                                                                             : last_copy_end_)));
    return r;
  };
  if (finished_) return absl::FailedPreconditionError("upload stream already ended");
  if (!begun()) return Fail(absl::InvalidArgumentError("commit before begin"));
  if (absl::Status s = ValidateUploadCommit(commit, mode_); !s.ok()) return Fail(s);
  std::string sha256;
  if (absl::Status s = ValidateSha256(commit.sha256(), &sha256); !s.ok()) return Fail(s);
  if (HasPending()) {
    if (absl::Status s = FlushPending(); !s.ok()) return Fail(s);
    commit_start = last_copy_end_;
  }

  int64_t model_version = 0;
  int64_t most = 0;
  for (const auto& [version, count] : scored_by_version_) {
    if (count > most) {
      most = count;
      model_version = version;
    }
  }

  v1::StoreUploadResponse response;
  absl::Status status;
  bool concurrent_duplicate = false;
  try {
    realised_.Insert(*txn_, upload_id_);
    txn_->exec(kUndeferRealised);
    pqxx::result existing = txn_->exec_params(kFindCommitted, sha256);
    if (!existing.empty()) {
      status = RowToUpload(existing[0], response.mutable_upload());
      if (!status.ok()) return Fail(status);
      const int64_t earlier = response.upload().id();
      response.set_duplicate_of(earlier);
      if (predictions_ == 0 ||
          txn_->exec_params1(kHasPredictions, earlier, model_version)[0].as<bool>()) {
        Rollback();
        Metrics().Upload("duplicate");
        return timed(std::move(response));
      }
      response.set_predictions_added(
          static_cast<int64_t>(txn_->exec_params(kAdoptPredictions, earlier, upload_id_)
                                   .affected_rows()));
      response.set_explanations_stored(static_cast<int64_t>(
          txn_->exec_params(kAdoptExplanations, earlier, upload_id_).affected_rows()));
      txn_->exec_params(kDiscardExplanations, upload_id_);
      txn_->exec_params(kDiscardPredictions, upload_id_);
      txn_->exec_params(kDiscardTransactions, upload_id_);
      txn_->exec_params(kDiscardUpload, upload_id_);
      txn_->exec_params(kAdoptModelVersion, earlier, model_version);
      status = RowToUpload(txn_->exec_params1(kSelectUpload, earlier), response.mutable_upload());
      if (!status.ok()) return Fail(status);
      txn_->commit();
      txn_.reset();
      lease_.reset();
      finished_ = true;
      Metrics().Upload("duplicate");
      Metrics().rows_predictions->Increment(static_cast<double>(response.predictions_added()));
      return timed(std::move(response));
    }
    line_map_.Write(*txn_, upload_id_);
    pqxx::row r = txn_->exec_params1(
        kCommitUpload, upload_id_, sha256, rows_, commit.rows_rejected(), labelled_, frauds_,
        DoubleLiteral(time_min_), DoubleLiteral(time_max_), model_version, commit.bytes(),
        commit.summary_json());
    status = RowToUpload(r, response.mutable_upload());
    if (!status.ok()) return Fail(status);
    response.set_explanations_stored(explanations_);
    txn_->commit();
    txn_.reset();
    lease_.reset();
    finished_ = true;
    Metrics().Upload("committed");
    Metrics().rows_transactions->Increment(static_cast<double>(rows_));
    Metrics().rows_predictions->Increment(static_cast<double>(predictions_));
    return timed(std::move(response));
  } catch (const pqxx::unique_violation&) {
    // Another stream committed the same content after our check: it waited on its index entry.
    concurrent_duplicate = true;
  } catch (const std::exception& e) {
    status = StatusFromException(e);
  }
  if (concurrent_duplicate) {
    Rollback();
    absl::StatusOr<v1::StoreUploadResponse> duplicate = Duplicate(sha256);
    if (!duplicate.ok()) return duplicate.status();
    return timed(*std::move(duplicate));
  }
  Metrics().DbError(status);
  if (IsConnectionLoss(status) && lease_.has_value()) lease_->Discard();
  return Fail(status);
}

absl::StatusOr<v1::StoreUploadResponse> UploadWriter::Duplicate(const std::string& sha256) {
  v1::StoreUploadResponse response;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    pqxx::result r = txn.exec_params(kFindCommitted, sha256);
    if (r.empty()) {
      return absl::AbortedError("a concurrent upload of the same content did not commit; retry");
    }
    return RowToUpload(r[0], response.mutable_upload());
  }));
  response.set_duplicate_of(response.upload().id());
  Metrics().Upload("duplicate");
  return response;
}

}  // namespace fraud::storage
