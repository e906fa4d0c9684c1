// The replies, the backend call context and the Gateway the route files share.
#include "services/gateway/gateway_internal.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"
#include "services/gateway/http_status.h"

namespace fraud::gateway::internal {

// ---- replies -----------------------------------------------------------------------------------

void ReplyJson(Call& call, const std::string& json_text, int status) {
  call.res.status = status;
  call.res.set_content(json_text, kJsonType);
}

void ReplyProto(Call& call, const google::protobuf::Message& m) { ReplyJson(call, ToJson(m)); }

void ReplyError(Response& res, const absl::Status& status, const std::string& details) {
  const HttpError e = ToHttpError(status);
  res.status = e.http_status;
  res.set_content(ErrorBodyJson(e, details), kJsonType);
}

void ReplyError(Call& call, const absl::Status& status, const std::string& details) {
  ReplyError(call.res, status, details);
}

absl::Status BackendStatus(const char* service, const char* rpc_name, const grpc::Status& s) {
  absl::Status status = rpc::FromGrpcStatus(s);
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kUnimplemented:
      return absl::Status(status.code(),
                          absl::StrCat(service, " ", rpc_name, ": ", status.message()));
    default:
      return status;
  }
}

bool Require(Call& call, const void* stub, const char* service) {
  if (stub != nullptr) return true;
  ReplyError(call, absl::UnavailableError(absl::StrCat(service, " is not configured")));
  return false;
}

absl::Status ParseBody(const Call& call, google::protobuf::Message* m) {
  return FromJson(call.body, m);
}

std::vector<QueryParamSpec> PagingQuery() {
  return {{.name = "page_size",
           .type = "integer",
           .description = "Items per page (server default and maximum apply)"},
          {.name = "before_id",
           .type = "integer",
           .description = "Only items with a smaller id (the previous page's nextBeforeId)"}};
}

// ---- Gateway -----------------------------------------------------------------------------------

Gateway::Gateway(Backends backends, GatewayOptions options, std::string openapi_json)
    : options_(std::move(options)),
      backends_(std::move(backends)),
      openapi_json_(std::move(openapi_json)) {
  if (backends_.ingest) ingest_ = ingestpb::IngestService::NewStub(backends_.ingest);
  if (backends_.storage) storage_ = storagepb::StorageService::NewStub(backends_.storage);
  if (backends_.inference) {
    inference_ = inferencepb::InferenceService::NewStub(backends_.inference);
  }
  if (backends_.training) training_ = trainingpb::TrainingService::NewStub(backends_.training);
  Metrics();
}

void Gateway::FinishShutdown(absl::Duration grace) {
  const absl::Time deadline = absl::Now() + grace;
  while (streams_.load() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  calls_.CancelAll();
}

void Gateway::Prepare(const Call& call, grpc::ClientContext* ctx, absl::Duration timeout) const {
  rpc::SetDeadline(ctx, timeout == absl::ZeroDuration() ? options_.rpc_timeout : timeout);
  ctx->AddMetadata("x-request-id", call.request_id);
  if (call.route->access != Access::kAdmin) return;
  if (!options_.admin_token.empty()) {
    rpc::AddBearerToken(ctx, options_.admin_token);
  } else if (call.req.has_header("Authorization")) {
    ctx->AddMetadata("authorization", call.req.get_header_value("Authorization"));
  }
}

}  // namespace fraud::gateway::internal
