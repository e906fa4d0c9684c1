#include "services/inference/champion_source.h"

#include <grpcpp/client_context.h>

#include <chrono>

#include "services/common/core/metrics.h"
#include "services/common/core/status_macros.h"
#include "services/common/rpc/artifact_transfer.h"
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

absl::StatusOr<std::optional<double>> StorageOperatingPointSource::OperatingThreshold(
    int64_t version) {
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, timeout_);
  storage::v1::GetOperatingPointRequest request;
  request.set_version(version);
  storage::v1::GetOperatingPointResponse response;
  const absl::Status s = rpc::FromGrpcStatus(stub_->GetOperatingPoint(&ctx, request, &response));
  if (!s.ok()) return Annotate(s, "asking storage for the operating point");
  if (!response.has_point()) return std::nullopt;
  return response.point().threshold();
}

absl::Status StorageArtifactSource::Fetch(int64_t version, const std::string& root) {
  static auto& fetches = metrics::Counter("fraud_inference_artifact_fetches_total",
                                          "Model artifacts fetched from the registry, by result");
  static auto& ok = fetches.Add({{"result", "ok"}});
  static auto& failed = fetches.Add({{"result", "failed"}});
  static auto& seconds = metrics::Counter("fraud_inference_artifact_fetch_seconds_total",
                                          "Time spent fetching model artifacts from the registry")
                             .Add({});
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = rpc::FetchModelArtifact(*stub_, version, root, timeout_).status();
  seconds.Increment(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  (s.ok() ? ok : failed).Increment();
  return s;
}

}  // namespace fraud::inference
