#include "services/storage/upload_record.h"

#include "services/common/core/status_macros.h"

namespace fraud::storage {

absl::Status RowToUpload(const pqxx::row& row, fraud::storage::v1::Upload* out) {
  out->Clear();
  out->set_id(row[0].as<int64_t>());
  if (!row[1].is_null()) out->set_sha256(row[1].c_str());
  out->set_file_name(row[2].c_str());
  out->set_mode(static_cast<fraud::storage::v1::UploadMode>(row[3].as<int>()));
  out->set_status(static_cast<fraud::storage::v1::UploadStatus>(row[4].as<int>()));
  SetTimestampUs(row[5].as<int64_t>(), out->mutable_received_at());
  if (!row[6].is_null()) SetTimestampUs(row[6].as<int64_t>(), out->mutable_committed_at());
  out->set_rows(row[7].as<int64_t>());
  out->set_rows_rejected(row[8].as<int64_t>());
  out->set_labelled_rows(row[9].as<int64_t>());
  out->set_frauds(row[10].as<int64_t>());
  FRAUD_ASSIGN_OR_RETURN(const double time_min, ParseDouble(row[11].c_str()));
  FRAUD_ASSIGN_OR_RETURN(const double time_max, ParseDouble(row[12].c_str()));
  out->set_time_min(time_min);
  out->set_time_max(time_max);
  out->set_model_version(row[13].as<int64_t>());
  out->set_bytes(row[14].as<int64_t>());
  if (!row[15].is_null()) out->set_summary_json(row[15].c_str());
  return absl::OkStatus();
}

}  // namespace fraud::storage
