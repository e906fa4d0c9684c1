// Status propagation macros (Abseil 20220623 ships none) and a checked-invariant macro.
//
//   FRAUD_RETURN_IF_ERROR(expr);            // returns the status of expr when it is not OK
//   FRAUD_ASSIGN_OR_RETURN(auto x, expr);   // unwraps a StatusOr or returns its status
//   FRAUD_CHECK(cond) << "what broke";      // broken invariant: logs and aborts (never for user input)
#pragma once

#include <cstdlib>
#include <iostream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

#define FRAUD_STATUS_CONCAT_INNER_(a, b) a##b
#define FRAUD_STATUS_CONCAT_(a, b) FRAUD_STATUS_CONCAT_INNER_(a, b)

#define FRAUD_RETURN_IF_ERROR(expr)                     \
  do {                                                  \
    ::absl::Status fraud_status_ = (expr);              \
    if (!fraud_status_.ok()) return fraud_status_;      \
  } while (0)

#define FRAUD_ASSIGN_OR_RETURN(lhs, expr) \
  FRAUD_ASSIGN_OR_RETURN_IMPL_(FRAUD_STATUS_CONCAT_(fraud_statusor_, __LINE__), lhs, expr)

#define FRAUD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

namespace fraud {

// Adds context in front of a status message, keeping its code: "loading model 3: file missing".
inline absl::Status Annotate(const absl::Status& s, absl::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(context, ": ", s.message()));
}

namespace internal {
// Streams a message, then aborts in its destructor. Used only by FRAUD_CHECK.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* cond) {
    stream_ << "CHECK failed at " << file << ":" << line << ": " << cond << " ";
  }
  [[noreturn]] ~CheckFailure() {
    std::cerr << stream_.str() << std::endl;
    std::abort();
  }
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};
}  // namespace internal
}  // namespace fraud

#define FRAUD_CHECK(cond) \
  if (cond) {             \
  } else                  \
    ::fraud::internal::CheckFailure(__FILE__, __LINE__, #cond).stream()

#define FRAUD_CHECK_OK(expr)                                                        \
  if (::absl::Status fraud_check_status_ = (expr); fraud_check_status_.ok()) {      \
  } else                                                                            \
    ::fraud::internal::CheckFailure(__FILE__, __LINE__, #expr).stream()             \
        << fraud_check_status_.ToString()
