#include "services/storage/operating_point_store.h"

#include <pqxx/pqxx>

#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/common/core/status_macros.h"
#include "services/storage/pg_util.h"

namespace fraud::storage {
namespace {

namespace v1 = ::fraud::storage::v1;

// Serializes operating-point changes within a schema (see kSchemaAdvisoryXactLock).
constexpr int kOperatingPointLockKey = 0x6f707074;  // "oppt"

#define FRAUD_OP_COLUMNS                                                                   \
  "id, version, kind, requested_value, threshold, previous_threshold, reason, actor, "     \
  FRAUD_EPOCH_US("changed_at") ", expected_alerts_per_day, expected_precision, "           \
  "expected_recall, evaluated_rows, evaluated_days"

// The manifest's threshold as text (proto JSON omits a zero threshold).
constexpr char kManifestThreshold[] =
    "SELECT COALESCE(manifest->>'threshold', '0') FROM model_versions WHERE version = $1";
constexpr char kCurrentPoint[] =
    "SELECT " FRAUD_OP_COLUMNS " FROM operating_point_history WHERE version = $1"
    " ORDER BY id DESC LIMIT 1";
// Doubles travel as text formatted with 17 significant digits, so they round-trip exactly.
constexpr char kInsertPoint[] =
    "INSERT INTO operating_point_history (version, kind, requested_value, threshold,"
    " previous_threshold, reason, actor, expected_alerts_per_day, expected_precision,"
    " expected_recall, evaluated_rows, evaluated_days)"
    " VALUES ($1, $2, $3::float8, $4::float8, $5::float8, $6, $7, $8::float8, $9::float8,"
    " $10::float8, $11, $12::float8) RETURNING " FRAUD_OP_COLUMNS;
constexpr char kHistoryAll[] =
    "SELECT " FRAUD_OP_COLUMNS " FROM operating_point_history ORDER BY id DESC";
constexpr char kHistoryOfVersion[] =
    "SELECT " FRAUD_OP_COLUMNS " FROM operating_point_history WHERE version = $1"
    " ORDER BY id DESC";

std::string Exact(double v) { return absl::StrFormat("%.17g", v); }

absl::StatusOr<v1::OperatingPoint> RowToPoint(const pqxx::row& row) {
  v1::OperatingPoint p;
  p.set_id(row[0].as<int64_t>());
  p.set_version(row[1].as<int64_t>());
  p.set_kind(static_cast<v1::OperatingPointKind>(row[2].as<int>()));
  FRAUD_ASSIGN_OR_RETURN(const double requested, ParseDouble(row[3].c_str()));
  FRAUD_ASSIGN_OR_RETURN(const double threshold, ParseDouble(row[4].c_str()));
  FRAUD_ASSIGN_OR_RETURN(const double previous, ParseDouble(row[5].c_str()));
  p.set_requested_value(requested);
  p.set_threshold(threshold);
  p.set_previous_threshold(previous);
  p.set_reason(row[6].c_str());
  p.set_actor(row[7].c_str());
  SetTimestampUs(row[8].as<int64_t>(), p.mutable_changed_at());
  FRAUD_ASSIGN_OR_RETURN(const double alerts, ParseDouble(row[9].c_str()));
  FRAUD_ASSIGN_OR_RETURN(const double precision, ParseDouble(row[10].c_str()));
  FRAUD_ASSIGN_OR_RETURN(const double recall, ParseDouble(row[11].c_str()));
  FRAUD_ASSIGN_OR_RETURN(const double days, ParseDouble(row[13].c_str()));
  p.set_expected_alerts_per_day(alerts);
  p.set_expected_precision(precision);
  p.set_expected_recall(recall);
  p.set_evaluated_rows(row[12].as<int64_t>());
  p.set_evaluated_days(days);
  return p;
}

absl::Status Field(const char* field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

bool InUnit(double v) { return std::isfinite(v) && v >= 0 && v <= 1; }

// The manifest's threshold of `version`, or NotFound.
absl::StatusOr<double> ManifestThreshold(pqxx::work& txn, int64_t version) {
  pqxx::result r = txn.exec_params(kManifestThreshold, version);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("model version ", version, " not found"));
  return ParseDouble(r[0][0].c_str());
}

}  // namespace

absl::Status ValidateOperatingPoint(const v1::OperatingPoint& p) {
  if (p.version() <= 0) return Field("point.version", "must be a registered version (>= 1)");
  const double v = p.requested_value();
  switch (p.kind()) {
    case v1::OPERATING_POINT_KIND_THRESHOLD:
      if (!InUnit(v)) return Field("point.requested_value", "a threshold must be in [0, 1]");
      break;
    case v1::OPERATING_POINT_KIND_ALERTS_PER_DAY:
      if (!std::isfinite(v) || v <= 0) {
        return Field("point.requested_value", "alerts per day must be > 0");
      }
      break;
    case v1::OPERATING_POINT_KIND_FRACTION:
      if (!std::isfinite(v) || v <= 0 || v > 1) {
        return Field("point.requested_value", "a fraction of transactions must be in (0, 1]");
      }
      break;
    default:
      return Field("point.kind", "must be THRESHOLD, ALERTS_PER_DAY or FRACTION");
  }
  if (!InUnit(p.threshold())) return Field("point.threshold", "must be in [0, 1]");
  if (p.reason().empty()) return Field("point.reason", "required (why the operating point changes)");
  if (p.reason().size() > kMaxOperatingPointReason) {
    return Field("point.reason", absl::StrCat("longer than ", kMaxOperatingPointReason, " bytes"));
  }
  if (p.actor().empty()) return Field("point.actor", "required (who changes it)");
  if (p.actor().size() > kMaxOperatingPointActor) {
    return Field("point.actor", absl::StrCat("longer than ", kMaxOperatingPointActor, " bytes"));
  }
  if (!std::isfinite(p.expected_alerts_per_day()) || p.expected_alerts_per_day() < 0) {
    return Field("point.expected_alerts_per_day", "must be finite and >= 0");
  }
  if (!InUnit(p.expected_precision())) return Field("point.expected_precision", "must be in [0, 1]");
  if (!InUnit(p.expected_recall())) return Field("point.expected_recall", "must be in [0, 1]");
  if (p.evaluated_rows() < 0) return Field("point.evaluated_rows", "must be >= 0");
  if (!std::isfinite(p.evaluated_days()) || p.evaluated_days() < 0) {
    return Field("point.evaluated_days", "must be finite and >= 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::OperatingPoint> SetOperatingPoint(PgPool& pool, const v1::OperatingPoint& p) {
  FRAUD_RETURN_IF_ERROR(ValidateOperatingPoint(p));
  v1::OperatingPoint out;
  FRAUD_RETURN_IF_ERROR(Transact(pool, [&](pqxx::work& txn) -> absl::Status {
    txn.exec_params(kSchemaAdvisoryXactLock, kOperatingPointLockKey);
    FRAUD_ASSIGN_OR_RETURN(double previous, ManifestThreshold(txn, p.version()));
    pqxx::result current = txn.exec_params(kCurrentPoint, p.version());
    if (!current.empty()) {
      FRAUD_ASSIGN_OR_RETURN(previous, ParseDouble(current[0][4].c_str()));
    }
    pqxx::row r = txn.exec_params1(
        kInsertPoint, p.version(), static_cast<int>(p.kind()), Exact(p.requested_value()),
        Exact(p.threshold()), Exact(previous), p.reason(), p.actor(),
        Exact(p.expected_alerts_per_day()), Exact(p.expected_precision()),
        Exact(p.expected_recall()), p.evaluated_rows(), Exact(p.evaluated_days()));
    FRAUD_ASSIGN_OR_RETURN(out, RowToPoint(r));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<v1::GetOperatingPointResponse> GetOperatingPoint(PgPool& pool, int64_t version,
                                                                bool include_history) {
  if (version <= 0) return Field("version", "must be a registered version (>= 1)");
  v1::GetOperatingPointResponse out;
  FRAUD_RETURN_IF_ERROR(Transact(pool, [&](pqxx::work& txn) -> absl::Status {
    out.Clear();
    FRAUD_ASSIGN_OR_RETURN(const double manifest, ManifestThreshold(txn, version));
    out.set_manifest_threshold(manifest);
    out.set_threshold(manifest);
    pqxx::result current = txn.exec_params(kCurrentPoint, version);
    if (!current.empty()) {
      FRAUD_ASSIGN_OR_RETURN(*out.mutable_point(), RowToPoint(current[0]));
      out.set_threshold(out.point().threshold());
    }
    if (include_history) {
      for (const pqxx::row& row : txn.exec_params(kHistoryOfVersion, version)) {
        FRAUD_ASSIGN_OR_RETURN(*out.add_history(), RowToPoint(row));
      }
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<v1::OperatingPoint>> ListOperatingPointHistory(PgPool& pool,
                                                                          int64_t version) {
  if (version < 0) return Field("version", "must be >= 0 (0 = every version)");
  std::vector<v1::OperatingPoint> out;
  FRAUD_RETURN_IF_ERROR(Transact(pool, [&](pqxx::work& txn) -> absl::Status {
    out.clear();
    pqxx::result r =
        version == 0 ? txn.exec(kHistoryAll) : txn.exec_params(kHistoryOfVersion, version);
    for (const pqxx::row& row : r) {
      FRAUD_ASSIGN_OR_RETURN(v1::OperatingPoint p, RowToPoint(row));
      out.push_back(std::move(p));
    }
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace fraud::storage
