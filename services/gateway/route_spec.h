// The REST routes as data: method, path pattern, who may call them, what they take and return.
// The server registers exactly these routes (gateway_server.cc collects them from the routes_*.cc
// files) and the OpenAPI document is generated from the same list (openapi.cc), so the two cannot
// drift. Rows are written with designated initialisers, in field order (C++20 syntax that GCC 12
// and Clang accept in our gnu++17 mode, as services/common/model/families.cc does):
//
//   {.method = "POST", .path = "/api/v1/inference/reload", .operation_id = "reloadModel",
//    .summary = "...", .tag = "inference", .access = Access::kAdmin, .body = BodyKind::kJson,
//    .request_schema = "fraud.inference.v1.ReloadRequest", .response_schema = "..."}
#pragma once

#include <string>
#include <vector>

namespace fraud::gateway {

enum class BodyKind {
  kNone,       // no request body
  kJson,       // a JSON document (bounded by --max_json_bytes), `request_schema`
  kCsvUpload,  // a streamed CSV: raw text/csv or multipart/form-data field `file`
  kJsonOrCsv,  // read like kJson (same size bound); the handler parses text/csv or JSON
};

// Who may call a route.
enum class Access {
  kPublic,
  // "Authorization: Bearer <upload token>" when --upload_token is set (the admin token passes
  // too); checked by the upload handler, which counts refusals in its own metric.
  kUploadToken,
  // "Authorization: Bearer <admin token>", checked before the handler runs; the backend call
  // carries the admin credentials.
  kAdmin,
};

struct QueryParamSpec {
  std::string name;
  // OpenAPI scalar type: "integer", "number", "boolean" or "string".
  std::string type;
  std::string description;
  // Allowed values for strings (empty = any).
  std::vector<std::string> values;
};

struct RouteSpec {
  std::string method;  // "GET" or "POST"
  // Path with {name} placeholders for integer path parameters: "/api/v1/uploads/{id}".
  std::string path;
  std::string operation_id;
  std::string summary;
  std::string tag;
  Access access = Access::kPublic;
  BodyKind body = BodyKind::kNone;
  // Schema names: a proto message's full name ("fraud.training.v1.StartRunRequest") or a
  // gateway schema ("HealthResponse", "MonitoringResponse", "ScoreRequest", ...).
  std::string request_schema;
  std::string response_schema;
  std::string response_content_type = "application/json";
  std::vector<QueryParamSpec> query;
};

// Placeholder names of a path pattern, in order: "/a/{id}/b/{version}" -> {"id", "version"}.
std::vector<std::string> PathParams(const std::string& pattern);
// The std::regex (ECMAScript) the server registers for a pattern: placeholders match [0-9]+.
std::string PathRegex(const std::string& pattern);

}  // namespace fraud::gateway
