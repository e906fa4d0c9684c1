// The REST gateway: serves /api/v1 (services/gateway/API.md) by calling the gRPC services, streams
// uploads to ingest, relays training progress as Server-Sent Events, aggregates monitoring, serves
// the web build, /healthz and /metrics. Routes are data (RouteSpecs(), collected from the
// routes_<area>.cc files); the OpenAPI document at /api/v1/openapi.json is generated from the
// same list.
//
// Every backend call carries a deadline and the request's x-request-id (taken from the client's
// X-Request-Id header when it is sane, otherwise new; echoed in the response). Admin routes need
// "Authorization: Bearer <admin_token>" (checked in constant time), which is forwarded to the
// admin RPCs. Limits: concurrent uploads (429), upload size (413, enforced while streaming),
// JSON body size (413), per-client token-bucket rate limit on /api (429 + Retry-After), header
// count and size (431), connection threads (--max_connections).
//
// Thread-safety: Start/Shutdown from one thread; requests are served concurrently on the HTTP
// thread pool. The channels are shared and must outlive the server.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/gateway/gateway_options.h"
#include "services/gateway/route_spec.h"

namespace fraud::gateway {

class GatewayServer {
 public:
  GatewayServer(Backends backends, GatewayOptions options);
  ~GatewayServer();
  GatewayServer(const GatewayServer&) = delete;
  GatewayServer& operator=(const GatewayServer&) = delete;

  // Binds and starts serving on background threads. Unavailable when the port cannot be bound,
  // InvalidArgument for unusable TLS files or options.
  absl::Status Start();
  int port() const;
  // Stops accepting connections, lets in-flight uploads and event streams run up to `grace`, then
  // cancels their backend calls and waits for the workers. Idempotent.
  void Shutdown(absl::Duration grace);

  // The route table (the same list the server registers and the OpenAPI document describes).
  static std::vector<RouteSpec> RouteSpecs();
  // What Start() registered with the HTTP server: (method, path pattern) per route.
  std::vector<std::pair<std::string, std::string>> registered_routes() const;
  const std::string& openapi_json() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fraud::gateway
