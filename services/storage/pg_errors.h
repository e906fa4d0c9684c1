// The one mapping from PostgreSQL / libpqxx failures to absl::Status. Storage code catches every
// exception at the database call and converts it here; exceptions never leave the adapter.
//
//   broken_connection, SQLSTATE class 08, 57P01-57P03 (shutdown, starting up)  -> Unavailable
//                                                  message "database unavailable: ..."
//   too_many_connections, SQLSTATE class 53 (insufficient resources)           -> ResourceExhausted
//   unique_violation (23505)                                                   -> AlreadyExists
//   serialization_failure (40001), deadlock_detected (40P01), class 40         -> Aborted
//   foreign_key (23503), check (23514), not_null (23502) violations,
//   data_exception (class 22)                                                  -> InvalidArgument
//   query_canceled (57014, statement_timeout)                                  -> DeadlineExceeded
//   in_doubt_error (commit outcome unknown)                                    -> Unknown
//   anything else (syntax errors, undefined tables, usage errors, std::...)    -> Internal
//
// Messages keep the server's text (first line, trimmed) and never contain connection passwords:
// libpq does not echo them.
#pragma once

#include <exception>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fraud::storage {

// Status code for a five-character SQLSTATE ("23505"); Internal for unknown or empty codes.
absl::StatusCode CodeForSqlState(absl::string_view sqlstate);

// Status for a SQLSTATE plus the server's message (used by the raw libpq COPY paths).
absl::Status StatusFromSqlState(absl::string_view sqlstate, absl::string_view message);

// Status for any exception thrown by libpqxx (or the standard library underneath it).
absl::Status StatusFromException(const std::exception& e);

// True for codes that mean the connection itself is gone and must be discarded.
bool IsConnectionLoss(const absl::Status& s);

}  // namespace fraud::storage
