#include "services/training/promotion.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/common/core/log.h"
#include "services/common/rpc/grpc_status.h"

namespace fraud::training {
namespace {

std::string Fixed(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4f", v);
  return buf;
}

}  // namespace

std::string FormatAuprc(const common::v1::ClassificationMetrics& m) {
  if (m.single_class()) return "n/a";
  return Fixed(m.auprc());
}

GateDecision DecideGate(const GateInput& in) {
  GateDecision d;
  if (in.champion_version == 0) {
    d.promote = true;
    d.reason = in.challenger.has_value() && !in.challenger->single_class()
                   ? absl::StrCat("promoted: no champion yet (comparison AUPRC ",
                                  FormatAuprc(*in.challenger), ")")
                   : "promoted: no champion yet";
    return d;
  }
  if (in.backtest.has_value() && in.backtest->champion_version == in.champion_version) {
    const BacktestEvidence& b = *in.backtest;
    const eval::PairedDifference& p = b.difference;
    d.promote = in.not_worse ? p.high >= -in.margin : p.difference >= in.margin;
    const std::string interval = absl::StrCat(
        "(95% ", absl::StrFormat("%+.4f..%+.4f", p.low, p.high), ", challenger better in ",
        absl::StrFormat("%.0f", 100 * p.share_a_better), "% of ", p.resamples, " resamples)");
    const std::string test =
        in.not_worse
            ? absl::StrCat(interval, ": interval high ", absl::StrFormat("%+.4f", p.high),
                           (d.promote ? " >= " : " < "), "-margin ", Fixed(in.margin))
            : absl::StrCat((d.promote ? ">= " : "< "), "margin ", Fixed(in.margin), " ",
                           interval);
    d.reason = absl::StrCat(d.promote ? "promoted" : "not promoted",
                            " on the backtest: mean AUPRC over ", b.blocks, " block(s) newer than v",
                            b.champion_version, "'s training rows ",
                            Fixed(b.challenger_mean_auprc), " vs ", Fixed(b.champion_mean_auprc),
                            ", paired difference ", absl::StrFormat("%+.4f", p.difference), " ",
                            test);
    if (in.challenger.has_value() && in.champion.has_value() && !in.challenger->single_class()) {
      absl::StrAppend(&d.reason, "; comparison set AUPRC ", Fixed(in.challenger->auprc()), " vs ",
                      Fixed(in.champion->auprc()));
    }
    return d;
  }
  if (!in.champion.has_value()) {
    d.promote = true;
    d.reason = absl::StrCat("promoted: champion v", in.champion_version,
                            " could not be scored (", in.champion_error, ")");
    return d;
  }
  if (!in.challenger.has_value() || in.challenger->rows() == 0) {
    d.reason = absl::StrCat("not promoted: no comparison set to compare with champion v",
                            in.champion_version);
    return d;
  }
  if (in.challenger->single_class() || in.champion->single_class()) {
    d.reason = absl::StrCat(
        "not promoted: the comparison set holds one class only; cannot compare with champion v",
        in.champion_version);
    return d;
  }
  const double challenger = in.challenger->auprc();
  const double champion = in.champion->auprc();
  const std::string figures =
      absl::StrCat("AUPRC ", Fixed(challenger), (challenger >= champion + in.margin ? " >= " : " < "),
                   Fixed(champion), " (champion v", in.champion_version, ") + margin ",
                   Fixed(in.margin));
  d.promote = challenger >= champion + in.margin;
  d.reason = absl::StrCat(d.promote ? "promoted: " : "not promoted: ", figures);
  if (in.difference.has_value()) {
    const eval::PairedDifference& p = *in.difference;
    absl::StrAppend(&d.reason, "; paired difference ", absl::StrFormat("%+.4f", p.difference),
                    " (95% ", absl::StrFormat("%+.4f..%+.4f", p.low, p.high),
                    ", challenger better in ", absl::StrFormat("%.0f", 100 * p.share_a_better),
                    "% of ", p.resamples, " resamples)");
  }
  return d;
}

absl::StatusOr<PromotionResult> PromoteVersion(StorageApi& storage, InferenceApi* inference,
                                               const PromotionRequest& request) {
  PromotionResult result;
  result.previous_version = request.expected_champion;
  storage_pb::SetChampionRequest set;
  set.set_version(request.version);
  set.set_reason(request.reason);
  set.set_actor(request.actor);
  set.set_check_current(true);
  set.set_expected_current(request.expected_champion);
  absl::StatusOr<storage_pb::ChampionChange> change = storage.SetChampion(set);
  if (!change.ok()) {
    if (change.status().code() == absl::StatusCode::kAborted) {
      return absl::AbortedError(absl::StrCat("champion changed meanwhile (expected ",
                                             request.expected_champion == 0
                                                 ? std::string("none")
                                                 : absl::StrCat("v", request.expected_champion),
                                             "): ", change.status().message()));
    }
    return change.status();
  }
  result.change = *change;
  result.promoted = true;
  if (inference == nullptr) {
    result.message = absl::StrCat("v", request.version,
                                  " is champion; no inference service configured to reload");
    return result;
  }
  absl::StatusOr<inference::v1::ReloadResponse> reload = inference->Reload(request.version);
  if (reload.ok()) {
    result.reloaded = true;
    result.message = absl::StrCat("v", request.version, " is champion and serving");
    return result;
  }
  const std::string why = std::string(reload.status().message());
  FRAUD_LOG(WARNING) << "inference reload failed" << Kv("version", request.version)
                     << Kv("error", why);
  if (request.expected_champion == 0) {
    result.message = absl::StrCat("v", request.version, " is champion but inference did not load it (",
                                  rpc::CodeName(reload.status().code()), ": ", why,
                                  "); no previous champion to roll back to");
    return result;
  }
  storage_pb::SetChampionRequest back;
  back.set_version(request.expected_champion);
  back.set_reason(absl::StrCat("rollback: inference could not load v", request.version, ": ", why));
  back.set_actor(request.actor);
  back.set_check_current(true);
  back.set_expected_current(request.version);
  absl::StatusOr<storage_pb::ChampionChange> rollback = storage.SetChampion(back);
  if (!rollback.ok()) {
    result.message = absl::StrCat("inference could not load v", request.version, " (", why,
                                  ") and the rollback to v", request.expected_champion,
                                  " failed: ", rollback.status().message());
    return result;
  }
  result.promoted = false;
  result.rolled_back = true;
  result.message = absl::StrCat("rolled back to v", request.expected_champion,
                                ": inference could not load v", request.version, " (",
                                rpc::CodeName(reload.status().code()), ": ", why, ")");
  return result;
}

}  // namespace fraud::training
