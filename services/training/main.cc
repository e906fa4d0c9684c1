// fraud-training: the training service (gRPC 50054, metrics 9104).
//
// Server mode: answers TrainingService RPCs, bootstraps version 1 on an empty registry, and
// retrains automatically when enough new labelled rows arrived. --run_once: trains and publishes
// one version, then exits (0 when the run succeeded), for `docker compose run training`.
#include <malloc.h>

#include <algorithm>

#include <atomic>
#include <cstdio>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "services/common/core/log.h"
#include "services/common/core/process_memory.h"
#include "services/common/core/shutdown.h"
#include "services/common/core/status_macros.h"
#include "services/common/model/artifact.h"
#include "services/common/model/families.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/server_flags.h"
#include "services/common/rpc/server_runner.h"
#include "services/common/rpc/ports.h"
#include "services/training/auto_trigger.h"
#include "services/training/bootstrap.h"
#include "services/training/clients.h"
#include "services/training/pipeline.h"
#include "services/training/run_manager.h"
#include "services/training/training_service.h"

ABSL_FLAG(std::string, storage_target, fraud::rpc::LocalTarget(fraud::rpc::kStoragePorts), "Storage service host:port");
ABSL_FLAG(std::string, inference_target, fraud::rpc::LocalTarget(fraud::rpc::kInferencePorts),
          "Inference service host:port to reload after a promotion (empty = none)");
ABSL_FLAG(std::string, model_dir, "models",
          "Local working directory of artifacts: version N is written to <model_dir>/<N> and "
          "then stored in the registry (storage), from which inference fetches it; versions "
          "this instance needs (the champion to compare with) are fetched here too");
ABSL_FLAG(bool, auto_train, true,
          "Start a run automatically when --auto_min_new_rows new labelled rows arrived");
ABSL_FLAG(int64_t, auto_min_new_rows, fraud::training::kDefaultAutoMinNewRows,
          "New labelled rows (committed after the last run's data) that start an automatic run");
ABSL_FLAG(double, auto_check_seconds, 60, "How often the automatic trigger checks storage");
ABSL_FLAG(double, promotion_margin, 0.0,
          "Promote only when challenger AUPRC >= champion AUPRC + margin on the comparison set");
ABSL_FLAG(bool, bootstrap, true,
          "On an empty registry, store an initial training set (when no labelled rows exist) and "
          "train version 1");
ABSL_FLAG(int64_t, bootstrap_rows, 100000, "Synthetic rows of the initial training set");
ABSL_FLAG(uint64_t, bootstrap_seed, 42, "Seed of the synthetic initial training set");
ABSL_FLAG(std::string, bootstrap_csv, "",
          "Labelled CSV to use as the initial training set instead of synthetic rows");
ABSL_FLAG(std::string, families, "",
          absl::StrCat("Families trained by default: comma-separated ",
                       absl::StrJoin(fraud::model::FamilyNames(), ","), " (empty = all)"));
ABSL_FLAG(int, max_epochs, 0, "Cap on epochs (logreg, mlp) and boosting rounds (xgboost); 0 = library defaults");
ABSL_FLAG(double, validation_fraction, 0.2, "Newest fraction of the training rows used for validation");
ABSL_FLAG(double, holdout_fraction, 0.1,
          "Newest fraction of all rows held out as the comparison set when a run names none");
ABSL_FLAG(int, train_threads, 2, "Threads per candidate (LibTorch intra-op / XGBoost nthread)");
ABSL_FLAG(int, max_queued_runs, 4, "Runs that may wait behind the running one");
ABSL_FLAG(int64_t, max_train_rows, 300000,
          "At most this many labelled rows, the newest by Time, train a run (train, validation "
          "and holdout); older rows are left out, so a run's memory stays bounded however much "
          "storage holds (0 = no limit). The default covers the 284,807-row public dataset and keeps "
          "the default candidate set near 400 MB (bench/footprint), inside a 512 MB instance");
ABSL_FLAG(int, backtest_blocks, 3,
          "Candidates are chosen by a rolling-origin backtest over at most this many time blocks "
          "of the validation window (mean block AUPRC), then the winner is refit; 0 = choose on "
          "the whole validation window");
ABSL_FLAG(int64_t, backtest_min_frauds, 10,
          "Frauds each backtest block (and its early-stopping slice) needs; fewer blocks "
          "otherwise");
ABSL_FLAG(int64_t, backtest_max_fold_rows, 80000,
          "A backtest fold trains on every fraud and a weighted sample of the normal rows beyond "
          "this many rows (0 = all rows), so K folds cost about one full fit");
ABSL_FLAG(double, backtest_preference_margin, 0,
          "The backtest picks a preferred family's best candidate (the ensemble) unless another "
          "candidate's mean block AUPRC is higher by more than this (0: the highest mean wins, a "
          "tie goes to the preferred family)");
ABSL_FLAG(bool, run_once, false, "Train and publish one version, then exit");

namespace {

using namespace fraud::training;  // NOLINT: main only wires.

absl::StatusOr<PipelineOptions> PipelineOptionsFromFlags() {
  PipelineOptions o;
  o.model_dir = absl::GetFlag(FLAGS_model_dir);
  const std::string families = absl::GetFlag(FLAGS_families);
  if (!families.empty()) {
    FRAUD_ASSIGN_OR_RETURN(o.families, ParseFamilies({families}));
  }
  o.max_epochs = absl::GetFlag(FLAGS_max_epochs);
  o.promotion_margin = absl::GetFlag(FLAGS_promotion_margin);
  o.validation_fraction = absl::GetFlag(FLAGS_validation_fraction);
  o.holdout_fraction = absl::GetFlag(FLAGS_holdout_fraction);
  o.threads = std::max(1, absl::GetFlag(FLAGS_train_threads));
  o.max_train_rows = absl::GetFlag(FLAGS_max_train_rows);
  o.backtest.blocks = absl::GetFlag(FLAGS_backtest_blocks);
  o.backtest.min_block_frauds = absl::GetFlag(FLAGS_backtest_min_frauds);
  o.backtest.preference_margin = absl::GetFlag(FLAGS_backtest_preference_margin);
  o.backtest.max_fold_rows =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_backtest_max_fold_rows)));
  FRAUD_RETURN_IF_ERROR(ValidatePipelineOptions(o));
  return o;
}

BootstrapOptions BootstrapOptionsFromFlags() {
  BootstrapOptions b;
  b.rows = absl::GetFlag(FLAGS_bootstrap_rows);
  b.seed = absl::GetFlag(FLAGS_bootstrap_seed);
  b.csv_path = absl::GetFlag(FLAGS_bootstrap_csv);
  return b;
}

// One run, then exit.
int RunOnce(StorageApi& storage, RunManager& runs, const SubmitRunFn& submit) {
  absl::StatusOr<int64_t> run_id = int64_t{0};
  if (absl::GetFlag(FLAGS_bootstrap)) {
    run_id = MaybeBootstrap(storage, BootstrapOptionsFromFlags(), submit);
  }
  if (run_id.ok() && *run_id == 0) {
    fraud::training::v1::StartRunRequest request;
    request.set_trigger("manual");
    request.set_description("fraud-training --run_once");
    absl::StatusOr<fraud::storage::v1::TrainingRun> run = submit(request);
    run_id = run.ok() ? absl::StatusOr<int64_t>(run->id()) : run.status();
  }
  if (!run_id.ok()) {
    std::fprintf(stderr, "fraud-training: cannot start a run: %s\n",
                 run_id.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<fraud::storage::v1::TrainingRun> run =
      runs.WaitFor(*run_id, absl::InfiniteDuration());
  if (!run.ok()) {
    std::fprintf(stderr, "fraud-training: %s\n", run.status().ToString().c_str());
    return 1;
  }
  std::printf("run %lld %s: %s\n", static_cast<long long>(run->id()),
              RunStatusName(run->status()).c_str(), run->message().c_str());
  return run->status() == fraud::storage::v1::RUN_STATUS_SUCCEEDED ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Two malloc arenas instead of 8 per core: the candidates' worker threads (OpenMP, LibTorch)
  // otherwise each fragment an arena of their own, and what they free between candidates stays
  // resident. -12 MB at the peak of a full run on 284,807 rows (bench/training), no time cost.
  mallopt(M_ARENA_MAX, 2);
  fraud::rpc::InitService(argc, argv, "training",
                          "fraud-training: trains candidate models on labelled data, registers the "
                          "best and promotes it when it beats the champion.\n"
                          "Usage: fraud-training [--storage_target=H:P] [--model_dir=DIR] "
                          "[--run_once] ...");
  const sigset_t stop_signals = fraud::BlockStopSignals();

  absl::StatusOr<PipelineOptions> pipeline = PipelineOptionsFromFlags();
  if (!pipeline.ok()) {
    std::fprintf(stderr, "fraud-training: %s\n", pipeline.status().ToString().c_str());
    return 2;
  }
  if (absl::Status s = fraud::model::RemoveTemporaryDirs(pipeline->model_dir); !s.ok()) {
    FRAUD_LOG(WARNING) << "cannot clean temporary artifact dirs" << fraud::Kv("error", s.message());
  }

  GrpcClientOptions client_options;
  client_options.admin_token = fraud::rpc::AdminTokenFromFlags();
  std::unique_ptr<StorageApi> storage = MakeGrpcStorageApi(
      fraud::rpc::MakeChannel(fraud::rpc::ChannelOptionsFromFlags(absl::GetFlag(FLAGS_storage_target))),
      client_options);
  std::unique_ptr<InferenceApi> inference;
  if (!absl::GetFlag(FLAGS_inference_target).empty()) {
    inference = MakeGrpcInferenceApi(
        fraud::rpc::MakeChannel(
            fraud::rpc::ChannelOptionsFromFlags(absl::GetFlag(FLAGS_inference_target))),
        client_options);
  }

  PipelineDeps deps;
  deps.storage = storage.get();
  deps.inference = inference.get();
  const PipelineOptions pipeline_options = *pipeline;
  RunManagerOptions run_options;
  run_options.max_queued = std::max(0, absl::GetFlag(FLAGS_max_queued_runs));
  RunManager runs(
      storage.get(),
      [&](const fraud::training::v1::StartRunRequest& request, int64_t run_id, RunSink& sink,
          const std::atomic<bool>& cancel) {
        absl::Status status = ExecuteRun(request, run_id, pipeline_options, deps, sink, cancel);
        fraud::ReleaseFreeMemory();  // an idle service gives the run's memory back
        return status;
      },
      run_options);
  FRAUD_CHECK_OK(runs.Start());
  auto submit = [&](const fraud::training::v1::StartRunRequest& r)
      -> absl::StatusOr<fraud::storage::v1::TrainingRun> {
    FRAUD_ASSIGN_OR_RETURN(auto params, ResolveRunParams(r, pipeline_options));
    return runs.Submit(r, params);
  };

  if (absl::GetFlag(FLAGS_run_once)) {
    const int code = RunOnce(*storage, runs, submit);
    runs.Stop();
    return code;
  }

  TrainingServiceOptions service_options;
  service_options.admin_token = fraud::rpc::AdminTokenFromFlags();
  TrainingService service(&runs, storage.get(), inference.get(), pipeline_options, service_options);
  fraud::rpc::ServerRunner runner(fraud::rpc::ServerOptionsFromFlags("training", fraud::rpc::kTrainingPorts.grpc,
                                                                  fraud::rpc::kTrainingPorts.metrics));
  runner.Register(&service);
  FRAUD_CHECK_OK(runner.Start());
  FRAUD_LOG(INFO) << "training serving" << fraud::Kv("port", runner.port())
                  << fraud::Kv("model_dir", pipeline_options.model_dir);

  AutoTriggerOptions auto_options;
  auto_options.min_new_rows = absl::GetFlag(FLAGS_auto_min_new_rows);
  auto_options.check_interval = absl::Seconds(absl::GetFlag(FLAGS_auto_check_seconds));
  AutoTrigger auto_trigger(storage.get(), [&] { return runs.Busy(); }, submit, auto_options);

  // Bootstrap (retrying while storage starts), then the automatic trigger.
  absl::Notification stopping;
  std::thread background([&] {
    if (absl::GetFlag(FLAGS_bootstrap)) {
      (void)BootstrapWithRetry(*storage, BootstrapOptionsFromFlags(), submit, stopping);
    }
    if (absl::GetFlag(FLAGS_auto_train) && !stopping.HasBeenNotified()) auto_trigger.Start();
  });

  const int sig = fraud::WaitForSignal(stop_signals);
  FRAUD_LOG(INFO) << "stopping" << fraud::Kv("signal", sig);
  stopping.Notify();
  background.join();
  auto_trigger.Stop();
  runner.Shutdown(fraud::rpc::GracePeriodFromFlags());
  runs.Stop();
  return 0;
}
