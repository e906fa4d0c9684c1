// The upload routes: the HTTP body streamed to ingest's client stream (upload_forwarder.h does
// the chunking and limits), ingest's answer mapped back.
#include "services/gateway/gateway_internal.h"

#include "services/common/rpc/summary_trailer.h"

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

}  // namespace

// ---- uploads -----------------------------------------------------------------------------------

void GatewayServer::Impl::UploadOrValidate(Call& call, bool validate_only) {
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
  if (!options_.upload_token.empty()) {
    const std::string header = req.get_header_value("Authorization");
    absl::Status auth = rpc::CheckAuthorizationHeader(header, options_.upload_token);
    if (!auth.ok() && !options_.admin_token.empty() &&
        rpc::CheckAuthorizationHeader(header, options_.admin_token).ok()) {
      auth = absl::OkStatus();
    }
    if (!auth.ok()) return refuse(auth, "unauthenticated");
  }
  if (!Require(call, ingest_.get(), "ingest")) return;
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
      static_cast<uint64_t>(options_.max_upload_bytes) + (multipart ? 64 * 1024 : 0)) {
    return refuse(
        PayloadTooLarge(absl::StrCat("the upload (", req.get_header_value("Content-Length"),
                                     " bytes) exceeds the limit of ", options_.max_upload_bytes,
                                     " bytes (--max_upload_bytes); nothing was stored")),
        "too_large");
  }
  if (uploads_in_flight_.fetch_add(1) >= options_.max_concurrent_uploads) {
    uploads_in_flight_.fetch_sub(1);
    m.refused.Add({{"reason", "concurrent_uploads"}}).Increment();
    call.res.set_header("Retry-After", "5");
    return refuse(absl::ResourceExhaustedError(absl::StrCat("too many concurrent uploads (limit ",
                                                            options_.max_concurrent_uploads,
                                                            "); retry later")),
                  "busy");
  }
  m.uploads_in_flight.Increment();
  CounterGuard stream_guard(&streams_);
  struct Release {
    Impl* self;
    ~Release() {
      self->uploads_in_flight_.fetch_sub(1);
      Metrics().uploads_in_flight.Decrement();
    }
  } release{this};

  IngestUploadCall sink(ingest_.get(), validate_only, &calls_);
  Prepare(call, sink.context(), false, options_.upload_timeout);
  if (req.has_header("Authorization")) {
    sink.context()->AddMetadata("authorization", req.get_header_value("Authorization"));
  }
  UploadRequestParams params;
  params.mode = Param(req, "mode");
  params.file_name = Param(req, "file_name");
  params.max_bytes = options_.max_upload_bytes;
  params.chunk_bytes = options_.upload_chunk_bytes;
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
  absl::Status status = Backend("ingest", validate_only ? "ValidateOnly" : "Upload", s);
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

}  // namespace fraud::gateway
