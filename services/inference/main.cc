// fraud-inference: serves fraud.inference.v1.InferenceService (port 50053, metrics 9103).
// Only wiring: flags -> options, dependencies, service, server (declared last, destroyed first).
#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "services/common/core/log.h"
#include "services/common/core/shutdown.h"
#include "services/common/core/status_macros.h"
#include "services/common/rpc/artifact_transfer.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/server_flags.h"
#include "services/common/rpc/server_runner.h"
#include "services/common/rpc/ports.h"
#include "services/inference/champion_source.h"
#include "services/inference/inference_service.h"
#include "services/inference/micro_batcher.h"
#include "services/inference/model_holder.h"
#include "services/inference/model_reloader.h"
#include "services/inference/model_watcher.h"
#include "services/inference/predictor.h"
#include "services/inference/runtime_loader.h"

ABSL_FLAG(std::string, model_dir, "./models",
          "Local cache of model versions: version N lives in <model_dir>/<N>/; a version missing "
          "there is fetched from the registry (storage) first");
ABSL_FLAG(std::string, storage_target, fraud::rpc::LocalTarget(fraud::rpc::kStoragePorts),
          "Storage service (model registry) host:port: the champion and the model artifacts");
ABSL_FLAG(double, storage_timeout_seconds, 2, "Deadline of each call to storage (also of recording a Predict made with transaction ids)");
ABSL_FLAG(double, artifact_fetch_timeout_seconds, 120,
          "Deadline of fetching one model artifact from the registry");
ABSL_FLAG(double, poll_interval_seconds, 5,
          "How often to ask the registry for the champion and follow it; <= 0 disables polling");
ABSL_FLAG(int64_t, initial_version, 0,
          "Version to load at start-up before asking the registry (0 = the registry's champion)");
ABSL_FLAG(int, batch_delay_us, 200,
          "Micro-batching: longest wait of a batch leader for concurrent small requests "
          "(0 = merge only requests that queue behind a running batch)");
ABSL_FLAG(int, max_batch_rows, 256,
          "Micro-batching: largest merged batch in rows; larger requests are scored alone; "
          "0 disables micro-batching");
ABSL_FLAG(int, torch_threads, 1,
          "LibTorch intra-op threads (1 on small machines: gRPC threads give the parallelism)");

int main(int argc, char** argv) {
  fraud::rpc::InitService(argc, argv, "inference",
                          "fraud-inference: scores transactions with the hot-reloadable champion "
                          "model.\nFlags also read FRAUD_<FLAG> from the environment.");
  fraud::rpc::KeepFreedHeapFromFlags();
  const sigset_t stop = fraud::BlockStopSignals();

  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  const absl::Duration poll_interval = absl::Seconds(absl::GetFlag(FLAGS_poll_interval_seconds));
  const int64_t initial_version = absl::GetFlag(FLAGS_initial_version);
  fraud::inference::BatcherOptions batching;
  batching.max_batch_rows = absl::GetFlag(FLAGS_max_batch_rows);
  batching.enabled = batching.max_batch_rows > 0;
  batching.max_delay = absl::Microseconds(std::max(0, absl::GetFlag(FLAGS_batch_delay_us)));
  fraud::inference::RuntimeLoaderOptions loader_options;
  loader_options.torch_threads = absl::GetFlag(FLAGS_torch_threads);

  if (absl::Status s = fraud::rpc::RemoveInterruptedFetches(model_dir); !s.ok()) {
    FRAUD_LOG(WARNING) << "could not clean the model cache" << fraud::Kv("error", s.ToString());
  }
  // Dependencies first ...
  std::shared_ptr<grpc::Channel> storage_channel = fraud::rpc::MakeChannel(
      fraud::rpc::ChannelOptionsFromFlags(absl::GetFlag(FLAGS_storage_target)));
  auto storage_stub = fraud::storage::v1::StorageService::NewStub(storage_channel);
  fraud::inference::StorageChampionSource champion(
      storage_stub.get(), absl::Seconds(absl::GetFlag(FLAGS_storage_timeout_seconds)));
  fraud::inference::StorageArtifactSource artifacts(
      storage_stub.get(), absl::Seconds(absl::GetFlag(FLAGS_artifact_fetch_timeout_seconds)));
  // Each load asks storage for the version's operating point (its decision threshold); when
  // storage cannot answer, the manifest's threshold serves (logged).
  fraud::inference::StorageOperatingPointSource operating_points(
      storage_stub.get(), absl::Seconds(absl::GetFlag(FLAGS_storage_timeout_seconds)));
  fraud::inference::ModelHolder holder;
  fraud::inference::ModelReloader reloader(
      model_dir, fraud::inference::RuntimeModelLoader(loader_options), &holder, &champion,
      &artifacts, &fraud::RealClock::Get(), &operating_points);
  fraud::inference::WatcherOptions watcher_options;
  watcher_options.poll_interval = poll_interval;
  fraud::inference::ModelWatcher watcher(&champion, &reloader, watcher_options);

  FRAUD_LOG(INFO) << "starting" << fraud::Kv("model_dir", model_dir)
                  << fraud::Kv("storage", absl::GetFlag(FLAGS_storage_target))
                  << fraud::Kv("batching", batching.enabled)
                  << fraud::Kv("max_batch_rows", batching.max_batch_rows)
                  << fraud::Kv("batch_delay_us", absl::ToInt64Microseconds(batching.max_delay))
                  << fraud::Kv("torch_threads", loader_options.torch_threads);
  if (initial_version > 0) {
    absl::StatusOr<fraud::inference::ReloadResult> r = reloader.Reload(initial_version);
    if (r.ok()) {
      FRAUD_LOG(INFO) << "initial model loaded" << fraud::Kv("model_version", r->version)
                      << fraud::Kv("load_ms", absl::ToDoubleMilliseconds(r->load_time));
    }
  }
  // Loads the champion before serving when the registry answers; otherwise the service starts
  // NOT_SERVING (or on --initial_version) and the watcher keeps trying.
  if (absl::Status s = watcher.PollOnce(); s.ok() && holder.Get() == nullptr) {
    FRAUD_LOG(WARNING) << "no model to serve yet (no champion in the registry); NOT_SERVING "
                          "until one is published";
  }

  // ... then the service ...
  fraud::inference::Predictor predictor(&holder, batching);
  // Predict calls with transaction ids store their rows through storage (storage_timeout_seconds
  // bounds each such call's extra wait).
  fraud::inference::StorageScoreRecorder recorder(
      storage_stub.get(), absl::Seconds(absl::GetFlag(FLAGS_storage_timeout_seconds)));
  fraud::inference::InferenceService service(&predictor, &reloader, &holder,
                                             fraud::rpc::AdminTokenFromFlags(), &recorder);

  // ... server last, so it is destroyed first.
  fraud::rpc::ServerRunner runner(fraud::rpc::ServerOptionsFromFlags("inference", fraud::rpc::kInferencePorts.grpc,
                                                                  fraud::rpc::kInferencePorts.metrics));
  runner.SetReadyCheck(fraud::inference::ModelLoadedCheck(&holder));
  runner.Register(&service);
  FRAUD_CHECK_OK(runner.Start());
  fraud::inference::ConnectHealth(&holder, &runner);
  if (poll_interval > absl::ZeroDuration()) watcher.Start();

  fraud::WaitForSignal(stop);
  runner.Shutdown(fraud::rpc::GracePeriodFromFlags());
  watcher.Stop();
  return 0;
}
