// One training run, end to end (runs on the run manager's worker thread), in phases; each is one
// function of pipeline.cc and the name the run record's progress shows:
//
//   loading     ScanTransactions (labelled rows) -> RunSplitter: comparison set removed first,
//               then the newest validation_fraction of the rest is the validation window
//   training    every candidate configuration of the requested families is backtested (backtest.h:
//               up to K newest time blocks of the pool, each scored by the configuration trained
//               on the rows before it; key = mean block AUPRC, ties by the worst block), then the
//               winner is refit on every pool row but the newest block (included too with
//               backtest_refit_on_newest=true), the newest block early-stopping it.
//               Too few frauds for one block (or backtest_blocks = 0): each candidate trains on
//               the older rows and the best validation-window AUPRC wins. Each candidate is
//               tracked in the run record: params, blocks, epoch curve, validation metrics with
//               PR curve, train seconds, peak RSS
//   evaluating  the refit (challenger) and the current champion are both scored on the
//               comparison set: each one's metrics and their paired bootstrap AUPRC difference
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
#include "services/training/run_params.h"

namespace fraud::training {

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

// Executes the run `run_id` (already created in storage). Returns OK when the run finished
// (promoted or not; the record says which), Cancelled when `cancel` became true before the
// version was registered, and the failure otherwise (FailedPrecondition for unusable data).
absl::Status ExecuteRun(const training::v1::StartRunRequest& request, int64_t run_id,
                        const PipelineOptions& options, const PipelineDeps& deps, RunSink& sink,
                        const std::atomic<bool>& cancel);

}  // namespace fraud::training
