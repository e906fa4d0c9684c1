// Reason codes stored for alerts (migrations/0008_alert_explanations.sql): validation of the
// RowExplanation messages writers send with their rows, the one INSERT both writers use
// (StoreUpload, RecordScoredTransactions), and the decoding of the columns readers select
// (ListReviewQueue, ListPredictions). Independent of gRPC.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fraud/common/v1/types.pb.h"
#include "fraud/storage/v1/storage.pb.h"
#include "google/protobuf/repeated_field.h"
#include "services/storage/pg_util.h"

namespace fraud::storage {

using RowExplanations = google::protobuf::RepeatedPtrField<fraud::storage::v1::RowExplanation>;

// Largest |bias + sum(top) + rest - margin| accepted, relative to max(1, |margin|).
inline constexpr double kExplanationSumTolerance = 1e-3;

// Checks `explanations` against the batch they came with (`rows`, already valid, and `scores`,
// already valid, or null when the rows are unscored). InvalidArgument "explanations[i].F: why"
// for: any explanation without scores, a row outside 0..num_rows-1, a row given twice, a row
// whose decision is false, an empty top or more than 30 entries, a feature index outside 0..29
// or repeated, a value that is not the row's feature bit for bit, a non-finite contribution,
// bias, margin or rest, a sum that misses the margin (kExplanationSumTolerance), or a
// computed_at that is not a valid time after 1970.
absl::Status ValidateRowExplanations(const RowExplanations& explanations,
                                     const fraud::common::v1::TransactionBatch& rows,
                                     const fraud::common::v1::ScoreBatch* scores);

// Inserts the (validated) explanations as rows of alert_explanations in one statement:
// explanation e belongs to (upload_id, lines[e.row()], model_version); computed_at defaults to
// `default_computed_at_us` (0 = now()). Write-once: a key stored before keeps its explanation.
// Returns the rows inserted. Throws pqxx exceptions (the caller's Transact maps them).
int64_t InsertExplanations(pqxx::work& txn, const RowExplanations& explanations, int64_t upload_id,
                           const std::vector<int64_t>& lines, int64_t model_version,
                           int64_t default_computed_at_us);

// SQL select list of a stored explanation of the alias `e` (LEFT JOIN alert_explanations e):
// six columns, all NULL when none is stored. Decode with ReadStoredExplanation.
#define FRAUD_EXPLANATION_COLUMNS \
  "e.bias, e.margin, e.rest, e.feature_index, e.contribution, " FRAUD_EPOCH_US("e.computed_at")

// Reads the six columns at row[first..first+5]: false (and nothing set) when they are NULL
// (nothing stored), else *explanation with every contribution's feature name and the row's raw
// value taken from `features` (the 30 stored features of the row), and *computed_at.
// InternalError for a stored row that does not decode.
absl::StatusOr<bool> ReadStoredExplanation(const pqxx::row& row, int first,
                                           const google::protobuf::RepeatedField<double>& features,
                                           fraud::common::v1::Explanation* explanation,
                                           google::protobuf::Timestamp* computed_at);

}  // namespace fraud::storage
