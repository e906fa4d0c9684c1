#include "services/inference/champion_source.h"

#include <grpcpp/client_context.h>

#include "services/common/core/status_macros.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"

namespace fraud::inference {

absl::StatusOr<int64_t> StorageChampionSource::ChampionVersion() {
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, timeout_);
  storage::v1::GetChampionRequest request;
  storage::v1::GetChampionResponse response;
  const absl::Status s = rpc::FromGrpcStatus(stub_->GetChampion(&ctx, request, &response));
  if (!s.ok()) return Annotate(s, "asking storage for the champion");
  if (!response.has_model()) return 0;
  return response.model().version();
}

}  // namespace fraud::inference
