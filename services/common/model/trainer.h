// Training of candidate models of every family (services/common/model/families.h) on plain
// in-memory data.
//
//   fraud::model::Dataset train = ..., validation = ...;  // validation: the newest rows
//   for (const fraud::model::CandidateSpec& spec : fraud::model::DefaultCandidates()) {
//     absl::StatusOr<fraud::model::TrainedCandidate> c =
//         fraud::model::TrainCandidate(spec, train, validation, {on_epoch, &cancel});
//     ...  c->validation_metrics().auprc(), c->runtime->Score(...)
//   }
//   ModelManifest m = best.ManifestForVersion(7);   // add lineage/run id/comparison metrics
//   fraud::model::WriteArtifact(root, m, *best.runtime);
//
// Parameters (CandidateSpec::params, all values strings; unknown keys are InvalidArgument so a
// typo never goes unnoticed). Every family accepts:
//   time_of_day (1)  log_amount (1)  seed (42)
// logreg: lr (0.01) epochs (15) patience (3) batch_size (2048) weight_decay (0.0001)
//         pos_weight (1 | a number | "balanced" = neg/pos | "sqrt" = sqrt(neg/pos))
// mlp:    hidden ("32,16") dropout (0.1) lr (0.003) epochs (15) patience (3) batch_size (2048)
//         weight_decay (0) pos_weight (as logreg) stop_on ("auprc" | "loss": the validation
//         figure early stopping follows; logreg accepts it too)
// xgboost: max_depth (5) eta (0.1) rounds (300) early_stopping_rounds (20) subsample (0.8)
//         colsample_bytree (0.8) min_child_weight (1) max_bin (256)
//         scale_pos_weight (1 | number | "balanced" | "sqrt")
// random_forest (XGBoost, one round of num_parallel_tree trees, eta 1): trees (100)
//         max_depth (8) subsample (0.8) colsample_bynode (0.5) min_child_weight (1) max_bin (256)
// ensemble: members ("auto" = the first default config of every other family, keep the best two
//         by validation AUPRC | a list such as "xgboost,mlp": each member's first default config;
//         a family named twice or more trains once per mention with its own seed, at most 8
//         members) combine ("auto" = the better on validation | "mean" of probabilities |
//         "rank": mean of validation-CDF ranks)
//         max_member_epochs (0 = the members' defaults; else caps their epochs/rounds). The
//         manifest records the members and combination actually used.
// Neural families stop early when the validation AUPRC has not improved for `patience` epochs and
// keep the best epoch's weights; xgboost likewise keeps the best round.
//
// Resources: training uses `threads` threads (LibTorch intra-op, XGBoost nthread) and restores the
// LibTorch thread count afterwards. The default candidate set (7 candidates) trains on 200,000
// synthetic rows in ~30-40 s on 2 cores with a peak RSS of ~350 MB (tests/unit/model/
// budget_test.cc, label slow).
// IMPORTANT: both libraries use OpenMP (libgomp), whose idle threads spin-wait by default. On a
// busy 2-core machine that made threads=2 about 10x slower (390-480 s instead of 39 s for the
// default set at load ~8). Run processes that train with OMP_WAIT_POLICY=PASSIVE in their
// environment (it is read when libgomp loads, so it cannot be set from code), or train with
// threads = 1 when the machine is shared (48 s at the same load).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fraud/common/v1/types.pb.h"
#include "services/common/model/model_runtime.h"

namespace fraud::model {

using ::fraud::common::v1::ClassificationMetrics;

// Labelled rows in memory.
struct Dataset {
  // Raw features, row-major, kNumFeatures per row (Time, V1..V28, Amount).
  std::vector<double> features;
  // 0 (normal) or 1 (fraud), one per row.
  std::vector<int32_t> labels;
  // Optional per-row weights (empty = all 1); used by the losses and the validation metrics.
  std::vector<double> weights;

  size_t rows() const { return labels.size(); }
};

struct CandidateSpec {
  ModelFamily family = common::v1::MODEL_FAMILY_UNSPECIFIED;
  std::map<std::string, std::string> params;
  // Threads used while training (LibTorch intra-op threads / XGBoost nthread).
  int threads = 2;

  // Human-readable name: the family and the given params in key order, for example
  // "mlp dropout=0.1 hidden=32,16 lr=0.003 pos_weight=1".
  std::string Name() const;
};

// One epoch (neural families) or boosting round (tree families), 1-based.
struct EpochProgress {
  int epoch = 0;
  double train_loss = 0;
  double validation_loss = 0;
  double validation_auprc = 0;
};

struct TrainCallbacks {
  // Called on the training thread after every epoch/round; may be empty.
  std::function<void(const EpochProgress&)> on_epoch;
  // Checked before every epoch/round; when it reads true, training stops with Cancelled.
  const std::atomic<bool>* cancel = nullptr;
};

// A trained model with everything needed to register it.
// Alert budgets whose thresholds every trained manifest records beside the F1-optimal one
// (ModelManifest.budget_thresholds): the top 0.1%, 0.5% and 1% of transactions.
inline constexpr std::array<double, 3> kAlertBudgets = {0.001, 0.005, 0.01};

struct TrainedCandidate {
  std::string name;
  // The model; its manifest() is complete (family, feature names, preprocessing, threshold chosen
  // on validation to maximise F1, params including the resolved defaults and best_epoch, lineage
  // counts and time range, validation metrics, smoke batch, drift references) except version,
  // files, created_at, run_id, comparison_metrics and lineage.upload_ids/description.
  std::unique_ptr<ModelRuntime> runtime;
  std::vector<EpochProgress> curve;
  // Epoch/round whose weights were kept (1-based).
  int best_epoch = 0;
  double train_seconds = 0;

  const ModelManifest& manifest() const { return runtime->manifest(); }
  const ClassificationMetrics& validation_metrics() const {
    return runtime->manifest().validation_metrics();
  }
  // A copy of manifest() with `version` set, ready for WriteArtifact.
  ModelManifest ManifestForVersion(int64_t version) const;
};

// Trains one candidate: fits the preprocessing on `train` only, trains, picks the best epoch by
// validation AUPRC, chooses the threshold and computes the validation metrics.
// Status: InvalidArgument for bad params, feature/label/weight size mismatches, labels other than
// 0/1 or non-finite features (naming the row); FailedPrecondition when train or validation lacks
// a positive or a negative row; Cancelled when *callbacks.cancel became true; Internal when
// LibTorch/XGBoost fail. Thread-compatible: concurrent calls work but share LibTorch's
// process-wide thread setting.
absl::StatusOr<TrainedCandidate> TrainCandidate(const CandidateSpec& spec, const Dataset& train,
                                                const Dataset& validation,
                                                const TrainCallbacks& callbacks = {});

// The default grid of one family: its row of the family table (families.cc); empty for
// UNSPECIFIED. Today logreg 1, mlp 3, xgboost 2, random_forest 1 configs.
std::vector<CandidateSpec> DefaultGrid(ModelFamily family);
// DefaultGrid of every family, in table order (logreg, mlp, xgboost, random_forest, ...).
std::vector<CandidateSpec> DefaultCandidates();

}  // namespace fraud::model
