#include "services/gateway/http_status.h"

#include <nlohmann/json.hpp>

#include "absl/strings/cord.h"
#include "services/common/rpc/grpc_status.h"

namespace fraud::gateway {
namespace {

// Payload marking a gateway-local kind; the value is the code name to report.
constexpr char kKindPayload[] = "type.fraud/gateway.http-kind";
constexpr char kTooLarge[] = "PAYLOAD_TOO_LARGE";
constexpr char kUnsupportedMedia[] = "UNSUPPORTED_MEDIA_TYPE";

absl::Status WithKind(absl::Status s, const char* kind) {
  s.SetPayload(kKindPayload, absl::Cord(kind));
  return s;
}

}  // namespace

absl::Status PayloadTooLarge(const std::string& message) {
  return WithKind(absl::ResourceExhaustedError(message), kTooLarge);
}

absl::Status UnsupportedMediaType(const std::string& message) {
  return WithKind(absl::InvalidArgumentError(message), kUnsupportedMedia);
}

int HttpStatusForCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

HttpError ToHttpError(const absl::Status& status) {
  HttpError e;
  e.message = std::string(status.message());
  if (auto kind = status.GetPayload(kKindPayload)) {
    const std::string k(*kind);
    if (k == kTooLarge) {
      e.http_status = 413;
      e.code = kTooLarge;
      return e;
    }
    if (k == kUnsupportedMedia) {
      e.http_status = 415;
      e.code = kUnsupportedMedia;
      return e;
    }
  }
  e.http_status = HttpStatusForCode(status.code());
  e.code = rpc::CodeName(status.code());
  return e;
}

std::string ErrorBodyJson(const HttpError& error, const std::string& details_json) {
  nlohmann::json body = {{"code", error.code}, {"message", error.message}};
  if (!details_json.empty()) {
    nlohmann::json details =
        nlohmann::json::parse(details_json, nullptr, /*allow_exceptions=*/false);
    if (!details.is_discarded()) body["details"] = std::move(details);
  }
  // Replace invalid UTF-8 (a message may quote raw bytes of a bad file) instead of throwing.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

const char* ReasonPhrase(int http_status) {
  switch (http_status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 499:
      return "Client Closed Request";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}

}  // namespace fraud::gateway
