// The uploads row <-> fraud.storage.v1.Upload mapping (internal to services/storage).
#pragma once

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/storage/pg_util.h"

namespace fraud::storage {

// Columns RowToUpload expects, in order.
#define FRAUD_UPLOAD_COLUMNS                                                                    \
  "id, sha256, file_name, mode, status, " FRAUD_EPOCH_US("received_at") ", " FRAUD_EPOCH_US(   \
      "committed_at") ", rows, rows_rejected, labelled_rows, frauds, time_min, time_max, "      \
                      "model_version, bytes, summary_json::text"

// Fills *out from a row selected with FRAUD_UPLOAD_COLUMNS.
absl::Status RowToUpload(const pqxx::row& row, fraud::storage::v1::Upload* out);

}  // namespace fraud::storage
