// One StoreUpload stream's database side, independent of gRPC: Begin opens a transaction on a
// leased connection and inserts the (still invisible) upload row, every Append validates one
// batch and sends its rows down one binary COPY into transactions that stays open across
// batches (scores wait as encoded predictions tuples, and the alert explanations the batch
// carries with them, until 131,072 rows wait or the commit: then the COPY ends, one COPY writes
// the predictions and the explanations go into alert_explanations), and
// Commit either commits or, when an upload with the same sha256 is already committed, rolls back
// and names that upload in duplicate_of. One exception to the rollback: when this stream carried
// scores and the earlier upload has none from its model version (it was stored unscored, say,
// while no model served), those scores are added to the earlier upload (predictions_added; an
// unscored upload adopts the version), this stream's own rows are discarded, and that commits.
// Anything else — Rollback(), an error, destruction without Commit — rolls back, so an upload is
// all-or-nothing. EndRows (optional, before Commit) writes what waits as soon as the caller says
// no rows follow. The response carries the stream's COPY and commit times (copy_seconds,
// commit_seconds, last_copy_to_commit_seconds).
//
// Memory: one batch at a time (the caller reads the next message only after Append returns),
// plus up to 131,072 waiting predictions (~6.5 MB) and their batches' explanations.
// Errors: InvalidArgument for protocol and data errors (rows before begin, second begin,
// bad sizes, non-finite values, line numbers not increasing, ...); the pg_errors mapping for
// database failures (Unavailable when the database is gone). After any error the writer is
// rolled back and every later call returns FailedPrecondition. A database error in a batch's
// rows may surface at a later Append or at Commit (the server checks them while the COPY is
// open); the whole upload is rolled back either way.
// Thread-safety: none; one writer per stream.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/storage/label_overlay.h"
#include "services/storage/pg_copy.h"
#include "services/storage/pg_pool.h"
#include "services/storage/realised_metrics.h"

namespace fraud::storage {

class UploadWriter {
 public:
  // `pool` must outlive the writer; `deadline` bounds waiting for a pooled connection.
  UploadWriter(PgPool* pool, absl::Time deadline);
  ~UploadWriter();
  UploadWriter(const UploadWriter&) = delete;
  UploadWriter& operator=(const UploadWriter&) = delete;

  absl::Status Begin(const fraud::storage::v1::UploadBegin& begin);
  absl::Status Append(const fraud::storage::v1::UploadRows& rows);
  // No rows follow (UploadRowsEnd): writes what waits now, so that it overlaps the caller's
  // preparation of the commit. Optional; Append after it fails the upload.
  absl::Status EndRows();
  absl::StatusOr<fraud::storage::v1::StoreUploadResponse> Commit(
      const fraud::storage::v1::UploadCommit& commit);
  // Discards everything written so far. Idempotent.
  void Rollback();

  bool begun() const { return txn_ != nullptr; }
  int64_t upload_id() const { return upload_id_; }
  int64_t rows() const { return rows_; }

 private:
  absl::Status Fail(absl::Status s);
  // Counts a database error (metrics) and, when the connection is lost, keeps it from going back
  // to the pool. Returns `status`.
  absl::Status CountDbError(absl::Status status);
  // Sends a batch's rows down the open COPY into transactions (opening it when none is).
  absl::Status WriteTransactions(const fraud::common::v1::TransactionBatch& batch,
                                 const std::vector<int64_t>& lines);
  // Ends the transactions COPY, then writes the pending predictions (one COPY) and alert
  // explanations. Called when enough predictions wait, at EndRows and before the commit.
  absl::Status WritePending();
  bool HasPending() const;
  // WritePending, timed as COPY time (copy_seconds, the last COPY's end).
  absl::Status FlushPending();
  // Reads the committed upload with this sha256 (after our rollback) for duplicate_of.
  absl::StatusOr<fraud::storage::v1::StoreUploadResponse> Duplicate(const std::string& sha256);

  PgPool* pool_;
  absl::Time deadline_;
  // Declared before txn_ so the transaction is destroyed (rolled back) before the lease returns.
  std::optional<PgPool::Lease> lease_;
  std::unique_ptr<pqxx::work> txn_;
  bool finished_ = false;    // committed, rolled back or failed
  bool rows_ended_ = false;  // EndRows came

  fraud::storage::v1::UploadMode mode_ = fraud::storage::v1::UPLOAD_MODE_STRICT;
  int64_t upload_id_ = 0;
  int64_t rows_ = 0;
  int64_t labelled_ = 0;
  int64_t frauds_ = 0;
  int64_t predictions_ = 0;
  int64_t explanations_ = 0;
  double time_min_ = 0;
  double time_max_ = 0;
  int64_t last_line_ = 1;  // header line; rows start at 2
  // The COPY into transactions stays open across Appends: PostgreSQL takes in one batch while
  // this writer receives and encodes the next, and pays a statement's set-up and its insert
  // buffers' flush once per ~100k rows instead of per batch. A connection runs one COPY at a
  // time, so a scored batch's predictions (binary COPY tuples) and alert explanations wait here
  // until WritePending (fraud-bench-upload, 284,807 rows: PostgreSQL's CPU per upload
  // 1.35-1.76 -> 1.17-2.02 s, it varies from run to run; e2e / psql \copy 0.91 -> 0.87).
  std::unique_ptr<CopyIn> rows_copy_;
  // The connection's statement_timeout, lifted while rows_copy_ is open.
  std::string statement_timeout_;
  CopyEncoder pending_predictions_;
  int64_t pending_prediction_rows_ = 0;
  struct PendingExplanations {
    google::protobuf::RepeatedPtrField<fraud::storage::v1::RowExplanation> explanations;
    std::vector<int64_t> lines;
    int64_t model_version = 0;
  };
  std::vector<PendingExplanations> pending_explanations_;
  // Time spent in COPY, and when the last one ended (for the response's stage times).
  absl::Duration copy_time_;
  absl::Time last_copy_end_ = absl::InfinitePast();
  // Rows scored per model version; the upload's model_version is the one that scored most.
  std::map<int64_t, int64_t> scored_by_version_;
  // The upload's realised-metrics bins, inserted at commit (see RealisedBinsBuilder).
  RealisedBinsBuilder realised_;
  // The upload's line map (label_overlay), written at commit.
  overlay::LineMapBuilder line_map_;
};

}  // namespace fraud::storage
