// Request validation of the storage service: pure functions, no database. Every failure is
// INVALID_ARGUMENT with a message naming the field and, for row data, the row (0-based within the
// batch) and the value's position.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "fraud/common/v1/types.pb.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/common/core/transaction_layout.h"

namespace fraud::storage {

// Features per row: Time, V1..V28, Amount (services/common/core/transaction_layout.h).
using ::fraud::layout::kNumFeatures;
// V1..V28.
inline constexpr int kNumV = kNumFeatures - 2;

// A batch of rows to store: features_size == num_rows * 30, every value finite, Time and Amount
// not negative, labels empty or one per row with values 0/1, line_numbers empty or one per row
// and positive, upload_ids empty (storage sets them on scans).
absl::Status ValidateTransactionBatch(const fraud::common::v1::TransactionBatch& batch);

// Scores for `num_rows` rows: one score in [0, 1] and one decision per row, model_version > 0.
absl::Status ValidateScoreBatch(const fraud::common::v1::ScoreBatch& scores, int64_t num_rows);

// Lowercase 64-hex-digit sha256. Uppercase hex is accepted and lowercased into *normalized.
absl::Status ValidateSha256(const std::string& sha256, std::string* normalized);

// UploadBegin: known mode, file name at most 1024 bytes, valid UTF-8 is the caller's concern
// (protobuf checks string fields).
absl::Status ValidateUploadBegin(const fraud::storage::v1::UploadBegin& begin);

// UploadCommit: sha256 as above, non-negative counts, summary_json empty or a JSON document;
// rows_rejected must be 0 in strict mode.
absl::Status ValidateUploadCommit(const fraud::storage::v1::UploadCommit& commit,
                                  fraud::storage::v1::UploadMode mode);

// What is wrong with one field of a request row.
struct FieldProblem {
  std::string field;
  std::string reason;
};

// Longest caller-assigned transaction id, in bytes.
inline constexpr size_t kMaxTransactionIdBytes = 128;

// Why `id` is not a valid transaction id (empty, longer than kMaxTransactionIdBytes, or has a
// NUL byte), or nullopt when it is.
std::optional<std::string> CheckTransactionId(const std::string& id);

// One feedback label: identified by (upload_id > 0, line > 0) or by a transaction_id (at most
// 128 bytes, no NUL), not both; label 0 or 1; source empty or 1-64 characters of [a-z0-9_-];
// note at most 1000 bytes without NUL; `at` unset or a valid time not before 1970. Returns the
// first problem, or nullopt when the row is valid.
std::optional<FieldProblem> CheckLabelFeedback(const fraud::storage::v1::LabelFeedback& f);

}  // namespace fraud::storage
