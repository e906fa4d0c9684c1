// The models area: registered versions and the champion (storage), promotion and rollback
// (training, which also reloads inference), and operating points: the what-if curve and changing
// a version's decision threshold (training), its current operating point and history (storage).
#include "absl/strings/str_cat.h"
#include "services/gateway/gateway_internal.h"

namespace fraud::gateway {

namespace {

using StorageStub = Gateway::StorageStub;
using TrainingStub = Gateway::TrainingStub;

void ListModels(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  gw.Forward(call, gw.storage(), "storage", "ListModels", &StorageStub::ListModels,
             storagepb::ListModelsRequest());
}

void GetChampion(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  gw.Forward(call, gw.storage(), "storage", "GetChampion", &StorageStub::GetChampion,
             storagepb::GetChampionRequest());
}

void ChampionHistory(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  gw.Forward(call, gw.storage(), "storage", "ListChampionHistory",
             &StorageStub::ListChampionHistory, storagepb::ListChampionHistoryRequest());
}

void GetModel(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  storagepb::GetModelRequest request;
  request.set_version(call.ids[0]);
  gw.Forward(call, gw.storage(), "storage", "GetModel", &StorageStub::GetModel, request);
}

// Parses the JSON body into `request` and sets its version to the path's; false (after replying
// 400) for a bad body or a body version other than the path's.
template <typename Request>
bool ParseVersionedBody(Call& call, Request* request) {
  if (absl::Status s = ParseBody(call, request); !s.ok()) {
    ReplyError(call, s);
    return false;
  }
  if (request->version() != 0 && request->version() != call.ids[0]) {
    ReplyError(call, absl::InvalidArgumentError(
                         absl::StrCat("body version ", request->version(),
                                      " differs from the path's version ", call.ids[0])));
    return false;
  }
  request->set_version(call.ids[0]);
  return true;
}

void Promote(Gateway& gw, Call& call) {
  if (!Require(call, gw.training(), "training")) return;
  trainingpb::PromoteRequest request;
  if (!ParseVersionedBody(call, &request)) return;
  gw.Forward(call, gw.training(), "training", "Promote", &TrainingStub::Promote, request);
}

// The what-if of `version` (0 = the champion) from the query parameters.
void WhatIfOf(Gateway& gw, Call& call, int64_t version) {
  if (!Require(call, gw.training(), "training")) return;
  trainingpb::WhatIfRequest request;
  request.set_version(version);
  int32_t days = 0;
  int32_t points = 0;
  int64_t max_rows = 0;
  constexpr double kUnset = -1;
  double threshold = kUnset;
  double alerts_per_day = kUnset;
  double alert_fraction = kUnset;
  if (!QueryInt(call, "days", 1000, &days) || !QueryInt(call, "points", 100000, &points) ||
      !QueryInt(call, "max_rows", kMaxInt64, &max_rows) ||
      !QueryDouble(call, "threshold", 0, 1, &threshold) ||
      !QueryDouble(call, "alerts_per_day", 0, 1e12, &alerts_per_day) ||
      !QueryDouble(call, "alert_fraction", 0, 1, &alert_fraction)) {
    return;
  }
  request.set_days(days);
  request.set_points(points);
  request.set_max_rows(max_rows);
  if (threshold != kUnset) request.set_threshold(threshold);
  if (alerts_per_day != kUnset) request.set_alerts_per_day(alerts_per_day);
  if (alert_fraction != kUnset) request.set_alert_fraction(alert_fraction);
  // The first call for a version scans and scores the window (seconds); later calls are cached.
  gw.Forward(call, gw.training(), "training", "WhatIf", &TrainingStub::WhatIf, request,
             absl::Minutes(2));
}

void WhatIf(Gateway& gw, Call& call) { WhatIfOf(gw, call, call.ids[0]); }
void ChampionWhatIf(Gateway& gw, Call& call) { WhatIfOf(gw, call, 0); }

void GetOperatingPoint(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  storagepb::GetOperatingPointRequest request;
  request.set_version(call.ids[0]);
  request.set_include_history(true);
  gw.Forward(call, gw.storage(), "storage", "GetOperatingPoint", &StorageStub::GetOperatingPoint,
             request);
}

void SetOperatingPoint(Gateway& gw, Call& call) {
  if (!Require(call, gw.training(), "training")) return;
  trainingpb::SetOperatingPointRequest request;
  if (!ParseVersionedBody(call, &request)) return;
  // Resolving a budget may scan and score the window, and the champion's reload follows.
  gw.Forward(call, gw.training(), "training", "SetOperatingPoint",
             &TrainingStub::SetOperatingPoint, request, absl::Minutes(4));
}

std::vector<QueryParamSpec> WhatIfQuery() {
  return {{.name = "days",
           .type = "integer",
           .description = "Newest days of labelled data (by Time) to evaluate on: 1..366, default 7"},
          {.name = "points", .type = "integer", .description = "Curve points: 2..1000, default 150"},
          {.name = "max_rows",
           .type = "integer",
           .description = "Most rows evaluated (older whole days left out): default 300000"},
          {.name = "threshold",
           .type = "number",
           .description = "Candidate threshold in [0, 1] (at most one candidate)"},
          {.name = "alerts_per_day",
           .type = "number",
           .description = "Candidate budget: the threshold keeping alerts/day at most this"},
          {.name = "alert_fraction",
           .type = "number",
           .description = "Candidate budget: the threshold flagging at most this fraction"}};
}

}  // namespace

std::vector<Route> internal::ModelRoutes() {
  return {
      {.spec = {.method = "GET",
                .path = "/api/v1/models",
                .operation_id = "listModels",
                .summary = "Registered model versions",
                .tag = "models",
                .response_schema = "fraud.storage.v1.ListModelsResponse"},
       .handler = ListModels},
      {.spec = {.method = "GET",
                .path = "/api/v1/models/champion",
                .operation_id = "getChampion",
                .summary = "The champion version",
                .tag = "models",
                .response_schema = "fraud.storage.v1.GetChampionResponse"},
       .handler = GetChampion},
      {.spec = {.method = "GET",
                .path = "/api/v1/models/champion/history",
                .operation_id = "listChampionHistory",
                .summary = "Every champion change (promotions and rollbacks)",
                .tag = "models",
                .response_schema = "fraud.storage.v1.ListChampionHistoryResponse"},
       .handler = ChampionHistory},
      {.spec = {.method = "GET",
                .path = "/api/v1/models/{version}",
                .operation_id = "getModel",
                .summary = "One model version",
                .tag = "models",
                .response_schema = "fraud.storage.v1.GetModelResponse"},
       .handler = GetModel},
      {.spec = {.method = "POST",
                .path = "/api/v1/models/{version}/promote",
                .operation_id = "promoteModel",
                .summary = "Make a version champion (promotion or rollback) and reload inference",
                .tag = "models",
                .access = Access::kAdmin,
                .body = BodyKind::kJson,
                .request_schema = "fraud.training.v1.PromoteRequest",
                .response_schema = "fraud.training.v1.PromoteResponse"},
       .handler = Promote},
      {.spec = {.method = "GET",
                .path = "/api/v1/models/champion/what-if",
                .operation_id = "championWhatIf",
                .summary = "What-if of the champion's operating point on the latest labelled data",
                .tag = "models",
                .response_schema = "fraud.training.v1.WhatIfResponse",
                .query = WhatIfQuery()},
       .handler = ChampionWhatIf},
      {.spec = {.method = "GET",
                .path = "/api/v1/models/{version}/what-if",
                .operation_id = "modelWhatIf",
                .summary = "What-if of a version's operating point: expected alerts/day, precision "
                           "and recall per threshold on the latest labelled data",
                .tag = "models",
                .response_schema = "fraud.training.v1.WhatIfResponse",
                .query = WhatIfQuery()},
       .handler = WhatIf},
      {.spec = {.method = "GET",
                .path = "/api/v1/models/{version}/operating-point",
                .operation_id = "getOperatingPoint",
                .summary = "A version's operating point, serving threshold and audited history",
                .tag = "models",
                .response_schema = "fraud.storage.v1.GetOperatingPointResponse"},
       .handler = GetOperatingPoint},
      {.spec = {.method = "POST",
                .path = "/api/v1/models/{version}/operating-point",
                .operation_id = "setOperatingPoint",
                .summary = "Change a version's operating point (threshold or alert budget; "
                           "audited) and reload inference when it is champion",
                .tag = "models",
                .access = Access::kAdmin,
                .body = BodyKind::kJson,
                .request_schema = "fraud.training.v1.SetOperatingPointRequest",
                .response_schema = "fraud.training.v1.SetOperatingPointResponse"},
       .handler = SetOperatingPoint},
  };
}

}  // namespace fraud::gateway
