// The models area: registered versions and the champion (storage), promotion and rollback
// (training, which also reloads inference).
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

void Promote(Gateway& gw, Call& call) {
  if (!Require(call, gw.training(), "training")) return;
  trainingpb::PromoteRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  if (request.version() != 0 && request.version() != call.ids[0]) {
    return ReplyError(call, absl::InvalidArgumentError(
                                absl::StrCat("body version ", request.version(),
                                             " differs from the path's version ", call.ids[0])));
  }
  request.set_version(call.ids[0]);
  gw.Forward(call, gw.training(), "training", "Promote", &TrainingStub::Promote, request);
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
  };
}

}  // namespace fraud::gateway
