// The feedback area: delayed labels for stored transactions (storage's RecordFeedback, from a
// CSV or a JSON body), a transaction's label history, and the realised performance of every
// served model version per day or upload (GetRealisedMetrics).
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/common/rpc/feedback_transfer.h"
#include "services/common/rpc/grpc_status.h"
#include "services/gateway/gateway_internal.h"

namespace fraud::gateway {

namespace {

using StorageStub = Gateway::StorageStub;

constexpr char kDefaultActor[] = "admin";
// Largest k passed on (storage enforces its own maximum).
constexpr int64_t kMaxRealisedK = 100000;

std::string Actor(const Call& call) {
  const std::string actor = Param(call.req, "actor");
  return actor.empty() ? kDefaultActor : actor.substr(0, 256);
}

// CSV (Content-Type text/csv): parsed here, streamed to storage in batches; the reply adds each
// unknown row's file line. JSON: a fraud.storage.v1.RecordFeedbackRequest sent as one message.
void RecordFeedback(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  const std::string type = absl::AsciiStrToLower(call.req.get_header_value("Content-Type"));
  grpc::ClientContext ctx;
  gw.Prepare(call, &ctx);
  if (absl::StartsWith(type, "text/csv")) {
    bool given = false;
    absl::StatusOr<rpc::FeedbackSent> sent = rpc::SendFeedbackCsv(
        *gw.storage(), &ctx,
        [&](std::string* chunk) {
          if (given) return false;
          given = true;
          chunk->swap(call.body);
          return true;
        },
        Actor(call));
    if (!sent.ok()) return ReplyError(call, sent.status());
    json doc = json::parse(ToJson(sent->response));
    if (doc.contains("unknownRows")) {
      for (json& row : doc["unknownRows"]) {
        const int64_t r = std::stoll(row.value("row", "0"));
        if (r >= 1 && r <= static_cast<int64_t>(sent->file_lines.size())) {
          row["fileLine"] = std::to_string(sent->file_lines[r - 1]);
        }
      }
    }
    return ReplyJson(call, doc.dump());
  }
  storagepb::RecordFeedbackRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  if (request.actor().empty()) request.set_actor(Actor(call));
  storagepb::RecordFeedbackResponse response;
  auto writer = gw.storage()->RecordFeedback(&ctx, &response);
  writer->Write(request);
  writer->WritesDone();
  ReplyGrpc(call, "storage", "RecordFeedback", writer->Finish(), response);
}

void LabelHistory(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  storagepb::ListLabelHistoryRequest request;
  request.set_upload_id(call.ids[0]);
  request.set_line(call.ids[1]);
  gw.Forward(call, gw.storage(), "storage", "ListLabelHistory", &StorageStub::ListLabelHistory,
             request);
}

void Realised(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  storagepb::GetRealisedMetricsRequest request;
  const std::string by = absl::AsciiStrToLower(Param(call.req, "by"));
  if (by.empty() || by == "day") {
    request.set_by(storagepb::REALISED_PERIOD_DAY);
  } else if (by == "upload") {
    request.set_by(storagepb::REALISED_PERIOD_UPLOAD);
  } else {
    return ReplyError(call, absl::InvalidArgumentError(absl::StrCat(
                                "parameter by must be 'day' or 'upload', got '",
                                by.substr(0, 40), "'")));
  }
  int32_t k = 0;
  if (!QueryInt(call, "k", kMaxRealisedK, &k)) return;
  request.set_k(k);
  // version=3 or version=3,4 (or the parameter repeated).
  for (size_t i = 0; i < call.req.get_param_value_count("version"); ++i) {
    for (absl::string_view part :
         absl::StrSplit(call.req.get_param_value("version", i), ',', absl::SkipEmpty())) {
      absl::StatusOr<int64_t> v = ParseInt("version", std::string(part), 1, kMaxInt64);
      if (!v.ok()) return ReplyError(call, v.status());
      request.add_model_versions(*v);
    }
  }
  gw.Forward(call, gw.storage(), "storage", "GetRealisedMetrics", &StorageStub::GetRealisedMetrics,
             request);
}

}  // namespace

std::vector<Route> internal::FeedbackRoutes() {
  return {
      {.spec = {.method = "POST",
                .path = "/api/v1/feedback",
                .operation_id = "recordFeedback",
                .summary = "Delayed labels for stored transactions: a CSV (text/csv, header "
                           "upload_id,line,label[,source,note,at] or transaction_id,label,...) "
                           "or a JSON RecordFeedbackRequest; invalid rows reject the whole "
                           "request (400, nothing stored), unknown ids are reported",
                .tag = "feedback",
                .access = Access::kAdmin,
                .body = BodyKind::kJsonOrCsv,
                .request_schema = "fraud.storage.v1.RecordFeedbackRequest",
                .response_schema = "fraud.storage.v1.RecordFeedbackResponse",
                .query = {{.name = "actor",
                           .type = "string",
                           .description = "Who sends the labels (default admin)"}}},
       .handler = RecordFeedback},
      {.spec = {.method = "GET",
                .path = "/api/v1/uploads/{id}/rows/{line}/labels",
                .operation_id = "listLabelHistory",
                .summary = "A stored transaction's current label and its label history",
                .tag = "feedback",
                .response_schema = "fraud.storage.v1.ListLabelHistoryResponse"},
       .handler = LabelHistory},
      {.spec = {.method = "GET",
                .path = "/api/v1/monitoring/realised",
                .operation_id = "getRealisedMetrics",
                .summary = "Realised precision, recall, AUPRC, precision@k and unlabelled share "
                           "of every served model version per day of Time or per upload",
                .tag = "monitoring",
                .response_schema = "fraud.storage.v1.GetRealisedMetricsResponse",
                .query = {{.name = "by",
                           .type = "string",
                           .description = "Period: day (of Time, default) or upload",
                           .values = {"day", "upload"}},
                          {.name = "k",
                           .type = "integer",
                           .description = "k of precision@k (default 100)"},
                          {.name = "version",
                           .type = "string",
                           .description = "Only these model versions (comma-separated)"}}},
       .handler = Realised},
  };
}

}  // namespace fraud::gateway
