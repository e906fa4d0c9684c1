// Builds the OpenAPI 3.0 document of the REST API from the route table (route_spec.h). Proto
// schemas are generated from the message descriptors with the proto3 JSON mapping's types (int64
// as strings, enums as their names, Timestamp as date-time strings, lowerCamelCase names).
// Thread-safety: plain functions.
#pragma once

#include <string>
#include <vector>

#include "services/gateway/route_spec.h"

namespace fraud::gateway {

// The document as JSON text. InvalidArgument-free by construction: unknown schema names are
// emitted as free-form objects (and caught by the route table test).
std::string BuildOpenApiJson(const std::vector<RouteSpec>& routes, const std::string& version);

// Whether `name` is a schema the document can describe (a proto message linked into the binary or
// one of the gateway's own schemas).
bool IsKnownSchema(const std::string& name);

}  // namespace fraud::gateway
