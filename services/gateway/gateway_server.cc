// The gateway server: the route table, the HTTP plumbing (pre-routing limits, dispatch, errors,
// static files) and the thin storage/inference/training routes. Uploads, event streams and
// monitoring live in upload_route.cc, events_route.cc and monitoring_route.cc.
#include "services/gateway/gateway_internal.h"

namespace fraud::gateway {

namespace {

// httplib hands every accepted connection to a worker before reading a byte, so connections that
// send nothing (or half a request line) hold workers until the read timeout. This pool runs
// `core` workers and, when all are busy, adds more up to `max` so such connections cannot lock
// out other clients; beyond `max` connections wait in the queue. Workers stay until shutdown.
class ElasticThreadPool final : public httplib::TaskQueue {
 public:
  ElasticThreadPool(size_t core, size_t max) : max_(std::max(core, max)) {
    absl::MutexLock l(&mu_);
    for (size_t i = 0; i < core; ++i) Spawn();
  }
  ~ElasticThreadPool() override = default;

  void enqueue(std::function<void()> fn) override {
    absl::MutexLock l(&mu_);
    jobs_.push_back(std::move(fn));
    if (idle_ < jobs_.size() && threads_.size() < max_) Spawn();
  }

  void shutdown() override {
    {
      absl::MutexLock l(&mu_);
      stop_ = true;
    }
    for (std::thread& t : threads_) t.join();
  }

 private:
  void Spawn() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    threads_.emplace_back([this] { Work(); });
  }

  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        absl::MutexLock l(&mu_);
        ++idle_;
        mu_.Await(absl::Condition(
            +[](ElasticThreadPool* p) { return p->stop_ || !p->jobs_.empty(); }, this));
        --idle_;
        if (jobs_.empty()) return;  // stopping and nothing left
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      fn();
    }
  }

  const size_t max_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;  // appended under mu_, joined after stop_
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

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
  http_->new_task_queue = [threads] { return new ElasticThreadPool(threads, 4 * threads); };
  // Every POST route reads its body itself with its own limit; this only bounds what httplib
  // would buffer for a request no route reads.
  http_->set_payload_max_length(
      static_cast<size_t>(std::max(options_.max_upload_bytes, options_.max_json_bytes)) + 1);
  http_->set_read_timeout(30, 0);
  // Responses go out as separate header and body writes: without TCP_NODELAY, Nagle plus the
  // client's delayed ACK added ~40 ms to every keep-alive request (fraud-bench-load).
  http_->set_tcp_nodelay(true);
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
    absl::StatusOr<int64_t> id =
        ParseInt(PathParams(route.spec.path)[i - 1], req.matches[i].str(), 0, kMaxInt64);
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

// ---- storage routes ----------------------------------------------------------------------------

void GatewayServer::Impl::ListUploads(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  storagepb::ListUploadsRequest request;
  if (!QueryPaging(call, &request)) return;
  Forward(call, storage_.get(), "storage", "ListUploads", &StorageStub::ListUploads, request);
}

void GatewayServer::Impl::GetUpload(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  storagepb::GetUploadRequest request;
  request.set_upload_id(call.ids[0]);
  Forward(call, storage_.get(), "storage", "GetUpload", &StorageStub::GetUpload, request);
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
  Forward(call, storage_.get(), "storage", "ListPredictions", &StorageStub::ListPredictions,
          request);
}

void GatewayServer::Impl::DataStats(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  storagepb::GetDataStatsRequest request;
  int64_t after_upload_id = 0;
  if (!QueryInt(call, "after_upload_id", kMaxInt64, &after_upload_id)) return;
  request.set_after_upload_id(after_upload_id);
  Forward(call, storage_.get(), "storage", "GetDataStats", &StorageStub::GetDataStats, request);
}

void GatewayServer::Impl::ListModels(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  Forward(call, storage_.get(), "storage", "ListModels", &StorageStub::ListModels,
          storagepb::ListModelsRequest());
}

void GatewayServer::Impl::GetChampion(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  Forward(call, storage_.get(), "storage", "GetChampion", &StorageStub::GetChampion,
          storagepb::GetChampionRequest());
}

void GatewayServer::Impl::ChampionHistory(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  Forward(call, storage_.get(), "storage", "ListChampionHistory", &StorageStub::ListChampionHistory,
          storagepb::ListChampionHistoryRequest());
}

void GatewayServer::Impl::GetModel(Call& call) {
  if (!Require(call, storage_.get(), "storage")) return;
  storagepb::GetModelRequest request;
  request.set_version(call.ids[0]);
  Forward(call, storage_.get(), "storage", "GetModel", &StorageStub::GetModel, request);
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
  Forward(call, inference_.get(), "inference", "Predict", &InferenceStub::Predict, request);
}

void GatewayServer::Impl::InferenceModel(Call& call) {
  if (!Require(call, inference_.get(), "inference")) return;
  Forward(call, inference_.get(), "inference", "GetModel", &InferenceStub::GetModel,
          inferencepb::GetModelRequest());
}

void GatewayServer::Impl::Reload(Call& call) {
  if (!Require(call, inference_.get(), "inference")) return;
  inferencepb::ReloadRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  Forward(call, inference_.get(), "inference", "Reload", &InferenceStub::Reload, request);
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
  Forward(call, training_.get(), "training", "Promote", &TrainingStub::Promote, request);
}

void GatewayServer::Impl::StartRun(Call& call) {
  if (!Require(call, training_.get(), "training")) return;
  trainingpb::StartRunRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  Forward(call, training_.get(), "training", "StartRun", &TrainingStub::StartRun, request);
}

void GatewayServer::Impl::ListRuns(Call& call) {
  if (!Require(call, training_.get(), "training")) return;
  trainingpb::ListRunsRequest request;
  if (!QueryPaging(call, &request)) return;
  Forward(call, training_.get(), "training", "ListRuns", &TrainingStub::ListRuns, request);
}

void GatewayServer::Impl::GetRun(Call& call) {
  if (!Require(call, training_.get(), "training")) return;
  trainingpb::GetRunRequest request;
  request.set_run_id(call.ids[0]);
  Forward(call, training_.get(), "training", "GetRun", &TrainingStub::GetRun, request);
}

void GatewayServer::Impl::CancelRun(Call& call) {
  if (!Require(call, training_.get(), "training")) return;
  trainingpb::CancelRunRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  if (request.run_id() != 0 && request.run_id() != call.ids[0]) {
    return ReplyError(call, absl::InvalidArgumentError("body runId differs from the path's id"));
  }
  request.set_run_id(call.ids[0]);
  Forward(call, training_.get(), "training", "CancelRun", &TrainingStub::CancelRun, request);
}

void GatewayServer::Impl::Evaluate(Call& call) {
  if (!Require(call, training_.get(), "training")) return;
  trainingpb::EvaluateRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  // Evaluation scores every version on the stored rows: it may take minutes.
  Forward(call, training_.get(), "training", "Evaluate", &TrainingStub::Evaluate, request,
          std::max(options_.rpc_timeout, absl::Minutes(10)));
}

// ---- demo, OpenAPI, metrics --------------------------------------------------------------------

void GatewayServer::Impl::DemoSample(Call& call) {
  csv::GeneratorOptions g;
  g.rows = 1000;
  g.seed = 1;
  g.fraud_rate = 0.00172;
  if (!QueryInt(call, "rows", options_.max_demo_rows, &g.rows) ||
      !QueryInt(call, "seed", kMaxInt64, &g.seed)) {
    return;
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
