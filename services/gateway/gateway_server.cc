// The gateway server: assembles the route table from the areas (routes_<area>.cc), registers it
// with cpp-httplib, and runs what every route shares: header, method and body limits, CORS, the
// per-client rate limit, request ids, path ids, admin authentication, error bodies, metrics and
// request logs, and the static web build for every other GET.
#include "services/gateway/gateway_server.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <regex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/common/core/log.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/channel.h"
#include "services/gateway/gateway_internal.h"
#include "services/gateway/http_status.h"
#include "services/gateway/openapi.h"
#include "services/gateway/rate_limiter.h"
#include "services/gateway/static_files.h"
#include "services/gateway/thread_pool.h"

namespace fraud::gateway {

namespace {

// ---- the route table ---------------------------------------------------------------------------

// Every area's rows, in registration order. The patterns never match the same path, so the order
// only decides how registered_routes() lists them.
const std::vector<Route>& Routes() {
  static const auto* routes = [] {
    using Area = std::vector<Route> (*)();
    const Area areas[] = {internal::MonitoringRoutes, internal::UploadRoutes,
                          internal::InferenceRoutes,  internal::ModelRoutes,
                          internal::TrainingRoutes,   internal::DemoRoutes,
                          internal::FeedbackRoutes,   internal::ReviewRoutes,
                          internal::MetaRoutes};
    auto* all = new std::vector<Route>();
    for (Area area : areas) {
      for (Route& route : area()) all->push_back(std::move(route));
    }
    return all;
  }();
  return *routes;
}

std::vector<RouteSpec> Specs() {
  std::vector<RouteSpec> out;
  for (const Route& r : Routes()) out.push_back(r.spec);
  return out;
}

}  // namespace

class GatewayServer::Impl {
 public:
  using Server = httplib::Server;

  Impl(Backends backends, GatewayOptions options)
      : gw_(std::move(backends), options, BuildOpenApiJson(Specs(), options.version)),
        options_(gw_.options()),
        static_files_(options_.web_root),
        limiter_(options_.rate_limit_rps, options_.rate_limit_burst > 0
                                              ? options_.rate_limit_burst
                                              : 2 * options_.rate_limit_rps) {}

  ~Impl() { Shutdown(absl::ZeroDuration()); }

  absl::Status Start();
  void Shutdown(absl::Duration grace);
  int port() const { return port_; }
  std::vector<std::pair<std::string, std::string>> registered() const { return registered_; }
  const std::string& openapi() const { return gw_.openapi_json(); }

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

  // What the handlers share; declared first so that it outlives the HTTP server.
  Gateway gw_;
  const GatewayOptions& options_;
  StaticFiles static_files_;
  RateLimiter limiter_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
  bool started_ = false;
  bool shut_down_ = false;
  std::vector<std::pair<std::string, std::string>> registered_;
  std::vector<std::pair<std::string, std::regex>> route_regexes_;
};

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
  gw_.BeginShutdown();
  http_->stop();
  gw_.FinishShutdown(grace);
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
  http_->set_exception_handler([](const Request& req, Response& res, std::exception_ptr ep) {
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
  if (status.ok() && route.spec.access == Access::kAdmin) {
    status =
        rpc::CheckAuthorizationHeader(req.get_header_value("Authorization"), options_.admin_token);
  }
  if (status.ok() &&
      (route.spec.body == BodyKind::kJson || route.spec.body == BodyKind::kJsonOrCsv)) {
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
    route.handler(gw_, call);
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

// ---- public wrapper ----------------------------------------------------------------------------

GatewayServer::GatewayServer(Backends backends, GatewayOptions options)
    : impl_(std::make_unique<Impl>(std::move(backends), std::move(options))) {}
GatewayServer::~GatewayServer() = default;
absl::Status GatewayServer::Start() { return impl_->Start(); }
int GatewayServer::port() const { return impl_->port(); }
void GatewayServer::Shutdown(absl::Duration grace) { impl_->Shutdown(grace); }
std::vector<RouteSpec> GatewayServer::RouteSpecs() { return Specs(); }
std::vector<std::pair<std::string, std::string>> GatewayServer::registered_routes() const {
  return impl_->registered();
}
const std::string& GatewayServer::openapi_json() const { return impl_->openapi(); }

}  // namespace fraud::gateway
