// The settings of one training run: the server's defaults (flags, PipelineOptions) overridden by
// a StartRunRequest's fields and params, validated once, before the run is queued
// (ResolveRunParams, recorded in TrainingRun.params) and again when it starts (ResolveRun).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fraud/training/v1/training.pb.h"
#include "services/common/model/trainer.h"
#include "services/training/backtest.h"

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
  // How candidates are chosen (backtest.h); blocks = 0 selects on the validation window.
  BacktestOptions backtest;
  // Bootstrap resamples of the comparison AUPRC interval.
  int comparison_bootstrap = 200;
  // Actor recorded in the champion history.
  std::string actor = "training";
};

// InvalidArgument naming the flag when an option is out of range (fractions outside their
// interval, a negative row limit).
absl::Status ValidatePipelineOptions(const PipelineOptions& options);

// A run's effective settings.
struct RunSettings {
  std::vector<model::CandidateSpec> candidates;
  double validation_fraction = 0;
  double holdout_fraction = 0;
  double promotion_margin = 0;
  BacktestOptions backtest;
};

// The settings of `request` on a server with `options`; InvalidArgument as BuildCandidates, or for
// a fraction outside its interval.
absl::StatusOr<RunSettings> ResolveRun(const training::v1::StartRunRequest& request,
                                       const PipelineOptions& options);

// The candidate list of a request: its families (or options.families, or all), each with
// its default grid, adjusted by the request params:
//   "grid" = "default" | "small" (first config of each family)
//   "max_epochs" = N           caps each family's epoch-like parameter (Family::epoch_param)
//   "threads" = N
//   "<family>.<param>" = V     sets a library parameter for that family's candidates
// Run-level params ("validation_fraction", "holdout_fraction", "backtest_blocks",
// "backtest_min_frauds", "backtest_max_fold_rows", "backtest_preference_margin",
// "backtest_refit_on_newest", "backtest_gate") are accepted and ignored here.
// InvalidArgument for an unknown family, a malformed value or an unknown key.
absl::StatusOr<std::vector<model::CandidateSpec>> BuildCandidates(
    const training::v1::StartRunRequest& request, const PipelineOptions& options);

// Parses "logreg,mlp" (names as model::FamilyName, "all" = every family of the table in
// services/common/model/families.cc); InvalidArgument otherwise.
absl::StatusOr<std::vector<ModelFamily>> ParseFamilies(const std::vector<std::string>& names);

// The effective settings of a run, recorded in TrainingRun.params at StartRun.
absl::StatusOr<std::map<std::string, std::string>> ResolveRunParams(
    const training::v1::StartRunRequest& request, const PipelineOptions& options);

}  // namespace fraud::training
