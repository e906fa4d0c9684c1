// Proto <-> JSON in the one mapping the REST API uses (protobuf's own: lowerCamelCase names, int64
// as strings, enums by name, every primitive field printed), and parsing of query parameters.
// Thread-safety: plain functions.
#pragma once

#include <google/protobuf/message.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fraud::gateway {

// The message's JSON mapping with always_print_primitive_fields.
std::string ToJson(const google::protobuf::Message& message);

// Parses `json` into `message` (unknown fields are an error). An empty body parses as {}.
// InvalidArgument naming the problem ("invalid JSON body for StartRunRequest: ...").
absl::Status FromJson(const std::string& json, google::protobuf::Message* message);

// Integer query/path values: InvalidArgument "query parameter page_size must be an integer ...".
absl::StatusOr<int64_t> ParseInt(const std::string& name, const std::string& value, int64_t min,
                                 int64_t max);
absl::StatusOr<double> ParseDouble(const std::string& name, const std::string& value, double min,
                                   double max);
// "true"/"false"/"1"/"0"/"yes"/"no" (case-insensitive).
absl::StatusOr<bool> ParseBool(const std::string& name, const std::string& value);

}  // namespace fraud::gateway
