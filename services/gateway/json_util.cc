#include "services/gateway/json_util.h"

#include <google/protobuf/util/json_util.h>

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace fraud::gateway {

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = false;
  std::string out;
  // Printing a well-formed message cannot fail (no Any with unknown types in our protos).
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

absl::Status FromJson(const std::string& json, google::protobuf::Message* message) {
  message->Clear();
  const std::string text = absl::StripAsciiWhitespace(json).empty() ? "{}" : json;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(text, message, options);
  if (status.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("invalid JSON body for ",
                                                 message->GetDescriptor()->name(), ": ",
                                                 std::string(status.message())));
}

absl::StatusOr<int64_t> ParseInt(const std::string& name, const std::string& value, int64_t min,
                                 int64_t max) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(value, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter ", name, " must be an integer, got '", value.substr(0, 40), "'"));
  }
  if (v < min || v > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter ", name, " must be in [", min, ", ", max, "], got ", v));
  }
  return v;
}

absl::StatusOr<double> ParseDouble(const std::string& name, const std::string& value, double min,
                                   double max) {
  double v = 0;
  if (!absl::SimpleAtod(value, &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter ", name, " must be a number, got '", value.substr(0, 40), "'"));
  }
  if (v < min || v > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter ", name, " must be in [", min, ", ", max, "], got ", v));
  }
  return v;
}

absl::StatusOr<bool> ParseBool(const std::string& name, const std::string& value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  return absl::InvalidArgumentError(
      absl::StrCat("parameter ", name, " must be true or false, got '", value.substr(0, 40), "'"));
}

}  // namespace fraud::gateway
