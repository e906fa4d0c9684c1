// fraud-gateway: REST/JSON API (/api/v1), the web UI, /healthz and /metrics on one HTTP port
// (--port, default 8080; --tls_cert/--tls_key serve HTTPS). Only wiring: flags -> options, one
// channel per service, server.
#include <cstdint>
#include <string>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "services/common/core/log.h"
#include "services/common/core/shutdown.h"
#include "services/common/core/status_macros.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/server_flags.h"
#include "services/common/rpc/ports.h"
#include "services/gateway/gateway_server.h"

ABSL_FLAG(std::string, ingest_target, fraud::rpc::LocalTarget(fraud::rpc::kIngestPorts), "Ingest service host:port");
ABSL_FLAG(std::string, storage_target, fraud::rpc::LocalTarget(fraud::rpc::kStoragePorts), "Storage service host:port");
ABSL_FLAG(std::string, inference_target, fraud::rpc::LocalTarget(fraud::rpc::kInferencePorts), "Inference service host:port");
ABSL_FLAG(std::string, training_target, fraud::rpc::LocalTarget(fraud::rpc::kTrainingPorts), "Training service host:port");
ABSL_FLAG(std::string, ingest_metrics, "",
          "host:port of ingest's /metrics for the monitoring page (empty = derived from "
          "--ingest_target: port 9101 shifted like the gRPC port; 'none' = not scraped)");
ABSL_FLAG(std::string, storage_metrics, "", "Like --ingest_metrics, for storage (9102)");
ABSL_FLAG(std::string, inference_metrics, "", "Like --ingest_metrics, for inference (9103)");
ABSL_FLAG(std::string, training_metrics, "", "Like --ingest_metrics, for training (9104)");
ABSL_FLAG(std::string, web_root, "", "Directory of the web build (clients/web/dist); empty = none");
ABSL_FLAG(std::string, cors_origin, "",
          "Allowed CORS origins for /api, comma-separated, or '*' (empty = no CORS headers)");
ABSL_FLAG(std::string, upload_token, "",
          "Bearer token the upload routes require (empty = none). Prefer FRAUD_UPLOAD_TOKEN.");
ABSL_FLAG(int64_t, max_upload_bytes, int64_t{2} << 30,
          "Largest upload in bytes; larger ones get 413 while streaming");
ABSL_FLAG(int, max_concurrent_uploads, 4, "Uploads streamed at once; more get 429");
ABSL_FLAG(double, rate_limit_rps, 50,
          "Requests per second per client address on /api (bursts of 2x); 0 disables");
ABSL_FLAG(bool, trust_forwarded_for, false,
          "Rate-limit by the first X-Forwarded-For address (only behind a trusted proxy)");
ABSL_FLAG(double, rpc_timeout_seconds, 30, "Deadline of each unary backend call");
ABSL_FLAG(double, upload_timeout_seconds, 7200, "Deadline of one upload stream to ingest");
ABSL_FLAG(int, max_connections, 64,
          "HTTP worker threads; up to 4x more are added while all are busy, so idle or slow "
          "connections cannot lock other clients out");
ABSL_FLAG(int64_t, max_json_bytes, 8 << 20, "Largest JSON request body in bytes (413 beyond)");
ABSL_FLAG(int64_t, max_demo_rows, 200000, "Most rows /api/v1/demo/sample.csv generates");

namespace {

std::string MetricsTarget(const std::string& flag, const std::string& grpc_target,
                          const fraud::rpc::ServicePorts& defaults) {
  if (flag == "none") return "";
  if (!flag.empty()) return flag;
  return fraud::gateway::DeriveMetricsTarget(grpc_target, defaults.grpc, defaults.metrics);
}

}  // namespace

int main(int argc, char** argv) {
  fraud::rpc::InitService(
      argc, argv, "gateway",
      "fraud-gateway: REST/JSON API, web UI, /healthz and /metrics on one HTTP port (--port, "
      "default 8080).\nFlags also read FRAUD_<FLAG> from the environment.");
  fraud::rpc::KeepFreedHeapFromFlags();
  const sigset_t stop = fraud::BlockStopSignals();

  // The shared --port is this server's HTTP port; /metrics is served on it too.
  const fraud::rpc::ServerOptions server = fraud::rpc::ServerOptionsFromFlags("gateway", fraud::rpc::kGatewayPort, -1);
  fraud::gateway::GatewayOptions o;
  o.host = server.host;
  o.port = server.port;
  o.tls_cert_file = server.tls_cert_file;
  o.tls_key_file = server.tls_key_file;
  o.admin_token = fraud::rpc::AdminTokenFromFlags();
  o.web_root = absl::GetFlag(FLAGS_web_root);
  o.cors_origin = absl::GetFlag(FLAGS_cors_origin);
  o.upload_token = absl::GetFlag(FLAGS_upload_token);
  o.max_upload_bytes = absl::GetFlag(FLAGS_max_upload_bytes);
  o.max_concurrent_uploads = absl::GetFlag(FLAGS_max_concurrent_uploads);
  o.rate_limit_rps = absl::GetFlag(FLAGS_rate_limit_rps);
  o.trust_forwarded_for = absl::GetFlag(FLAGS_trust_forwarded_for);
  o.rpc_timeout = absl::Seconds(absl::GetFlag(FLAGS_rpc_timeout_seconds));
  o.upload_timeout = absl::Seconds(absl::GetFlag(FLAGS_upload_timeout_seconds));
  o.max_connections = absl::GetFlag(FLAGS_max_connections);
  o.max_json_bytes = absl::GetFlag(FLAGS_max_json_bytes);
  o.max_demo_rows = absl::GetFlag(FLAGS_max_demo_rows);
  if (o.port < 0 || o.port > 65535 || o.max_upload_bytes < 1 || o.max_concurrent_uploads < 1 ||
      o.max_connections < 2 || o.max_json_bytes < 1 || o.max_demo_rows < 0 ||
      o.rpc_timeout <= absl::ZeroDuration() || o.upload_timeout <= absl::ZeroDuration()) {
    FRAUD_LOG(ERROR) << "invalid flags: need a port in 0..65535, positive limits and timeouts, "
                        "--max_connections >= 2";
    return 2;
  }

  const std::string ingest_target = absl::GetFlag(FLAGS_ingest_target);
  const std::string storage_target = absl::GetFlag(FLAGS_storage_target);
  const std::string inference_target = absl::GetFlag(FLAGS_inference_target);
  const std::string training_target = absl::GetFlag(FLAGS_training_target);
  o.ingest_metrics = MetricsTarget(absl::GetFlag(FLAGS_ingest_metrics), ingest_target, fraud::rpc::kIngestPorts);
  o.storage_metrics =
      MetricsTarget(absl::GetFlag(FLAGS_storage_metrics), storage_target, fraud::rpc::kStoragePorts);
  o.inference_metrics =
      MetricsTarget(absl::GetFlag(FLAGS_inference_metrics), inference_target, fraud::rpc::kInferencePorts);
  o.training_metrics =
      MetricsTarget(absl::GetFlag(FLAGS_training_metrics), training_target, fraud::rpc::kTrainingPorts);

  fraud::gateway::Backends backends;
  backends.ingest = fraud::rpc::MakeChannel(fraud::rpc::ChannelOptionsFromFlags(ingest_target));
  backends.storage = fraud::rpc::MakeChannel(fraud::rpc::ChannelOptionsFromFlags(storage_target));
  backends.inference =
      fraud::rpc::MakeChannel(fraud::rpc::ChannelOptionsFromFlags(inference_target));
  backends.training =
      fraud::rpc::MakeChannel(fraud::rpc::ChannelOptionsFromFlags(training_target));

  FRAUD_LOG(INFO) << "starting" << fraud::Kv("ingest", ingest_target)
                  << fraud::Kv("storage", storage_target)
                  << fraud::Kv("inference", inference_target)
                  << fraud::Kv("training", training_target)
                  << fraud::Kv("admin_auth", !o.admin_token.empty())
                  << fraud::Kv("upload_auth", !o.upload_token.empty())
                  << fraud::Kv("max_upload_bytes", o.max_upload_bytes);
  fraud::gateway::GatewayServer gateway(backends, o);
  FRAUD_CHECK_OK(gateway.Start());
  fraud::WaitForSignal(stop);
  FRAUD_LOG(INFO) << "stopping";
  gateway.Shutdown(fraud::rpc::GracePeriodFromFlags());
  return 0;
}
