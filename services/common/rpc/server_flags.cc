#include "services/common/rpc/server_flags.h"

#include <cstdio>
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "services/common/core/config.h"
#include "services/common/core/log.h"
#include "services/common/core/process_memory.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on (gRPC and metrics)");
ABSL_FLAG(int, port, -1, "gRPC port; 0 picks a free one; -1 = the service's default");
ABSL_FLAG(int, metrics_port, -2,
          "HTTP port for /metrics and /healthz; 0 picks one; -1 disables; -2 = service default");
ABSL_FLAG(int, max_threads, 16, "Cap on gRPC server threads (concurrent RPCs + 2)");
ABSL_FLAG(double, grace_period_seconds, 10, "On SIGTERM, how long in-flight RPCs may finish");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(std::string, admin_token, "",
          "Bearer token required by admin RPCs (empty = no auth). Prefer FRAUD_ADMIN_TOKEN.");
ABSL_FLAG(std::string, service_token, "",
          "Per-deployment secret the services send to each other; storage requires it for writes "
          "(empty = writes open to anyone who reaches the port). Prefer FRAUD_SERVICE_TOKEN.");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: serve gRPC over TLS (with --tls_key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for --tls_cert");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA bundle for TLS connections to other services");
ABSL_FLAG(int64_t, heap_keep_mb, 64,
          "Freed heap memory malloc keeps for reuse instead of returning it to the OS at once "
          "(blocks under this size come from malloc's arenas, at most 2 of them); 0 = glibc's "
          "defaults. Read by the gateway, ingest, storage and inference");

namespace fraud::rpc {

void InitService(int argc, char** argv, const std::string& service_name,
                 const std::string& usage) {
  ConfigureServingProcess();
  absl::SetProgramUsageMessage(usage);
  std::vector<std::string> env_errors = LoadFlagsFromEnv();
  absl::ParseCommandLine(argc, argv);
  SetLogService(service_name);
  const std::string level = absl::GetFlag(FLAGS_log_level);
  if (level == "debug") SetMinLogLevel(LogLevel::kDebug);
  else if (level == "warning") SetMinLogLevel(LogLevel::kWarning);
  else if (level == "error") SetMinLogLevel(LogLevel::kError);
  else SetMinLogLevel(LogLevel::kInfo);
  for (const std::string& e : env_errors) {
    std::fprintf(stderr, "invalid environment setting %s\n", e.c_str());
  }
  if (!env_errors.empty()) std::exit(2);
}

void KeepFreedHeapFromFlags() {
  // Two arenas: the services' big buffers are allocated on a few threads at a time, and every
  // further arena would keep its own freed memory (RSS grew 40% more with glibc's 16).
  KeepFreedHeap(absl::GetFlag(FLAGS_heap_keep_mb) << 20, 2);
}

ServerOptions ServerOptionsFromFlags(const std::string& service_name, int default_port,
                                     int default_metrics_port) {
  ServerOptions o;
  o.service_name = service_name;
  o.host = absl::GetFlag(FLAGS_host);
  const int port = absl::GetFlag(FLAGS_port);
  o.port = port == -1 ? default_port : port;
  const int metrics_port = absl::GetFlag(FLAGS_metrics_port);
  o.metrics_port = metrics_port == -2 ? default_metrics_port : metrics_port;
  o.max_threads = absl::GetFlag(FLAGS_max_threads);
  o.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  o.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  return o;
}

absl::Duration GracePeriodFromFlags() {
  return absl::Seconds(absl::GetFlag(FLAGS_grace_period_seconds));
}
std::string AdminTokenFromFlags() { return absl::GetFlag(FLAGS_admin_token); }
std::string TlsCaFromFlags() { return absl::GetFlag(FLAGS_tls_ca); }
std::string ServiceTokenFromFlags() { return absl::GetFlag(FLAGS_service_token); }

ChannelOptions ChannelOptionsFromFlags(const std::string& target) {
  ChannelOptions o;
  o.target = target;
  o.tls_ca_file = TlsCaFromFlags();
  o.service_token = ServiceTokenFromFlags();
  return o;
}

}  // namespace fraud::rpc
