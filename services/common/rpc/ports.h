// The services' default ports, stated once: each binary's --port/--metrics_port defaults and the
// default targets its clients dial. Deploy files (compose, Render, k8s, ./fraud up) set ports
// explicitly; tests/unit/deploy/check_deploy.py checks them against the binaries' flags.
#pragma once

#include <string>

namespace fraud::rpc {

struct ServicePorts {
  int grpc;
  int metrics;  // /metrics and /healthz
};

inline constexpr ServicePorts kIngestPorts{50051, 9101};
inline constexpr ServicePorts kStoragePorts{50052, 9102};
inline constexpr ServicePorts kInferencePorts{50053, 9103};
inline constexpr ServicePorts kTrainingPorts{50054, 9104};
// The REST gateway (HTTP; it serves /metrics on the same port).
inline constexpr int kGatewayPort = 8080;

// "127.0.0.1:<gRPC port>": the default target of a flag such as --storage_target.
inline std::string LocalTarget(const ServicePorts& ports) {
  return "127.0.0.1:" + std::to_string(ports.grpc);
}

}  // namespace fraud::rpc
