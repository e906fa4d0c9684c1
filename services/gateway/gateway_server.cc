#include "services/gateway/gateway_server.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "fraud/inference/v1/inference.grpc.pb.h"
#include "fraud/ingest/v1/ingest.grpc.pb.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "fraud/training/v1/training.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "services/common/core/log.h"
#include "services/common/core/metrics.h"
#include "services/common/csv/synthetic_generator.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"
#include "services/gateway/http_status.h"
#include "services/gateway/json_util.h"
#include "services/gateway/openapi.h"
#include "services/gateway/prometheus_text.h"
#include "services/gateway/rate_limiter.h"
#include "services/gateway/static_files.h"
#include "services/gateway/upload_forwarder.h"

namespace fraud::gateway {
namespace {

using httplib::ContentReader;
using httplib::DataSink;
using httplib::Request;
using httplib::Response;
using nlohmann::json;

namespace ingestpb = ::fraud::ingest::v1;
namespace storagepb = ::fraud::storage::v1;
namespace inferencepb = ::fraud::inference::v1;
namespace trainingpb = ::fraud::training::v1;
namespace healthpb = ::grpc::health::v1;

constexpr char kJsonType[] = "application/json";
constexpr char kSummaryTrailer[] = "fraud-upload-summary-bin";
constexpr char kApiPrefix[] = "/api/";

struct GatewayMetrics {
  prometheus::Family<prometheus::Counter>& requests = metrics::Counter(
      "fraud_gateway_http_requests_total", "HTTP requests by route pattern, method and status");
  prometheus::Family<prometheus::Histogram>& latency =
      metrics::Histogram("fraud_gateway_http_request_duration_seconds",
                         "Time to handle an HTTP request (streamed bodies included), by route");
  prometheus::Counter& upload_bytes =
      metrics::Counter("fraud_gateway_upload_bytes_total", "CSV bytes received by upload routes")
          .Add({});
  prometheus::Gauge& uploads_in_flight =
      metrics::Gauge("fraud_gateway_uploads_in_flight", "Uploads being streamed to ingest").Add({});
  prometheus::Family<prometheus::Counter>& uploads =
      metrics::Counter("fraud_gateway_uploads_total", "Upload requests by result");
  prometheus::Family<prometheus::Counter>& refused = metrics::Counter(
      "fraud_gateway_refused_total", "Requests refused by a gateway limit, by reason");
  prometheus::Gauge& event_streams =
      metrics::Gauge("fraud_gateway_event_streams", "Open Server-Sent Event streams").Add({});
};

GatewayMetrics& Metrics() {
  static auto* m = new GatewayMetrics();
  return *m;
}

// Backend call contexts that Shutdown may cancel.
class CallRegistry {
 public:
  void Add(grpc::ClientContext* ctx) {
    absl::MutexLock l(&mu_);
    calls_.insert(ctx);
    if (cancelled_) ctx->TryCancel();
  }
  void Remove(grpc::ClientContext* ctx) {
    absl::MutexLock l(&mu_);
    calls_.erase(ctx);
  }
  void CancelAll() {
    absl::MutexLock l(&mu_);
    cancelled_ = true;
    for (grpc::ClientContext* c : calls_) c->TryCancel();
  }

 private:
  absl::Mutex mu_;
  std::set<grpc::ClientContext*> calls_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

class ScopedCall {
 public:
  ScopedCall(CallRegistry* r, grpc::ClientContext* ctx) : r_(r), ctx_(ctx) { r_->Add(ctx_); }
  ~ScopedCall() { r_->Remove(ctx_); }
  ScopedCall(const ScopedCall&) = delete;
  ScopedCall& operator=(const ScopedCall&) = delete;

 private:
  CallRegistry* r_;
  grpc::ClientContext* ctx_;
};

class CounterGuard {
 public:
  explicit CounterGuard(std::atomic<int>* c) : c_(c) { c_->fetch_add(1); }
  ~CounterGuard() { c_->fetch_sub(1); }
  CounterGuard(const CounterGuard&) = delete;
  CounterGuard& operator=(const CounterGuard&) = delete;

 private:
  std::atomic<int>* c_;
};

bool SaneRequestId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
        c != ':') {
      return false;
    }
  }
  return true;
}

// One request being handled by a route.
struct Call {
  const Request& req;
  Response& res;
  const ContentReader* reader = nullptr;
  const RouteSpec* route = nullptr;
  std::string request_id;
  // JSON routes: the whole body (bounded by --max_json_bytes).
  std::string body;
  // Integer path parameters, in pattern order.
  std::vector<int64_t> ids;
  // Label for the upload result metric.
  std::string upload_result;
};

// After an early answer, reads and drops at most `limit` bytes of the body so a client that sends
// the whole body before reading (browsers do) gets the answer rather than a connection reset.
constexpr int64_t kDrainBytes = 32 << 20;

void Drain(const Request& req, const ContentReader* reader, int64_t limit = kDrainBytes) {
  if (reader == nullptr) return;
  int64_t n = 0;
  auto count = [&](const char*, size_t len) {
    n += static_cast<int64_t>(len);
    return n <= limit;
  };
  if (req.is_multipart_form_data()) {
    (*reader)([](const httplib::MultipartFormData&) { return true; }, count);
  } else {
    (*reader)(count);
  }
}

std::string Param(const Request& req, const char* name) {
  return req.has_param(name) ? req.get_param_value(name) : "";
}

std::string HostPort(const std::string& target, int* port) {
  const size_t colon = target.rfind(':');
  if (colon == std::string::npos) return "";
  int p = 0;
  if (!absl::SimpleAtoi(target.substr(colon + 1), &p)) return "";
  *port = p;
  std::string host = target.substr(0, colon);
  if (absl::StartsWith(host, "dns:///")) host = host.substr(7);
  if (absl::StartsWith(host, "ipv4:")) host = host.substr(5);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host;
}

std::string SseEvent(const std::string& event, const std::string& data) {
  std::string out = absl::StrCat("event: ", event, "\n");
  for (absl::string_view line : absl::StrSplit(data, '\n')) {
    absl::StrAppend(&out, "data: ", line, "\n");
  }
  out += "\n";
  return out;
}

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
    const auto& md = ctx_.GetServerTrailingMetadata();
    auto it = md.find(kSummaryTrailer);
    if (it == md.end()) return std::nullopt;
    ingestpb::UploadSummary s;
    if (!s.ParseFromArray(it->second.data(), static_cast<int>(it->second.size()))) {
      return std::nullopt;
    }
    return s;
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

class GatewayServer::Impl {
 public:
  using Server = httplib::Server;
  using Handler = void (Impl::*)(Call&);
  struct Route {
    RouteSpec spec;
    Handler handler;
  };

  Impl(Backends backends, GatewayOptions options)
      : options_(std::move(options)),
        backends_(std::move(backends)),
        static_files_(options_.web_root),
        limiter_(options_.rate_limit_rps, options_.rate_limit_burst > 0
                                              ? options_.rate_limit_burst
                                              : 2 * options_.rate_limit_rps) {
    if (backends_.ingest) ingest_ = ingestpb::IngestService::NewStub(backends_.ingest);
    if (backends_.storage) storage_ = storagepb::StorageService::NewStub(backends_.storage);
    if (backends_.inference) {
      inference_ = inferencepb::InferenceService::NewStub(backends_.inference);
    }
    if (backends_.training) training_ = trainingpb::TrainingService::NewStub(backends_.training);
    openapi_ = BuildOpenApiJson(Specs(), options_.version);
    Metrics();
  }

  ~Impl() { Shutdown(absl::ZeroDuration()); }

  static const std::vector<Route>& Routes();
  static std::vector<RouteSpec> Specs() {
    std::vector<RouteSpec> out;
    for (const Route& r : Routes()) out.push_back(r.spec);
    return out;
  }

  absl::Status Start();
  void Shutdown(absl::Duration grace);
  int port() const { return port_; }
  std::vector<std::pair<std::string, std::string>> registered() const { return registered_; }
  const std::string& openapi() const { return openapi_; }

 private:
  void Register();
  void Dispatch(const Route& route, const Request& req, Response& res, const ContentReader* reader);
  Server::HandlerResponse PreRouting(const Request& req, Response& res);
  Server::HandlerResponse OnError(const Request& req, Response& res);
  void ServeStatic(const Request& req, Response& res);
  void Record(const std::string& route, const Request& req, const Response& res, absl::Time start,
              const std::string& request_id);
  std::string ClientKey(const Request& req) const;
  void ApplyCors(const Request& req, Response& res) const;

  // Replies.
  void ReplyJson(Call& call, const std::string& json_text, int status = 200);
  void ReplyProto(Call& call, const google::protobuf::Message& m) { ReplyJson(call, ToJson(m)); }
  void ReplyError(Response& res, const absl::Status& status, const std::string& details = "");
  void ReplyError(Call& call, const absl::Status& status, const std::string& details = "") {
    ReplyError(call.res, status, details);
  }
  // Maps a backend's status, naming the service for transport-level failures.
  absl::Status Backend(const char* service, const char* rpc, const grpc::Status& s);
  template <typename Resp>
  void ReplyGrpc(Call& call, const char* service, const char* rpc, const grpc::Status& s,
                 const Resp& resp) {
    if (s.ok()) {
      ReplyProto(call, resp);
    } else {
      ReplyError(call, Backend(service, rpc, s));
    }
  }
  void Prepare(const Call& call, grpc::ClientContext* ctx, bool admin,
               absl::Duration timeout = absl::ZeroDuration());
  bool Require(Call& call, const void* stub, const char* service);
  absl::Status ParseBody(Call& call, google::protobuf::Message* m);

  // Handlers (thin: parse, call, reply).
  void Healthz(Call& call);
  void Health(Call& call);
  void Upload(Call& call) { UploadOrValidate(call, /*validate_only=*/false); }
  void Validate(Call& call) { UploadOrValidate(call, /*validate_only=*/true); }
  void UploadOrValidate(Call& call, bool validate_only);
  void ListUploads(Call& call);
  void GetUpload(Call& call);
  void ListPredictions(Call& call);
  void DataStats(Call& call);
  void Score(Call& call);
  void ListModels(Call& call);
  void GetChampion(Call& call);
  void ChampionHistory(Call& call);
  void GetModel(Call& call);
  void Promote(Call& call);
  void InferenceModel(Call& call);
  void Reload(Call& call);
  void StartRun(Call& call);
  void ListRuns(Call& call);
  void GetRun(Call& call);
  void RunEvents(Call& call);
  void CancelRun(Call& call);
  void Evaluate(Call& call);
  void Monitoring(Call& call);
  void DemoSample(Call& call);
  void OpenApi(Call& call);
  void MetricsText(Call& call);

  // Shared pieces.
  json HealthDocument(bool* all_serving);
  std::string CheckHealth(const std::shared_ptr<grpc::ChannelInterface>& channel);
  json ScrapeService(const std::string& name, const std::shared_ptr<grpc::ChannelInterface>& ch,
                     const std::string& metrics_target);
  bool StreamRunEvents(int64_t run_id, const std::string& request_id, DataSink& sink);

  const GatewayOptions options_;
  const Backends backends_;
  std::unique_ptr<ingestpb::IngestService::Stub> ingest_;
  std::unique_ptr<storagepb::StorageService::Stub> storage_;
  std::unique_ptr<inferencepb::InferenceService::Stub> inference_;
  std::unique_ptr<trainingpb::TrainingService::Stub> training_;
  StaticFiles static_files_;
  RateLimiter limiter_;
  std::string openapi_;
  CallRegistry calls_;
  std::atomic<int> uploads_in_flight_{0};
  // Uploads, event streams and generated downloads in progress (Shutdown waits for them).
  std::atomic<int> streams_{0};
  std::atomic<bool> stopping_{false};
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
  bool started_ = false;
  bool shut_down_ = false;
  std::vector<std::pair<std::string, std::string>> registered_;
  std::vector<std::pair<std::string, std::regex>> route_regexes_;
};

// ---- the route table ---------------------------------------------------------------------------

const std::vector<GatewayServer::Impl::Route>& GatewayServer::Impl::Routes() {
  using I = Impl;
  const std::vector<QueryParamSpec> paging = {
      {"page_size", "integer", "Items per page (server default and maximum apply)", {}},
      {"before_id",
       "integer",
       "Only items with a smaller id (the previous page's nextBeforeId)",
       {}}};
  const std::vector<QueryParamSpec> upload_query = {
      {"mode",
       "string",
       "strict (default: any invalid row rejects the file) or lenient (skip "
       "and report invalid rows)",
       {"strict", "lenient"}},
      {"file_name",
       "string",
       "Name recorded with the upload (default: the multipart filename)",
       {}}};
  auto r = [](RouteSpec s, Handler h) { return Route{std::move(s), h}; };
  static const auto* routes = new std::vector<Route>{
      r({"GET", "/healthz", "healthz", "Liveness and the health of every service (always 200)",
         "health", false, false, BodyKind::kNone, "", "HealthResponse"},
        &I::Healthz),
      r({"GET", "/api/v1/health", "getHealth",
         "Health of every service: 200 when all serve, 503 (same body) when degraded", "health",
         false, false, BodyKind::kNone, "", "HealthResponse"},
        &I::Health),
      r({"POST", "/api/v1/uploads", "upload",
         "Upload a CSV (streamed to ingest): validated, stored, scored, summarised", "uploads",
         false, true, BodyKind::kCsvUpload, "CsvUpload", "fraud.ingest.v1.UploadSummary", kJsonType,
         upload_query},
        &I::Upload),
      r({"POST", "/api/v1/uploads:validate", "validateUpload",
         "Validate a CSV without storing or scoring it", "uploads", false, true,
         BodyKind::kCsvUpload, "CsvUpload", "fraud.ingest.v1.UploadSummary", kJsonType,
         upload_query},
        &I::Validate),
      r({"GET", "/api/v1/uploads", "listUploads", "Uploads, newest first", "uploads", false, false,
         BodyKind::kNone, "", "fraud.storage.v1.ListUploadsResponse", kJsonType, paging},
        &I::ListUploads),
      r({"GET", "/api/v1/uploads/{id}", "getUpload", "One upload (summaryJson holds its summary)",
         "uploads", false, false, BodyKind::kNone, "", "fraud.storage.v1.GetUploadResponse"},
        &I::GetUpload),
      r({"GET",
         "/api/v1/uploads/{id}/predictions",
         "listPredictions",
         "Stored predictions of an upload, by line or by descending score",
         "uploads",
         false,
         false,
         BodyKind::kNone,
         "",
         "fraud.storage.v1.ListPredictionsResponse",
         kJsonType,
         {{"order", "string", "line (default) or score (highest first)", {"line", "score"}},
          {"offset", "integer", "Rows to skip", {}},
          {"page_size", "integer", "Rows per page (default 100, max 1000)", {}},
          {"model_version", "integer", "Predictions of this version (default: the upload's)", {}}}},
        &I::ListPredictions),
      r({"GET",
         "/api/v1/data/stats",
         "getDataStats",
         "Counts of stored rows, labels and frauds",
         "uploads",
         false,
         false,
         BodyKind::kNone,
         "",
         "fraud.storage.v1.GetDataStatsResponse",
         kJsonType,
         {{"after_upload_id", "integer", "Count only uploads with a larger id", {}}}},
        &I::DataStats),
      r({"POST", "/api/v1/score", "score",
         "Score rows with the serving model: {\"rows\": [[30 numbers], ...]} or a PredictRequest",
         "inference", false, false, BodyKind::kJson, "ScoreRequest",
         "fraud.inference.v1.PredictResponse"},
        &I::Score),
      r({"GET", "/api/v1/models", "listModels", "Registered model versions", "models", false, false,
         BodyKind::kNone, "", "fraud.storage.v1.ListModelsResponse"},
        &I::ListModels),
      r({"GET", "/api/v1/models/champion", "getChampion", "The champion version", "models", false,
         false, BodyKind::kNone, "", "fraud.storage.v1.GetChampionResponse"},
        &I::GetChampion),
      r({"GET", "/api/v1/models/champion/history", "listChampionHistory",
         "Every champion change (promotions and rollbacks)", "models", false, false,
         BodyKind::kNone, "", "fraud.storage.v1.ListChampionHistoryResponse"},
        &I::ChampionHistory),
      r({"GET", "/api/v1/models/{version}", "getModel", "One model version", "models", false, false,
         BodyKind::kNone, "", "fraud.storage.v1.GetModelResponse"},
        &I::GetModel),
      r({"POST", "/api/v1/models/{version}/promote", "promoteModel",
         "Make a version champion (promotion or rollback) and reload inference", "models", true,
         false, BodyKind::kJson, "fraud.training.v1.PromoteRequest",
         "fraud.training.v1.PromoteResponse"},
        &I::Promote),
      r({"GET", "/api/v1/inference/model", "getServingModel", "The model inference serves",
         "inference", false, false, BodyKind::kNone, "", "fraud.inference.v1.GetModelResponse"},
        &I::InferenceModel),
      r({"POST", "/api/v1/inference/reload", "reloadModel",
         "Load a version (0 = the champion) into inference", "inference", true, false,
         BodyKind::kJson, "fraud.inference.v1.ReloadRequest", "fraud.inference.v1.ReloadResponse"},
        &I::Reload),
      r({"POST", "/api/v1/training/runs", "startRun", "Start (or queue) a training run", "training",
         true, false, BodyKind::kJson, "fraud.training.v1.StartRunRequest",
         "fraud.training.v1.StartRunResponse"},
        &I::StartRun),
      r({"GET", "/api/v1/training/runs", "listRuns", "Training runs, newest first", "training",
         false, false, BodyKind::kNone, "", "fraud.training.v1.ListRunsResponse", kJsonType,
         paging},
        &I::ListRuns),
      r({"GET", "/api/v1/training/runs/{id}", "getRun", "One training run", "training", false,
         false, BodyKind::kNone, "", "fraud.training.v1.GetRunResponse"},
        &I::GetRun),
      r({"GET", "/api/v1/training/runs/{id}/events", "watchRun",
         "Server-Sent Events: `event: run` (data: TrainingRun JSON) per update, `event: end` "
         "when the run finished, `event: error` (data: ErrorBody) when the watch failed; comment "
         "lines as heartbeats",
         "training", false, false, BodyKind::kNone, "", "Text", "text/event-stream"},
        &I::RunEvents),
      r({"POST", "/api/v1/training/runs/{id}/cancel", "cancelRun", "Cancel a queued or running run",
         "training", true, false, BodyKind::kJson, "fraud.training.v1.CancelRunRequest",
         "fraud.training.v1.CancelRunResponse"},
        &I::CancelRun),
      r({"POST", "/api/v1/training/evaluate", "evaluateModels",
         "Score registered versions on stored labelled rows (read-only but expensive)", "training",
         true, false, BodyKind::kJson, "fraud.training.v1.EvaluateRequest",
         "fraud.training.v1.EvaluateResponse"},
        &I::Evaluate),
      r({"GET", "/api/v1/monitoring", "getMonitoring",
         "Health and key metrics of every service, the champion, recent uploads", "monitoring",
         false, false, BodyKind::kNone, "", "MonitoringResponse"},
        &I::Monitoring),
      r({"GET",
         "/api/v1/demo/sample.csv",
         "demoSample",
         "A synthetic CSV in the dataset's format (streamed)",
         "demo",
         false,
         false,
         BodyKind::kNone,
         "",
         "Text",
         "text/csv",
         {{"rows", "integer", "Data rows (default 1000, at most --max_demo_rows)", {}},
          {"seed", "integer", "Generator seed (default 1)", {}},
          {"fraud_rate", "number", "Fraction of frauds (default 0.00172)", {}},
          {"labels", "boolean", "Write the Class column (default true)", {}}}},
        &I::DemoSample),
      r({"GET", "/api/v1/openapi.json", "openapi", "This document", "meta", false, false,
         BodyKind::kNone, "", "OpenApiDocument"},
        &I::OpenApi),
      r({"GET", "/metrics", "metrics", "The gateway's Prometheus metrics (text format)", "meta",
         false, false, BodyKind::kNone, "", "Text", "text/plain"},
        &I::MetricsText),
  };
  return *routes;
}

// ---- server plumbing ---------------------------------------------------------------------------

absl::Status GatewayServer::Impl::Start() {
  if (started_) return absl::FailedPreconditionError("the gateway was already started");
  if (options_.max_concurrent_uploads < 1 || options_.max_connections < 1 ||
      options_.upload_chunk_bytes == 0 || options_.max_upload_bytes < 1) {
    return absl::InvalidArgumentError(
        "max_concurrent_uploads, max_connections, upload_chunk_bytes and max_upload_bytes must "
        "be positive");
  }
  started_ = true;
  if (!options_.tls_cert_file.empty() || !options_.tls_key_file.empty()) {
    if (options_.tls_cert_file.empty() || options_.tls_key_file.empty()) {
      return absl::InvalidArgumentError("TLS needs both --tls_cert and --tls_key");
    }
    auto ssl = std::make_unique<httplib::SSLServer>(options_.tls_cert_file.c_str(),
                                                    options_.tls_key_file.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot use TLS certificate ", options_.tls_cert_file, " / key ", options_.tls_key_file));
    }
    http_ = std::move(ssl);
  } else {
    http_ = std::make_unique<httplib::Server>();
  }
  const size_t threads = static_cast<size_t>(options_.max_connections);
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // Every POST route reads its body itself with its own limit; this only bounds what httplib
  // would buffer for a request no route reads.
  http_->set_payload_max_length(
      static_cast<size_t>(std::max(options_.max_upload_bytes, options_.max_json_bytes)) + 1);
  http_->set_read_timeout(60, 0);
  http_->set_write_timeout(60, 0);
  http_->set_keep_alive_max_count(100);
  http_->set_keep_alive_timeout(5);
  http_->set_default_headers({{"X-Content-Type-Options", "nosniff"}});
  Register();
  if (options_.port == 0) {
    port_ = http_->bind_to_any_port(options_.host);
  } else {
    port_ = http_->bind_to_port(options_.host, options_.port) ? options_.port : -1;
  }
  if (port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.host, ":", options_.port));
  }
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  // httplib's stop() is a no-op until the accept loop runs: wait for it, so that an early
  // Shutdown cannot leave the loop running forever.
  for (int i = 0; i < 5000 && !http_->is_running(); ++i) absl::SleepFor(absl::Milliseconds(1));
  FRAUD_LOG(INFO) << "gateway listening" << Kv("host", options_.host) << Kv("port", port_)
                  << Kv("tls", !options_.tls_cert_file.empty())
                  << Kv("web_root", options_.web_root.empty() ? "-" : options_.web_root);
  return absl::OkStatus();
}

void GatewayServer::Impl::Shutdown(absl::Duration grace) {
  if (shut_down_ || !started_ || http_ == nullptr) return;
  shut_down_ = true;
  stopping_ = true;
  http_->stop();
  const absl::Time deadline = absl::Now() + grace;
  while (streams_.load() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  calls_.CancelAll();
  if (thread_.joinable()) thread_.join();
  FRAUD_LOG(INFO) << "gateway stopped";
}

void GatewayServer::Impl::Register() {
  for (const Route& route : Routes()) {
    const std::string regex = PathRegex(route.spec.path);
    const Route* rp = &route;
    if (route.spec.method == "GET") {
      http_->Get(regex, [this, rp](const Request& req, Response& res) {
        Dispatch(*rp, req, res, nullptr);
      });
    } else {
      http_->Post(regex,
                  [this, rp](const Request& req, Response& res, const ContentReader& reader) {
                    Dispatch(*rp, req, res, &reader);
                  });
    }
    registered_.emplace_back(route.spec.method, route.spec.path);
    route_regexes_.emplace_back(route.spec.method, std::regex(regex));
  }
  // Anything else: POST bodies are never read (no buffering of unknown uploads); GET serves the
  // web build.
  http_->Post(".*", [this](const Request& req, Response& res, const ContentReader&) {
    res.status = 404;
    OnError(req, res);
  });
  http_->Get(".*", [this](const Request& req, Response& res) { ServeStatic(req, res); });
  http_->set_pre_routing_handler(
      [this](const Request& req, Response& res) { return PreRouting(req, res); });
  // Clients that wait for "100 Continue" learn about an oversized body before sending it.
  http_->set_expect_100_continue_handler([this](const Request& req, Response& res) {
    const uint64_t declared = req.get_header_value<uint64_t>("Content-Length");
    const bool upload = req.path == "/api/v1/uploads" || req.path == "/api/v1/uploads:validate";
    const int64_t limit =
        upload ? options_.max_upload_bytes + (req.is_multipart_form_data() ? 64 * 1024 : 0)
               : options_.max_json_bytes;
    if (req.method == "POST" && declared > static_cast<uint64_t>(limit)) {
      ReplyError(
          res, PayloadTooLarge(absl::StrCat("the body (", declared, " bytes) exceeds the limit of ",
                                            limit, " bytes; nothing was stored")));
      return 413;
    }
    return 100;
  });
  http_->set_error_handler(Server::HandlerWithResponse(
      [this](const Request& req, Response& res) { return OnError(req, res); }));
  http_->set_exception_handler([this](const Request& req, Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    FRAUD_LOG(ERROR) << "unhandled exception" << Kv("path", req.path) << Kv("error", what);
    ReplyError(res, absl::InternalError("internal error"));
  });
}

std::string GatewayServer::Impl::ClientKey(const Request& req) const {
  if (options_.trust_forwarded_for && req.has_header("X-Forwarded-For")) {
    std::string first = req.get_header_value("X-Forwarded-For");
    first = first.substr(0, first.find(','));
    return std::string(absl::StripAsciiWhitespace(first));
  }
  return req.remote_addr;
}

void GatewayServer::Impl::ApplyCors(const Request& req, Response& res) const {
  if (options_.cors_origin.empty()) return;
  if (options_.cors_origin == "*") {
    res.set_header("Access-Control-Allow-Origin", "*");
  } else {
    const std::string origin = req.get_header_value("Origin");
    for (absl::string_view allowed : absl::StrSplit(options_.cors_origin, ',')) {
      if (!origin.empty() && absl::StripAsciiWhitespace(allowed) == origin) {
        res.set_header("Access-Control-Allow-Origin", origin);
        break;
      }
    }
    res.set_header("Vary", "Origin");
  }
  res.set_header("Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
}

httplib::Server::HandlerResponse GatewayServer::Impl::PreRouting(const Request& req,
                                                                 Response& res) {
  const absl::Time start = absl::Now();
  GatewayMetrics& m = Metrics();
  int64_t header_bytes = 0;
  for (const auto& [k, v] : req.headers) header_bytes += k.size() + v.size() + 4;
  if (static_cast<int>(req.headers.size()) > options_.max_header_count ||
      header_bytes > options_.max_header_bytes) {
    m.refused.Add({{"reason", "headers"}}).Increment();
    res.status = 431;
    res.set_content(
        ErrorBodyJson({431, "INVALID_ARGUMENT",
                       absl::StrCat("request headers exceed ", options_.max_header_count,
                                    " fields or ", options_.max_header_bytes, " bytes")}),
        kJsonType);
    Record("refused", req, res, start, "");
    return Server::HandlerResponse::Handled;
  }
  const bool api = absl::StartsWith(req.path, kApiPrefix);
  if (api) ApplyCors(req, res);
  if (req.method == "OPTIONS") {
    res.status = 204;
    res.set_header("Allow", "GET, HEAD, POST, OPTIONS");
    if (api && !options_.cors_origin.empty()) {
      res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      res.set_header("Access-Control-Allow-Headers",
                     "Authorization, Content-Type, X-Request-Id, Accept");
      res.set_header("Access-Control-Max-Age", "600");
    }
    Record("preflight", req, res, start, "");
    return Server::HandlerResponse::Handled;
  }
  if (req.method != "GET" && req.method != "HEAD" && req.method != "POST") {
    res.status = 405;
    res.set_header("Allow", "GET, HEAD, POST, OPTIONS");
    res.set_content(
        ErrorBodyJson({405, "UNIMPLEMENTED",
                       absl::StrCat("method ", req.method.substr(0, 16), " is not supported")}),
        kJsonType);
    Record("refused", req, res, start, "");
    return Server::HandlerResponse::Handled;
  }
  if (req.method != "POST" && (req.get_header_value_count("Transfer-Encoding") > 0 ||
                               req.get_header_value<uint64_t>("Content-Length") > 0)) {
    res.status = 400;
    res.set_content(ErrorBodyJson({400, "INVALID_ARGUMENT",
                                   absl::StrCat(req.method, " requests take no body")}),
                    kJsonType);
    Record("refused", req, res, start, "");
    return Server::HandlerResponse::Handled;
  }
  if (api && limiter_.enabled()) {
    const int64_t wait = limiter_.Acquire(ClientKey(req), absl::Now());
    if (wait > 0) {
      m.refused.Add({{"reason", "rate_limit"}}).Increment();
      res.status = 429;
      res.set_header("Retry-After", std::to_string(wait));
      res.set_content(
          ErrorBodyJson({429, "RESOURCE_EXHAUSTED",
                         absl::StrCat("rate limit of ", options_.rate_limit_rps,
                                      " requests/s per client exceeded; retry in ", wait, " s")}),
          kJsonType);
      Record("rate_limited", req, res, start, "");
      return Server::HandlerResponse::Handled;
    }
  }
  return Server::HandlerResponse::Unhandled;
}

httplib::Server::HandlerResponse GatewayServer::Impl::OnError(const Request& req, Response& res) {
  // Routes write their own error bodies; only fill in answers nobody wrote.
  if (!res.body.empty() || res.content_provider_) return Server::HandlerResponse::Unhandled;
  const absl::Time start = absl::Now();
  if (res.status == 404) {
    std::vector<std::string> allowed;
    for (const auto& [method, regex] : route_regexes_) {
      if (method != req.method && std::regex_match(req.path, regex)) allowed.push_back(method);
    }
    if (!allowed.empty()) {
      res.status = 405;
      res.set_header("Allow", absl::StrJoin(allowed, ", "));
      res.set_content(ErrorBodyJson({405, "UNIMPLEMENTED",
                                     absl::StrCat(req.method, " is not allowed on ", req.path,
                                                  "; use ", absl::StrJoin(allowed, " or "))}),
                      kJsonType);
    } else {
      res.set_content(
          ErrorBodyJson({404, "NOT_FOUND",
                         absl::StrCat("no route for ", req.method, " ", req.path.substr(0, 200))}),
          kJsonType);
    }
  } else {
    res.set_content(
        ErrorBodyJson({res.status, res.status == 413 ? "PAYLOAD_TOO_LARGE" : "INVALID_ARGUMENT",
                       ReasonPhrase(res.status)}),
        kJsonType);
  }
  Record("unmatched", req, res, start, "");
  return Server::HandlerResponse::Handled;
}

void GatewayServer::Impl::Record(const std::string& route, const Request& req, const Response& res,
                                 absl::Time start, const std::string& request_id) {
  GatewayMetrics& m = Metrics();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  m.requests.Add({{"route", route}, {"method", req.method}, {"status", std::to_string(res.status)}})
      .Increment();
  m.latency.Add({{"route", route}}, metrics::LatencyBuckets()).Observe(seconds);
  if (route == "static") {
    FRAUD_LOG(DEBUG) << "http" << Kv("method", req.method) << Kv("path", req.path)
                     << Kv("status", res.status);
  } else {
    FRAUD_LOG(INFO) << "http" << Kv("method", req.method) << Kv("route", route)
                    << Kv("status", res.status) << Kv("ms", static_cast<int64_t>(seconds * 1000))
                    << Kv("request_id", request_id.empty() ? "-" : request_id)
                    << Kv("client", req.remote_addr);
  }
}

void GatewayServer::Impl::Dispatch(const Route& route, const Request& req, Response& res,
                                   const ContentReader* reader) {
  const absl::Time start = absl::Now();
  Call call{req, res, reader, &route.spec};
  std::string incoming = req.get_header_value("X-Request-Id");
  call.request_id = SaneRequestId(incoming) ? incoming : rpc::NewRequestId();
  res.set_header("X-Request-Id", call.request_id);
  absl::Status status;
  for (size_t i = 1; status.ok() && i < req.matches.size(); ++i) {
    absl::StatusOr<int64_t> id = ParseInt(PathParams(route.spec.path)[i - 1], req.matches[i].str(),
                                          0, std::numeric_limits<int64_t>::max());
    if (id.ok()) {
      call.ids.push_back(*id);
    } else {
      status = id.status();
    }
  }
  if (status.ok() && route.spec.admin) {
    status =
        rpc::CheckAuthorizationHeader(req.get_header_value("Authorization"), options_.admin_token);
  }
  if (status.ok() && route.spec.body == BodyKind::kJson) {
    const uint64_t declared = req.get_header_value<uint64_t>("Content-Length");
    const std::string type = req.get_header_value("Content-Type");
    if (req.is_multipart_form_data()) {
      status = UnsupportedMediaType("this route takes a JSON body (application/json)");
    } else if (declared > static_cast<uint64_t>(options_.max_json_bytes)) {
      status = PayloadTooLarge(
          absl::StrCat("JSON bodies are limited to ", options_.max_json_bytes, " bytes"));
    } else {
      bool too_large = false;
      int64_t dropped = 0;
      const bool read = (*reader)([&](const char* data, size_t n) {
        if (too_large || call.body.size() + n > static_cast<size_t>(options_.max_json_bytes)) {
          too_large = true;
          dropped += static_cast<int64_t>(n);
          return dropped <= kDrainBytes;
        }
        call.body.append(data, n);
        return true;
      });
      if (too_large) {
        status = PayloadTooLarge(
            absl::StrCat("JSON bodies are limited to ", options_.max_json_bytes, " bytes"));
      } else if (!read) {
        status = absl::InvalidArgumentError("the request body could not be read");
      }
    }
  }
  if (!status.ok()) {
    if (status.code() == absl::StatusCode::kUnauthenticated) {
      res.set_header("WWW-Authenticate", "Bearer");
    }
    if (route.spec.body != BodyKind::kNone && call.body.empty()) Drain(req, reader);
    ReplyError(call, status);
  } else {
    (this->*route.handler)(call);
  }
  if (res.status == -1) res.status = 200;
  Record(route.spec.path, req, res, start, call.request_id);
}

void GatewayServer::Impl::ServeStatic(const Request& req, Response& res) {
  const absl::Time start = absl::Now();
  if (absl::StartsWith(req.path, kApiPrefix) || req.path == "/api") {
    res.status = 404;
    OnError(req, res);
    return;
  }
  absl::StatusOr<StaticFile> file = static_files_.Resolve(req.path);
  if (!file.ok()) {
    const absl::StatusCode code = file.status().code();
    res.status = code == absl::StatusCode::kNotFound           ? 404
                 : code == absl::StatusCode::kPermissionDenied ? 403
                                                               : 400;
    res.set_content(ErrorBodyJson(ToHttpError(file.status())), kJsonType);
    Record("static", req, res, start, "");
    return;
  }
  std::FILE* f = std::fopen(file->path.c_str(), "rb");
  if (f == nullptr) {
    ReplyError(res, absl::NotFoundError("file not readable"));
    Record("static", req, res, start, "");
    return;
  }
  auto handle = std::shared_ptr<std::FILE>(f, [](std::FILE* p) { std::fclose(p); });
  res.status = 200;
  res.set_header("Cache-Control", file->cache_control);
  res.set_content_provider(static_cast<size_t>(file->size), file->content_type,
                           [handle](size_t offset, size_t length, DataSink& sink) {
                             char buf[64 * 1024];
                             if (std::fseek(handle.get(), static_cast<long>(offset), SEEK_SET) != 0)
                               return false;
                             const size_t n =
                                 std::fread(buf, 1, std::min(length, sizeof(buf)), handle.get());
                             if (n == 0) return false;
                             return sink.write(buf, n);
                           });
  Record("static", req, res, start, "");
}

// ---- replies and backend calls -----------------------------------------------------------------

void GatewayServer::Impl::ReplyJson(Call& call, const std::string& json_text, int status) {
  call.res.status = status;
  call.res.set_content(json_text, kJsonType);
}

void GatewayServer::Impl::ReplyError(Response& res, const absl::Status& status,
                                     const std::string& details) {
  const HttpError e = ToHttpError(status);
  res.status = e.http_status;
  res.set_content(ErrorBodyJson(e, details), kJsonType);
}

absl::Status GatewayServer::Impl::Backend(const char* service, const char* rpc_name,
                                          const grpc::Status& s) {
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

void GatewayServer::Impl::Prepare(const Call& call, grpc::ClientContext* ctx, bool admin,
                                  absl::Duration timeout) {
  rpc::SetDeadline(ctx, timeout == absl::ZeroDuration() ? options_.rpc_timeout : timeout);
  ctx->AddMetadata("x-request-id", call.request_id);
  if (!admin) return;
  if (!options_.admin_token.empty()) {
    rpc::AddBearerToken(ctx, options_.admin_token);
  } else if (call.req.has_header("Authorization")) {
    ctx->AddMetadata("authorization", call.req.get_header_value("Authorization"));
  }
}

bool GatewayServer::Impl::Require(Call& call, const void* stub, const char* service) {
  if (stub != nullptr) return true;
  ReplyError(call, absl::UnavailableError(absl::StrCat(service, " is not configured")));
  return false;
}

absl::Status GatewayServer::Impl::ParseBody(Call& call, google::protobuf::Message* m) {
  return FromJson(call.body, m);
}

// ---- health and monitoring ---------------------------------------------------------------------

std::string GatewayServer::Impl::CheckHealth(
    const std::shared_ptr<grpc::ChannelInterface>& channel) {
  if (channel == nullptr) return "NOT_CONFIGURED";
  auto stub = healthpb::Health::NewStub(channel);
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, options_.probe_timeout);
  healthpb::HealthCheckRequest request;
  healthpb::HealthCheckResponse response;
  const grpc::Status s = stub->Check(&ctx, request, &response);
  if (!s.ok()) return rpc::CodeName(static_cast<absl::StatusCode>(s.error_code()));
  return healthpb::HealthCheckResponse::ServingStatus_Name(response.status());
}

json GatewayServer::Impl::HealthDocument(bool* all_serving) {
  const std::vector<std::pair<const char*, std::shared_ptr<grpc::ChannelInterface>>> services = {
      {"ingest", backends_.ingest},
      {"storage", backends_.storage},
      {"inference", backends_.inference},
      {"training", backends_.training}};
  std::vector<std::future<std::string>> checks;
  for (const auto& [name, channel] : services) {
    checks.push_back(
        std::async(std::launch::async, [this, ch = channel] { return CheckHealth(ch); }));
  }
  json doc = {{"services", json::object()}};
  *all_serving = true;
  for (size_t i = 0; i < services.size(); ++i) {
    const std::string state = checks[i].get();
    doc["services"][services[i].first] = state;
    if (state != "SERVING") *all_serving = false;
  }
  doc["status"] = *all_serving ? "ok" : "degraded";
  return doc;
}

void GatewayServer::Impl::Healthz(Call& call) {
  bool ok = false;
  json doc = HealthDocument(&ok);
  ReplyJson(call, doc.dump());
}

void GatewayServer::Impl::Health(Call& call) {
  bool ok = false;
  json doc = HealthDocument(&ok);
  ReplyJson(call, doc.dump(), ok ? 200 : 503);
}

json GatewayServer::Impl::ScrapeService(const std::string& name,
                                        const std::shared_ptr<grpc::ChannelInterface>& channel,
                                        const std::string& metrics_target) {
  const std::string health = CheckHealth(channel);
  json out = {{"name", name},
              {"healthy", health == "SERVING"},
              {"status", health},
              {"metrics", json::object()}};
  if (metrics_target.empty()) return out;
  int port = 0;
  const std::string host = HostPort(metrics_target, &port);
  if (host.empty()) {
    out["metricsError"] = "bad metrics target " + metrics_target;
    return out;
  }
  httplib::Client client(host, port);
  const int64_t ms = absl::ToInt64Milliseconds(options_.probe_timeout);
  client.set_connection_timeout(ms / 1000, (ms % 1000) * 1000);
  client.set_read_timeout(ms / 1000, (ms % 1000) * 1000);
  httplib::Result r = client.Get("/metrics");
  if (!r || r->status != 200) {
    out["metricsError"] =
        r ? absl::StrCat("HTTP ", r->status)
          : absl::StrCat("cannot reach ", metrics_target, ": ", httplib::to_string(r.error()));
    return out;
  }
  absl::StatusOr<std::vector<PromSample>> samples = ParsePrometheusText(r->body);
  if (!samples.ok()) {
    out["metricsError"] = std::string(samples.status().message());
    return out;
  }
  for (const auto& [k, v] : SummarizeMetrics(*samples)) {
    if (std::isfinite(v)) out["metrics"][k] = v;
  }
  return out;
}

void GatewayServer::Impl::Monitoring(Call& call) {
  struct Svc {
    const char* name;
    std::shared_ptr<grpc::ChannelInterface> channel;
    std::string metrics;
  };
  const std::vector<Svc> services = {{"ingest", backends_.ingest, options_.ingest_metrics},
                                     {"storage", backends_.storage, options_.storage_metrics},
                                     {"inference", backends_.inference, options_.inference_metrics},
                                     {"training", backends_.training, options_.training_metrics}};
  std::vector<std::future<json>> scrapes;
  for (const Svc& s : services) {
    scrapes.push_back(std::async(
        std::launch::async, [this, s] { return ScrapeService(s.name, s.channel, s.metrics); }));
  }
  json doc = {{"services", json::array()}, {"uploads", json::array()}};
  {
    json gw = {
        {"name", "gateway"}, {"healthy", true}, {"status", "SERVING"}, {"metrics", json::object()}};
    absl::StatusOr<std::vector<PromSample>> own = ParsePrometheusText(metrics::RenderText());
    if (own.ok()) {
      for (const auto& [k, v] : SummarizeMetrics(*own, {"fraud_gateway_"})) {
        if (std::isfinite(v)) gw["metrics"][k] = v;
      }
    }
    doc["services"].push_back(std::move(gw));
  }
  if (storage_ != nullptr) {
    grpc::ClientContext ctx;
    Prepare(call, &ctx, false, options_.probe_timeout);
    storagepb::GetChampionResponse champion;
    if (storage_->GetChampion(&ctx, storagepb::GetChampionRequest(), &champion).ok() &&
        champion.has_model()) {
      doc["champion"] = json::parse(ToJson(champion.model()));
      if (champion.has_since()) {
        doc["championSince"] = json::parse(ToJson(champion)).value("since", "");
      }
    }
    grpc::ClientContext list_ctx;
    Prepare(call, &list_ctx, false, options_.probe_timeout);
    storagepb::ListUploadsRequest list;
    list.set_page_size(50);
    storagepb::ListUploadsResponse uploads;
    if (storage_->ListUploads(&list_ctx, list, &uploads).ok()) {
      for (const storagepb::Upload& u : uploads.uploads()) {
        ingestpb::UploadSummary summary;
        google::protobuf::util::JsonParseOptions lenient;
        lenient.ignore_unknown_fields = true;
        const bool parsed =
            !u.summary_json().empty() &&
            google::protobuf::util::JsonStringToMessage(u.summary_json(), &summary, lenient).ok();
        json row = json::parse(ToJson(u));
        json out = {{"id", std::to_string(u.id())},
                    {"fileName", u.file_name()},
                    {"rows", std::to_string(u.rows())},
                    {"frauds", std::to_string(u.frauds())},
                    {"labelledRows", std::to_string(u.labelled_rows())},
                    {"modelVersion", std::to_string(u.model_version())},
                    {"time", row.value("receivedAt", "")}};
        if (parsed && summary.scored()) {
          out["predictedFrauds"] = std::to_string(summary.predicted_frauds());
        }
        doc["uploads"].push_back(std::move(out));
      }
    }
  }
  for (auto& f : scrapes) doc["services"].push_back(f.get());
  ReplyJson(call, doc.dump(-1, ' ', false, json::error_handler_t::replace));
}

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

// ---- storage routes ----------------------------------------------------------------------------

void GatewayServer::Impl::ListUploads(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  storagepb::ListUploadsRequest request;
  if (std::string v = Param(call.req, "page_size"); !v.empty()) {
    absl::StatusOr<int64_t> n = ParseInt("page_size", v, 0, 100000);
    if (!n.ok()) return ReplyError(call, n.status());
    request.set_page_size(static_cast<int32_t>(*n));
  }
  if (std::string v = Param(call.req, "before_id"); !v.empty()) {
    absl::StatusOr<int64_t> n = ParseInt("before_id", v, 0, std::numeric_limits<int64_t>::max());
    if (!n.ok()) return ReplyError(call, n.status());
    request.set_before_id(*n);
  }
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  storagepb::ListUploadsResponse response;
  ReplyGrpc(call, "storage", "ListUploads", storage_->ListUploads(&ctx, request, &response),
            response);
}

void GatewayServer::Impl::GetUpload(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  storagepb::GetUploadRequest request;
  request.set_upload_id(call.ids[0]);
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  storagepb::GetUploadResponse response;
  ReplyGrpc(call, "storage", "GetUpload", storage_->GetUpload(&ctx, request, &response), response);
}

void GatewayServer::Impl::ListPredictions(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
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
  struct IntParam {
    const char* name;
    int64_t max;
    std::function<void(int64_t)> set;
  };
  const std::vector<IntParam> ints = {
      {"offset", std::numeric_limits<int64_t>::max(), [&](int64_t v) { request.set_offset(v); }},
      {"page_size", 100000, [&](int64_t v) { request.set_page_size(static_cast<int32_t>(v)); }},
      {"model_version", std::numeric_limits<int64_t>::max(),
       [&](int64_t v) { request.set_model_version(v); }}};
  for (const IntParam& p : ints) {
    const std::string v = Param(call.req, p.name);
    if (v.empty()) continue;
    absl::StatusOr<int64_t> n = ParseInt(p.name, v, 0, p.max);
    if (!n.ok()) return ReplyError(call, n.status());
    p.set(*n);
  }
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  storagepb::ListPredictionsResponse response;
  ReplyGrpc(call, "storage", "ListPredictions", storage_->ListPredictions(&ctx, request, &response),
            response);
}

void GatewayServer::Impl::DataStats(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  storagepb::GetDataStatsRequest request;
  if (std::string v = Param(call.req, "after_upload_id"); !v.empty()) {
    absl::StatusOr<int64_t> n =
        ParseInt("after_upload_id", v, 0, std::numeric_limits<int64_t>::max());
    if (!n.ok()) return ReplyError(call, n.status());
    request.set_after_upload_id(*n);
  }
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  storagepb::GetDataStatsResponse response;
  ReplyGrpc(call, "storage", "GetDataStats", storage_->GetDataStats(&ctx, request, &response),
            response);
}

void GatewayServer::Impl::ListModels(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  storagepb::ListModelsResponse response;
  ReplyGrpc(call, "storage", "ListModels",
            storage_->ListModels(&ctx, storagepb::ListModelsRequest(), &response), response);
}

void GatewayServer::Impl::GetChampion(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  storagepb::GetChampionResponse response;
  ReplyGrpc(call, "storage", "GetChampion",
            storage_->GetChampion(&ctx, storagepb::GetChampionRequest(), &response), response);
}

void GatewayServer::Impl::ChampionHistory(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  storagepb::ListChampionHistoryResponse response;
  ReplyGrpc(call, "storage", "ListChampionHistory",
            storage_->ListChampionHistory(&ctx, storagepb::ListChampionHistoryRequest(), &response),
            response);
}

void GatewayServer::Impl::GetModel(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  storagepb::GetModelRequest request;
  request.set_version(call.ids[0]);
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  storagepb::GetModelResponse response;
  ReplyGrpc(call, "storage", "GetModel", storage_->GetModel(&ctx, request, &response), response);
}

// ---- inference routes --------------------------------------------------------------------------

void GatewayServer::Impl::Score(Call& call) {
  if (!Require(call, inference_.get(), "inference")) return;
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
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  inferencepb::PredictResponse response;
  ReplyGrpc(call, "inference", "Predict", inference_->Predict(&ctx, request, &response), response);
}

void GatewayServer::Impl::InferenceModel(Call& call) {
  if (!Require(call, inference_.get(), "inference")) return;
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  inferencepb::GetModelResponse response;
  ReplyGrpc(call, "inference", "GetModel",
            inference_->GetModel(&ctx, inferencepb::GetModelRequest(), &response), response);
}

void GatewayServer::Impl::Reload(Call& call) {
  if (!Require(call, inference_.get(), "inference")) return;
  inferencepb::ReloadRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  grpc::ClientContext ctx;
  Prepare(call, &ctx, true);
  inferencepb::ReloadResponse response;
  ReplyGrpc(call, "inference", "Reload", inference_->Reload(&ctx, request, &response), response);
}

// ---- training routes ---------------------------------------------------------------------------

void GatewayServer::Impl::Promote(Call& call) {
  if (!Require(call, training_.get(), "training")) return;
  trainingpb::PromoteRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  if (request.version() != 0 && request.version() != call.ids[0]) {
    return ReplyError(call, absl::InvalidArgumentError(
                                absl::StrCat("body version ", request.version(),
                                             " differs from the path's version ", call.ids[0])));
  }
  request.set_version(call.ids[0]);
  grpc::ClientContext ctx;
  Prepare(call, &ctx, true);
  trainingpb::PromoteResponse response;
  ReplyGrpc(call, "training", "Promote", training_->Promote(&ctx, request, &response), response);
}

void GatewayServer::Impl::StartRun(Call& call) {
  if (!Require(call, training_.get(), "training")) return;
  trainingpb::StartRunRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  grpc::ClientContext ctx;
  Prepare(call, &ctx, true);
  trainingpb::StartRunResponse response;
  ReplyGrpc(call, "training", "StartRun", training_->StartRun(&ctx, request, &response), response);
}

void GatewayServer::Impl::ListRuns(Call& call) {
  if (!Require(call, training_.get(), "training")) return;
  trainingpb::ListRunsRequest request;
  if (std::string v = Param(call.req, "page_size"); !v.empty()) {
    absl::StatusOr<int64_t> n = ParseInt("page_size", v, 0, 100000);
    if (!n.ok()) return ReplyError(call, n.status());
    request.set_page_size(static_cast<int32_t>(*n));
  }
  if (std::string v = Param(call.req, "before_id"); !v.empty()) {
    absl::StatusOr<int64_t> n = ParseInt("before_id", v, 0, std::numeric_limits<int64_t>::max());
    if (!n.ok()) return ReplyError(call, n.status());
    request.set_before_id(*n);
  }
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  trainingpb::ListRunsResponse response;
  ReplyGrpc(call, "training", "ListRuns", training_->ListRuns(&ctx, request, &response), response);
}

void GatewayServer::Impl::GetRun(Call& call) {
  if (!Require(call, training_.get(), "training")) return;
  trainingpb::GetRunRequest request;
  request.set_run_id(call.ids[0]);
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  trainingpb::GetRunResponse response;
  ReplyGrpc(call, "training", "GetRun", training_->GetRun(&ctx, request, &response), response);
}

void GatewayServer::Impl::CancelRun(Call& call) {
  if (!Require(call, training_.get(), "training")) return;
  trainingpb::CancelRunRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  if (request.run_id() != 0 && request.run_id() != call.ids[0]) {
    return ReplyError(call, absl::InvalidArgumentError("body runId differs from the path's id"));
  }
  request.set_run_id(call.ids[0]);
  grpc::ClientContext ctx;
  Prepare(call, &ctx, true);
  trainingpb::CancelRunResponse response;
  ReplyGrpc(call, "training", "CancelRun", training_->CancelRun(&ctx, request, &response),
            response);
}

void GatewayServer::Impl::Evaluate(Call& call) {
  if (!Require(call, training_.get(), "training")) return;
  trainingpb::EvaluateRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  grpc::ClientContext ctx;
  Prepare(call, &ctx, true, std::max(options_.rpc_timeout, absl::Minutes(10)));
  trainingpb::EvaluateResponse response;
  ReplyGrpc(call, "training", "Evaluate", training_->Evaluate(&ctx, request, &response), response);
}

void GatewayServer::Impl::RunEvents(Call& call) {
  if (!Require(call, training_.get(), "training")) return;
  // Look the run up first so an unknown id is a JSON 404, not an empty event stream.
  trainingpb::GetRunRequest request;
  request.set_run_id(call.ids[0]);
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  trainingpb::GetRunResponse response;
  const grpc::Status s = training_->GetRun(&ctx, request, &response);
  if (!s.ok()) return ReplyError(call, Backend("training", "GetRun", s));
  call.res.status = 200;
  call.res.set_header("Cache-Control", "no-cache");
  call.res.set_header("X-Accel-Buffering", "no");
  const int64_t run_id = call.ids[0];
  const std::string request_id = call.request_id;
  call.res.set_chunked_content_provider("text/event-stream",
                                        [this, run_id, request_id](size_t, DataSink& sink) {
                                          return StreamRunEvents(run_id, request_id, sink);
                                        });
}

bool GatewayServer::Impl::StreamRunEvents(int64_t run_id, const std::string& request_id,
                                          DataSink& sink) {
  CounterGuard stream_guard(&streams_);
  Metrics().event_streams.Increment();
  struct Shared {
    absl::Mutex mu;
    std::deque<std::string> runs ABSL_GUARDED_BY(mu);
    bool done ABSL_GUARDED_BY(mu) = false;
    grpc::Status status ABSL_GUARDED_BY(mu);
  } shared;
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, options_.watch_timeout);
  ctx.AddMetadata("x-request-id", request_id);
  ScopedCall registered(&calls_, &ctx);
  std::thread reader([&] {
    trainingpb::WatchRunRequest request;
    request.set_run_id(run_id);
    auto stream = training_->WatchRun(&ctx, request);
    trainingpb::WatchRunResponse update;
    while (stream->Read(&update)) {
      std::string text = ToJson(update.run());
      absl::MutexLock l(&shared.mu);
      shared.runs.push_back(std::move(text));
    }
    grpc::Status st = stream->Finish();
    absl::MutexLock l(&shared.mu);
    shared.status = std::move(st);
    shared.done = true;
  });
  bool ok = sink.write("retry: 3000\n\n", 13);
  std::string last = "{}";
  absl::Time next_heartbeat = absl::Now() + options_.sse_heartbeat;
  bool finished = false;
  while (ok && !finished) {
    std::deque<std::string> batch;
    bool done = false;
    grpc::Status status;
    {
      absl::MutexLock l(&shared.mu);
      auto ready = [&shared]() { return !shared.runs.empty() || shared.done; };
      shared.mu.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(250));
      batch.swap(shared.runs);
      done = shared.done;
      status = shared.status;
    }
    for (std::string& run : batch) {
      const std::string event = SseEvent("run", run);
      ok = ok && sink.write(event.data(), event.size());
      last = std::move(run);
      next_heartbeat = absl::Now() + options_.sse_heartbeat;
    }
    if (!ok) break;
    if (done) {
      const std::string event =
          status.ok()
              ? SseEvent("end", last)
              : SseEvent("error",
                         ErrorBodyJson(ToHttpError(Backend("training", "WatchRun", status))));
      ok = sink.write(event.data(), event.size());
      finished = true;
    } else if (stopping_.load()) {
      finished = true;
    } else if (absl::Now() >= next_heartbeat) {
      ok = sink.write(": keep-alive\n\n", 14);
      next_heartbeat = absl::Now() + options_.sse_heartbeat;
    } else if (!sink.is_writable()) {
      ok = false;
    }
  }
  ctx.TryCancel();
  reader.join();
  Metrics().event_streams.Decrement();
  if (!ok) return false;
  sink.done();
  return true;
}

// ---- demo, OpenAPI, metrics --------------------------------------------------------------------

void GatewayServer::Impl::DemoSample(Call& call) {
  csv::GeneratorOptions g;
  g.rows = 1000;
  g.seed = 1;
  g.fraud_rate = 0.00172;
  if (std::string v = Param(call.req, "rows"); !v.empty()) {
    absl::StatusOr<int64_t> n = ParseInt("rows", v, 0, options_.max_demo_rows);
    if (!n.ok()) return ReplyError(call, n.status());
    g.rows = *n;
  }
  if (std::string v = Param(call.req, "seed"); !v.empty()) {
    absl::StatusOr<int64_t> n = ParseInt("seed", v, 0, std::numeric_limits<int64_t>::max());
    if (!n.ok()) return ReplyError(call, n.status());
    g.seed = static_cast<uint64_t>(*n);
  }
  if (std::string v = Param(call.req, "fraud_rate"); !v.empty()) {
    absl::StatusOr<double> r = ParseDouble("fraud_rate", v, 0, 1);
    if (!r.ok()) return ReplyError(call, r.status());
    g.fraud_rate = *r;
  }
  if (std::string v = Param(call.req, "labels"); !v.empty()) {
    absl::StatusOr<bool> b = ParseBool("labels", v);
    if (!b.ok()) return ReplyError(call, b.status());
    g.with_labels = *b;
  }
  struct State {
    explicit State(const csv::GeneratorOptions& o) : options(o), gen(o) {}
    csv::GeneratorOptions options;
    csv::SyntheticGenerator gen;
    bool header_sent = false;
    std::string buffer;
  };
  auto state = std::make_shared<State>(g);
  call.res.status = 200;
  call.res.set_header("Content-Disposition", absl::StrCat("attachment; filename=\"synthetic-",
                                                          g.rows, "-seed", g.seed, ".csv\""));
  call.res.set_header("Cache-Control", "no-store");
  call.res.set_chunked_content_provider("text/csv; charset=utf-8", [state](size_t, DataSink& sink) {
    std::string& out = state->buffer;
    out.clear();
    if (!state->header_sent) {
      out = csv::SyntheticCsvHeader(state->options);
      state->header_sent = true;
    }
    double features[csv::kNumFeatures];
    int32_t label = 0;
    bool more = true;
    while (out.size() < 64 * 1024 && (more = state->gen.Next(features, &label))) {
      csv::AppendCsvRow(features, label, state->options.with_labels, state->options.quote, &out);
    }
    if (!out.empty() && !sink.write(out.data(), out.size())) return false;
    if (!more) sink.done();
    return true;
  });
}

void GatewayServer::Impl::OpenApi(Call& call) {
  call.res.set_header("Cache-Control", "no-cache");
  ReplyJson(call, openapi_);
}

void GatewayServer::Impl::MetricsText(Call& call) {
  call.res.status = 200;
  call.res.set_content(metrics::RenderText(), "text/plain; version=0.0.4; charset=utf-8");
}

// ---- public wrapper ----------------------------------------------------------------------------

GatewayServer::GatewayServer(Backends backends, GatewayOptions options)
    : impl_(std::make_unique<Impl>(std::move(backends), std::move(options))) {}
GatewayServer::~GatewayServer() = default;
absl::Status GatewayServer::Start() { return impl_->Start(); }
int GatewayServer::port() const { return impl_->port(); }
void GatewayServer::Shutdown(absl::Duration grace) { impl_->Shutdown(grace); }
std::vector<RouteSpec> GatewayServer::RouteSpecs() { return Impl::Specs(); }
std::vector<std::pair<std::string, std::string>> GatewayServer::registered_routes() const {
  return impl_->registered();
}
const std::string& GatewayServer::openapi_json() const { return impl_->openapi(); }

std::string DeriveMetricsTarget(const std::string& grpc_target, int default_grpc_port,
                                int default_metrics_port) {
  int port = 0;
  const std::string host = HostPort(grpc_target, &port);
  if (host.empty()) return "";
  const int metrics_port = default_metrics_port + (port - default_grpc_port);
  if (metrics_port <= 0 || metrics_port > 65535) return "";
  const bool ipv6 = host.find(':') != std::string::npos;
  return ipv6 ? absl::StrCat("[", host, "]:", metrics_port) : absl::StrCat(host, ":", metrics_port);
}

}  // namespace fraud::gateway
