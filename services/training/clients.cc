#include "services/training/clients.h"

#include <grpcpp/client_context.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/core/status_macros.h"
#include "services/common/rpc/artifact_transfer.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"

namespace fraud::training {
namespace {

absl::Status CallStatus(const grpc::Status& s, absl::string_view what) {
  return Annotate(rpc::FromGrpcStatus(s), absl::StrCat("storage ", what));
}

class GrpcStorageApi final : public StorageApi {
 public:
  GrpcStorageApi(std::shared_ptr<grpc::ChannelInterface> channel, GrpcClientOptions options)
      : stub_(storage_pb::StorageService::NewStub(std::move(channel))),
        options_(std::move(options)) {}

  absl::Status ScanTransactions(
      const storage_pb::ScanTransactionsRequest& request,
      const std::function<absl::Status(const common::v1::TransactionBatch&)>& on_batch) override {
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, options_.stream_timeout);
    auto reader = stub_->ScanTransactions(&ctx, request);
    storage_pb::ScanTransactionsResponse response;
    absl::Status callback_status;
    while (reader->Read(&response)) {
      callback_status = on_batch(response.batch());
      if (!callback_status.ok()) {
        ctx.TryCancel();
        break;
      }
    }
    const grpc::Status s = reader->Finish();
    if (!callback_status.ok()) return callback_status;
    return CallStatus(s, "ScanTransactions");
  }

  absl::StatusOr<storage_pb::GetDataStatsResponse> GetDataStats(int64_t after_upload_id) override {
    storage_pb::GetDataStatsRequest request;
    request.set_after_upload_id(after_upload_id);
    return Unary(&Stub::GetDataStats, request, "GetDataStats");
  }

  absl::StatusOr<storage_pb::StoreUploadResponse> StoreUpload(
      const storage_pb::UploadBegin& begin,
      const std::function<absl::StatusOr<bool>(storage_pb::UploadRows*)>& next,
      const std::function<storage_pb::UploadCommit()>& commit) override {
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, options_.stream_timeout);
    storage_pb::StoreUploadResponse response;
    auto writer = stub_->StoreUpload(&ctx, &response);
    storage_pb::StoreUploadRequest request;
    *request.mutable_begin() = begin;
    bool stream_ok = writer->Write(request);
    absl::Status produce_status;
    while (stream_ok) {
      request.Clear();
      absl::StatusOr<bool> more = next(request.mutable_rows());
      if (!more.ok()) {
        produce_status = more.status();
        break;
      }
      if (!*more) break;
      stream_ok = writer->Write(request);
    }
    if (!produce_status.ok()) {
      // Ending the stream without a commit makes storage roll the upload back.
      ctx.TryCancel();
      writer->Finish().ok();
      return produce_status;
    }
    if (stream_ok) {
      request.Clear();
      *request.mutable_commit() = commit();
      writer->Write(request);
    }
    writer->WritesDone();
    FRAUD_RETURN_IF_ERROR(CallStatus(writer->Finish(), "StoreUpload"));
    return response;
  }

  absl::StatusOr<int64_t> AllocateModelVersion() override {
    FRAUD_ASSIGN_OR_RETURN(storage_pb::AllocateModelVersionResponse response,
                           Unary(&Stub::AllocateModelVersion,
                                 storage_pb::AllocateModelVersionRequest(), "AllocateModelVersion"));
    return response.version();
  }

  absl::Status PutModelArtifact(int64_t version, const std::string& dir,
                                const std::vector<std::string>& names) override {
    return rpc::PutModelArtifact(*stub_, version, dir, names, options_.stream_timeout).status();
  }

  absl::StatusOr<std::string> FetchModelArtifact(int64_t version,
                                                 const std::string& root) override {
    return rpc::FetchModelArtifact(*stub_, version, root, options_.stream_timeout);
  }

  absl::StatusOr<storage_pb::ModelVersion> RegisterModel(
      const storage_pb::ModelVersion& model) override {
    storage_pb::RegisterModelRequest request;
    *request.mutable_model() = model;
    FRAUD_ASSIGN_OR_RETURN(storage_pb::RegisterModelResponse response,
                           Unary(&Stub::RegisterModel, request, "RegisterModel"));
    return response.model();
  }

  absl::StatusOr<storage_pb::ModelVersion> GetModel(int64_t version) override {
    storage_pb::GetModelRequest request;
    request.set_version(version);
    FRAUD_ASSIGN_OR_RETURN(storage_pb::GetModelResponse response,
                           Unary(&Stub::GetModel, request, "GetModel"));
    return response.model();
  }

  absl::StatusOr<std::vector<storage_pb::ModelVersion>> ListModels() override {
    FRAUD_ASSIGN_OR_RETURN(
        storage_pb::ListModelsResponse response,
        Unary(&Stub::ListModels, storage_pb::ListModelsRequest(), "ListModels"));
    return std::vector<storage_pb::ModelVersion>(response.models().begin(),
                                                 response.models().end());
  }

  absl::StatusOr<std::optional<storage_pb::ModelVersion>> GetChampion() override {
    FRAUD_ASSIGN_OR_RETURN(
        storage_pb::GetChampionResponse response,
        Unary(&Stub::GetChampion, storage_pb::GetChampionRequest(), "GetChampion"));
    if (!response.has_model() || response.model().version() == 0) return std::nullopt;
    return response.model();
  }

  absl::StatusOr<storage_pb::ChampionChange> SetChampion(
      const storage_pb::SetChampionRequest& request) override {
    FRAUD_ASSIGN_OR_RETURN(storage_pb::SetChampionResponse response,
                           Unary(&Stub::SetChampion, request, "SetChampion"));
    return response.change();
  }

  absl::StatusOr<storage_pb::GetOperatingPointResponse> GetOperatingPoint(
      int64_t version) override {
    storage_pb::GetOperatingPointRequest request;
    request.set_version(version);
    return Unary(&Stub::GetOperatingPoint, request, "GetOperatingPoint");
  }

  absl::StatusOr<storage_pb::OperatingPoint> SetOperatingPoint(
      const storage_pb::OperatingPoint& point) override {
    storage_pb::SetOperatingPointRequest request;
    *request.mutable_point() = point;
    FRAUD_ASSIGN_OR_RETURN(storage_pb::SetOperatingPointResponse response,
                           Unary(&Stub::SetOperatingPoint, request, "SetOperatingPoint"));
    return response.point();
  }

  absl::StatusOr<std::vector<storage_pb::ChampionChange>> ListChampionHistory() override {
    FRAUD_ASSIGN_OR_RETURN(storage_pb::ListChampionHistoryResponse response,
                           Unary(&Stub::ListChampionHistory,
                                 storage_pb::ListChampionHistoryRequest(), "ListChampionHistory"));
    return std::vector<storage_pb::ChampionChange>(response.changes().begin(),
                                                   response.changes().end());
  }

  absl::StatusOr<storage_pb::TrainingRun> CreateRun(const storage_pb::TrainingRun& run) override {
    storage_pb::CreateRunRequest request;
    *request.mutable_run() = run;
    FRAUD_ASSIGN_OR_RETURN(storage_pb::CreateRunResponse response,
                           Unary(&Stub::CreateRun, request, "CreateRun"));
    return response.run();
  }

  absl::StatusOr<storage_pb::TrainingRun> UpdateRun(const storage_pb::TrainingRun& run) override {
    storage_pb::UpdateRunRequest request;
    *request.mutable_run() = run;
    FRAUD_ASSIGN_OR_RETURN(storage_pb::UpdateRunResponse response,
                           Unary(&Stub::UpdateRun, request, "UpdateRun"));
    return response.run();
  }

  absl::StatusOr<storage_pb::TrainingRun> GetRun(int64_t run_id) override {
    storage_pb::GetRunRequest request;
    request.set_run_id(run_id);
    FRAUD_ASSIGN_OR_RETURN(storage_pb::GetRunResponse response,
                           Unary(&Stub::GetRun, request, "GetRun"));
    return response.run();
  }

  absl::StatusOr<storage_pb::ListRunsResponse> ListRuns(int32_t page_size,
                                                       int64_t before_id) override {
    storage_pb::ListRunsRequest request;
    request.set_page_size(page_size);
    request.set_before_id(before_id);
    return Unary(&Stub::ListRuns, request, "ListRuns");
  }

 private:
  using Stub = storage_pb::StorageService::Stub;

  // One unary call with the call timeout; errors annotated with the method name.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Unary(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                              Response*),
                                 const Request& request, absl::string_view name) {
    Response response;
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, options_.call_timeout);
    FRAUD_RETURN_IF_ERROR(CallStatus((stub_.get()->*method)(&ctx, request, &response), name));
    return response;
  }

  std::unique_ptr<Stub> stub_;
  GrpcClientOptions options_;
};

class GrpcInferenceApi final : public InferenceApi {
 public:
  GrpcInferenceApi(std::shared_ptr<grpc::ChannelInterface> channel, GrpcClientOptions options)
      : stub_(inference::v1::InferenceService::NewStub(std::move(channel))),
        options_(std::move(options)) {}

  absl::StatusOr<inference::v1::ReloadResponse> Reload(int64_t version) override {
    inference::v1::ReloadRequest request;
    request.set_version(version);
    inference::v1::ReloadResponse response;
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, options_.reload_timeout);
    rpc::AddBearerToken(&ctx, options_.admin_token);
    // Wait for inference to be reachable rather than failing at once: a recreated inference
    // container comes back at a new address, which the channel learns only by re-resolving after
    // a failed connection. Failing fast made the images test's promotion roll back ("No route to
    // host" to the old address) although inference was up; the deadline still bounds the wait.
    ctx.set_wait_for_ready(true);
    const grpc::Status s = stub_->Reload(&ctx, request, &response);
    FRAUD_RETURN_IF_ERROR(Annotate(rpc::FromGrpcStatus(s), "inference Reload"));
    return response;
  }

 private:
  std::unique_ptr<inference::v1::InferenceService::Stub> stub_;
  GrpcClientOptions options_;
};

}  // namespace

std::unique_ptr<StorageApi> MakeGrpcStorageApi(std::shared_ptr<grpc::ChannelInterface> channel,
                                               GrpcClientOptions options) {
  return std::make_unique<GrpcStorageApi>(std::move(channel), std::move(options));
}

std::unique_ptr<InferenceApi> MakeGrpcInferenceApi(
    std::shared_ptr<grpc::ChannelInterface> channel, GrpcClientOptions options) {
  return std::make_unique<GrpcInferenceApi>(std::move(channel), std::move(options));
}

}  // namespace fraud::training
