// Live scoring: the database side of RecordScoredTransactions. Transactions scored by inference
// Predict with a caller-assigned transaction id (no upload) are stored as rows of the one
// reserved live-scoring upload (mode UPLOAD_MODE_LIVE, created on first use; see
// migrations/0004_live_scoring.sql) with their prediction and its time. Independent of gRPC.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/storage/pg_pool.h"

namespace fraud::storage {

// Most rows of one RecordScoredTransactions request.
inline constexpr int64_t kMaxScoredRowsPerRequest = 10000;

// Validates the request without touching the database: InvalidArgument naming the field (and the
// row, 0-based) for rows that are not a valid feature batch (ValidateTransactionBatch), that carry
// labels/line_numbers, number more than kMaxScoredRowsPerRequest, a transaction_ids count other
// than num_rows, an invalid or repeated id, scores that do not match the rows
// (ValidateScoreBatch), invalid explanations (ValidateRowExplanations), or an invalid scored_at.
absl::Status ValidateRecordScoredTransactions(
    const fraud::storage::v1::RecordScoredTransactionsRequest& request);

// Stores the request in one database transaction (all or nothing), serialized with other live
// scoring calls by a row lock on the live-scoring upload:
//   1. rows whose transaction_id is not stored yet get the next lines of the live upload
//      (unlabelled), and the upload's rows/time range/model_version follow;
//   2. rows whose transaction_id is stored must carry the same features bit for bit, else
//      AlreadyExists naming the id (nothing is stored);
//   3. every row's prediction by scores.model_version is upserted with scored_at;
//   4. the alert explanations (explanations) are stored once per (row, version): a row
//      re-scored by the same version keeps its first one (computed_at defaults to scored_at).
// Errors: the validation above; the pg_errors mapping for database failures. Thread-safe (one
// leased connection per call).
absl::StatusOr<fraud::storage::v1::RecordScoredTransactionsResponse> RecordScoredTransactions(
    PgPool& pool, const fraud::storage::v1::RecordScoredTransactionsRequest& request);

}  // namespace fraud::storage
