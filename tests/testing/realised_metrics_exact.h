// The realised metrics (storage's GetRealisedMetrics) computed exactly, from every stored
// prediction joined to its transaction: the reference the storage tests and the feedback bench
// compare the served summary (realised_bins, migration 0007) against. Not part of any service.
#pragma once

#include "absl/status/statusor.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/storage/pg_pool.h"

namespace fraud::testing {

// The figures of GetRealisedMetrics with scores compared individually (no score bins) and
// precision@k over exactly the k highest (ties broken by upload and line). Seconds at millions
// of predictions. Same contract as GetRealisedMetrics (same request checks and status codes).
absl::StatusOr<storage::v1::GetRealisedMetricsResponse> GetRealisedMetricsExact(
    storage::PgPool& pool, const storage::v1::GetRealisedMetricsRequest& request);

}  // namespace fraud::testing
