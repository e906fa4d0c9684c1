// The training service's view of its two downstream services, as small interfaces so the run
// logic can be tested with fakes:
//   StorageApi   - storage's data scan, stats, model registry, champion and run records;
//   InferenceApi - inference's admin Reload.
// The gRPC implementations put a deadline on every call, attach the admin bearer token where the
// callee requires it, and convert grpc::Status with FromGrpcStatus (so UNAVAILABLE stays
// kUnavailable).
//
// Thread-safety: every implementation must be safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fraud/inference/v1/inference.grpc.pb.h"
#include "fraud/storage/v1/storage.grpc.pb.h"

namespace fraud::training {

namespace storage_pb = ::fraud::storage::v1;

class StorageApi {
 public:
  virtual ~StorageApi() = default;

  // Streams the matching rows to `on_batch` in storage's order; a non-OK status from the callback
  // cancels the scan and is returned.
  virtual absl::Status ScanTransactions(
      const storage_pb::ScanTransactionsRequest& request,
      const std::function<absl::Status(const common::v1::TransactionBatch&)>& on_batch) = 0;
  virtual absl::StatusOr<storage_pb::GetDataStatsResponse> GetDataStats(int64_t after_upload_id) = 0;

  // Stores one upload: `next` fills the next batch of rows and returns true, or returns false when
  // there are no more rows (or fails with a status, which aborts the upload: nothing is stored);
  // `commit` is then called once for the commit message (sha256 and counts known by then).
  virtual absl::StatusOr<storage_pb::StoreUploadResponse> StoreUpload(
      const storage_pb::UploadBegin& begin,
      const std::function<absl::StatusOr<bool>(storage_pb::UploadRows*)>& next,
      const std::function<storage_pb::UploadCommit()>& commit) = 0;

  virtual absl::StatusOr<int64_t> AllocateModelVersion() = 0;
  // Stores <dir>/<name> for every name as version's artifact in the registry (all-or-nothing;
  // AlreadyExists when the version has one).
  virtual absl::Status PutModelArtifact(int64_t version, const std::string& dir,
                                        const std::vector<std::string>& names) = 0;
  // Returns <root>/<version>, fetched from the registry first when missing (atomic, checked
  // against the registry's sha256). NotFound when the registry has no artifact of that version.
  virtual absl::StatusOr<std::string> FetchModelArtifact(int64_t version,
                                                         const std::string& root) = 0;
  virtual absl::StatusOr<storage_pb::ModelVersion> RegisterModel(
      const storage_pb::ModelVersion& model) = 0;
  // NotFound when the version is not registered.
  virtual absl::StatusOr<storage_pb::ModelVersion> GetModel(int64_t version) = 0;
  virtual absl::StatusOr<std::vector<storage_pb::ModelVersion>> ListModels() = 0;
  // The champion, or nullopt when there is none yet.
  virtual absl::StatusOr<std::optional<storage_pb::ModelVersion>> GetChampion() = 0;
  // Aborted when check_current is set and the champion changed meanwhile.
  virtual absl::StatusOr<storage_pb::ChampionChange> SetChampion(
      const storage_pb::SetChampionRequest& request) = 0;
  virtual absl::StatusOr<std::vector<storage_pb::ChampionChange>> ListChampionHistory() = 0;
  // The version's current operating point (unset when none) and thresholds; NotFound for an
  // unregistered version.
  virtual absl::StatusOr<storage_pb::GetOperatingPointResponse> GetOperatingPoint(
      int64_t version) = 0;
  // Appends an operating-point change to the version's audited history (storage validates it).
  virtual absl::StatusOr<storage_pb::OperatingPoint> SetOperatingPoint(
      const storage_pb::OperatingPoint& point) = 0;

  virtual absl::StatusOr<storage_pb::TrainingRun> CreateRun(const storage_pb::TrainingRun& run) = 0;
  virtual absl::StatusOr<storage_pb::TrainingRun> UpdateRun(const storage_pb::TrainingRun& run) = 0;
  virtual absl::StatusOr<storage_pb::TrainingRun> GetRun(int64_t run_id) = 0;
  virtual absl::StatusOr<storage_pb::ListRunsResponse> ListRuns(int32_t page_size,
                                                               int64_t before_id) = 0;
};

class InferenceApi {
 public:
  virtual ~InferenceApi() = default;
  // Asks inference to load, verify and serve `version`.
  virtual absl::StatusOr<inference::v1::ReloadResponse> Reload(int64_t version) = 0;
};

struct GrpcClientOptions {
  // Deadline of short calls (registry, runs, stats).
  absl::Duration call_timeout = absl::Seconds(30);
  // Deadline of a whole scan or upload stream.
  absl::Duration stream_timeout = absl::Minutes(30);
  // Deadline of a Reload (loading and smoke-testing a model). Reload waits for inference to be
  // reachable (wait_for_ready) within it, so an unreachable inference costs the whole deadline
  // before the promotion rolls back.
  absl::Duration reload_timeout = absl::Minutes(2);
  // Bearer token for admin calls (inference Reload).
  std::string admin_token;
};

// `channel` is shared; the clients are thread-safe.
std::unique_ptr<StorageApi> MakeGrpcStorageApi(std::shared_ptr<grpc::ChannelInterface> channel,
                                               GrpcClientOptions options = {});
std::unique_ptr<InferenceApi> MakeGrpcInferenceApi(
    std::shared_ptr<grpc::ChannelInterface> channel, GrpcClientOptions options = {});

}  // namespace fraud::training
