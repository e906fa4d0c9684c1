// Small helpers shared by the storage service's database code (internal to services/storage).
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "services/storage/pg_pool.h"

namespace fraud::storage {

// SQL expression: microseconds since the Unix epoch of a timestamptz column (NULL stays NULL).
#define FRAUD_EPOCH_US(col) "(extract(epoch from " col ") * 1000000)::bigint"
// SQL expression: a timestamptz from a bigint parameter of microseconds (0 = NULL).
#define FRAUD_TS_FROM_US(param)                                       \
  "(CASE WHEN " param "::bigint = 0 THEN NULL ELSE timestamptz 'epoch' + " param \
  "::bigint * interval '1 microsecond' END)"

// Takes a transaction-scoped advisory lock ($1 = the caller's int key) within the current schema,
// so each schema (production, or one per test) has its own locks: migrations, champion changes
// and feedback streams each serialize on their own key.
inline constexpr char kSchemaAdvisoryXactLock[] =
    "SELECT pg_advisory_xact_lock(hashtext(current_schema()), $1)";

// Exact double / float from PostgreSQL's text output (shortest round-trip with
// extra_float_digits = 3). InvalidArgument on anything else.
absl::StatusOr<double> ParseDouble(absl::string_view text);
absl::StatusOr<float> ParseFloat(absl::string_view text);
// "{1.5,-2,...}" (a one-dimensional float8[] without NULLs) appended to *out.
absl::Status ParseDoubleArray(absl::string_view text, google::protobuf::RepeatedField<double>* out);
// A bytea of `n` big-endian doubles (transactions.v; CopyEncoder::Float8Bytes) in PostgreSQL's
// text output ("\\x" and hex digits), appended to *out. InternalError on anything else.
absl::Status ParseFloat8Bytes(absl::string_view text, int n,
                              google::protobuf::RepeatedField<double>* out);

// A one-dimensional SQL array literal "{a,b,...}" of `values`, each element written by
// `format` (for example DoubleLiteral): for array parameters ($1::float8[]) of set-based
// statements.
template <typename Range, typename Format>
std::string ArrayLiteral(const Range& values, Format format) {
  std::string out = "{";
  bool first = true;
  for (const auto& v : values) {
    if (!first) out.push_back(',');
    first = false;
    out += format(v);
  }
  out.push_back('}');
  return out;
}

// "{1,2,3}": a bigint[] literal of integer `values`.
template <typename Range>
std::string BigintArrayLiteral(const Range& values) {
  return ArrayLiteral(values, [](int64_t v) { return absl::StrCat(v); });
}

// A one-dimensional text[] (or bytea[] of "\\x..." hex strings) literal: every element
// double-quoted, with '"' and '\' escaped. Elements must not hold NUL bytes.
template <typename Range>
std::string QuotedArrayLiteral(const Range& values) {
  return ArrayLiteral(values, [](absl::string_view v) {
    std::string out = "\"";
    for (char c : v) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
    return out;
  });
}

// Timestamp <-> microseconds since the epoch (nanoseconds truncated).
void SetTimestampUs(int64_t us, google::protobuf::Timestamp* ts);
int64_t TimestampToUs(const google::protobuf::Timestamp& ts);

// Proto <-> proto JSON (the canonical mapping; unknown fields are ignored when parsing so an older
// binary can read rows written by a newer one).
absl::StatusOr<std::string> ToJson(const google::protobuf::Message& m);
absl::Status FromJson(absl::string_view json, google::protobuf::Message* m);

// Runs `fn` in one transaction on a leased connection and commits when it returns OK (a non-OK
// status rolls back and is returned as is). Database exceptions are mapped by pg_errors and
// counted; when the connection turns out dead and it had been pooled before this call, the call
// is retried once on a fresh connection.
absl::Status Transact(PgPool& pool, const std::function<absl::Status(pqxx::work&)>& fn);

// Rolls back a transaction held open across a client stream (UploadWriter, ArtifactWriter) and
// returns its connection: discarded when the rollback itself failed (the protocol state is then
// unknown). Both are reset; a no-op when nothing is open.
void AbortStreamTransaction(std::unique_ptr<pqxx::work>& txn, std::optional<PgPool::Lease>& lease);

}  // namespace fraud::storage
