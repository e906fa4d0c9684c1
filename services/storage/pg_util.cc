#include "services/storage/pg_util.h"

#include <charconv>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "services/storage/pg_errors.h"
#include "services/storage/storage_metrics.h"

namespace fraud::storage {

absl::StatusOr<double> ParseDouble(absl::string_view text) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return absl::InternalError(absl::StrCat("not a double from the database: '", text, "'"));
  }
  return v;
}

absl::StatusOr<float> ParseFloat(absl::string_view text) {
  float v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return absl::InternalError(absl::StrCat("not a real from the database: '", text, "'"));
  }
  return v;
}

absl::Status ParseDoubleArray(absl::string_view text,
                              google::protobuf::RepeatedField<double>* out) {
  if (text.size() < 2 || text.front() != '{' || text.back() != '}') {
    return absl::InternalError("not a float8[] from the database");
  }
  text = text.substr(1, text.size() - 2);
  while (!text.empty()) {
    const size_t comma = text.find(',');
    absl::string_view item = text.substr(0, comma);
    absl::StatusOr<double> v = ParseDouble(item);
    if (!v.ok()) return v.status();
    out->Add(*v);
    if (comma == absl::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return absl::OkStatus();
}

absl::Status ParseFloat8Bytes(absl::string_view text, int n,
                              google::protobuf::RepeatedField<double>* out) {
  if (text.size() != 2 + 16 * static_cast<size_t>(n) || text[0] != '\\' || text[1] != 'x') {
    return absl::InternalError(
        absl::StrCat("not a bytea of ", n, " float8 from the database (", text.size(), " chars)"));
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (int i = 0; i < n; ++i) {
    uint64_t bits = 0;
    for (int k = 0; k < 16; ++k) {
      const int d = nibble(text[2 + 16 * i + k]);
      if (d < 0) return absl::InternalError("bad hex digit in a bytea from the database");
      bits = bits << 4 | static_cast<uint64_t>(d);
    }
    double v;
    std::memcpy(&v, &bits, 8);
    out->Add(v);
  }
  return absl::OkStatus();
}

void SetTimestampUs(int64_t us, google::protobuf::Timestamp* ts) {
  int64_t seconds = us / 1000000;
  int64_t micros = us % 1000000;
  if (micros < 0) {
    micros += 1000000;
    seconds -= 1;
  }
  ts->set_seconds(seconds);
  ts->set_nanos(static_cast<int32_t>(micros * 1000));
}

int64_t TimestampToUs(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * 1000000 + ts.nanos() / 1000;
}

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  auto s = google::protobuf::util::MessageToJsonString(m, &out, options);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot convert ", m.GetTypeName(), " to JSON: ", s.ToString()));
  }
  return out;
}

absl::Status FromJson(absl::string_view json, google::protobuf::Message* m) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto s = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), m, options);
  if (!s.ok()) {
    return absl::InternalError(
        absl::StrCat("stored JSON is not a valid ", m->GetTypeName(), ": ", s.ToString()));
  }
  return absl::OkStatus();
}

absl::Status Transact(PgPool& pool, const std::function<absl::Status(pqxx::work&)>& fn) {
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<PgPool::Lease> lease = pool.Acquire();
    if (!lease.ok()) return lease.status();
    absl::Status status;
    try {
      pqxx::work txn(lease->conn());
      status = fn(txn);
      if (status.ok()) txn.commit();
      return status;  // a non-OK status rolls back in txn's destructor
    } catch (const std::exception& e) {
      status = StatusFromException(e);
    }
    Metrics().DbError(status);
    if (IsConnectionLoss(status)) lease->Discard();
    if (status.code() == absl::StatusCode::kUnavailable && lease->reused() && attempt == 0) {
      continue;  // a pooled connection that died while idle: try once on a fresh one
    }
    return status;
  }
}

void AbortStreamTransaction(std::unique_ptr<pqxx::work>& txn, std::optional<PgPool::Lease>& lease) {
  if (txn != nullptr) {
    try {
      txn->abort();
    } catch (const std::exception&) {
      if (lease.has_value()) lease->Discard();
    }
    txn.reset();
  }
  lease.reset();
}

}  // namespace fraud::storage
