// The promotion gate and the promotion procedure (shared by runs and the Promote RPC).
//
// Gate: when the run's backtest has blocks newer than every row the champion was trained on, the
// selected configuration's fold models and the champion are compared on those blocks (rows
// neither saw): the challenger is promoted only when the mean block AUPRC difference >= margin.
// Otherwise the challenger and the champion are scored on the same comparison set, and the
// challenger is promoted only when its AUPRC >= champion AUPRC + margin. With no champion it is
// promoted; when the champion cannot be scored (artifact gone or unloadable) the challenger is
// promoted too, since inference could not load that champion either.
//
// Promotion: SetChampion with compare-and-set on the champion seen when the decision was made,
// then inference Reload(version). When the reload fails, the previous champion is restored with a
// second compare-and-set SetChampion (the rollback is in the champion history) and the result
// says why.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "fraud/common/v1/types.pb.h"
#include "services/common/eval/metrics.h"
#include "services/training/clients.h"

namespace fraud::training {

// The backtest's evidence for the gate (see above).
struct BacktestEvidence {
  int64_t champion_version = 0;
  int blocks = 0;
  double challenger_mean_auprc = 0;
  double champion_mean_auprc = 0;
  // Mean block difference (challenger - champion) with its stratified paired bootstrap interval.
  eval::PairedDifference difference;
};

struct GateInput {
  // The challenger's metrics on the comparison set (unset when there is no comparison set).
  std::optional<common::v1::ClassificationMetrics> challenger;
  // Champion version (0 = none) and its metrics on the same rows (unset when it could not be
  // scored; `champion_error` says why).
  int64_t champion_version = 0;
  std::optional<common::v1::ClassificationMetrics> champion;
  std::string champion_error;
  double margin = 0;
  // Challenger minus champion AUPRC with its paired bootstrap interval (set with both metrics).
  std::optional<eval::PairedDifference> difference;
  // Set when the backtest compared the challenger's configuration with this champion on newer
  // blocks; the gate then decides on it.
  std::optional<BacktestEvidence> backtest;
  // With backtest evidence: promote unless its interval's upper end < -margin (instead of when
  // the mean difference >= margin).
  bool not_worse = false;
};

struct GateDecision {
  bool promote = false;
  // One sentence, e.g. "promoted: AUPRC 0.812 >= 0.780 (v3) + margin 0.000".
  std::string reason;
};

// Pure decision. Rules, in order:
//   no champion                          -> promote
//   backtest evidence on newer blocks    -> promote when mean difference >= margin, else keep
//                                           (not_worse: unless interval high < -margin)
//   champion could not be scored         -> promote (reason names the error)
//   no comparison set / it has no fraud  -> keep the champion (cannot compare)
//   challenger AUPRC >= champion + margin -> promote, else keep.
GateDecision DecideGate(const GateInput& input);

struct PromotionRequest {
  int64_t version = 0;
  // Compare-and-set: the champion the decision was based on (0 = none).
  int64_t expected_champion = 0;
  std::string reason;
  std::string actor;
};

struct PromotionResult {
  // True when `version` is the champion at the end (it may still have failed to reload when
  // there was nothing to roll back to: see `reloaded`).
  bool promoted = false;
  bool reloaded = false;
  bool rolled_back = false;
  int64_t previous_version = 0;
  // The promotion's history entry.
  storage_pb::ChampionChange change;
  std::string message;
};

// SetChampion(CAS) + Reload + rollback on reload failure. `inference` may be null (no inference
// configured: the champion changes and reloaded stays false). Errors (nothing changed):
// Aborted when the champion is no longer `expected_champion`; the storage error otherwise.
// Reload failures are not errors: they are reported in the result.
absl::StatusOr<PromotionResult> PromoteVersion(StorageApi& storage, InferenceApi* inference,
                                               const PromotionRequest& request);

// "0.8123" or "n/a" for single-class metrics.
std::string FormatAuprc(const common::v1::ClassificationMetrics& m);

}  // namespace fraud::training
