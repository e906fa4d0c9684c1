#include "services/gateway/gateway_options.h"

#include "services/gateway/gateway_internal.h"

namespace fraud::gateway {

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
