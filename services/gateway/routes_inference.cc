// The inference area: scoring rows with the serving model, the model inference serves, reloads.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "services/gateway/gateway_internal.h"

namespace fraud::gateway {

namespace {

using InferenceStub = Gateway::InferenceStub;

void Score(Gateway& gw, Call& call) {
  if (!Require(call, gw.inference(), "inference")) return;
  inferencepb::PredictRequest request;
  google::protobuf::Struct doc;
  google::protobuf::util::JsonParseOptions any;
  any.ignore_unknown_fields = true;
  const bool simple = google::protobuf::util::JsonStringToMessage(call.body, &doc, any).ok() &&
                      doc.fields().count("rows") > 0 &&
                      doc.fields().at("rows").kind_case() == google::protobuf::Value::kListValue;
  if (simple) {
    if (doc.fields_size() != 1) {
      return ReplyError(
          call, absl::InvalidArgumentError("a {\"rows\": [[...], ...]} body takes no other field"));
    }
    const auto& rows = doc.fields().at("rows").list_value().values();
    common::v1::TransactionBatch* batch = request.mutable_rows();
    batch->set_num_rows(static_cast<uint32_t>(rows.size()));
    batch->mutable_features()->Reserve(rows.size() * 30);
    for (int i = 0; i < rows.size(); ++i) {
      const google::protobuf::Value& row = rows.Get(i);
      if (row.kind_case() != google::protobuf::Value::kListValue ||
          row.list_value().values_size() != 30) {
        return ReplyError(
            call, absl::InvalidArgumentError(absl::StrCat(
                      "rows[", i, "] must be an array of 30 numbers (Time, V1..V28, Amount)")));
      }
      for (int j = 0; j < 30; ++j) {
        const google::protobuf::Value& v = row.list_value().values(j);
        if (v.kind_case() != google::protobuf::Value::kNumberValue) {
          return ReplyError(call, absl::InvalidArgumentError(
                                      absl::StrCat("rows[", i, "][", j, "] is not a number")));
        }
        batch->add_features(v.number_value());
      }
    }
  } else if (absl::Status s = ParseBody(call, &request); !s.ok()) {
    return ReplyError(
        call, absl::InvalidArgumentError(absl::StrCat(
                  s.message(), " (expected {\"rows\": [[30 numbers], ...]} or a PredictRequest)")));
  }
  if (request.rows().num_rows() == 0) {
    return ReplyError(call, absl::InvalidArgumentError("no rows to score"));
  }
  gw.Forward(call, gw.inference(), "inference", "Predict", &InferenceStub::Predict, request);
}

void InferenceModel(Gateway& gw, Call& call) {
  if (!Require(call, gw.inference(), "inference")) return;
  gw.Forward(call, gw.inference(), "inference", "GetModel", &InferenceStub::GetModel,
             inferencepb::GetModelRequest());
}

void Reload(Gateway& gw, Call& call) {
  if (!Require(call, gw.inference(), "inference")) return;
  inferencepb::ReloadRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  gw.Forward(call, gw.inference(), "inference", "Reload", &InferenceStub::Reload, request);
}

}  // namespace

std::vector<Route> internal::InferenceRoutes() {
  return {
      {.spec = {.method = "POST",
                .path = "/api/v1/score",
                .operation_id = "score",
                .summary =
                    "Score rows with the serving model: {\"rows\": [[30 numbers], ...]} or a "
                    "PredictRequest",
                .tag = "inference",
                .body = BodyKind::kJson,
                .request_schema = "ScoreRequest",
                .response_schema = "fraud.inference.v1.PredictResponse"},
       .handler = Score},
      {.spec = {.method = "GET",
                .path = "/api/v1/inference/model",
                .operation_id = "getServingModel",
                .summary = "The model inference serves",
                .tag = "inference",
                .response_schema = "fraud.inference.v1.GetModelResponse"},
       .handler = InferenceModel},
      {.spec = {.method = "POST",
                .path = "/api/v1/inference/reload",
                .operation_id = "reloadModel",
                .summary = "Load a version (0 = the champion) into inference",
                .tag = "inference",
                .access = Access::kAdmin,
                .body = BodyKind::kJson,
                .request_schema = "fraud.inference.v1.ReloadRequest",
                .response_schema = "fraud.inference.v1.ReloadResponse"},
       .handler = Reload},
  };
}

}  // namespace fraud::gateway
