#include "services/gateway/openapi.h"

#include <google/protobuf/descriptor.h>

#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace fraud::gateway {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::FieldDescriptor;
using nlohmann::json;

const Descriptor* FindMessage(const std::string& name) {
  return DescriptorPool::generated_pool()->FindMessageTypeByName(name);
}

json Ref(const std::string& name) { return {{"$ref", "#/components/schemas/" + name}}; }

// A stored row (review item, prediction) with the gateway's marks of where its reasons come from.
json ExplainedRow(const std::string& message) {
  return {{"allOf",
           {Ref(message),
            {{"type", "object"},
             {"properties",
              {{"explanationSource",
                {{"type", "string"},
                 {"enum", {"stored", "computed"}},
                 {"description",
                  "stored: the explanation the scoring version stored with the alert; computed: "
                  "explained now by the serving model (none stored)"}}},
               {"explanationModelVersion",
                {{"type", "string"},
                 {"format", "int64"},
                 {"description", "The version whose explanation this is"}}}}}}}}};
}

// Schemas of the gateway's own (non-proto) documents.
const std::map<std::string, json>& GatewaySchemas() {
  static const auto* schemas = new std::map<std::string, json>{
      {"ErrorBody",
       {{"type", "object"},
        {"description",
         "Body of every non-2xx answer. code: the gRPC code name (INVALID_ARGUMENT, NOT_FOUND, "
         "...) or PAYLOAD_TOO_LARGE / UNSUPPORTED_MEDIA_TYPE. A rejected upload carries its "
         "UploadSummary in details.summary."},
        {"required", {"code", "message"}},
        {"properties",
         {{"code", {{"type", "string"}}},
          {"message", {{"type", "string"}}},
          {"details",
           {{"type", "object"},
            {"properties", {{"summary", Ref("fraud.ingest.v1.UploadSummary")}}},
            {"additionalProperties", true}}}}}}},
      {"HealthResponse",
       {{"type", "object"},
        {"properties",
         {{"status", {{"type", "string"}, {"enum", {"ok", "degraded"}}}},
          {"services",
           {{"type", "object"},
            {"description",
             "Service name -> SERVING, NOT_SERVING, UNKNOWN, or the gRPC code name of a failed "
             "check (UNAVAILABLE, DEADLINE_EXCEEDED)"},
            {"additionalProperties", {{"type", "string"}}}}}}}}},
      {"MonitoringResponse",
       {{"type", "object"},
        {"properties",
         {{"services",
           {{"type", "array"},
            {"items",
             {{"type", "object"},
              {"properties",
               {{"name", {{"type", "string"}}},
                {"healthy", {{"type", "boolean"}}},
                {"status", {{"type", "string"}}},
                {"metricsError", {{"type", "string"}}},
                {"metrics",
                 {{"type", "object"},
                  {"description",
                   "fraud_* samples summed over label sets; name{result|code|status=\"v\"} per "
                   "label value; histograms as _sum, _count, _p50, _p99"},
                  {"additionalProperties", {{"type", "number"}}}}}}}}}}},
          {"champion", Ref("fraud.storage.v1.ModelVersion")},
          {"championSince", {{"type", "string"}, {"format", "date-time"}}},
          {"uploads",
           {{"type", "array"},
            {"items",
             {{"type", "object"},
              {"properties",
               {{"id", {{"type", "string"}, {"format", "int64"}}},
                {"fileName", {{"type", "string"}}},
                {"rows", {{"type", "string"}, {"format", "int64"}}},
                {"frauds", {{"type", "string"}, {"format", "int64"}}},
                {"predictedFrauds", {{"type", "string"}, {"format", "int64"}}},
                {"modelVersion", {{"type", "string"}, {"format", "int64"}}},
                {"time", {{"type", "string"}, {"format", "date-time"}}}}}}}}}}}}},
      {"ScoreRows",
       {{"type", "object"},
        {"description",
         "Rows of 30 numbers each: Time, V1..V28, Amount; with explain, the response's "
         "explanations give each row's top_k reasons (signed contributions to the log-odds)"},
        {"required", {"rows"}},
        {"additionalProperties", false},
        {"properties",
         {{"rows",
           {{"type", "array"},
            {"items",
             {{"type", "array"},
              {"minItems", 30},
              {"maxItems", 30},
              {"items", {{"type", "number"}}}}}}},
          {"explain", {{"type", "boolean"}, {"default", false}}},
          {"top_k",
           {{"type", "integer"},
            {"minimum", 0},
            {"maximum", 30},
            {"default", 0},
            {"description", "Reasons per row, largest |contribution| first; 0 means 5"}}},
          {"transactionIds",
           {{"type", "array"},
            {"items", {{"type", "string"}, {"minLength", 1}, {"maxLength", 128}}},
            {"description",
             "One caller-assigned id per row (or none): the scored rows are stored with their "
             "scores before the answer, so feedback can label them later by id; 503 when they "
             "cannot be stored, 409 when an id was stored with other features"}}}}}}},
      {"ScoreRequest", {{"oneOf", {Ref("ScoreRows"), Ref("fraud.inference.v1.PredictRequest")}}}},
      {"CsvUpload",
       {{"type", "string"},
        {"format", "binary"},
        {"description", "A CSV file: Time,V1..V28,Amount[,Class]"}}},
      {"FeedbackCsv",
       {{"type", "string"},
        {"description",
         "Delayed labels as CSV: header upload_id,line,label[,source,note,at] or "
         "transaction_id,label[,source,note,at]; label 0/1, at RFC 3339"}}},
      {"ReviewQueueResponse",
       {{"type", "object"},
        {"description",
         "A page of the review queue (fraud.storage.v1.ListReviewQueueResponse) with each item's "
         "reasons and the population each feature is compared with"},
        {"properties",
         {{"items",
           {{"type", "array"}, {"items", ExplainedRow("fraud.storage.v1.ReviewItem")}}},
          {"nextPageToken", {{"type", "string"}}},
          {"explanationModelVersion",
           {{"type", "string"},
            {"format", "int64"},
            {"description", "The serving version that computed the reasons not stored"}}},
          {"explanationError",
           {{"type", "string"},
            {"description",
             "Why items without a stored explanation carry none (inference unavailable, ...)"}}},
          {"population",
           {{"type", "object"},
            {"description",
             "Per-feature training distribution (quantile bin edges, share of rows per bin) of "
             "the serving model's manifest, else of the version that flagged the first item; "
             "absent when neither has one"},
            {"properties",
             {{"modelVersion", {{"type", "string"}, {"format", "int64"}}},
              {"features",
               {{"type", "array"}, {"items", Ref("fraud.common.v1.FeatureReference")}}}}}}}}}}},
      {"PredictionsPage",
       {{"type", "object"},
        {"description",
         "A page of an upload's predictions (fraud.storage.v1.ListPredictionsResponse) with each "
         "alert's reasons"},
        {"properties",
         {{"predictions",
           {{"type", "array"}, {"items", ExplainedRow("fraud.storage.v1.Prediction")}}},
          {"total", {{"type", "string"}, {"format", "int64"}}},
          {"explanationModelVersion",
           {{"type", "string"},
            {"format", "int64"},
            {"description", "The serving version that computed the reasons not stored"}}},
          {"explanationError",
           {{"type", "string"},
            {"description",
             "Why alerts without a stored explanation carry none (inference unavailable, ...)"}}}}}}},
      {"OpenApiDocument", {{"type", "object"}}},
      {"Text", {{"type", "string"}}},
  };
  return *schemas;
}

class SchemaBuilder {
 public:
  json FieldSchema(const FieldDescriptor* f) {
    if (f->is_map()) {
      const FieldDescriptor* value = f->message_type()->FindFieldByName("value");
      return {{"type", "object"}, {"additionalProperties", ScalarOrRef(value)}};
    }
    json s = ScalarOrRef(f);
    if (f->is_repeated()) return {{"type", "array"}, {"items", s}};
    return s;
  }

  json ScalarOrRef(const FieldDescriptor* f) {
    switch (f->type()) {
      case FieldDescriptor::TYPE_DOUBLE:
      case FieldDescriptor::TYPE_FLOAT:
        return {{"type", "number"}};
      case FieldDescriptor::TYPE_INT64:
      case FieldDescriptor::TYPE_SINT64:
      case FieldDescriptor::TYPE_SFIXED64:
        return {{"type", "string"}, {"format", "int64"}};
      case FieldDescriptor::TYPE_UINT64:
      case FieldDescriptor::TYPE_FIXED64:
        return {{"type", "string"}, {"format", "uint64"}};
      case FieldDescriptor::TYPE_INT32:
      case FieldDescriptor::TYPE_SINT32:
      case FieldDescriptor::TYPE_SFIXED32:
        return {{"type", "integer"}, {"format", "int32"}};
      case FieldDescriptor::TYPE_UINT32:
      case FieldDescriptor::TYPE_FIXED32:
        return {{"type", "integer"}, {"format", "int64"}, {"minimum", 0}};
      case FieldDescriptor::TYPE_BOOL:
        return {{"type", "boolean"}};
      case FieldDescriptor::TYPE_STRING:
        return {{"type", "string"}};
      case FieldDescriptor::TYPE_BYTES:
        return {{"type", "string"}, {"format", "byte"}};
      case FieldDescriptor::TYPE_ENUM: {
        json values = json::array();
        for (int i = 0; i < f->enum_type()->value_count(); ++i) {
          values.push_back(f->enum_type()->value(i)->name());
        }
        return {{"type", "string"}, {"enum", values}};
      }
      case FieldDescriptor::TYPE_MESSAGE:
      case FieldDescriptor::TYPE_GROUP:
        return MessageRef(f->message_type());
    }
    return json::object();
  }

  json MessageRef(const Descriptor* d) {
    const std::string& name = d->full_name();
    if (name == "google.protobuf.Timestamp") return {{"type", "string"}, {"format", "date-time"}};
    if (name == "google.protobuf.Duration") return {{"type", "string"}};
    if (name == "google.protobuf.Struct") return {{"type", "object"}};
    Add(d);
    return Ref(name);
  }

  void Add(const Descriptor* d) {
    if (schemas_.contains(d->full_name())) return;
    schemas_[d->full_name()] = json::object();  // placeholder against recursion
    json props = json::object();
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      json s = FieldSchema(f);
      if (f->containing_oneof() != nullptr) {
        s = {{"allOf", {s}},
             {"description",
              absl::StrCat("one of the '", f->containing_oneof()->name(), "' fields")}};
      }
      props[f->json_name()] = std::move(s);
    }
    schemas_[d->full_name()] = {{"type", "object"}, {"properties", props}};
  }

  // A schema by name: gateway schema or proto message.
  json Named(const std::string& name) {
    auto it = GatewaySchemas().find(name);
    if (it != GatewaySchemas().end()) {
      if (!schemas_.contains(name)) {
        schemas_[name] = it->second;
        Walk(it->second);
      }
      return Ref(name);
    }
    if (const Descriptor* d = FindMessage(name)) return MessageRef(d);
    return {{"type", "object"}};
  }

  json& schemas() { return schemas_; }

 private:
  // Adds every schema a gateway schema refers to.
  void Walk(const json& j) {
    if (j.is_object()) {
      auto ref = j.find("$ref");
      if (ref != j.end() && ref->is_string()) {
        Named(ref->get<std::string>().substr(std::string("#/components/schemas/").size()));
      }
      for (const auto& [k, v] : j.items()) Walk(v);
    } else if (j.is_array()) {
      for (const auto& v : j) Walk(v);
    }
  }

  json schemas_ = json::object();
};

}  // namespace

bool IsKnownSchema(const std::string& name) {
  return GatewaySchemas().count(name) > 0 || FindMessage(name) != nullptr;
}

std::string BuildOpenApiJson(const std::vector<RouteSpec>& routes, const std::string& version) {
  SchemaBuilder schemas;
  schemas.Named("ErrorBody");
  json paths = json::object();
  for (const RouteSpec& r : routes) {
    json op = {{"operationId", r.operation_id}, {"summary", r.summary}, {"tags", {r.tag}}};
    json params = json::array();
    for (const std::string& p : PathParams(r.path)) {
      params.push_back({{"name", p},
                        {"in", "path"},
                        {"required", true},
                        {"schema", {{"type", "integer"}, {"format", "int64"}}}});
    }
    for (const QueryParamSpec& q : r.query) {
      json s = {{"type", q.type}};
      if (!q.values.empty()) s["enum"] = q.values;
      params.push_back(
          {{"name", q.name}, {"in", "query"}, {"description", q.description}, {"schema", s}});
    }
    if (!params.empty()) op["parameters"] = params;
    if (r.access == Access::kAdmin) op["security"] = {{{"bearerAuth", json::array()}}};
    if (r.access == Access::kUploadToken) {
      op["description"] =
          "Requires `Authorization: Bearer <upload token>` when the gateway runs with "
          "--upload_token.";
    }
    if (r.body == BodyKind::kJson) {
      op["requestBody"] = {
          {"required", false},
          {"content", {{"application/json", {{"schema", schemas.Named(r.request_schema)}}}}}};
    } else if (r.body == BodyKind::kJsonOrCsv) {
      json content = json::object();
      content["application/json"] = {{"schema", schemas.Named(r.request_schema)}};
      content["text/csv"] = {{"schema", schemas.Named("FeedbackCsv")}};
      op["requestBody"] = {{"required", true}, {"content", content}};
    } else if (r.body == BodyKind::kCsvUpload) {
      json form_props = json::object();
      form_props["file"] = schemas.Named("CsvUpload");
      form_props["mode"] = {{"type", "string"}, {"enum", {"strict", "lenient"}}};
      form_props["file_name"] = {{"type", "string"}};
      json form = {{"type", "object"}, {"required", {"file"}}, {"properties", form_props}};
      json content = json::object();
      content["text/csv"] = {{"schema", schemas.Named("CsvUpload")}};
      content["multipart/form-data"] = {{"schema", form}};
      op["requestBody"] = {{"required", true}, {"content", content}};
    }
    json ok_content = json::object();
    if (r.response_content_type == "application/json") {
      ok_content["application/json"] = {{"schema", schemas.Named(r.response_schema)}};
    } else {
      ok_content[r.response_content_type] = {{"schema", {{"type", "string"}}}};
    }
    op["responses"] = {
        {"200", {{"description", "OK"}, {"content", ok_content}}},
        {"default",
         {{"description", "Error (status from the gateway's one status table)"},
          {"content", {{"application/json", {{"schema", schemas.Named("ErrorBody")}}}}}}}};
    paths[r.path][absl::AsciiStrToLower(r.method)] = std::move(op);
  }
  json doc = {
      {"openapi", "3.0.3"},
      {"info",
       {{"title", "Fraud detection REST API"},
        {"version", version},
        {"description",
         "REST/JSON gateway onto the fraud detection gRPC services. Bodies use the proto3 JSON "
         "mapping: lowerCamelCase names, int64 as strings, enums by name. Every other GET path "
         "(not under /api/) serves the web UI with a fallback to index.html."}}},
      {"paths", paths},
      {"components",
       {{"schemas", schemas.schemas()},
        {"securitySchemes", {{"bearerAuth", {{"type", "http"}, {"scheme", "bearer"}}}}}}}};
  return doc.dump(1);
}

}  // namespace fraud::gateway
