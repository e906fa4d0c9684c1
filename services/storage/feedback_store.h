// Delayed labels: the database side of the RecordFeedback stream (FeedbackWriter) and the label
// history of a transaction. Independent of gRPC.
//
// FeedbackWriter: every Add validates its rows (CheckLabelFeedback) and streams the valid ones by
// binary COPY into a staging table of one database transaction, so memory holds one message.
// Finish applies everything set-based, under an advisory lock that serializes feedback streams
// (so the "previous label" each row compares against cannot change underneath it):
//   1. resolve each row to a stored transaction (by upload_id+line, or by transaction_id);
//   2. any invalid row (from Add) or two rows naming the same transaction -> INVALID_ARGUMENT
//      with "row R, field F: reason" for the first problems; nothing is stored;
//   3. rows naming no stored transaction -> reported in unknown/unknown_rows and skipped;
//   4. label == stored class -> unchanged (nothing written); otherwise one label_events row
//      (previous_label = the stored class), transactions.class = label (latest feedback wins),
//      and the upload's labelled_rows/frauds counters and the realised-metrics summary
//      (realised_bins, migration 0007) follow;
//   5. commit.
// Rollback(), an error, or destruction without Finish stores nothing.
// Errors: InvalidArgument as above; the pg_errors mapping for database failures.
// Thread-safety: none; one writer per stream.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/storage/pg_copy.h"
#include "services/storage/pg_pool.h"

namespace fraud::storage {

class FeedbackWriter {
 public:
  // `pool` must outlive the writer; `deadline` bounds waiting for a pooled connection.
  FeedbackWriter(PgPool* pool, absl::Time deadline);
  ~FeedbackWriter();
  FeedbackWriter(const FeedbackWriter&) = delete;
  FeedbackWriter& operator=(const FeedbackWriter&) = delete;

  // Validates and stages one message's rows. Invalid rows are remembered (reported by Finish),
  // not an error here; a database failure is returned (and the writer rolled back).
  absl::Status Add(const fraud::storage::v1::RecordFeedbackRequest& request);
  // Runs inside the stream's database transaction after the labels are applied, before the
  // commit; a non-OK status rolls everything back and is returned by Finish (SubmitReview records
  // its disposition this way, atomically with the label).
  using BeforeCommit = std::function<absl::Status(
      pqxx::work& txn, const fraud::storage::v1::RecordFeedbackResponse& applied)>;
  // Applies the staged rows, runs `before_commit` (when set) and commits (see above).
  absl::StatusOr<fraud::storage::v1::RecordFeedbackResponse> Finish(
      const BeforeCommit& before_commit = nullptr);
  // Discards everything staged. Idempotent.
  void Rollback();

 private:
  absl::Status Open();
  absl::Status Fail(absl::Status s);
  absl::StatusOr<fraud::storage::v1::RecordFeedbackResponse> Apply(
      const BeforeCommit& before_commit);

  PgPool* pool_;
  absl::Time deadline_;
  std::optional<PgPool::Lease> lease_;
  std::unique_ptr<pqxx::work> txn_;
  std::unique_ptr<CopyIn> copy_;
  bool finished_ = false;
  int64_t rows_ = 0;
  int64_t invalid_rows_ = 0;
  // "row R, field F: reason" of the first invalid rows.
  std::vector<std::string> problems_;
  std::string actor_;
};

// The label history of the transaction (upload_id, line), oldest event first, and its current
// class. InvalidArgument for ids <= 0; NotFound when no such transaction is stored.
absl::StatusOr<fraud::storage::v1::ListLabelHistoryResponse> ListLabelHistory(
    PgPool& pool, const fraud::storage::v1::ListLabelHistoryRequest& request);

}  // namespace fraud::storage
