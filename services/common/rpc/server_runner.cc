#include "services/common/rpc/server_runner.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/server_interceptor.h>

#include <array>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.pb.h"
#include "services/common/core/log.h"
#include "services/common/rpc/grpc_status.h"
#include "services/common/rpc/reflection_service.h"

namespace fraud::rpc {
namespace {

// Per-method request counts, latencies and in-flight gauge, recorded by an interceptor so every
// handler is measured the same way.
struct RpcMetrics {
  explicit RpcMetrics(const std::string& service)
      : requests(metrics::Counter(absl::StrCat("fraud_", service, "_rpc_requests_total"),
                                  "RPCs finished, by method and status code")),
        latency(metrics::Histogram(absl::StrCat("fraud_", service, "_rpc_latency_seconds"),
                                   "RPC latency from first metadata to status, by method")),
        in_flight(metrics::Gauge(absl::StrCat("fraud_", service, "_rpc_in_flight"),
                                 "RPCs currently running, by method")) {}
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Histogram>& latency;
  prometheus::Family<prometheus::Gauge>& in_flight;
};

// One RpcMetrics per service name for the whole process, shared by every server of that name.
// Metric families live in the registry for the process's life, and interceptors may run until
// the last server is gone; keeping the structs reachable from here (instead of leaking one per
// Start) keeps LeakSanitizer quiet and the memory bounded.
RpcMetrics* MetricsFor(const std::string& service) {
  static std::mutex mu;
  static auto* by_name = new std::map<std::string, std::unique_ptr<RpcMetrics>>();
  std::lock_guard<std::mutex> lock(mu);
  std::unique_ptr<RpcMetrics>& m = (*by_name)[service];
  if (m == nullptr) m = std::make_unique<RpcMetrics>(service);
  return m.get();
}

// One method's metrics, resolved once: Family::Add hashes a label map under the family's mutex,
// which cost every call a few microseconds (measured with fraud-bench-inference: gRPC's unary
// floor 2.7-3.5 us slower with the per-call lookups). The counters of the status codes are
// resolved when a code is first seen.
class MethodMetrics {
 public:
  MethodMetrics(RpcMetrics* m, std::string method)
      : m_(m),
        method_(std::move(method)),
        in_flight_(m->in_flight.Add({{"method", method_}})),
        latency_(m->latency.Add({{"method", method_}}, metrics::LatencyBuckets())) {
    for (auto& c : by_code_) c.store(nullptr, std::memory_order_relaxed);
  }

  prometheus::Gauge& in_flight() { return in_flight_; }
  prometheus::Histogram& latency() { return latency_; }
  prometheus::Counter& requests(grpc::StatusCode code) {
    const size_t i = static_cast<size_t>(code);
    if (i >= by_code_.size()) return Resolve(code);
    prometheus::Counter* c = by_code_[i].load(std::memory_order_acquire);
    if (c == nullptr) {
      c = &Resolve(code);
      by_code_[i].store(c, std::memory_order_release);
    }
    return *c;
  }

 private:
  prometheus::Counter& Resolve(grpc::StatusCode code) {
    return m_->requests.Add(
        {{"method", method_}, {"code", CodeName(static_cast<absl::StatusCode>(code))}});
  }

  RpcMetrics* const m_;
  const std::string method_;
  prometheus::Gauge& in_flight_;
  prometheus::Histogram& latency_;
  // Indexed by grpc::StatusCode (0 OK .. 16 UNAUTHENTICATED).
  std::array<std::atomic<prometheus::Counter*>, 17> by_code_;
};

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit MetricsInterceptor(MethodMetrics* m) : m_(m) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      start_ = std::chrono::steady_clock::now();
      m_->in_flight().Increment();
      started_ = true;
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      code_ = methods->GetSendStatus().error_code();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_CLOSE) ||
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Finish();
    }
    methods->Proceed();
  }

 private:
  void Finish() {
    if (!started_ || finished_) return;
    finished_ = true;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    m_->in_flight().Decrement();
    m_->requests(code_).Increment();
    m_->latency().Observe(seconds);
  }

  MethodMetrics* const m_;
  std::chrono::steady_clock::time_point start_;
  grpc::StatusCode code_ = grpc::StatusCode::OK;
  bool started_ = false;
  bool finished_ = false;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(RpcMetrics* m) : m_(m) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(For(info->method()));
  }

 private:
  // The metrics of `path` ("/fraud.storage.v1.StorageService/StoreUpload"), labelled with the
  // method's name ("StoreUpload"); created on a method's first call, then found under a reader
  // lock. A server has a fixed, small set of methods, so the map stays small.
  MethodMetrics* For(absl::string_view path) {
    {
      absl::ReaderMutexLock lock(&mu_);
      if (auto it = by_path_.find(path); it != by_path_.end()) return it->second.get();
    }
    absl::MutexLock lock(&mu_);
    std::unique_ptr<MethodMetrics>& m = by_path_[path];
    if (m == nullptr) {
      absl::string_view method = path;
      if (auto pos = method.rfind('/'); pos != absl::string_view::npos) {
        method = method.substr(pos + 1);
      }
      m = std::make_unique<MethodMetrics>(m_, std::string(method));
    }
    return m.get();
  }

  RpcMetrics* const m_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<MethodMetrics>> by_path_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

void ConfigureServingProcess() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

ServerRunner::ServerRunner(ServerOptions options) : options_(std::move(options)) {}

ServerRunner::~ServerRunner() { Shutdown(absl::ZeroDuration()); }

void ServerRunner::Register(grpc::Service* service) { services_.push_back(service); }

void ServerRunner::SetReadyCheck(std::function<bool()> ready) { ready_ = std::move(ready); }

absl::Status ServerRunner::Start() {
  // Keep grpc.health.v1's descriptor linked in, so reflection can describe the health service.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::EnableDefaultHealthCheckService(true);
  if (reflection_ == nullptr) {
    absl::StatusOr<std::unique_ptr<ReflectionService>> reflection =
        ReflectionService::Create(EmbeddedDescriptorSet());
    if (!reflection.ok()) return reflection.status();
    reflection_ = *std::move(reflection);
  }

  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!options_.tls_cert_file.empty() && !options_.tls_key_file.empty()) {
    auto cert = ReadFile(options_.tls_cert_file);
    if (!cert.ok()) return cert.status();
    auto key = ReadFile(options_.tls_key_file);
    if (!key.ok()) return key.status();
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }

  grpc::ServerBuilder builder;
  builder.SetOption(ReflectionBuilderOption(reflection_.get()));
  const std::string address = absl::StrCat(options_.host, ":", options_.port);
  builder.AddListeningPort(address, creds, &port_);
  grpc::ResourceQuota quota(absl::StrCat("fraud-", options_.service_name));
  quota.SetMaxThreads(options_.max_threads);
  builder.SetResourceQuota(quota);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  for (const auto& [name, value] : options_.int_channel_args)
    builder.AddChannelArgument(name, value);
  RpcMetrics* rpc_metrics = MetricsFor(options_.service_name);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<MetricsInterceptorFactory>(rpc_metrics));
  builder.experimental().SetInterceptorCreators(std::move(factories));
  for (grpc::Service* s : services_) builder.RegisterService(s);

  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  // gRPC's health service starts SERVING; a server that is not ready yet must not say so.
  if (ready_ && !ready_()) SetServing("", false);
  if (options_.metrics_port >= 0) {
    auto ready = ready_;
    absl::Status s = http_.Start(options_.host, options_.metrics_port, ready);
    if (!s.ok()) return s;
  }
  FRAUD_LOG(INFO) << "gRPC server listening" << Kv("port", port_)
                  << Kv("metrics_port", http_.port()) << Kv("max_threads", options_.max_threads)
                  << Kv("tls", !options_.tls_cert_file.empty());
  return absl::OkStatus();
}

void ServerRunner::SetServing(const std::string& service, bool serving) {
  if (server_ == nullptr) return;
  if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(service, serving);
}

void ServerRunner::Shutdown(absl::Duration grace) {
  if (server_ == nullptr || shut_down_) return;
  shut_down_ = true;
  FRAUD_LOG(INFO) << "shutting down" << Kv("grace_ms", absl::ToInt64Milliseconds(grace));
  if (auto* health = server_->GetHealthCheckService()) health->Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace));
  server_->Wait();
  http_.Stop();
}

void ServerRunner::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace fraud::rpc
