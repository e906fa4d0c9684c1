// One training run, end to end (runs on the run manager's worker thread):
//
//   loading     ScanTransactions (labelled rows) -> RunSplitter: comparison set removed first,
//               then the newest validation_fraction of the rest is the validation window
//   training    every candidate of the requested families (small default grids), each tracked
//               in the run record: params, per-epoch curve, validation metrics with PR curve,
//               train seconds, peak RSS
//   evaluating  best validation AUPRC wins; the challenger and the current champion are both
//               scored on the comparison set
//   publishing  AllocateModelVersion, manifest (lineage, metrics, drift reference, smoke batch),
//               WriteArtifact (tmp dir + atomic rename), RegisterModel
//   gate        promote when challenger AUPRC >= champion AUPRC + margin (see promotion.h)
//
// Cancellation is honoured up to the registration: a cancelled run leaves no artifact directory
// and no registry entry. Thread-compatible: one run at a time per process (LibTorch's thread
// setting is process-wide).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fraud/training/v1/training.pb.h"
#include "services/common/model/trainer.h"
#include "services/training/clients.h"

namespace fraud::training {

using ::fraud::common::v1::ModelFamily;

// Server-wide defaults of a run (flags); a request's params override some of them.
struct PipelineOptions {
  // Artifact root: version N is written to <model_dir>/<N>.
  std::string model_dir;
  // Families trained when the request names none (empty = every family of the table).
  std::vector<ModelFamily> families;
  // Caps epochs (logreg, mlp) and boosting rounds (xgboost); 0 = the library's defaults.
  int max_epochs = 0;
  double promotion_margin = 0;
  double validation_fraction = 0.2;
  // Newest fraction held out as the comparison set when the request names none.
  double holdout_fraction = 0.1;
  // Threads per candidate (LibTorch intra-op / XGBoost nthread).
  int threads = 2;
  int scan_batch_rows = 8192;
  // At most this many labelled rows (the newest by Time) form a run's training pool: train,
  // validation window and holdout. Bounds a run's memory whatever storage holds (0 = no limit);
  // see SplitOptions::max_pool_rows.
  int64_t max_train_rows = 0;
  // Bootstrap resamples of the comparison AUPRC interval.
  int comparison_bootstrap = 200;
  // Actor recorded in the champion history.
  std::string actor = "training";
};

// The run manager's side of a run: applies changes to the live run record.
class RunSink {
 public:
  virtual ~RunSink() = default;
  // Applies `mutate` to the run record, wakes its watchers, and stores the record in storage
  // when `persist` (progress-only updates pass false and are stored at most once a second).
  virtual void Update(const std::function<void(storage_pb::TrainingRun&)>& mutate,
                      bool persist) = 0;
};

using CandidateTrainer = std::function<absl::StatusOr<model::TrainedCandidate>(
    const model::CandidateSpec&, const model::Dataset&, const model::Dataset&,
    const model::TrainCallbacks&)>;

struct PipelineDeps {
  StorageApi* storage = nullptr;
  // May be null: promotions then change the registry only.
  InferenceApi* inference = nullptr;
  // Defaults to model::TrainCandidate.
  CandidateTrainer trainer;
};

// The candidate list of a request: its families (or options.families, or all), each with
// its default grid, adjusted by the request params:
//   "grid" = "default" | "small" (first config of each family)
//   "max_epochs" = N           caps each family's epoch-like parameter (Family::epoch_param)
//   "threads" = N
//   "<family>.<param>" = V     sets a library parameter for that family's candidates
// Run-level params ("validation_fraction", "holdout_fraction") are accepted and ignored here.
// InvalidArgument for an unknown family, a malformed value or an unknown key.
absl::StatusOr<std::vector<model::CandidateSpec>> BuildCandidates(
    const training::v1::StartRunRequest& request, const PipelineOptions& options);

// Parses "logreg,mlp" (names as model::FamilyName, "all" = every family of the table in
// services/common/model/families.cc); InvalidArgument otherwise.
absl::StatusOr<std::vector<ModelFamily>> ParseFamilies(const std::vector<std::string>& names);

// The effective settings of a run, recorded in TrainingRun.params at StartRun.
absl::StatusOr<std::map<std::string, std::string>> ResolveRunParams(
    const training::v1::StartRunRequest& request, const PipelineOptions& options);

// Executes the run `run_id` (already created in storage). Returns OK when the run finished
// (promoted or not; the record says which), Cancelled when `cancel` became true before the
// version was registered, and the failure otherwise (FailedPrecondition for unusable data).
absl::Status ExecuteRun(const training::v1::StartRunRequest& request, int64_t run_id,
                        const PipelineOptions& options, const PipelineDeps& deps, RunSink& sink,
                        const std::atomic<bool>& cancel);

// Peak resident set size since the last ResetPeakRss(), bytes (VmHWM; 0 when unavailable).
int64_t PeakRssBytes();
// Resets VmHWM to the current RSS (Linux /proc/self/clear_refs "5"); false when not permitted.
bool ResetPeakRss();
// Returns the free heap memory of every malloc arena to the OS (glibc malloc_trim): a phase's
// freed buffers otherwise stay resident and count against the instance's memory limit.
void ReleaseFreeMemory();

}  // namespace fraud::training
