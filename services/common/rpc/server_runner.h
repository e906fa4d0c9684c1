// Runs one gRPC server with everything every service needs: server reflection (grpcurl `list` /
// `describe`), grpc.health.v1.Health, per-RPC Prometheus metrics (fraud_<service>_rpc_*), a capped
// sync thread pool (overload shows as RESOURCE_EXHAUSTED), optional TLS, a /metrics + /healthz
// HTTP endpoint, and graceful shutdown with a grace period.
//
// Usage (main.cc):
//   ServerRunner runner(options);
//   runner.Register(&service);            // services must outlive the runner
//   FRAUD_CHECK_OK(runner.Start());
//   WaitForSignal(stop);
//   runner.Shutdown(absl::Seconds(10));   // in-flight RPCs finish or are cancelled at the deadline
//
// Thread-safety: Register/Start/Shutdown from one thread; SetServing from any thread.
#pragma once

#include <grpcpp/impl/service_type.h>
#include <grpcpp/server.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/common/core/metrics.h"

namespace fraud::rpc {

class ReflectionService;  // reflection_service.h

// Process-wide settings of a serving process, called once at start-up (InitService does; benches
// that build servers in process call it too): absl::Mutex deadlock detection off. Debian's Abseil
// is built without NDEBUG, so by default every Mutex Lock/Unlock also updates a global lock-order
// graph under a global lock (GraphCycles): measurable on every one-row Predict, which takes
// several mutexes, and a contention point between gRPC threads. The thread-safety annotations and
// the TSan build check lock order instead.
void ConfigureServingProcess();

struct ServerOptions {
  // Short service name for metrics and logs: "storage", "inference", ...
  std::string service_name = "fraud";
  std::string host = "0.0.0.0";
  // gRPC port; 0 picks a free one (see port()).
  int port = 0;
  // HTTP port for /metrics and /healthz; 0 picks a free one, -1 disables it.
  int metrics_port = -1;
  // Cap on gRPC threads (polling threads included): expected concurrent RPCs + 2.
  int max_threads = 16;
  int max_message_bytes = 64 << 20;
  // PEM certificate chain and private key; TLS is used when both are set.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Extra integer channel arguments for the server (e.g. {GRPC_ARG_HTTP2_BDP_PROBE, 0} to stop
  // HTTP/2 flow control from reading far ahead of a slow client-streaming handler).
  std::vector<std::pair<std::string, int>> int_channel_args;
};

class ServerRunner {
 public:
  explicit ServerRunner(ServerOptions options);
  ~ServerRunner();
  ServerRunner(const ServerRunner&) = delete;
  ServerRunner& operator=(const ServerRunner&) = delete;

  // Adds a service (not owned; must outlive this runner). Call before Start().
  void Register(grpc::Service* service);
  // Extra readiness condition for /healthz and the health service's overall status ("" is
  // NOT_SERVING right from Start() while it is false; later changes go through SetServing).
  void SetReadyCheck(std::function<bool()> ready);

  // Builds and starts the server. Unavailable when the port cannot be bound, InvalidArgument on bad
  // TLS files.
  absl::Status Start();
  // The bound gRPC port (after Start).
  int port() const { return port_; }
  int metrics_port() const { return http_.port(); }
  grpc::Server* server() { return server_.get(); }

  // Sets the health status of `service` ("" = the whole server).
  void SetServing(const std::string& service, bool serving);

  // Stops accepting calls; waits up to `grace` for in-flight calls, then cancels the rest.
  // Idempotent.
  void Shutdown(absl::Duration grace);
  // Blocks until the server has shut down.
  void Wait();

 private:
  ServerOptions options_;
  std::vector<grpc::Service*> services_;
  std::function<bool()> ready_;
  // Declared before server_: the server uses it until it is destroyed.
  std::unique_ptr<ReflectionService> reflection_;
  std::unique_ptr<grpc::Server> server_;
  metrics::HttpEndpoint http_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace fraud::rpc
