// The storage service's database operations (everything except the StoreUpload stream, see
// upload_writer.h), as absl::Status-returning calls on protos. Each call leases one connection
// from the PgPool for its duration and runs in one transaction; libpqxx exceptions are mapped by
// pg_errors and never escape. A call that finds its pooled connection dead (database restarted)
// retries once on a fresh connection before reporting UNAVAILABLE.
//
// Thread-safe: calls may run concurrently (each holds its own connection).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/storage/pg_pool.h"

namespace fraud::storage {

namespace v1 = ::fraud::storage::v1;

// The SELECT that ScanTransactions copies out for `request` (rows in Time order), for tests that
// look at its plan. A Time range first looks up the uploads it overlaps in `txn`.
std::string ScanTransactionsQuery(pqxx::transaction_base& txn,
                                  const v1::ScanTransactionsRequest& request);

class PgStore {
 public:
  // `pool` is not owned and must outlive the store.
  explicit PgStore(PgPool* pool) : pool_(pool) {}

  // NotFound for an unknown (or never committed) upload.
  absl::StatusOr<v1::Upload> GetUpload(int64_t upload_id);
  // Newest first; page_size 0 = 50, capped at 500; InvalidArgument for negative values.
  absl::StatusOr<v1::ListUploadsResponse> ListUploads(const v1::ListUploadsRequest& request);

  // Streams matching rows in (Time, upload_id, line) order through `emit`, batch_rows at a time
  // (0 = 8192, capped at 65536), by a binary COPY TO STDOUT so memory stays constant. `emit`
  // returns false when the consumer went away: the query is cancelled and Cancelled returned.
  // Batches carry upload_ids and line_numbers; labels hold one value per row (-1 for a row
  // without label) unless every row of the batch is unlabelled, then labels is empty. The scan
  // statement runs without statement_timeout (its duration follows the consumer's pace; the
  // consumer's deadline or cancellation bounds it).
  absl::Status ScanTransactions(const v1::ScanTransactionsRequest& request,
                                const std::function<bool(v1::ScanTransactionsResponse&)>& emit);

  // Totals over committed uploads with id > after_upload_id. max_upload_id is the highest
  // committed upload id overall (independent of the filter), 0 when there is none.
  absl::StatusOr<v1::GetDataStatsResponse> GetDataStats(const v1::GetDataStatsRequest& request);

  // Upserts scores for rows of an existing upload. NotFound for an unknown upload;
  // InvalidArgument when sizes differ, lines repeat, or some line is not a row of the upload
  // (nothing is stored then). When the upload had no scoring model yet, its model_version
  // becomes this one. Returns the number of rows recorded.
  absl::StatusOr<int64_t> RecordPredictions(const v1::RecordPredictionsRequest& request);
  // One page of an upload's predictions with features and label. NotFound for an unknown upload.
  absl::StatusOr<v1::ListPredictionsResponse> ListPredictions(
      const v1::ListPredictionsRequest& request);

  // Registers a version. version 0 (in the model and its manifest) allocates the next number.
  // The manifest is stored as proto JSON with its version, family and run_id made consistent
  // with the model's. InvalidArgument for contradicting fields or an unknown family;
  // AlreadyExists when the version is registered.
  absl::StatusOr<v1::ModelVersion> RegisterModel(const v1::ModelVersion& model);
  absl::StatusOr<v1::ModelVersion> GetModel(int64_t version);  // NotFound when unknown
  // Newest version first, with is_champion.
  absl::StatusOr<std::vector<v1::ModelVersion>> ListModels();
  // Appends to the champion history (serialized by an advisory lock). NotFound for an unknown
  // version; Aborted when check_current is set and the champion is not expected_current.
  absl::StatusOr<v1::ChampionChange> SetChampion(const v1::SetChampionRequest& request);
  absl::StatusOr<v1::GetChampionResponse> GetChampion();
  // Newest change first.
  absl::StatusOr<std::vector<v1::ChampionChange>> ListChampionHistory();
  absl::StatusOr<int64_t> AllocateModelVersion();

  // Assigns the id (run.id must be 0), created_at when unset (now) and status QUEUED when
  // unspecified.
  absl::StatusOr<v1::TrainingRun> CreateRun(const v1::TrainingRun& run);
  // Replaces the stored run (NotFound when run.id is unknown); keeps the stored created_at when
  // the new one is unset.
  absl::StatusOr<v1::TrainingRun> UpdateRun(const v1::TrainingRun& run);
  absl::StatusOr<v1::TrainingRun> GetRun(int64_t run_id);  // NotFound when unknown
  // Newest first; paging as ListUploads.
  absl::StatusOr<v1::ListRunsResponse> ListRuns(const v1::ListRunsRequest& request);

 private:
  PgPool* pool_;
};

}  // namespace fraud::storage
