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
    // Besides rows: "explain" (boolean), "top_k"/"topK" (integer) and "transactionIds"/
    // "transaction_ids" (strings, one per row), as in PredictRequest.
    for (const auto& [name, value] : doc.fields()) {
      if (name == "rows") continue;
      if (name == "explain" && value.kind_case() == google::protobuf::Value::kBoolValue) {
        request.set_explain(value.bool_value());
      } else if ((name == "top_k" || name == "topK") &&
                 value.kind_case() == google::protobuf::Value::kNumberValue &&
                 value.number_value() == static_cast<int32_t>(value.number_value())) {
        request.set_top_k(static_cast<int32_t>(value.number_value()));
      } else if ((name == "transactionIds" || name == "transaction_ids") &&
                 value.kind_case() == google::protobuf::Value::kListValue) {
        for (const google::protobuf::Value& id : value.list_value().values()) {
          if (id.kind_case() != google::protobuf::Value::kStringValue) {
            return ReplyError(call, absl::InvalidArgumentError(absl::StrCat(
                                        "\"", name, "\" must be an array of strings")));
          }
          request.add_transaction_ids(id.string_value());
        }
      } else {
        return ReplyError(call, absl::InvalidArgumentError(absl::StrCat(
                                    "a {\"rows\": [[...], ...]} body takes only \"explain\" "
                                    "(a boolean), \"top_k\" (an integer) and \"transactionIds\" "
                                    "(strings) besides rows; got \"",
                                    name, "\"")));
      }
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
                    "Score rows with the serving model: {\"rows\": [[30 numbers], ...], "
                    "\"explain\"?: bool, \"top_k\"?: 0..30, \"transactionIds\"?: [string per "
                    "row]} or a PredictRequest; with explain, each row's top reasons (signed "
                    "contributions to the log-odds); with transactionIds, the scored rows are "
                    "stored for later feedback before the answer",
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
