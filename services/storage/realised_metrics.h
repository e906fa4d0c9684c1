// Realised performance of the served model versions on the labels known now
// (GetRealisedMetrics): one SQL statement groups every stored prediction with its transaction's
// current class by (model version, period) and computes counts, precision, recall, average
// precision and precision@k in the database, so only one row per group comes back.
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

// Sets the fraud_storage_realised_* gauges (storage_metrics.h) from GetRealisedMetrics by day:
// for each model version, its latest day. Versions without predictions keep no gauge. Returns
// the query's status (the gauges are left as they were on error).
absl::Status UpdateRealisedGauges(PgPool& pool);

}  // namespace fraud::storage
