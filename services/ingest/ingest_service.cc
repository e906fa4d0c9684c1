#include "services/ingest/ingest_service.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/core/log.h"
#include "services/common/core/metrics.h"
#include "services/common/core/status_macros.h"
#include "services/common/csv/csv_reader.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"
#include "services/common/rpc/summary_trailer.h"
#include "services/ingest/grpc_clients.h"
#include "services/ingest/upload_session.h"

namespace fraud::ingest {
namespace {

constexpr size_t kMaxFileNameBytes = 255;

struct IngestMetrics {
  prometheus::Family<prometheus::Counter>& uploads =
      metrics::Counter("fraud_ingest_uploads_total", "Uploads and validations by RPC and outcome");
  prometheus::Family<prometheus::Counter>& rows = metrics::Counter(
      "fraud_ingest_rows_total",
      "Data rows by outcome: stored, duplicate (already stored), rejected (invalid), "
      "discarded (valid but the upload failed)");
  prometheus::Counter& bytes =
      metrics::Counter("fraud_ingest_bytes_total", "CSV bytes received").Add({});
  prometheus::Family<prometheus::Histogram>& duration = metrics::Histogram(
      "fraud_ingest_upload_duration_seconds", "Wall time of an upload or validation");
  prometheus::Family<prometheus::Histogram>& stages = metrics::Histogram(
      "fraud_ingest_upload_stage_seconds",
      "Seconds from a stored upload's first byte to the end of each stage (UploadStages)");
  // The drift alarm (deploy/prometheus/rules.yml): features the latest stored upload's data
  // report flagged as drifted against the champion's training data (only uploads large enough
  // for a verdict update it).
  prometheus::Gauge& drift_flagged =
      metrics::Gauge("fraud_ingest_drift_flagged_features",
                     "Features flagged as drifted in the latest stored upload with a drift verdict")
          .Add({});
};

IngestMetrics& Metrics() {
  static auto* m = new IngestMetrics();
  return *m;
}

const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800};
  return *b;
}

// The stages of a stored upload into fraud_ingest_upload_stage_seconds{stage}.
void ObserveStages(const v1::UploadStages& st) {
  const std::pair<const char*, double> stages[] = {
      {"header_validated", st.header_validated()}, {"first_batch_scored", st.first_batch_scored()},
      {"last_batch_sent", st.last_batch_sent()},   {"summary_computed", st.summary_computed()},
      {"last_copy", st.last_copy()},               {"committed", st.committed()},
      {"summary_returned", st.summary_returned()}};
  for (const auto& [name, seconds] : stages) {
    if (seconds > 0) Metrics().stages.Add({{"stage", name}}, DurationBuckets()).Observe(seconds);
  }
}

std::string ResultLabel(const absl::Status& s, bool store, const v1::UploadSummary* summary) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      if (!store) return "validated";
      return summary != nullptr && summary->duplicate_of() != 0 ? "duplicate" : "stored";
    case absl::StatusCode::kInvalidArgument:
      return "invalid";
    case absl::StatusCode::kResourceExhausted:
      return "too_large";
    case absl::StatusCode::kCancelled:
      return "cancelled";
    case absl::StatusCode::kUnauthenticated:
      return "unauthenticated";
    default:
      return "failed";
  }
}

// The one log line of an upload: counts and ids, never feature values.
struct UploadLogLine {
  const char* rpc;
  const std::string& request_id;
  const std::string& result;
  const v1::UploadSummary& counts;
  const absl::Status& status;
  double seconds;
};

std::ostream& operator<<(std::ostream& os, const UploadLogLine& l) {
  os << l.rpc << " done" << Kv("rpc", l.rpc) << Kv("request_id", l.request_id)
     << Kv("result", l.result) << Kv("bytes", l.counts.bytes()) << Kv("rows", l.counts.rows_total())
     << Kv("accepted", l.counts.rows_accepted()) << Kv("rejected", l.counts.rows_rejected())
     << Kv("upload_id", l.counts.upload_id()) << Kv("duplicate_of", l.counts.duplicate_of())
     << Kv("model_version", l.counts.model_version())
     << Kv("ms", static_cast<int64_t>(l.seconds * 1000));
  if (!l.status.ok()) os << Kv("error", l.status.ToString());
  return os;
}

// The client metadata value under `key` ("" when absent). rpc::RequestId and
// rpc::CheckBearerToken take the sync API's grpc::ServerContext; these calls have a
// CallbackServerContext, so the two lookups are done here on the common base class.
std::string Metadata(const grpc::ServerContextBase& ctx, const char* key,
                     size_t max_bytes = std::string::npos) {
  const auto& md = ctx.client_metadata();
  auto it = md.find(key);
  if (it == md.end()) return "";
  return std::string(it->second.data(), std::min(it->second.size(), max_bytes));
}

constexpr size_t kMaxRequestIdBytes = 64;  // as rpc::RequestId

// Why the stream ended early, as the status the client gets; OK when it ended normally.
absl::Status EndedEarly(const UploadCall& call, absl::Duration idle_timeout) {
  if (call.end() == UploadCall::End::kInterrupted) {
    // Seconds, as the flag gives them ("60 s", "0.5 s"); absl::FormatDuration would say "1m".
    return absl::DeadlineExceededError(absl::StrCat("no data arrived for ",
                                                    absl::ToDoubleSeconds(idle_timeout),
                                                    " s: the stalled upload was cut off; "
                                                    "nothing stored"));
  }
  if (call.end() == UploadCall::End::kCancelled || call.context()->IsCancelled()) {
    return absl::CancelledError("the client cancelled the upload; nothing stored");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> SanitizeFileName(const std::string& name) {
  if (!csv::IsValidUtf8(name)) {
    return absl::InvalidArgumentError("options.file_name is not valid UTF-8");
  }
  std::string out = name;
  for (char& c : out) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) c = '_';
  }
  if (out.size() > kMaxFileNameBytes) {
    size_t cut = kMaxFileNameBytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
  }
  return out;
}

IngestService::IngestService(std::shared_ptr<grpc::ChannelInterface> storage,
                             std::shared_ptr<grpc::ChannelInterface> inference,
                             IngestOptions options)
    : options_(std::move(options)),
      storage_(storage::v1::StorageService::NewStub(storage)),
      inference_(inference::v1::InferenceService::NewStub(inference)),
      watchdog_(options_.idle_timeout),
      workers_(options_.max_concurrent_uploads) {
  Metrics();
}

grpc::ServerReadReactor<v1::UploadRequest>* IngestService::Upload(grpc::CallbackServerContext* ctx,
                                                                  v1::UploadResponse* response) {
  return Start(ctx, response, /*store=*/true);
}

grpc::ServerReadReactor<v1::UploadRequest>* IngestService::ValidateOnly(
    grpc::CallbackServerContext* ctx, v1::UploadResponse* response) {
  return Start(ctx, response, /*store=*/false);
}

grpc::ServerReadReactor<v1::UploadRequest>* IngestService::Start(grpc::CallbackServerContext* ctx,
                                                                 v1::UploadResponse* response,
                                                                 bool store) {
  auto* call = new UploadCall(ctx, response);
  if (workers_.TrySubmit([this, call, store] { call->Complete(Run(call, store)); })) return call;
  // Every worker is busy. Refusing (instead of queueing) keeps the sync server's behaviour: a
  // busy RESOURCE_EXHAUSTED without a summary trailer, which the gateway answers as 429.
  const char* rpc_name = store ? "Upload" : "ValidateOnly";
  std::string request_id = Metadata(*ctx, "x-request-id", kMaxRequestIdBytes);
  Metrics().uploads.Add({{"rpc", rpc_name}, {"result", "busy"}}).Increment();
  FRAUD_LOG(WARNING) << rpc_name << " refused" << Kv("rpc", rpc_name)
                     << Kv("request_id", request_id) << Kv("result", "busy")
                     << Kv("max_concurrent_uploads", workers_.max_workers());
  call->Complete(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                   absl::StrCat("ingest is busy: ", workers_.max_workers(),
                                " uploads at once (--max_concurrent_uploads); retry later")));
  return call;
}

// The phases of one call, in order: Authorize, ReadOptions (the first message), the session's
// Start, StreamChunks (the data), FinishUpload (last batch, metrics, commit), Report. Each phase
// runs only when the ones before it succeeded; Report always runs.
grpc::Status IngestService::Run(UploadCall* call, bool store) {
  CallReport report;
  report.start = absl::Now();
  report.rpc_name = store ? "Upload" : "ValidateOnly";
  report.store = store;
  report.request_id = Metadata(*call->context(), "x-request-id", kMaxRequestIdBytes);
  if (report.request_id.empty()) report.request_id = rpc::NewRequestId();

  // Everything below funnels into `status`; the session (when one exists) reports the counts.
  std::optional<GrpcScorer> scorer;
  std::optional<GrpcStorageSink> sink;
  std::optional<UploadSession> session;
  // From the first read on: a client that opens the stream and sends nothing also holds a worker.
  IdleWatchdog::Lease lease = watchdog_.Watch([call] { call->Interrupt(); });

  absl::Status status = Authorize(*call, store);
  absl::StatusOr<UploadSessionOptions> so = absl::UnknownError("options not read");
  if (status.ok()) {
    so = ReadOptions(call, &lease);
    status = so.status();
  }
  if (status.ok()) {
    if (store) {
      scorer.emplace(inference_.get(), report.request_id, options_.rpc_timeout);
      sink.emplace(storage_.get(), report.request_id, options_.upload_timeout, call->context());
    }
    session.emplace(*so, scorer ? &*scorer : nullptr, sink ? &*sink : nullptr);
    status = session->Start();
    if (status.ok()) status = StreamChunks(call, &*session, &lease);
    if (status.ok()) status = FinishUpload(&*session, call->response());
  }
  Report(report, call, session.has_value() ? &*session : nullptr, status);
  return rpc::ToGrpcStatus(status);
}

absl::Status IngestService::Authorize(const UploadCall& call, bool store) const {
  if (!store) return absl::OkStatus();  // ValidateOnly needs no token
  return rpc::CheckAuthorizationHeader(Metadata(*call.context(), "authorization"),
                                       options_.upload_token);
}

absl::StatusOr<UploadSessionOptions> IngestService::ReadOptions(UploadCall* call,
                                                                IdleWatchdog::Lease* lease) {
  v1::UploadRequest request;
  lease->Waiting();
  const bool got = call->Read(&request);
  lease->Busy();
  if (!got) {
    FRAUD_RETURN_IF_ERROR(EndedEarly(*call, watchdog_.idle_timeout()));
    return absl::InvalidArgumentError(
        "empty request stream: the first message must carry the upload options");
  }
  if (!request.has_options()) {
    return absl::InvalidArgumentError("the first message must carry the upload options, not data");
  }
  const v1::UploadOptions& o = request.options();
  if (o.max_errors() < 0 || o.top_k() < 0) {
    return absl::InvalidArgumentError("options.max_errors and options.top_k must be >= 0");
  }
  if (!storage::v1::UploadMode_IsValid(o.mode())) {
    return absl::InvalidArgumentError(absl::StrCat("unknown options.mode ", o.mode()));
  }
  FRAUD_ASSIGN_OR_RETURN(std::string name, SanitizeFileName(o.file_name()));
  UploadSessionOptions so;
  so.file_name = std::move(name);
  so.mode = o.mode() == storage::v1::UPLOAD_MODE_LENIENT ? storage::v1::UPLOAD_MODE_LENIENT
                                                         : storage::v1::UPLOAD_MODE_STRICT;
  so.batch_rows = options_.batch_rows;
  so.max_upload_bytes = options_.max_upload_bytes;
  so.max_errors = o.max_errors() > 0 ? o.max_errors() : options_.max_errors;
  so.top_k = o.top_k() > 0 ? o.top_k() : options_.top_k;
  so.explain_top_k = options_.explain_top_k;
  return so;
}

absl::Status IngestService::StreamChunks(UploadCall* call, UploadSession* session,
                                         IdleWatchdog::Lease* lease) {
  v1::UploadRequest request;
  absl::Status status;
  while (status.ok()) {
    lease->Waiting();
    if (!call->Read(&request)) break;
    lease->Busy();
    if (call->context()->IsCancelled()) break;
    if (request.has_options()) {
      session->Abort();
      return absl::InvalidArgumentError("options may only be sent in the first message");
    }
    status = session->Feed(request.data());
  }
  lease->Busy();
  FRAUD_RETURN_IF_ERROR(status);
  // Read() also returns false when the client cancelled or the watchdog cut the stream off:
  // never commit a cut-off file.
  status = EndedEarly(*call, watchdog_.idle_timeout());
  if (!status.ok()) session->Abort();
  return status;
}

absl::Status IngestService::FinishUpload(UploadSession* session, v1::UploadResponse* response) {
  FRAUD_ASSIGN_OR_RETURN(*response->mutable_summary(), session->Finish());
  return absl::OkStatus();
}

void IngestService::Report(const CallReport& report, UploadCall* call,
                           const UploadSession* session, const absl::Status& status) {
  IngestMetrics& m = Metrics();
  grpc::CallbackServerContext* ctx = call->context();
  const bool idle_cut_off = call->end() == UploadCall::End::kInterrupted &&
                            status.code() == absl::StatusCode::kDeadlineExceeded;
  const v1::UploadSummary* summary = status.ok() ? &call->response()->summary() : nullptr;
  v1::UploadSummary partial;
  if (!status.ok() && session != nullptr) {
    partial = session->PartialSummary();
    // The summary travels only with the caller's own problems: invalid rows, or a file over the
    // size limit. A RESOURCE_EXHAUSTED from a busy downstream (storage's pool) carries none, so
    // the gateway answers 429 "busy", never 413 "too large".
    if (status.code() == absl::StatusCode::kInvalidArgument ||
        session->failure() == UploadFailure::kTooLarge) {
      ctx->AddTrailingMetadata(rpc::kSummaryTrailer, rpc::SerializeSummaryForTrailer(partial));
    }
  }
  const v1::UploadSummary& counts = summary != nullptr ? *summary : partial;
  const std::string result =
      idle_cut_off ? "idle_timeout" : ResultLabel(status, report.store, summary);
  m.uploads.Add({{"rpc", report.rpc_name}, {"result", result}}).Increment();
  m.bytes.Increment(static_cast<double>(counts.bytes()));
  if (report.store) {
    const char* outcome =
        !status.ok() ? "discarded" : (counts.duplicate_of() != 0 ? "duplicate" : "stored");
    m.rows.Add({{"result", outcome}}).Increment(static_cast<double>(counts.rows_accepted()));
    m.rows.Add({{"result", "rejected"}}).Increment(static_cast<double>(counts.rows_rejected()));
    if (summary != nullptr) {
      ObserveStages(summary->stages());
      if (summary->duplicate_of() == 0 && summary->report().drift_size() > 0 &&
          summary->rows_accepted() >= summary->report().drift_min_rows()) {
        m.drift_flagged.Set(summary->report().drift_flagged());
      }
    }
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - report.start);
  m.duration.Add({{"rpc", report.rpc_name}}, DurationBuckets()).Observe(seconds);

  const UploadLogLine line{report.rpc_name, report.request_id, result, counts, status, seconds};
  const bool server_side_failure = !status.ok() && !idle_cut_off &&
                                   status.code() != absl::StatusCode::kInvalidArgument &&
                                   status.code() != absl::StatusCode::kResourceExhausted &&
                                   status.code() != absl::StatusCode::kCancelled &&
                                   status.code() != absl::StatusCode::kUnauthenticated;
  if (server_side_failure) {
    FRAUD_LOG(WARNING) << line;
  } else {
    FRAUD_LOG(INFO) << line;
  }
}

}  // namespace fraud::ingest
