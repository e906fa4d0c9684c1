// Private to the gateway library: the server's implementation class and the helpers its route
// files share. Included only by services/gateway/*.cc.
#pragma once

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
#include "services/gateway/gateway_server.h"
#include "services/gateway/http_status.h"
#include "services/gateway/json_util.h"
#include "services/gateway/openapi.h"
#include "services/gateway/prometheus_text.h"
#include "services/gateway/rate_limiter.h"
#include "services/gateway/static_files.h"
#include "services/gateway/upload_forwarder.h"

namespace fraud::gateway {

// Short names for every gateway source file (this header is included only by them).
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

namespace internal {

inline constexpr char kJsonType[] = "application/json";
inline constexpr char kApiPrefix[] = "/api/";

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

inline GatewayMetrics& Metrics() {
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

inline bool SaneRequestId(const std::string& id) {
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
inline constexpr int64_t kDrainBytes = 32 << 20;

inline void Drain(const Request& req, const ContentReader* reader, int64_t limit = kDrainBytes) {
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

inline std::string Param(const Request& req, const char* name) {
  return req.has_param(name) ? req.get_param_value(name) : "";
}

inline std::string HostPort(const std::string& target, int* port) {
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

// Largest page_size a list route passes on (the backends apply their own, smaller maximum).
inline constexpr int64_t kMaxPageSize = 100000;
inline constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();

}  // namespace internal

// The helpers above by their short names, for the route files.
using internal::Call;
using internal::CallRegistry;
using internal::CounterGuard;
using internal::Drain;
using internal::GatewayMetrics;
using internal::HostPort;
using internal::kApiPrefix;
using internal::kDrainBytes;
using internal::kJsonType;
using internal::kMaxInt64;
using internal::kMaxPageSize;
using internal::Metrics;
using internal::Param;
using internal::SaneRequestId;
using internal::ScopedCall;

class GatewayServer::Impl {
 public:
  using Server = httplib::Server;
  using Handler = void (Impl::*)(Call&);
  using StorageStub = storagepb::StorageService::Stub;
  using InferenceStub = inferencepb::InferenceService::Stub;
  using TrainingStub = trainingpb::TrainingService::Stub;
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
  // The unary call `method` on `stub` with a context from Prepare (the caller's credentials go
  // along on admin routes), answered by ReplyGrpc. A zero `timeout` means --rpc_timeout.
  template <typename Stub, typename Req, typename Resp>
  void Forward(Call& call, Stub* stub, const char* service, const char* rpc,
               grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
               const Req& request, absl::Duration timeout = absl::ZeroDuration()) {
    grpc::ClientContext ctx;
    Prepare(call, &ctx, call.route->admin, timeout);
    Resp response;
    ReplyGrpc(call, service, rpc, (stub->*method)(&ctx, request, &response), response);
  }
  bool Require(Call& call, const void* stub, const char* service);
  // The optional integer query parameter `name`, in [0, max], into *value (left alone when absent
  // or empty). False after replying 400 when it is not such an integer.
  template <typename Int>
  bool QueryInt(Call& call, const char* name, int64_t max, Int* value) {
    const std::string text = Param(call.req, name);
    if (text.empty()) return true;
    absl::StatusOr<int64_t> n = ParseInt(name, text, 0, max);
    if (!n.ok()) {
      ReplyError(call, n.status());
      return false;
    }
    *value = static_cast<Int>(*n);
    return true;
  }
  // The page_size and before_id query parameters of a list route, into its request.
  template <typename ListRequest>
  bool QueryPaging(Call& call, ListRequest* request) {
    int32_t page_size = 0;
    int64_t before_id = 0;
    if (!QueryInt(call, "page_size", kMaxPageSize, &page_size) ||
        !QueryInt(call, "before_id", kMaxInt64, &before_id)) {
      return false;
    }
    request->set_page_size(page_size);
    request->set_before_id(before_id);
    return true;
  }
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
  std::unique_ptr<StorageStub> storage_;
  std::unique_ptr<InferenceStub> inference_;
  std::unique_ptr<TrainingStub> training_;
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

}  // namespace fraud::gateway
