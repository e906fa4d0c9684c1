// Private to the gateway library: what the route files (routes_*.cc) and the server assembly
// (gateway_server.cc) share: the Gateway every handler is given (options, backend stubs, shared
// counters, the backend call helper), the request being handled (Call), the replies, and each
// area's route rows. Included only by services/gateway/*.cc.
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fraud/inference/v1/inference.grpc.pb.h"
#include "fraud/ingest/v1/ingest.grpc.pb.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "fraud/training/v1/training.grpc.pb.h"
#include "services/common/core/metrics.h"
#include "services/gateway/gateway_options.h"
#include "services/gateway/json_util.h"
#include "services/gateway/route_spec.h"

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
  // The route being served; the server sets it before the handler runs.
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

// ---- replies -----------------------------------------------------------------------------------

void ReplyJson(Call& call, const std::string& json_text, int status = 200);
void ReplyProto(Call& call, const google::protobuf::Message& m);
// The error body of `status` (http_status.h's table), `details` a JSON object text or "".
void ReplyError(Response& res, const absl::Status& status, const std::string& details = "");
void ReplyError(Call& call, const absl::Status& status, const std::string& details = "");
// Maps a backend's status, naming the service and RPC for transport-level failures.
absl::Status BackendStatus(const char* service, const char* rpc, const grpc::Status& s);
template <typename Resp>
void ReplyGrpc(Call& call, const char* service, const char* rpc, const grpc::Status& s,
               const Resp& resp) {
  if (s.ok()) {
    ReplyProto(call, resp);
  } else {
    ReplyError(call, BackendStatus(service, rpc, s));
  }
}
// True when `stub` is set; otherwise replies 503 "<service> is not configured".
bool Require(Call& call, const void* stub, const char* service);
// The JSON body into `m`; InvalidArgument naming the problem.
absl::Status ParseBody(const Call& call, google::protobuf::Message* m);

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

// The optional number query parameter `name`, in [min, max], into *value (left alone when absent
// or empty). False after replying 400 when it is not such a number.
inline bool QueryDouble(Call& call, const char* name, double min, double max, double* value) {
  const std::string text = Param(call.req, name);
  if (text.empty()) return true;
  absl::StatusOr<double> v = ParseDouble(name, text, min, max);
  if (!v.ok()) {
    ReplyError(call, v.status());
    return false;
  }
  *value = *v;
  return true;
}

// The page_size and before_id query parameters of a list route: their documentation (the rows'
// `.query`) and, below, their parsing into its request.
std::vector<QueryParamSpec> PagingQuery();
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

// ---- the gateway every handler is given --------------------------------------------------------

// Options, backend stubs (null when the service is not configured) and the state the routes share
// with the server: backend calls Shutdown may cancel, uploads and streams in progress.
// Thread-safety: handlers run concurrently; everything here is immutable or synchronised.
class Gateway {
 public:
  using IngestStub = ingestpb::IngestService::Stub;
  using StorageStub = storagepb::StorageService::Stub;
  using InferenceStub = inferencepb::InferenceService::Stub;
  using TrainingStub = trainingpb::TrainingService::Stub;

  // `openapi_json` is the document GET /api/v1/openapi.json serves.
  Gateway(Backends backends, GatewayOptions options, std::string openapi_json);
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  const GatewayOptions& options() const { return options_; }
  const Backends& backends() const { return backends_; }
  IngestStub* ingest() const { return ingest_.get(); }
  StorageStub* storage() const { return storage_.get(); }
  InferenceStub* inference() const { return inference_.get(); }
  TrainingStub* training() const { return training_.get(); }
  const std::string& openapi_json() const { return openapi_json_; }

  CallRegistry* calls() { return &calls_; }
  // Uploads being streamed (bounded by --max_concurrent_uploads).
  std::atomic<int>* uploads_in_flight() { return &uploads_in_flight_; }
  // Uploads and event streams in progress (Shutdown waits for them); hold a CounterGuard.
  std::atomic<int>* streams() { return &streams_; }
  // Set once Shutdown began: event streams end at their next wake-up.
  bool stopping() const { return stopping_.load(); }

  // Shutdown, around the HTTP server's stop: BeginShutdown() first, then (after the server stopped
  // accepting) FinishShutdown(grace) waits up to `grace` for uploads and event streams, then
  // cancels every backend call still running.
  void BeginShutdown() { stopping_ = true; }
  void FinishShutdown(absl::Duration grace);

  // A backend call's context: the deadline (`timeout`, zero = --rpc_timeout), the request id and,
  // on admin routes, the admin credentials (the configured token, else the caller's header).
  void Prepare(const Call& call, grpc::ClientContext* ctx,
               absl::Duration timeout = absl::ZeroDuration()) const;

  // The unary call `method` on `stub` with a context from Prepare, answered by ReplyGrpc.
  template <typename Stub, typename Req, typename Resp>
  void Forward(Call& call, Stub* stub, const char* service, const char* rpc,
               grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
               const Req& request, absl::Duration timeout = absl::ZeroDuration()) const {
    grpc::ClientContext ctx;
    Prepare(call, &ctx, timeout);
    Resp response;
    ReplyGrpc(call, service, rpc, (stub->*method)(&ctx, request, &response), response);
  }

 private:
  const GatewayOptions options_;
  const Backends backends_;
  const std::string openapi_json_;
  std::unique_ptr<IngestStub> ingest_;
  std::unique_ptr<StorageStub> storage_;
  std::unique_ptr<InferenceStub> inference_;
  std::unique_ptr<TrainingStub> training_;
  CallRegistry calls_;
  std::atomic<int> uploads_in_flight_{0};
  std::atomic<int> streams_{0};
  std::atomic<bool> stopping_{false};
};

// ---- routes ------------------------------------------------------------------------------------

// A handler: thin (parse, call, reply). Path ids are parsed, admin routes authenticated and JSON
// bodies read (into call.body) before it runs.
using Handler = void (*)(Gateway& gw, Call& call);

struct Route {
  RouteSpec spec;
  Handler handler;
};

// Each area's route rows, defined next to its handlers (routes_<area>.cc).
std::vector<Route> MonitoringRoutes();  // health, monitoring page
std::vector<Route> UploadRoutes();      // CSV uploads, stored uploads and predictions, data stats
std::vector<Route> InferenceRoutes();   // scoring, the serving model, reloads
std::vector<Route> ModelRoutes();       // registered versions, champion, promotion
std::vector<Route> TrainingRoutes();    // training runs, their event streams, evaluation
std::vector<Route> DemoRoutes();        // synthetic CSV downloads
std::vector<Route> FeedbackRoutes();    // delayed labels, label history, realised metrics
std::vector<Route> ReviewRoutes();      // the review queue and analysts' dispositions
std::vector<Route> MetaRoutes();        // the OpenAPI document, the gateway's own /metrics

// ---- reason codes of stored rows (routes_review.cc) ---------------------------------------------

// One row of a page whose reasons a route shows (AttachExplanations).
struct ExplainableRow {
  // The row's 30 stored features (not owned).
  const google::protobuf::RepeatedField<double>* features = nullptr;
  // Whether storage answered an explanation with the row, and the version that scored it.
  bool stored = false;
  int64_t model_version = 0;
  // Whether a missing explanation is computed (the review queue: every item; an upload's
  // predictions: the alerts).
  bool wanted = false;
};

// Reasons per row a route computes when none is stored.
inline constexpr int kComputedReasons = 5;

// Marks each row's JSON object (items[i] for rows[i]) with where its reasons come from. A stored
// explanation (by the version that flagged the row, at scoring time) stays as storage answered
// it, with "explanationSource": "stored" and "explanationModelVersion" = that version. Wanted
// rows without one are explained in one batched inference Predict (explain, kComputedReasons) by
// the serving model: "explanation" set, "computed" and the serving version (also in
// (*doc)["explanationModelVersion"]). When inference cannot answer, those rows stay without and
// (*doc)["explanationError"] says why; the stored ones are unaffected (inference not needed).
void AttachExplanations(Gateway& gw, const Call& call, const std::vector<ExplainableRow>& rows,
                        json* items, json* doc);

}  // namespace internal

// The helpers above by their short names, for the route files.
using internal::AttachExplanations;
using internal::BackendStatus;
using internal::ExplainableRow;
using internal::Call;
using internal::CallRegistry;
using internal::CounterGuard;
using internal::Drain;
using internal::Gateway;
using internal::GatewayMetrics;
using internal::Handler;
using internal::HostPort;
using internal::kApiPrefix;
using internal::kDrainBytes;
using internal::kJsonType;
using internal::kMaxInt64;
using internal::kMaxPageSize;
using internal::Metrics;
using internal::PagingQuery;
using internal::Param;
using internal::ParseBody;
using internal::QueryInt;
using internal::QueryPaging;
using internal::ReplyError;
using internal::ReplyGrpc;
using internal::ReplyJson;
using internal::ReplyProto;
using internal::Require;
using internal::Route;
using internal::SaneRequestId;
using internal::ScopedCall;

}  // namespace fraud::gateway
