// The constellation in one process for the training integration tests: real storage on a real
// PostgreSQL (one schema per test), real inference (model reloader with the production model
// loader, admin token), real ingest, and the training service under test, all on 127.0.0.1:0,
// sharing one artifact directory.
#pragma once

#include <gmock/gmock.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/common/csv/synthetic_generator.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/channel.h"
#include "services/inference/champion_source.h"
#include "services/inference/inference_service.h"
#include "services/inference/model_holder.h"
#include "services/inference/model_reloader.h"
#include "services/inference/predictor.h"
#include "services/inference/runtime_loader.h"
#include "services/ingest/ingest_service.h"
#include "services/training/clients.h"
#include "services/training/pipeline.h"
#include "clients/replay/replay.h"
#include "services/training/run_manager.h"
#include "services/training/training_service.h"
#include "tests/testing/in_process_server.h"
#include "tests/testing/in_process_storage.h"
#include "tests/testing/pg_fixture.h"
#include "tests/testing/status_matchers.h"

namespace fraud::training::it {

using ::fraud::testing::InProcessServer;
using ::fraud::testing::InProcessStorage;
using ::fraud::testing::IsOk;

inline constexpr char kAdminToken[] = "integration-admin-token";

// Writes a labelled synthetic CSV (ordered by Time) and returns its path.
inline std::string WriteSyntheticCsv(const std::string& path, int64_t rows, uint64_t seed,
                                     double fraud_rate) {
  csv::GeneratorOptions o;
  o.rows = rows;
  o.seed = seed;
  o.fraud_rate = fraud_rate;
  std::ofstream out(path, std::ios::binary);
  EXPECT_THAT(csv::WriteSyntheticCsv(o, out), IsOk());
  return path;
}

// Version directories (numeric names) and anything else (temporary dirs) under the model root.
struct ArtifactListing {
  std::vector<std::string> versions;
  std::vector<std::string> others;
};
inline ArtifactListing ListArtifacts(const std::string& root) {
  ArtifactListing out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    const bool numeric = !name.empty() && name.find_first_not_of("0123456789") == std::string::npos;
    (numeric ? out.versions : out.others).push_back(name);
  }
  std::sort(out.versions.begin(), out.versions.end());
  return out;
}

class TrainingIntegrationTest : public fraud::testing::PgFixture {
 protected:
  void SetUp() override {
    PgFixture::SetUp();
    if (IsSkipped() || HasFailure()) return;
    root_ = ::testing::TempDir() + "/training_it_" + schema();
    model_dir_ = root_ + "/models";
    std::filesystem::create_directories(model_dir_);
    // Inference has its own cache, as in every deployment: it sees a version only through the
    // registry (storage), never through training's disk.
    inference_cache_dir_ = root_ + "/inference-cache";

    // Storage.
    absl::StatusOr<std::unique_ptr<InProcessStorage>> storage = InProcessStorage::Start(
        {conninfo(), /*pool_size=*/16, /*server_name=*/"storage_it", /*max_threads=*/40});
    ASSERT_THAT(storage, IsOk());
    storage_ = std::move(*storage);
    storage_channel_ = storage_->channel();

    // Inference (real loader, reload behind the admin token).
    storage_stub_ = storage::v1::StorageService::NewStub(storage_channel_);
    champion_source_ =
        std::make_unique<inference::StorageChampionSource>(storage_stub_.get(), absl::Seconds(10));
    artifact_source_ =
        std::make_unique<inference::StorageArtifactSource>(storage_stub_.get(), absl::Seconds(60));
    operating_point_source_ = std::make_unique<inference::StorageOperatingPointSource>(
        storage_stub_.get(), absl::Seconds(10));
    reloader_ = std::make_unique<inference::ModelReloader>(
        inference_cache_dir_, inference::RuntimeModelLoader(), &holder_, champion_source_.get(),
        artifact_source_.get(), &RealClock::Get(), operating_point_source_.get());
    inference::BatcherOptions batching;
    batching.enabled = false;
    predictor_ = std::make_unique<inference::Predictor>(&holder_, batching);
    inference_service_ = std::make_unique<inference::InferenceService>(
        predictor_.get(), reloader_.get(), &holder_, kAdminToken);
    inference_server_ = std::make_unique<InProcessServer>(
        std::vector<grpc::Service*>{inference_service_.get()}, "inference_it", 40);
    ASSERT_THAT(inference_server_->Start(), IsOk());

    // Ingest.
    ingest::IngestOptions ingest_options;
    ingest_service_ = std::make_unique<ingest::IngestService>(
        storage_channel_, inference_server_->channel(), ingest_options);
    ingest_server_ = std::make_unique<InProcessServer>(
        std::vector<grpc::Service*>{ingest_service_.get()}, "ingest_it", 40);
    ASSERT_THAT(ingest_server_->Start(), IsOk());

    StartTraining();
  }

  void TearDown() override {
    StopTraining();
    if (ingest_server_) ingest_server_->Shutdown();
    if (inference_server_) inference_server_->Shutdown();
    if (storage_) storage_->Shutdown();
    ingest_server_.reset();
    inference_server_.reset();
    storage_.reset();
    std::error_code ec;
    if (!root_.empty()) std::filesystem::remove_all(root_, ec);
    PgFixture::TearDown();
  }

  // Small, fast defaults: tests pass their own families/params per run.
  virtual PipelineOptions TrainingOptions() {
    PipelineOptions o;
    o.model_dir = model_dir_;
    o.threads = 2;
    o.comparison_bootstrap = 50;
    return o;
  }

  void StartTraining() {
    GrpcClientOptions client_options;
    client_options.admin_token = kAdminToken;
    storage_api_ = MakeGrpcStorageApi(storage_channel_, client_options);
    inference_api_ = MakeGrpcInferenceApi(inference_server_->channel(), client_options);
    pipeline_ = TrainingOptions();
    deps_.storage = storage_for_runs_ != nullptr ? storage_for_runs_ : storage_api_.get();
    deps_.inference = inference_api_.get();
    runs_ = std::make_unique<RunManager>(
        storage_api_.get(),
        [this](const v1::StartRunRequest& request, int64_t run_id, RunSink& sink,
               const std::atomic<bool>& cancel) {
          return ExecuteRun(request, run_id, pipeline_, deps_, sink, cancel);
        });
    ASSERT_THAT(runs_->Start(), IsOk());
    TrainingServiceOptions service_options;
    service_options.admin_token = kAdminToken;
    training_service_ = std::make_unique<TrainingService>(runs_.get(), storage_api_.get(),
                                                          inference_api_.get(), pipeline_,
                                                          service_options);
    training_server_ = std::make_unique<InProcessServer>(
        std::vector<grpc::Service*>{training_service_.get()}, "training_it", 40);
    ASSERT_THAT(training_server_->Start(), IsOk());
    training_stub_ = v1::TrainingService::NewStub(training_server_->channel());
  }

  void StopTraining() {
    if (training_server_) training_server_->Shutdown();
    if (runs_) runs_->Stop();
    training_server_.reset();
    training_service_.reset();
    runs_.reset();
  }

  std::unique_ptr<replay::Uploader> Uploader() {
    return replay::MakeIngestUploader(ingest_server_->channel(), kAdminToken);
  }

  // Starts a run through the RPC and waits for its end.
  storage::v1::TrainingRun TrainAndWait(const v1::StartRunRequest& request) {
    grpc::ClientContext ctx;
    rpc::AddBearerToken(&ctx, kAdminToken);
    v1::StartRunResponse started;
    grpc::Status s = training_stub_->StartRun(&ctx, request, &started);
    EXPECT_TRUE(s.ok()) << s.error_message();
    absl::StatusOr<storage::v1::TrainingRun> done =
        runs_->WaitFor(started.run().id(), absl::Minutes(10));
    EXPECT_THAT(done, IsOk());
    return done.ok() ? *done : storage::v1::TrainingRun();
  }

  int64_t ChampionVersion() {
    absl::StatusOr<std::optional<storage::v1::ModelVersion>> c = storage_api_->GetChampion();
    EXPECT_THAT(c, IsOk());
    return c.ok() && c->has_value() ? (*c)->version() : 0;
  }

  int64_t ServingVersion() {
    std::shared_ptr<const inference::LoadedModel> m = holder_.Get();
    return m == nullptr ? 0 : m->version;
  }

  size_t ModelCount() {
    absl::StatusOr<std::vector<storage::v1::ModelVersion>> models = storage_api_->ListModels();
    EXPECT_THAT(models, IsOk());
    return models.ok() ? models->size() : 0;
  }

  std::string root_;
  std::string model_dir_;
  std::string inference_cache_dir_;
  std::unique_ptr<InProcessStorage> storage_;
  std::shared_ptr<grpc::Channel> storage_channel_;
  std::unique_ptr<storage::v1::StorageService::Stub> storage_stub_;
  std::unique_ptr<inference::StorageChampionSource> champion_source_;
  std::unique_ptr<inference::StorageArtifactSource> artifact_source_;
  std::unique_ptr<inference::StorageOperatingPointSource> operating_point_source_;
  inference::ModelHolder holder_;
  std::unique_ptr<inference::ModelReloader> reloader_;
  std::unique_ptr<inference::Predictor> predictor_;
  std::unique_ptr<inference::InferenceService> inference_service_;
  std::unique_ptr<InProcessServer> inference_server_;
  std::unique_ptr<ingest::IngestService> ingest_service_;
  std::unique_ptr<InProcessServer> ingest_server_;

  std::unique_ptr<StorageApi> storage_api_;
  // When set (before StartTraining), runs use this instead of storage_api_ (fault injection).
  StorageApi* storage_for_runs_ = nullptr;
  std::unique_ptr<InferenceApi> inference_api_;
  PipelineOptions pipeline_;
  PipelineDeps deps_;
  std::unique_ptr<RunManager> runs_;
  std::unique_ptr<TrainingService> training_service_;
  std::unique_ptr<InProcessServer> training_server_;
  std::unique_ptr<v1::TrainingService::Stub> training_stub_;
};

}  // namespace fraud::training::it
