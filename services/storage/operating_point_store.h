// Operating points: the database side of SetOperatingPoint / GetOperatingPoint /
// ListOperatingPointHistory (migrations/0006_operating_points.sql). A version's current operating
// point is the latest row of its append-only history; without one the manifest's threshold
// applies. Independent of gRPC.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/storage/pg_pool.h"

namespace fraud::storage {

// Longest reason and actor stored with an operating point (characters).
inline constexpr size_t kMaxOperatingPointReason = 1000;
inline constexpr size_t kMaxOperatingPointActor = 128;

// Validates a SetOperatingPoint request without touching the database: InvalidArgument naming
// the field ("point.version", "point.kind", ...) and why.
absl::Status ValidateOperatingPoint(const fraud::storage::v1::OperatingPoint& point);

// Appends `point` to the version's history in one transaction, with previous_threshold = the
// version's threshold before (its latest operating point, else the manifest's). Serialized per
// schema with other operating-point changes, so previous_threshold is never stale.
// Errors: the validation above; NotFound for an unregistered version; pg_errors otherwise.
absl::StatusOr<fraud::storage::v1::OperatingPoint> SetOperatingPoint(
    PgPool& pool, const fraud::storage::v1::OperatingPoint& point);

// The version's current operating point (unset when none), thresholds and, with
// include_history, its history newest first. InvalidArgument for version <= 0, NotFound for an
// unregistered version.
absl::StatusOr<fraud::storage::v1::GetOperatingPointResponse> GetOperatingPoint(
    PgPool& pool, int64_t version, bool include_history = false);

// History newest first (version 0 = every version; InvalidArgument when negative).
absl::StatusOr<std::vector<fraud::storage::v1::OperatingPoint>> ListOperatingPointHistory(
    PgPool& pool, int64_t version);

}  // namespace fraud::storage
