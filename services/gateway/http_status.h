// The one table from a status to an HTTP answer, and the error body every non-2xx API answer has:
//
//   {"code": "INVALID_ARGUMENT", "message": "...", "details": {...}}
//
// Table (after google.rpc.Code): InvalidArgument/OutOfRange/FailedPrecondition -> 400,
// Unauthenticated -> 401, PermissionDenied -> 403, NotFound -> 404, AlreadyExists/Aborted -> 409,
// ResourceExhausted -> 429, Cancelled -> 499, Unimplemented -> 501, Unavailable -> 503,
// DeadlineExceeded -> 504, anything else -> 500. Two gateway-local kinds are marked with a status
// payload so they stay distinguishable from the gRPC codes they travel as: a body larger than a
// limit (PayloadTooLarge -> 413 "PAYLOAD_TOO_LARGE") and an unsupported Content-Type
// (UnsupportedMediaType -> 415 "UNSUPPORTED_MEDIA_TYPE").
//
// Thread-safety: plain functions.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace fraud::gateway {

// Status kinds the gRPC code alone cannot express.
absl::Status PayloadTooLarge(const std::string& message);
absl::Status UnsupportedMediaType(const std::string& message);

struct HttpError {
  int http_status = 500;
  // Upper-case code name: "INVALID_ARGUMENT", "PAYLOAD_TOO_LARGE", ...
  std::string code;
  std::string message;
};

// The HTTP status of a status code (200 for OK).
int HttpStatusForCode(absl::StatusCode code);
// The HTTP status and code name of a status, honouring the gateway-local kinds.
HttpError ToHttpError(const absl::Status& status);

// The JSON error body. `details_json` is a JSON object text placed under "details" ("" = none; it
// must be valid JSON, for example a proto's JSON mapping wrapped as {"summary": ...}).
std::string ErrorBodyJson(const HttpError& error, const std::string& details_json = "");

// Standard reason phrase ("Bad Request") for logs and the OpenAPI document.
const char* ReasonPhrase(int http_status);

}  // namespace fraud::gateway
