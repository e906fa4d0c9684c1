// What a gateway is built from: its options (copied from the flags by main.cc) and one gRPC
// channel per backend service. Plain data; the route files and the server read them.
#pragma once

#include <grpcpp/channel.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "services/common/rpc/ports.h"
#include "services/common/rpc/upload_chunk.h"

namespace fraud::gateway {

struct GatewayOptions {
  std::string host = "0.0.0.0";
  // HTTP port; 0 picks a free one (see GatewayServer::port()).
  int port = rpc::kGatewayPort;
  // Web build directory served with SPA fallback ("" = none).
  std::string web_root;
  // Allowed CORS origins, comma-separated, or "*" ("" = no CORS headers).
  std::string cors_origin;
  // Bearer token of the admin routes ("" = not checked by the gateway).
  std::string admin_token;
  // Bearer token of the upload routes ("" = none required).
  std::string upload_token;
  int64_t max_upload_bytes = int64_t{2} << 30;
  int max_concurrent_uploads = 4;
  // Per client address; <= 0 disables. Bursts up to rate_limit_burst (default 2 x rps).
  double rate_limit_rps = 50;
  double rate_limit_burst = 0;
  // Take the client address from the first X-Forwarded-For entry (behind a trusted proxy).
  bool trust_forwarded_for = false;
  absl::Duration rpc_timeout = absl::Seconds(30);
  // Deadline of a whole upload stream and of a WatchRun stream.
  absl::Duration upload_timeout = absl::Hours(2);
  absl::Duration watch_timeout = absl::Hours(1);
  // Deadline of each health check and metrics scrape of the monitoring page.
  absl::Duration probe_timeout = absl::Seconds(2);
  absl::Duration sse_heartbeat = absl::Seconds(15);
  int64_t max_json_bytes = 8 << 20;
  // Bytes per message of the ingest upload stream (why 256 KiB: rpc/upload_chunk.h).
  size_t upload_chunk_bytes = rpc::kUploadChunkBytes;
  // HTTP worker threads; while all are busy up to 4x more are added (idle or slow connections
  // hold a worker each until the 30 s read timeout), beyond that connections wait.
  int max_connections = 64;
  int max_header_count = 100;
  int64_t max_header_bytes = 32 * 1024;
  int64_t max_demo_rows = 200000;
  // Serve HTTPS when both are set.
  std::string tls_cert_file;
  std::string tls_key_file;
  // host:port of each service's /metrics endpoint ("" = not scraped).
  std::string ingest_metrics;
  std::string storage_metrics;
  std::string inference_metrics;
  std::string training_metrics;
  // Reported in the OpenAPI document.
  std::string version = "1.0.0";
};

// One channel per service; a null channel makes its routes answer UNAVAILABLE.
struct Backends {
  std::shared_ptr<grpc::ChannelInterface> ingest;
  std::shared_ptr<grpc::ChannelInterface> storage;
  std::shared_ptr<grpc::ChannelInterface> inference;
  std::shared_ptr<grpc::ChannelInterface> training;
};

// The metrics endpoint of a service from its gRPC target (for the *_metrics options): same host,
// port = default metrics port shifted by the target port's offset from the default gRPC port
// ("ingest:50051" -> "ingest:9101", "127.0.0.1:50151" -> "127.0.0.1:9201"). "" when the target
// has no numeric port.
std::string DeriveMetricsTarget(const std::string& grpc_target, int default_grpc_port,
                                int default_metrics_port);

}  // namespace fraud::gateway
