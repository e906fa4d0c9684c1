// fraud-ingest: serves fraud.ingest.v1.IngestService (port 50051, metrics 9101).
// Only wiring: flags -> options, channels to storage and inference, service, server (declared
// last, destroyed first).

#include <cstdint>
#include <string>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "services/common/core/log.h"
#include "services/common/core/shutdown.h"
#include "services/common/core/status_macros.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/server_flags.h"
#include "services/common/rpc/server_runner.h"
#include "services/common/rpc/ports.h"
#include "services/ingest/ingest_service.h"

ABSL_FLAG(std::string, storage_target, fraud::rpc::LocalTarget(fraud::rpc::kStoragePorts), "Storage service host:port");
ABSL_FLAG(std::string, inference_target, fraud::rpc::LocalTarget(fraud::rpc::kInferencePorts), "Inference service host:port");
ABSL_FLAG(int64_t, batch_rows, 8192, "Rows per batch sent to inference and storage (1..65536)");
ABSL_FLAG(int64_t, max_upload_bytes, int64_t{2} << 30,
          "Largest accepted upload in bytes; larger ones fail with RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_errors, 100, "Row errors listed per upload when the client does not say");
ABSL_FLAG(int, top_k, 20, "Most suspicious rows listed per upload when the client does not say");
ABSL_FLAG(int, explain_top_k, 5,
          "Reason codes stored with each alert: contributions per explanation, 0..30 (0 = none; "
          "one extra Predict with explain per scored batch that has alerts)");
ABSL_FLAG(double, rpc_timeout_seconds, 30,
          "Deadline of each call to inference (GetModel, Predict)");
ABSL_FLAG(double, upload_timeout_seconds, 3600,
          "Deadline of the storage stream of one upload (the whole upload must finish in it)");
ABSL_FLAG(double, upload_idle_timeout_seconds, 60,
          "Cut off an upload whose client sends nothing for this long (0 = never)");
ABSL_FLAG(int, max_concurrent_uploads, 14,
          "Uploads and validations served at once (a worker thread each); more get "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(std::string, upload_token, "",
          "Bearer token Upload requires (empty = none). Prefer FRAUD_UPLOAD_TOKEN.");

int main(int argc, char** argv) {
  fraud::rpc::InitService(argc, argv, "ingest",
                          "fraud-ingest: validates, stores and scores uploaded transaction CSVs.\n"
                          "Flags also read FRAUD_<FLAG> from the environment.");
  const sigset_t stop = fraud::BlockStopSignals();
  fraud::rpc::KeepFreedHeapFromFlags();

  fraud::ingest::IngestOptions options;
  options.batch_rows = absl::GetFlag(FLAGS_batch_rows);
  options.max_upload_bytes = absl::GetFlag(FLAGS_max_upload_bytes);
  options.max_errors = absl::GetFlag(FLAGS_max_errors);
  options.top_k = absl::GetFlag(FLAGS_top_k);
  options.explain_top_k = absl::GetFlag(FLAGS_explain_top_k);
  options.rpc_timeout = absl::Seconds(absl::GetFlag(FLAGS_rpc_timeout_seconds));
  options.upload_timeout = absl::Seconds(absl::GetFlag(FLAGS_upload_timeout_seconds));
  options.upload_token = absl::GetFlag(FLAGS_upload_token);
  options.idle_timeout = absl::Seconds(absl::GetFlag(FLAGS_upload_idle_timeout_seconds));
  options.max_concurrent_uploads = absl::GetFlag(FLAGS_max_concurrent_uploads);
  if (options.batch_rows < 1 || options.batch_rows > 65536 || options.max_upload_bytes < 1 ||
      options.max_errors < 0 || options.top_k < 0 || options.explain_top_k < 0 ||
      options.explain_top_k > 30 || options.rpc_timeout <= absl::ZeroDuration() ||
      options.upload_timeout <= absl::ZeroDuration() || options.max_concurrent_uploads < 1) {
    FRAUD_LOG(ERROR) << "invalid flags: need 1 <= --batch_rows <= 65536, --max_upload_bytes >= 1, "
                        "--max_errors/--top_k >= 0, 0 <= --explain_top_k <= 30, --max_concurrent_uploads >= 1 and positive "
                        "timeouts";
    return 2;
  }

  auto storage = fraud::rpc::MakeChannel(
      fraud::rpc::ChannelOptionsFromFlags(absl::GetFlag(FLAGS_storage_target)));
  auto inference = fraud::rpc::MakeChannel(
      fraud::rpc::ChannelOptionsFromFlags(absl::GetFlag(FLAGS_inference_target)));
  fraud::ingest::IngestService service(storage, inference, options);

  FRAUD_LOG(INFO) << "starting" << fraud::Kv("storage", absl::GetFlag(FLAGS_storage_target))
                  << fraud::Kv("inference", absl::GetFlag(FLAGS_inference_target))
                  << fraud::Kv("batch_rows", options.batch_rows)
                  << fraud::Kv("max_upload_bytes", options.max_upload_bytes)
                  << fraud::Kv("max_concurrent_uploads", options.max_concurrent_uploads)
                  << fraud::Kv("upload_auth", !options.upload_token.empty());
  fraud::rpc::ServerRunner runner(fraud::rpc::ServerOptionsFromFlags("ingest", fraud::rpc::kIngestPorts.grpc,
                                                                  fraud::rpc::kIngestPorts.metrics));
  runner.Register(&service);
  FRAUD_CHECK_OK(runner.Start());
  fraud::WaitForSignal(stop);
  FRAUD_LOG(INFO) << "stopping";
  runner.Shutdown(fraud::rpc::GracePeriodFromFlags());
  return 0;
}
