// The uploads area: CSV uploads (the HTTP body streamed to ingest's client stream;
// upload_forwarder.h does the chunking and limits, ingest's answer is mapped back), and the stored
// uploads, their predictions and the data statistics (storage).
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/grpc_status.h"
#include "services/common/rpc/summary_trailer.h"
#include "services/gateway/gateway_internal.h"
#include "services/gateway/http_status.h"
#include "services/gateway/upload_forwarder.h"

namespace fraud::gateway {

namespace {

// The ingest client stream behind an upload.
class IngestUploadCall final : public ChunkSink {
 public:
  IngestUploadCall(ingestpb::IngestService::Stub* stub, bool validate_only, CallRegistry* calls)
      : stub_(stub), validate_only_(validate_only), registered_(calls, &ctx_) {}

  grpc::ClientContext* context() { return &ctx_; }

  bool Open(const ingestpb::UploadOptions& options) override {
    writer_ =
        validate_only_ ? stub_->ValidateOnly(&ctx_, &response_) : stub_->Upload(&ctx_, &response_);
    *request_.mutable_options() = options;
    return writer_->Write(request_);
  }

  bool Write(absl::string_view chunk) override {
    request_.mutable_data()->assign(chunk.data(), chunk.size());
    return writer_->Write(request_);
  }

  bool opened() const { return writer_ != nullptr; }

  enum class End {
    kComplete,  // the whole file was sent: half-close
    kCancel,    // the body was cut off or refused: ingest must store nothing
    kClosed,    // ingest already ended the call: just collect its status
  };
  // Ends the stream as `end` says, then waits for ingest's status.
  grpc::Status Finish(End end) {
    if (writer_ == nullptr) return grpc::Status(grpc::StatusCode::CANCELLED, "never opened");
    if (end == End::kComplete) writer_->WritesDone();
    if (end == End::kCancel) ctx_.TryCancel();
    return writer_->Finish();
  }

  const ingestpb::UploadSummary& summary() const { return response_.summary(); }

  std::optional<ingestpb::UploadSummary> TrailerSummary() const {
    return rpc::SummaryFromTrailers(ctx_);
  }

 private:
  ingestpb::IngestService::Stub* stub_;
  const bool validate_only_;
  grpc::ClientContext ctx_;
  ScopedCall registered_;
  ingestpb::UploadResponse response_;
  ingestpb::UploadRequest request_;
  std::unique_ptr<grpc::ClientWriter<ingestpb::UploadRequest>> writer_;
};

// ---- CSV uploads -------------------------------------------------------------------------------

void UploadOrValidate(Gateway& gw, Call& call, bool validate_only) {
  const GatewayOptions& options = gw.options();
  GatewayMetrics& m = Metrics();
  const Request& req = call.req;
  auto refuse = [&](const absl::Status& s, const char* result) {
    m.uploads.Add({{"result", result}}).Increment();
    Drain(req, call.reader);
    if (s.code() == absl::StatusCode::kUnauthenticated) {
      call.res.set_header("WWW-Authenticate", "Bearer");
    }
    ReplyError(call, s);
  };
  if (!options.upload_token.empty()) {
    const std::string header = req.get_header_value("Authorization");
    absl::Status auth = rpc::CheckAuthorizationHeader(header, options.upload_token);
    if (!auth.ok() && !options.admin_token.empty() &&
        rpc::CheckAuthorizationHeader(header, options.admin_token).ok()) {
      auth = absl::OkStatus();
    }
    if (!auth.ok()) return refuse(auth, "unauthenticated");
  }
  if (!Require(call, gw.ingest(), "ingest")) return;
  storage::v1::UploadMode mode;
  if (absl::Status s = ParseUploadMode(Param(req, "mode"), &mode); !s.ok()) {
    return refuse(s, "invalid");
  }
  const bool multipart = req.is_multipart_form_data();
  const std::string type = absl::AsciiStrToLower(req.get_header_value("Content-Type"));
  const std::string base_type =
      std::string(absl::StripAsciiWhitespace(type.substr(0, type.find(';'))));
  static const std::set<std::string>* kRawTypes =
      new std::set<std::string>{"",
                                "text/csv",
                                "text/plain",
                                "application/csv",
                                "application/octet-stream",
                                "application/vnd.ms-excel",
                                "text/comma-separated-values"};
  if (!multipart && kRawTypes->count(base_type) == 0) {
    return refuse(UnsupportedMediaType(absl::StrCat(
                      "unsupported Content-Type '", base_type.substr(0, 60),
                      "': send the CSV as text/csv or as multipart/form-data field 'file'")),
                  "invalid");
  }
  if (req.get_header_value<uint64_t>("Content-Length") >
      static_cast<uint64_t>(options.max_upload_bytes) + (multipart ? 64 * 1024 : 0)) {
    return refuse(
        PayloadTooLarge(absl::StrCat("the upload (", req.get_header_value("Content-Length"),
                                     " bytes) exceeds the limit of ", options.max_upload_bytes,
                                     " bytes (--max_upload_bytes); nothing was stored")),
        "too_large");
  }
  std::atomic<int>* uploads_in_flight = gw.uploads_in_flight();
  if (uploads_in_flight->fetch_add(1) >= options.max_concurrent_uploads) {
    uploads_in_flight->fetch_sub(1);
    m.refused.Add({{"reason", "concurrent_uploads"}}).Increment();
    call.res.set_header("Retry-After", "5");
    return refuse(absl::ResourceExhaustedError(absl::StrCat("too many concurrent uploads (limit ",
                                                            options.max_concurrent_uploads,
                                                            "); retry later")),
                  "busy");
  }
  m.uploads_in_flight.Increment();
  CounterGuard stream_guard(gw.streams());
  struct Release {
    std::atomic<int>* uploads_in_flight;
    ~Release() {
      uploads_in_flight->fetch_sub(1);
      Metrics().uploads_in_flight.Decrement();
    }
  } release{uploads_in_flight};

  IngestUploadCall sink(gw.ingest(), validate_only, gw.calls());
  gw.Prepare(call, sink.context(), options.upload_timeout);
  if (req.has_header("Authorization")) {
    sink.context()->AddMetadata("authorization", req.get_header_value("Authorization"));
  }
  UploadRequestParams params;
  params.mode = Param(req, "mode");
  params.file_name = Param(req, "file_name");
  params.max_bytes = options.max_upload_bytes;
  params.chunk_bytes = options.upload_chunk_bytes;
  params.multipart = multipart;
  UploadForwarder forwarder(&sink, params);
  bool read_ok;
  if (multipart) {
    read_ok = (*call.reader)(
        [&](const httplib::MultipartFormData& part) {
          return forwarder.OnPartHeader(part.name, part.filename);
        },
        [&](const char* data, size_t n) { return forwarder.OnPartData(data, n); });
  } else {
    read_ok = (*call.reader)([&](const char* data, size_t n) { return forwarder.OnData(data, n); });
  }
  m.upload_bytes.Increment(static_cast<double>(forwarder.bytes()));
  const absl::Status local = forwarder.Finish(read_ok);
  const bool sink_closed = forwarder.sink_closed();
  if (!local.ok() && !sink_closed) {
    // A cut-off, oversized or malformed body: cancel so ingest stores nothing.
    if (sink.opened()) sink.Finish(IngestUploadCall::End::kCancel);
    m.uploads
        .Add({{"result",
               local.code() == absl::StatusCode::kResourceExhausted ? "too_large" : "invalid"}})
        .Increment();
    ReplyError(call, local);
    return;
  }
  const grpc::Status s =
      sink.Finish(sink_closed ? IngestUploadCall::End::kClosed : IngestUploadCall::End::kComplete);
  if (s.ok()) {
    m.uploads.Add({{"result", validate_only ? "validated" : "ok"}}).Increment();
    ReplyProto(call, sink.summary());
    return;
  }
  absl::Status status = BackendStatus("ingest", validate_only ? "ValidateOnly" : "Upload", s);
  std::string details;
  if (std::optional<ingestpb::UploadSummary> summary = sink.TrailerSummary()) {
    details = absl::StrCat("{\"summary\":", ToJson(*summary), "}");
    if (status.code() == absl::StatusCode::kResourceExhausted) {
      status = PayloadTooLarge(std::string(status.message()));
    }
  }
  m.uploads.Add({{"result", rpc::CodeName(status.code())}}).Increment();
  ReplyError(call, status, details);
}

void Upload(Gateway& gw, Call& call) { UploadOrValidate(gw, call, /*validate_only=*/false); }
void Validate(Gateway& gw, Call& call) { UploadOrValidate(gw, call, /*validate_only=*/true); }

// ---- stored uploads (storage) ------------------------------------------------------------------

using StorageStub = Gateway::StorageStub;

void ListUploads(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  storagepb::ListUploadsRequest request;
  if (!QueryPaging(call, &request)) return;
  gw.Forward(call, gw.storage(), "storage", "ListUploads", &StorageStub::ListUploads, request);
}

void GetUpload(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  storagepb::GetUploadRequest request;
  request.set_upload_id(call.ids[0]);
  gw.Forward(call, gw.storage(), "storage", "GetUpload", &StorageStub::GetUpload, request);
}

void ListPredictions(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  storagepb::ListPredictionsRequest request;
  request.set_upload_id(call.ids[0]);
  const std::string order = absl::AsciiStrToLower(Param(call.req, "order"));
  if (order.empty() || order == "line") {
    request.set_order(storagepb::PREDICTION_ORDER_LINE);
  } else if (order == "score") {
    request.set_order(storagepb::PREDICTION_ORDER_SCORE_DESC);
  } else {
    return ReplyError(
        call, absl::InvalidArgumentError(absl::StrCat(
                  "parameter order must be 'line' or 'score', got '", order.substr(0, 40), "'")));
  }
  int64_t offset = 0;
  int32_t page_size = 0;
  int64_t model_version = 0;
  if (!QueryInt(call, "offset", kMaxInt64, &offset) ||
      !QueryInt(call, "page_size", kMaxPageSize, &page_size) ||
      !QueryInt(call, "model_version", kMaxInt64, &model_version)) {
    return;
  }
  request.set_offset(offset);
  request.set_page_size(page_size);
  request.set_model_version(model_version);
  storagepb::ListPredictionsResponse page;
  {
    grpc::ClientContext ctx;
    gw.Prepare(call, &ctx);
    const grpc::Status s = gw.storage()->ListPredictions(&ctx, request, &page);
    if (!s.ok()) return ReplyError(call, BackendStatus("storage", "ListPredictions", s));
  }
  // The alerts' reasons: stored with them at scoring time, else computed now (one batched call).
  json doc = json::parse(ToJson(page));
  std::vector<ExplainableRow> rows;
  for (const storagepb::Prediction& p : page.predictions()) {
    ExplainableRow r;
    r.features = &p.features();
    r.stored = p.has_explanation();
    r.model_version = p.model_version();
    r.wanted = p.decision();
    rows.push_back(r);
  }
  if (!rows.empty()) AttachExplanations(gw, call, rows, &doc["predictions"], &doc);
  ReplyJson(call, doc.dump());
}

void DataStats(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  storagepb::GetDataStatsRequest request;
  int64_t after_upload_id = 0;
  if (!QueryInt(call, "after_upload_id", kMaxInt64, &after_upload_id)) return;
  request.set_after_upload_id(after_upload_id);
  gw.Forward(call, gw.storage(), "storage", "GetDataStats", &StorageStub::GetDataStats, request);
}

// `spec` (path, operation id, summary) as a CSV upload route: the two differ only in what ingest
// does with the file.
RouteSpec CsvUpload(RouteSpec spec) {
  spec.method = "POST";
  spec.tag = "uploads";
  spec.access = Access::kUploadToken;
  spec.body = BodyKind::kCsvUpload;
  spec.request_schema = "CsvUpload";
  spec.response_schema = "fraud.ingest.v1.UploadSummary";
  spec.query = {{.name = "mode",
                 .type = "string",
                 .description = "strict (default: any invalid row rejects the file) or lenient "
                                "(skip and report invalid rows)",
                 .values = {"strict", "lenient"}},
                {.name = "file_name",
                 .type = "string",
                 .description = "Name recorded with the upload (default: the multipart filename)"}};
  return spec;
}

}  // namespace

std::vector<Route> internal::UploadRoutes() {
  return {
      {.spec = CsvUpload(
           {.path = "/api/v1/uploads",
            .operation_id = "upload",
            .summary = "Upload a CSV (streamed to ingest): validated, stored, scored, summarised"}),
       .handler = Upload},
      {.spec = CsvUpload({.path = "/api/v1/uploads:validate",
                          .operation_id = "validateUpload",
                          .summary = "Validate a CSV without storing or scoring it"}),
       .handler = Validate},
      {.spec = {.method = "GET",
                .path = "/api/v1/uploads",
                .operation_id = "listUploads",
                .summary = "Uploads, newest first",
                .tag = "uploads",
                .response_schema = "fraud.storage.v1.ListUploadsResponse",
                .query = PagingQuery()},
       .handler = ListUploads},
      {.spec = {.method = "GET",
                .path = "/api/v1/uploads/{id}",
                .operation_id = "getUpload",
                .summary = "One upload (summaryJson holds its summary)",
                .tag = "uploads",
                .response_schema = "fraud.storage.v1.GetUploadResponse"},
       .handler = GetUpload},
      {.spec = {.method = "GET",
                .path = "/api/v1/uploads/{id}/predictions",
                .operation_id = "listPredictions",
                .summary = "Stored predictions of an upload, by line or by descending score; "
                           "each alert with its reasons: the explanation stored with it by the "
                           "scoring version (explanationSource stored), else its top 5 reasons "
                           "explained by the serving model in one batched call (computed; left "
                           "out with explanationError when inference is unavailable)",
                .tag = "uploads",
                .response_schema = "PredictionsPage",
                .query = {{.name = "order",
                           .type = "string",
                           .description = "line (default) or score (highest first)",
                           .values = {"line", "score"}},
                          {.name = "offset", .type = "integer", .description = "Rows to skip"},
                          {.name = "page_size",
                           .type = "integer",
                           .description = "Rows per page (default 100, max 1000)"},
                          {.name = "model_version",
                           .type = "integer",
                           .description = "Predictions of this version (default: the upload's)"}}},
       .handler = ListPredictions},
      {.spec = {.method = "GET",
                .path = "/api/v1/data/stats",
                .operation_id = "getDataStats",
                .summary = "Counts of stored rows, labels and frauds",
                .tag = "uploads",
                .response_schema = "fraud.storage.v1.GetDataStatsResponse",
                .query = {{.name = "after_upload_id",
                           .type = "integer",
                           .description = "Count only uploads with a larger id"}}},
       .handler = DataStats},
  };
}

}  // namespace fraud::gateway
