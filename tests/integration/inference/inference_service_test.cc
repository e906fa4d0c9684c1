// In-process gRPC tests of fraud-inference with real tiny models (logreg, mlp, xgboost) trained and
// written by services/common/model, served on 127.0.0.1:0.
#include "services/inference/inference_service.h"

#include <gmock/gmock.h>
#include <grpcpp/client_context.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"
#include "services/inference/champion_source.h"
#include "services/inference/model_watcher.h"
#include "services/inference/runtime_loader.h"
#include "tests/integration/inference/trained_models.h"
#include "tests/testing/in_process_server.h"
#include "tests/testing/status_matchers.h"

namespace fraud::inference {
namespace {

using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using grpc::health::v1::HealthCheckResponse;
using testing::CorruptByte;
using testing::WriteVersion;

constexpr common::v1::ModelFamily kLogreg = common::v1::MODEL_FAMILY_LOGREG;
constexpr common::v1::ModelFamily kMlp = common::v1::MODEL_FAMILY_MLP;
constexpr common::v1::ModelFamily kXgboost = common::v1::MODEL_FAMILY_XGBOOST;
constexpr common::v1::ModelFamily kEnsemble = common::v1::MODEL_FAMILY_ENSEMBLE;

std::vector<double> Rows(size_t rows, uint64_t seed) {
  model::Dataset d = testing::SyntheticDataset(static_cast<int64_t>(rows), seed, 0.2);
  return d.features;
}

v1::PredictRequest Request(const std::vector<double>& features) {
  v1::PredictRequest r;
  r.mutable_rows()->set_num_rows(static_cast<uint32_t>(features.size() / kNumFeatures));
  r.mutable_rows()->mutable_features()->Add(features.begin(), features.end());
  return r;
}

// The scores services/common/model gives for `features` when it loads `dir` itself.
std::vector<float> DirectScores(const std::string& dir, const std::vector<double>& features) {
  absl::StatusOr<std::unique_ptr<model::ModelRuntime>> m = model::LoadModel(dir);
  EXPECT_THAT(m, IsOk());
  if (!m.ok()) return {};
  std::vector<float> out(features.size() / kNumFeatures);
  EXPECT_THAT((*m)->Score(features.data(), out.size(), out.data()), IsOk());
  return out;
}

// A fake registry: fraud.storage.v1.StorageService answering only GetChampion.
class FakeStorage final : public storage::v1::StorageService::Service {
 public:
  grpc::Status GetChampion(grpc::ServerContext*, const storage::v1::GetChampionRequest*,
                           storage::v1::GetChampionResponse* response) override {
    const int64_t v = champion_.load();
    if (v > 0) {
      response->mutable_model()->set_version(v);
      response->mutable_model()->set_is_champion(true);
    }
    return grpc::Status::OK;
  }
  void Set(int64_t version) { champion_ = version; }

 private:
  std::atomic<int64_t> champion_{0};
};

class InferenceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = testing::MakeTempDir(); }
  void TearDown() override {
    StopServer();
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  void StartServer(std::string admin_token = "", BatcherOptions batching = {},
                   ChampionSource* champion = nullptr) {
    reloader_ = std::make_unique<ModelReloader>(root_, RuntimeModelLoader(), &holder_, champion);
    predictor_ = std::make_unique<Predictor>(&holder_, batching);
    service_ = std::make_unique<InferenceService>(predictor_.get(), reloader_.get(), &holder_,
                                                  std::move(admin_token));
    server_ = std::make_unique<fraud::testing::InProcessServer>(
        std::vector<grpc::Service*>{service_.get()}, "inference_test", 32);
    ASSERT_THAT(server_->Start(), IsOk());
    ConnectHealth(&holder_, &server_->runner());
    channel_ = server_->channel();
    stub_ = v1::InferenceService::NewStub(channel_);
  }
  void StopServer() {
    if (server_) server_->Shutdown();
    server_.reset();
    holder_.SetListener(nullptr);
  }

  absl::Status Reload(int64_t version, v1::ReloadResponse* response = nullptr,
                      const std::string& token = "") {
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(30));
    rpc::AddBearerToken(&ctx, token);
    v1::ReloadRequest req;
    req.set_version(version);
    v1::ReloadResponse resp;
    absl::Status s = rpc::FromGrpcStatus(stub_->Reload(&ctx, req, &resp));
    if (response != nullptr) *response = resp;
    return s;
  }
  absl::Status Predict(const v1::PredictRequest& req, v1::PredictResponse* resp) {
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(30));
    return rpc::FromGrpcStatus(stub_->Predict(&ctx, req, resp));
  }
  absl::StatusOr<int64_t> ServingVersion() {
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(10));
    v1::GetModelResponse resp;
    absl::Status s = rpc::FromGrpcStatus(stub_->GetModel(&ctx, v1::GetModelRequest(), &resp));
    if (!s.ok()) return s;
    return resp.version();
  }
  HealthCheckResponse::ServingStatus Health(const std::string& service) {
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(10));
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    HealthCheckResponse resp;
    grpc::Status s = health->Check(&ctx, req, &resp);
    return s.ok() ? resp.status() : HealthCheckResponse::SERVICE_UNKNOWN;
  }

  std::string root_;
  ModelHolder holder_;
  std::unique_ptr<ModelReloader> reloader_;
  std::unique_ptr<Predictor> predictor_;
  std::unique_ptr<InferenceService> service_;
  std::unique_ptr<fraud::testing::InProcessServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::InferenceService::Stub> stub_;
};

TEST_F(InferenceServiceTest, PredictMatchesTheModelLibrarysOwnScoresForEveryFamily) {
  const std::map<int64_t, common::v1::ModelFamily> versions = {
      {1, kLogreg}, {2, kMlp}, {3, kXgboost}, {4, kEnsemble}};
  for (const auto& [version, family] : versions) WriteVersion(root_, version, family);
  StartServer();
  const std::vector<double> features = Rows(1000, 5);
  for (const auto& [version, family] : versions) {
    SCOPED_TRACE(model::FamilyName(family));
    ASSERT_THAT(Reload(version), IsOk());
    const std::vector<float> expected = DirectScores(reloader_->ArtifactPath(version), features);
    const double threshold = testing::TinyModel(family).manifest().threshold();
    v1::PredictResponse resp;
    ASSERT_THAT(Predict(Request(features), &resp), IsOk());
    ASSERT_EQ(resp.scores().scores_size(), 1000);
    EXPECT_EQ(resp.scores().model_version(), version);
    EXPECT_DOUBLE_EQ(resp.scores().threshold(), threshold);
    int flagged = 0;
    for (int i = 0; i < 1000; ++i) {
      // Not bit-equal: the served batch and the direct one may be split differently
      // across BLAS/intra-op threads, so float sums can differ in the last bits
      // (seen once in CI: 1.75096e-05 vs 1.75096e-05 for the MLP).
      ASSERT_NEAR(resp.scores().scores(i), expected[i], 1e-6 + 1e-5 * expected[i]) << "row " << i;
      ASSERT_EQ(resp.scores().decisions(i),
                resp.scores().scores(i) >= static_cast<float>(threshold))
          << "row " << i;
      flagged += resp.scores().decisions(i);
    }
    EXPECT_GT(flagged, 0) << "the synthetic frauds should trip the threshold";
    // Single rows (through the micro-batcher) agree too.
    for (int i = 0; i < 20; ++i) {
      std::vector<double> row(features.begin() + i * kNumFeatures,
                              features.begin() + (i + 1) * kNumFeatures);
      ASSERT_THAT(Predict(Request(row), &resp), IsOk());
      EXPECT_NEAR(resp.scores().scores(0), expected[i], 1e-6);
    }
  }
}

// Reason codes through the served model, for every family: each explanation's bias, listed
// contributions and rest add up to its margin, the margin is the logit of the row's score, and the
// list is ordered by magnitude.
TEST_F(InferenceServiceTest, ExplainedPredictionsSumToTheMarginOfTheServedModelForEveryFamily) {
  const std::map<int64_t, common::v1::ModelFamily> versions = {
      {1, kLogreg}, {2, kMlp}, {3, kXgboost}, {4, kEnsemble}};
  for (const auto& [version, family] : versions) WriteVersion(root_, version, family);
  StartServer();
  const std::vector<double> features = Rows(50, 6);
  for (const auto& [version, family] : versions) {
    SCOPED_TRACE(model::FamilyName(family));
    ASSERT_THAT(Reload(version), IsOk());
    for (int top_k : {0, 3, 30}) {
      SCOPED_TRACE(top_k);
      v1::PredictRequest req = Request(features);
      req.set_explain(true);
      req.set_top_k(top_k);
      v1::PredictResponse resp;
      ASSERT_THAT(Predict(req, &resp), IsOk());
      EXPECT_EQ(resp.scores().model_version(), version);
      ASSERT_EQ(resp.explanations_size(), 50);
      const std::vector<float> expected = DirectScores(reloader_->ArtifactPath(version), features);
      for (int r = 0; r < 50; ++r) {
        const common::v1::Explanation& e = resp.explanations(r);
        ASSERT_EQ(e.top_size(), top_k == 0 ? 5 : top_k);
        double sum = e.bias() + e.rest();
        for (int i = 0; i < e.top_size(); ++i) {
          const common::v1::FeatureContribution& c = e.top(i);
          sum += c.contribution();
          EXPECT_EQ(c.feature(), layout::FeatureName(c.index()));
          EXPECT_EQ(c.value(), features[r * kNumFeatures + static_cast<size_t>(c.index())]);
          if (i > 0) {
            EXPECT_GE(std::abs(e.top(i - 1).contribution()), std::abs(c.contribution()));
          }
        }
        EXPECT_NEAR(sum, e.margin(), 1e-5 * std::max(1.0, std::abs(e.margin()))) << "row " << r;
        EXPECT_NEAR(1.0 / (1.0 + std::exp(-e.margin())), resp.scores().scores(r), 2e-6);
        EXPECT_NEAR(resp.scores().scores(r), expected[r], 1e-6 + 1e-5 * expected[r]);
        if (top_k == 30) {
          EXPECT_EQ(e.rest(), 0.0);
        }
      }
    }
  }
  // A plain request after explained ones carries no explanations.
  v1::PredictResponse plain;
  ASSERT_THAT(Predict(Request(features), &plain), IsOk());
  EXPECT_EQ(plain.explanations_size(), 0);
}

TEST_F(InferenceServiceTest, BadTopKIsInvalidArgumentNamingTheField) {
  WriteVersion(root_, 1, kLogreg);
  StartServer();
  ASSERT_THAT(Reload(1), IsOk());
  v1::PredictResponse resp;
  for (int top_k : {-1, 31, 1000}) {
    v1::PredictRequest req = Request(Rows(2, 1));
    req.set_explain(true);
    req.set_top_k(top_k);
    EXPECT_THAT(Predict(req, &resp), StatusIs(absl::StatusCode::kInvalidArgument,
                                              AllOf(HasSubstr(absl::StrCat("top_k is ", top_k)),
                                                    HasSubstr("between 0 and 30"))));
  }
  v1::PredictRequest without_explain = Request(Rows(2, 1));
  without_explain.set_top_k(3);
  EXPECT_THAT(Predict(without_explain, &resp),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("explain is false")));
}

TEST_F(InferenceServiceTest, PredictStreamExplainsWhenAMessageAsks) {
  WriteVersion(root_, 1, kXgboost);
  StartServer();
  ASSERT_THAT(Reload(1), IsOk());
  grpc::ClientContext ctx;
  auto stream = stub_->PredictStream(&ctx);
  v1::PredictRequest explained = Request(Rows(7, 3));
  explained.set_explain(true);
  ASSERT_TRUE(stream->Write(explained));
  ASSERT_TRUE(stream->Write(Request(Rows(4, 4))));
  ASSERT_TRUE(stream->WritesDone());
  v1::PredictResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.explanations_size(), 7);
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(resp.scores().scores_size(), 4);
  EXPECT_EQ(resp.explanations_size(), 0);
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(InferenceServiceTest, WrongFeatureCountIsInvalidArgument) {
  WriteVersion(root_, 1, kLogreg);
  StartServer();
  ASSERT_THAT(Reload(1), IsOk());
  v1::PredictRequest req = Request(Rows(2, 1));
  req.mutable_rows()->set_num_rows(3);
  v1::PredictResponse resp;
  EXPECT_THAT(Predict(req, &resp),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("60 values"), HasSubstr("num_rows=3"), HasSubstr("90"))));
}

TEST_F(InferenceServiceTest, NanFeatureIsInvalidArgumentNamingTheRow) {
  WriteVersion(root_, 1, kLogreg);
  StartServer();
  ASSERT_THAT(Reload(1), IsOk());
  std::vector<double> rows = Rows(4, 1);
  rows[2 * kNumFeatures + 14] = std::numeric_limits<double>::quiet_NaN();
  v1::PredictResponse resp;
  EXPECT_THAT(Predict(Request(rows), &resp),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("row 2"), HasSubstr("V14"), HasSubstr("NaN"))));
}

TEST_F(InferenceServiceTest, EmptyBatchIsInvalidArgument) {
  WriteVersion(root_, 4, kLogreg);
  StartServer();
  ASSERT_THAT(Reload(4), IsOk());
  v1::PredictResponse resp;
  EXPECT_THAT(Predict(v1::PredictRequest(), &resp),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_rows is 0")));
}

TEST_F(InferenceServiceTest, WithoutAModelPredictIsUnavailableAndHealthNotServingUntilALoad) {
  WriteVersion(root_, 1, kMlp);
  StartServer();
  v1::PredictResponse resp;
  EXPECT_THAT(Predict(Request(Rows(1, 1)), &resp),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no model loaded yet")));
  EXPECT_THAT(ServingVersion(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(Health(""), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Health(kHealthServiceName), HealthCheckResponse::NOT_SERVING);

  v1::ReloadResponse reload;
  ASSERT_THAT(Reload(1, &reload), IsOk());
  EXPECT_EQ(reload.previous_version(), 0);
  EXPECT_EQ(reload.version(), 1);
  EXPECT_GT(reload.load_seconds(), 0);
  EXPECT_EQ(Health(""), HealthCheckResponse::SERVING);
  EXPECT_EQ(Health(kHealthServiceName), HealthCheckResponse::SERVING);
  EXPECT_THAT(Predict(Request(Rows(1, 1)), &resp), IsOk());
  EXPECT_EQ(resp.scores().model_version(), 1);
}

TEST_F(InferenceServiceTest, GetModelDescribesTheServingModel) {
  const std::string dir = WriteVersion(root_, 2, kXgboost);
  StartServer();
  const absl::Time before = absl::Now();
  ASSERT_THAT(Reload(2), IsOk());
  grpc::ClientContext ctx;
  v1::GetModelResponse resp;
  ASSERT_TRUE(stub_->GetModel(&ctx, v1::GetModelRequest(), &resp).ok());
  EXPECT_EQ(resp.version(), 2);
  EXPECT_EQ(resp.manifest().version(), 2);
  EXPECT_EQ(resp.manifest().family(), kXgboost);
  EXPECT_GT(resp.manifest().files_size(), 0);
  EXPECT_EQ(resp.artifact_path(), reloader_->ArtifactPath(2));
  EXPECT_GE(resp.loaded_at().seconds(), absl::ToUnixSeconds(before) - 1);
}

TEST_F(InferenceServiceTest, ReloadToACorruptArtifactIsRefusedWhileTheOldModelKeepsServing) {
  WriteVersion(root_, 1, kMlp);
  const std::string bad_torch = WriteVersion(root_, 2, kMlp);
  const std::string bad_xgb = WriteVersion(root_, 3, kXgboost);
  CorruptByte(bad_torch + "/" + model::kTorchWeightsFileName);
  CorruptByte(bad_xgb + "/" + model::kXgboostModelFileName);
  StartServer();
  ASSERT_THAT(Reload(1), IsOk());
  const std::vector<double> rows = Rows(50, 3);
  v1::PredictResponse before;
  ASSERT_THAT(Predict(Request(rows), &before), IsOk());

  const absl::Status bad_weights = Reload(2);
  EXPECT_THAT(bad_weights, StatusIs(absl::StatusCode::kDataLoss,
                                    AllOf(HasSubstr("loading model version 2: weights.pt: sha256"),
                                          HasSubstr("does not match"))));
  EXPECT_THAT(std::string(bad_weights.message()), Not(HasSubstr(root_)));
  EXPECT_THAT(Reload(3), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("model.json")));
  EXPECT_THAT(Reload(9), StatusIs(absl::StatusCode::kNotFound, HasSubstr("model version 9")));
  std::filesystem::remove(bad_torch + "/" + model::kManifestFileName);
  // The message names the version and the file, never the server's model directory.
  const absl::Status no_manifest = Reload(2);
  EXPECT_THAT(no_manifest, StatusIs(absl::StatusCode::kNotFound,
                                    AllOf(HasSubstr("model version 2"),
                                          HasSubstr(model::kManifestFileName))));
  EXPECT_THAT(std::string(no_manifest.message()), Not(HasSubstr(root_)));

  EXPECT_EQ(ServingVersion().value_or(-1), 1);
  v1::PredictResponse after;
  ASSERT_THAT(Predict(Request(rows), &after), IsOk());
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());
  EXPECT_EQ(Health(kHealthServiceName), HealthCheckResponse::SERVING);
}

TEST_F(InferenceServiceTest, ReloadRequiresTheAdminToken) {
  WriteVersion(root_, 1, kLogreg);
  StartServer("s3cret-token");
  EXPECT_THAT(Reload(1), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(Reload(1, nullptr, "wrong"), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(holder_.Get(), nullptr);
  EXPECT_THAT(Reload(1, nullptr, "s3cret-token"), IsOk());
  EXPECT_EQ(ServingVersion().value_or(-1), 1);
  // Scoring is not an admin RPC.
  v1::PredictResponse resp;
  EXPECT_THAT(Predict(Request(Rows(1, 1)), &resp), IsOk());
}

TEST_F(InferenceServiceTest, PredictStreamAnswersEveryMessageInOrder) {
  WriteVersion(root_, 1, kMlp);
  StartServer();
  ASSERT_THAT(Reload(1), IsOk());
  grpc::ClientContext ctx;
  auto stream = stub_->PredictStream(&ctx);
  std::vector<std::vector<double>> batches;
  for (int i = 0; i < 6; ++i) batches.push_back(Rows(static_cast<size_t>(1 + 300 * i), 40 + i));
  for (const auto& b : batches) ASSERT_TRUE(stream->Write(Request(b)));
  ASSERT_TRUE(stream->WritesDone());
  const std::string dir = reloader_->ArtifactPath(1);
  v1::PredictResponse resp;
  for (const auto& b : batches) {
    ASSERT_TRUE(stream->Read(&resp));
    const std::vector<float> expected = DirectScores(dir, b);
    ASSERT_EQ(resp.scores().scores_size(), static_cast<int>(expected.size()));
    for (size_t i = 0; i < expected.size(); ++i) {
      ASSERT_NEAR(resp.scores().scores(static_cast<int>(i)), expected[i], 1e-6);
    }
    EXPECT_EQ(resp.scores().model_version(), 1);
  }
  EXPECT_FALSE(stream->Read(&resp));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(InferenceServiceTest, PredictStreamEndsWithTheErrorOfTheFirstBadMessage) {
  WriteVersion(root_, 1, kLogreg);
  StartServer();
  ASSERT_THAT(Reload(1), IsOk());
  grpc::ClientContext ctx;
  auto stream = stub_->PredictStream(&ctx);
  ASSERT_TRUE(stream->Write(Request(Rows(2, 1))));
  v1::PredictRequest bad = Request(Rows(2, 2));
  bad.mutable_rows()->set_num_rows(1);
  stream->Write(bad);
  stream->WritesDone();
  v1::PredictResponse resp;
  EXPECT_TRUE(stream->Read(&resp));
  EXPECT_FALSE(stream->Read(&resp));
  EXPECT_THAT(rpc::FromGrpcStatus(stream->Finish()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("message 1")));
}

TEST_F(InferenceServiceTest, ReloadUnderConcurrentLoadFailsNoCallAndStampsEveryResponse) {
  const std::string dir1 = WriteVersion(root_, 1, kMlp);
  const std::string dir2 = WriteVersion(root_, 2, kXgboost);
  StartServer();
  ASSERT_THAT(Reload(1), IsOk());
  // Reference scores per version, for a fixed pool of rows.
  constexpr size_t kPool = 512;
  const std::vector<double> pool = Rows(kPool, 77);
  const std::map<int64_t, std::vector<float>> expected = {{1, DirectScores(dir1, pool)},
                                                          {2, DirectScores(dir2, pool)}};
  constexpr int kThreads = 6;
  constexpr int kCallsPerThread = 700;
  std::atomic<int> failed{0}, mismatched{0}, done{0};
  std::atomic<bool> stop_reloading{false};
  std::vector<std::atomic<int>> by_version(3);
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      auto stub = v1::InferenceService::NewStub(server_->channel());
      std::mt19937 rng(t);
      for (int c = 0; c < kCallsPerThread; ++c) {
        const size_t rows = 1 + rng() % 4;
        const size_t first = rng() % (kPool - rows);
        std::vector<double> f(pool.begin() + first * kNumFeatures,
                              pool.begin() + (first + rows) * kNumFeatures);
        grpc::ClientContext ctx;
        rpc::SetDeadline(&ctx, absl::Seconds(30));
        v1::PredictResponse resp;
        if (!stub->Predict(&ctx, Request(f), &resp).ok()) {
          ++failed;
          continue;
        }
        const int64_t v = resp.scores().model_version();
        auto it = expected.find(v);
        if (it == expected.end() || resp.scores().scores_size() != static_cast<int>(rows)) {
          ++mismatched;
          continue;
        }
        ++by_version[v];
        for (size_t i = 0; i < rows; ++i) {
          if (std::abs(resp.scores().scores(static_cast<int>(i)) - it->second[first + i]) >
              1e-5) {
            ++mismatched;
            break;
          }
        }
      }
      ++done;
    });
  }
  int reloads = 0;
  std::thread reloader([&] {
    auto stub = v1::InferenceService::NewStub(server_->channel());
    while (!stop_reloading) {
      grpc::ClientContext ctx;
      rpc::SetDeadline(&ctx, absl::Seconds(30));
      v1::ReloadRequest req;
      req.set_version(reloads % 2 == 0 ? 2 : 1);
      v1::ReloadResponse resp;
      grpc::Status s = stub->Reload(&ctx, req, &resp);
      EXPECT_TRUE(s.ok()) << s.error_message();
      ++reloads;
    }
  });
  for (auto& c : clients) c.join();
  stop_reloading = true;
  reloader.join();
  std::cout << "reloads=" << reloads << " calls_on_v1=" << by_version[1].load()
            << " calls_on_v2=" << by_version[2].load() << "\n";
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(mismatched.load(), 0);
  EXPECT_GE(reloads, 4) << "the reloads must overlap the calls";
  EXPECT_GT(by_version[1].load(), 0);
  EXPECT_GT(by_version[2].load(), 0);
  EXPECT_EQ(by_version[1].load() + by_version[2].load(), kThreads * kCallsPerThread);
}

TEST_F(InferenceServiceTest, MicroBatchingMergesConcurrentCallsAndKeepsEachCallersScores) {
  const std::string dir = WriteVersion(root_, 1, kMlp);
  BatcherOptions batching;
  batching.max_delay = absl::Microseconds(500);
  StartServer("", batching);
  ASSERT_THAT(Reload(1), IsOk());
  const std::vector<double> pool = Rows(256, 91);
  const std::vector<float> expected = DirectScores(dir, pool);
  std::atomic<int> bad{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      auto stub = v1::InferenceService::NewStub(server_->channel());
      for (int c = 0; c < 300; ++c) {
        const size_t row = (t * 300 + c) % 256;
        std::vector<double> f(pool.begin() + row * kNumFeatures,
                              pool.begin() + (row + 1) * kNumFeatures);
        grpc::ClientContext ctx;
        v1::PredictResponse resp;
        if (!stub->Predict(&ctx, Request(f), &resp).ok() ||
            std::abs(resp.scores().scores(0) - expected[row]) > 1e-6) {
          ++bad;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(bad.load(), 0);
  const BatcherStats s = predictor_->batcher().stats();
  std::cout << "requests=" << s.requests << " batches=" << s.batches
            << " merged_batches=" << s.merged_batches
            << " max_batch_requests=" << s.max_batch_requests << "\n";
  EXPECT_EQ(s.requests, 8 * 300);
  EXPECT_GT(s.merged_batches, 0);
  EXPECT_LT(s.batches, s.requests) << "concurrent calls should share Score calls";
}

TEST_F(InferenceServiceTest, WatcherFollowsTheChampionOfAFakeRegistry) {
  WriteVersion(root_, 1, kLogreg);
  WriteVersion(root_, 2, kMlp);
  FakeStorage storage;
  fraud::testing::InProcessServer storage_server({&storage}, "fake_storage");
  ASSERT_THAT(storage_server.Start(), IsOk());
  auto storage_stub = storage::v1::StorageService::NewStub(storage_server.channel());
  StorageChampionSource champion(storage_stub.get(), absl::Seconds(2));
  StartServer("", {}, &champion);
  WatcherOptions o;
  o.poll_interval = absl::Milliseconds(20);
  ModelWatcher watcher(&champion, reloader_.get(), o);
  watcher.Start();

  auto wait_for = [&](int64_t version) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      absl::StatusOr<int64_t> v = ServingVersion();
      if (v.ok() && *v == version) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  };
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_THAT(ServingVersion(), StatusIs(absl::StatusCode::kUnavailable)) << "no champion yet";
  EXPECT_EQ(Health(kHealthServiceName), HealthCheckResponse::NOT_SERVING);
  storage.Set(1);
  EXPECT_TRUE(wait_for(1));
  EXPECT_EQ(Health(kHealthServiceName), HealthCheckResponse::SERVING);
  storage.Set(2);
  EXPECT_TRUE(wait_for(2));
  // Reload(0) asks the registry too.
  storage.Set(1);
  v1::ReloadResponse resp;
  ASSERT_THAT(Reload(0, &resp), IsOk());
  EXPECT_EQ(resp.version(), 1);
  // Registry down: the service keeps serving what it has.
  storage_server.Shutdown(absl::ZeroDuration());
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(ServingVersion().value_or(-1), 1);
  EXPECT_THAT(Reload(0), StatusIs(absl::StatusCode::kUnavailable));
  watcher.Stop();
}

TEST_F(InferenceServiceTest, HealthzAnswers503UntilAModelIsLoaded) {
  WriteVersion(root_, 1, kLogreg);
  reloader_ = std::make_unique<ModelReloader>(root_, RuntimeModelLoader(), &holder_, nullptr);
  predictor_ = std::make_unique<Predictor>(&holder_, BatcherOptions{});
  service_ = std::make_unique<InferenceService>(predictor_.get(), reloader_.get(), &holder_, "");
  rpc::ServerOptions o;
  o.service_name = "inference_healthz_test";
  o.host = "127.0.0.1";
  o.port = 0;
  o.metrics_port = 0;
  rpc::ServerRunner runner(o);
  runner.SetReadyCheck(ModelLoadedCheck(&holder_));
  runner.Register(service_.get());
  ASSERT_THAT(runner.Start(), IsOk());
  ConnectHealth(&holder_, &runner);
  httplib::Client http("127.0.0.1", runner.metrics_port());
  auto before = http.Get("/healthz");
  ASSERT_TRUE(before);
  EXPECT_EQ(before->status, 503);
  ASSERT_THAT(reloader_->Reload(1), IsOk());
  auto after = http.Get("/healthz");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_THAT(metrics->body, HasSubstr("fraud_inference_model_version 1"));
  EXPECT_THAT(metrics->body, HasSubstr("fraud_inference_model_reloads_total{result=\"ok\"}"));
  runner.Shutdown(absl::Seconds(1));
  holder_.SetListener(nullptr);
}

}  // namespace
}  // namespace fraud::inference
