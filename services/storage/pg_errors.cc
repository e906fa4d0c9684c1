#include "services/storage/pg_errors.h"

#include <pqxx/except>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fraud::storage {
namespace {

constexpr char kUnavailablePrefix[] = "database unavailable: ";

// First line of a libpq/libpqxx message, without "ERROR:  " and trailing whitespace.
std::string CleanMessage(absl::string_view message) {
  absl::string_view m = absl::StripAsciiWhitespace(message);
  for (absl::string_view prefix : {"ERROR:  ", "FATAL:  ", "ERROR: ", "FATAL: "}) {
    if (absl::StartsWith(m, prefix)) {
      m.remove_prefix(prefix.size());
      break;
    }
  }
  // libpq appends detail lines ("DETAIL: ...", "LINE 1: ..."); keep the DETAIL of constraint
  // violations (it names the key), drop the query echo.
  std::string out;
  size_t start = 0;
  bool first = true;
  while (start <= m.size()) {
    size_t end = m.find('\n', start);
    if (end == absl::string_view::npos) end = m.size();
    absl::string_view line = absl::StripAsciiWhitespace(m.substr(start, end - start));
    if (first) {
      out.append(line.data(), line.size());
      first = false;
    } else if (absl::StartsWith(line, "DETAIL:")) {
      absl::StrAppend(&out, " (", absl::StripAsciiWhitespace(line.substr(7)), ")");
    }
    start = end + 1;
  }
  return out;
}

absl::Status Make(absl::StatusCode code, absl::string_view message) {
  std::string text = CleanMessage(message);
  if (code == absl::StatusCode::kUnavailable) text = absl::StrCat(kUnavailablePrefix, text);
  return absl::Status(code, text);
}

}  // namespace

absl::StatusCode CodeForSqlState(absl::string_view s) {
  if (s.size() != 5) return absl::StatusCode::kInternal;
  const absl::string_view cls = s.substr(0, 2);
  if (s == "23505") return absl::StatusCode::kAlreadyExists;
  if (s == "23503" || s == "23514" || s == "23502" || s == "23P01") {
    return absl::StatusCode::kInvalidArgument;
  }
  if (cls == "22") return absl::StatusCode::kInvalidArgument;  // data_exception
  if (cls == "40") return absl::StatusCode::kAborted;  // serialization, deadlock, rollback
  if (cls == "08") return absl::StatusCode::kUnavailable;  // connection_exception
  if (s == "57P01" || s == "57P02" || s == "57P03") return absl::StatusCode::kUnavailable;
  if (s == "57014") return absl::StatusCode::kDeadlineExceeded;  // query_canceled
  if (cls == "53") return absl::StatusCode::kResourceExhausted;  // too many connections, disk
  return absl::StatusCode::kInternal;
}

absl::Status StatusFromSqlState(absl::string_view sqlstate, absl::string_view message) {
  return Make(CodeForSqlState(sqlstate), message);
}

absl::Status StatusFromException(const std::exception& e) {
  // Most specific first: too_many_connections derives from broken_connection, and the
  // transaction_rollback family carries no SQLSTATE in libpqxx 6.4.
  if (dynamic_cast<const pqxx::too_many_connections*>(&e) != nullptr) {
    return Make(absl::StatusCode::kResourceExhausted, e.what());
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    // A refused login for too many clients arrives as a plain broken_connection.
    if (absl::StrContains(e.what(), "too many clients")) {
      return Make(absl::StatusCode::kResourceExhausted, e.what());
    }
    return Make(absl::StatusCode::kUnavailable, e.what());
  }
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return Make(absl::StatusCode::kUnknown,
                absl::StrCat("commit outcome unknown (connection lost during commit): ", e.what()));
  }
  if (dynamic_cast<const pqxx::transaction_rollback*>(&e) != nullptr) {
    return Make(absl::StatusCode::kAborted, e.what());
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e); sql != nullptr) {
    const std::string& state = sql->sqlstate();
    if (!state.empty()) return StatusFromSqlState(state, e.what());
    if (dynamic_cast<const pqxx::unique_violation*>(&e) != nullptr) {
      return Make(absl::StatusCode::kAlreadyExists, e.what());
    }
    if (dynamic_cast<const pqxx::integrity_constraint_violation*>(&e) != nullptr ||
        dynamic_cast<const pqxx::data_exception*>(&e) != nullptr) {
      return Make(absl::StatusCode::kInvalidArgument, e.what());
    }
    if (dynamic_cast<const pqxx::insufficient_resources*>(&e) != nullptr) {
      return Make(absl::StatusCode::kResourceExhausted, e.what());
    }
    return Make(absl::StatusCode::kInternal, e.what());
  }
  return Make(absl::StatusCode::kInternal, e.what());
}

bool IsConnectionLoss(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kUnknown;
}

}  // namespace fraud::storage
