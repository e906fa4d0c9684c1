// Realised performance of the served model versions on the labels known now
// (GetRealisedMetrics), read from the summary realised_bins that every write keeps current
// (migration 0007): counts per (upload, version, day, decision, score bin) by label state. One
// statement sums the bins per (model version, period) and derives counts, precision, recall
// (exact), average precision and precision@k (from the 1024-bin score histogram: scores in one
// bin count as ties) in the database, so only one row per group comes back.
#pragma once

#include "absl/status/statusor.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/storage/pg_pool.h"

namespace fraud::storage {

// Default and largest k of precision@k.
inline constexpr int kDefaultRealisedK = 100;
inline constexpr int kMaxRealisedK = 100000;

// InvalidArgument for an unknown period, k < 0 or > kMaxRealisedK, or a version <= 0.
// Thread-safe (one leased connection per call).
absl::StatusOr<fraud::storage::v1::GetRealisedMetricsResponse> GetRealisedMetrics(
    PgPool& pool, const fraud::storage::v1::GetRealisedMetricsRequest& request);

// The same figures computed exactly from every stored prediction joined to its transaction
// (scores compared individually; precision@k over exactly the k highest, ties broken by upload
// and line). Seconds at millions of predictions: the reference the tests and the bench compare
// the summary against, not served by the RPC. Same contract as GetRealisedMetrics.
absl::StatusOr<fraud::storage::v1::GetRealisedMetricsResponse> GetRealisedMetricsExact(
    PgPool& pool, const fraud::storage::v1::GetRealisedMetricsRequest& request);

// Sets the fraud_storage_realised_* gauges (storage_metrics.h) from GetRealisedMetrics by day:
// for each model version, its latest day. Versions without predictions keep no gauge. Returns
// the query's status (the gauges are left as they were on error).
absl::Status UpdateRealisedGauges(PgPool& pool);

}  // namespace fraud::storage
