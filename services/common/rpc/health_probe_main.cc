// fraud-health-probe: exits 0 when a gRPC server reports SERVING on grpc.health.v1.Health/Check
// (or, with --http_url, when an HTTP endpoint answers 200), 1 otherwise. Used by container
// HEALTHCHECKs (grpc_health_probe is not packaged for Debian).
//   fraud-health-probe [--target=127.0.0.1:50052] [--service=NAME] [--timeout_ms=1000]
//   fraud-health-probe --http_url=http://127.0.0.1:8080/healthz
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "httplib.h"
#include "services/common/core/config.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/ports.h"

ABSL_FLAG(std::string, target, fraud::rpc::LocalTarget(fraud::rpc::kIngestPorts), "host:port of the gRPC server");
ABSL_FLAG(std::string, service, "", "service name to check (empty = whole server)");
ABSL_FLAG(int, timeout_ms, 1000, "deadline of the check");
ABSL_FLAG(std::string, probe_tls_ca, "", "PEM CA bundle when the server uses TLS");
ABSL_FLAG(std::string, http_url, "", "check this http://host:port/path instead (expects 200)");

int main(int argc, char** argv) {
  fraud::LoadFlagsFromEnv();
  absl::ParseCommandLine(argc, argv);
  if (const std::string url = absl::GetFlag(FLAGS_http_url); !url.empty()) {
    // http://host:port/path
    const size_t scheme = url.find("://");
    const size_t path = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    const std::string base = url.substr(0, path);
    httplib::Client client(base);
    const int timeout_ms = absl::GetFlag(FLAGS_timeout_ms);
    client.set_connection_timeout(0, timeout_ms * 1000);
    client.set_read_timeout(0, timeout_ms * 1000);
    auto res = client.Get(path == std::string::npos ? "/" : url.substr(path).c_str());
    if (!res || res->status != 200) {
      std::fprintf(stderr, "unhealthy: %s\n", res ? std::to_string(res->status).c_str() : "no answer");
      return 1;
    }
    std::printf("OK\n");
    return 0;
  }
  auto channel = fraud::rpc::MakeChannel(
      {absl::GetFlag(FLAGS_target), absl::GetFlag(FLAGS_probe_tls_ca)});
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  fraud::rpc::SetDeadline(&ctx, absl::Milliseconds(absl::GetFlag(FLAGS_timeout_ms)));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(absl::GetFlag(FLAGS_service));
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) {
    std::fprintf(stderr, "unhealthy: %s\n", s.error_message().c_str());
    return 1;
  }
  if (resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    std::fprintf(stderr, "not serving (status %d)\n", static_cast<int>(resp.status()));
    return 1;
  }
  std::printf("SERVING\n");
  return 0;
}
