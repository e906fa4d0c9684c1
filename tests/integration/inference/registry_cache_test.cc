// The inference service's model directory is a cache of the registry: versions are published the
// way training publishes them (artifact into storage, then registered, then champion) and an
// inference with its own, empty cache must serve them. Real PostgreSQL, the real storage service
// in-process, real tiny models.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/common/rpc/artifact_transfer.h"
#include "services/inference/champion_source.h"
#include "services/inference/inference_service.h"
#include "services/inference/model_holder.h"
#include "services/inference/model_reloader.h"
#include "services/inference/model_watcher.h"
#include "services/inference/runtime_loader.h"
#include "services/inference/score_recorder.h"
#include "tests/integration/inference/trained_models.h"
#include "tests/testing/in_process_server.h"
#include "tests/testing/in_process_storage.h"
#include "tests/testing/pg_fixture.h"
#include "tests/testing/status_matchers.h"

namespace fraud::inference {
namespace {

namespace fs = std::filesystem;
using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::HasSubstr;

constexpr common::v1::ModelFamily kLogreg = common::v1::MODEL_FAMILY_LOGREG;
constexpr common::v1::ModelFamily kMlp = common::v1::MODEL_FAMILY_MLP;
constexpr common::v1::ModelFamily kXgboost = common::v1::MODEL_FAMILY_XGBOOST;

// An inference instance's model state: its own cache directory, holder and reloader.
struct Inference {
  Inference(const std::string& cache, storage::v1::StorageService::StubInterface* stub)
      : champion(stub, absl::Seconds(5)),
        artifacts(stub, absl::Seconds(60)),
        reloader(cache, RuntimeModelLoader(), &holder, &champion, &artifacts) {}
  int64_t serving() const {
    std::shared_ptr<const LoadedModel> m = holder.Get();
    return m ? m->version : 0;
  }
  StorageChampionSource champion;
  StorageArtifactSource artifacts;
  ModelHolder holder;
  ModelReloader reloader;
};

class RegistryCacheTest : public fraud::testing::PgFixture {
 protected:
  void SetUp() override {
    PgFixture::SetUp();
    if (IsSkipped() || HasFailure()) return;
    root_ = ::testing::TempDir() + "/registry_it_" + schema();
    StartStorage(0);
    if (HasFailure()) return;
    port_ = storage_->server().port();
    channel_ = storage_->channel();
    stub_ = storage::v1::StorageService::NewStub(channel_);
  }
  void TearDown() override {
    if (storage_) storage_->Shutdown();
    storage_.reset();
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
    PgFixture::TearDown();
  }
  void StartStorage(int port) {
    fraud::testing::InProcessStorageOptions o{conninfo(), 8, "registry_it", 16};
    o.port = port;
    absl::StatusOr<std::unique_ptr<fraud::testing::InProcessStorage>> s =
        fraud::testing::InProcessStorage::Start(o);
    ASSERT_THAT(s, IsOk());
    storage_ = std::move(*s);
  }

  // Publishes `family` as `version` exactly as training does: artifact written locally, stored in
  // the registry, registered; champion when asked. `extra_bytes` adds a file of that size to the
  // artifact (not listed in the manifest) to make the transfer long.
  std::string Publish(int64_t version, common::v1::ModelFamily family, bool champion,
                      size_t extra_bytes = 0) {
    const std::string dir = testing::WriteVersion(root_ + "/training", version, family);
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
    if (extra_bytes > 0) {
      std::ofstream out(fs::path(dir) / "padding.bin", std::ios::binary);
      std::mt19937_64 rng(version);
      std::string block(1 << 20, '\0');
      for (size_t done = 0; done < extra_bytes; done += block.size()) {
        for (auto& c : block) c = static_cast<char>(rng());
        out << block;
      }
      names.push_back("padding.bin");
    }
    EXPECT_THAT(rpc::PutModelArtifact(*stub_, version, dir, names, absl::Seconds(120)), IsOk());
    storage::v1::ModelVersion m;
    m.set_version(version);
    m.set_family(family);
    m.set_artifact_uri(rpc::RegistryArtifactUri(version));
    EXPECT_THAT(storage_->store().RegisterModel(m), IsOk());
    if (champion) SetChampion(version);
    return dir;
  }
  void SetChampion(int64_t version) {
    storage::v1::SetChampionRequest r;
    r.set_version(version);
    r.set_reason("test");
    EXPECT_THAT(storage_->store().SetChampion(r), IsOk());
  }
  // Scores `rows` with the serving model.
  std::vector<float> Score(const Inference& inf, const std::vector<double>& rows) {
    std::vector<float> out(rows.size() / csv::kNumFeatures);
    std::shared_ptr<const LoadedModel> m = inf.holder.Get();
    EXPECT_NE(m, nullptr);
    if (m) {
      EXPECT_THAT(m->model->Score(rows.data(), out.size(), out.data()), IsOk());
    }
    return out;
  }
  std::vector<float> DirectScores(const std::string& dir, const std::vector<double>& rows) {
    std::vector<float> out(rows.size() / csv::kNumFeatures);
    absl::StatusOr<std::unique_ptr<model::ModelRuntime>> m = model::LoadModel(dir);
    EXPECT_THAT(m, IsOk());
    if (m.ok()) {
      EXPECT_THAT((*m)->Score(rows.data(), out.size(), out.data()), IsOk());
    }
    return out;
  }
  std::vector<std::string> CacheEntries(const std::string& cache) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(cache, ec)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string root_;
  int port_ = 0;
  std::unique_ptr<fraud::testing::InProcessStorage> storage_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<storage::v1::StorageService::Stub> stub_;
};

TEST_F(RegistryCacheTest, FreshInferenceWithAnEmptyCacheServesTheChampion) {
  const std::string published = Publish(1, kMlp, /*champion=*/true);
  const std::vector<double> rows = testing::SyntheticDataset(64, 5).features;
  const std::string cache = root_ + "/inference-a";
  {
    Inference inf(cache, stub_.get());
    absl::StatusOr<ReloadResult> r = inf.reloader.Reload(0);
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(inf.serving(), 1);
    EXPECT_EQ(Score(inf, rows), DirectScores(published, rows));
    EXPECT_EQ(CacheEntries(cache), std::vector<std::string>{"1"});
  }
  // The cache deleted (or a new container): the champion is served again.
  fs::remove_all(cache);
  Inference fresh(cache, stub_.get());
  ASSERT_THAT(fresh.reloader.Reload(0), IsOk());
  EXPECT_EQ(fresh.serving(), 1);
  EXPECT_EQ(Score(fresh, rows), DirectScores(published, rows));
}

TEST_F(RegistryCacheTest, RollbackToAnyRegisteredVersionWorksOnAFreshInference) {
  const std::string v1 = Publish(1, kLogreg, false);
  const std::string v2 = Publish(2, kXgboost, false);
  const std::string v3 = Publish(3, kMlp, true);
  const std::vector<double> rows = testing::SyntheticDataset(32, 6).features;
  Inference inf(root_ + "/inference-b", stub_.get());
  ASSERT_THAT(inf.reloader.Reload(0), IsOk());
  EXPECT_EQ(inf.serving(), 3);
  ASSERT_THAT(inf.reloader.Reload(1), IsOk());
  EXPECT_EQ(inf.serving(), 1);
  EXPECT_EQ(Score(inf, rows), DirectScores(v1, rows));
  ASSERT_THAT(inf.reloader.Reload(2), IsOk());
  EXPECT_EQ(Score(inf, rows), DirectScores(v2, rows));
  EXPECT_THAT(inf.reloader.Reload(4),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("loading model version 4")));
  EXPECT_EQ(inf.serving(), 2);
}

TEST_F(RegistryCacheTest, CorruptedStoredArtifactIsRefusedAndTheServingModelKept) {
  Publish(1, kLogreg, true);
  Publish(2, kXgboost, false);
  // One byte of v2's largest stored file changed in the database.
  Exec("UPDATE model_artifact_chunks SET data = set_byte(data, 10, (get_byte(data, 10) + 1) % 256)"
       " WHERE (version, file_index, chunk_no) = (SELECT c.version, c.file_index, c.chunk_no"
       " FROM model_artifact_chunks c JOIN model_artifact_files f USING (version, file_index)"
       " WHERE c.version = 2 ORDER BY f.size_bytes DESC LIMIT 1)");
  const std::string cache = root_ + "/inference-c";
  Inference inf(cache, stub_.get());
  ASSERT_THAT(inf.reloader.Reload(1), IsOk());
  EXPECT_THAT(inf.reloader.Reload(2),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("does not match the registry's")));
  EXPECT_EQ(inf.serving(), 1);
  EXPECT_EQ(CacheEntries(cache), std::vector<std::string>{"1"});
}

// Fault: storage goes away while inference is fetching the new champion. The old version keeps
// serving, nothing half-fetched stays in the cache, and once storage is back the watcher's retry
// converges on the champion.
TEST_F(RegistryCacheTest, StorageDownDuringFetchKeepsServingAndConvergesLater) {
  Publish(1, kLogreg, true);
  const std::string cache = root_ + "/inference-d";
  Inference inf(cache, stub_.get());
  ASSERT_THAT(inf.reloader.Reload(0), IsOk());
  ASSERT_EQ(inf.serving(), 1);
  Publish(2, kMlp, /*champion=*/true, /*extra_bytes=*/size_t{96} << 20);

  WatcherOptions wo;
  wo.poll_interval = absl::Milliseconds(50);
  wo.max_retry_backoff = absl::Milliseconds(400);
  ModelWatcher watcher(&inf.champion, &inf.reloader, wo);
  watcher.Start();
  // Wait until the fetch of version 2 is under way, then take storage down.
  bool fetching = false;
  for (int i = 0; i < 20000 && !fetching; ++i) {
    for (const std::string& e : CacheEntries(cache)) {
      if (absl::StartsWith(e, ".tmp-fetch-2-")) fetching = true;
    }
    if (!fetching) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(fetching) << "the watcher never started fetching version 2";
  storage_->Shutdown(absl::ZeroDuration());
  storage_.reset();

  // While storage is down: version 1 keeps serving and scoring, retries fail cleanly.
  const std::vector<double> rows = testing::SyntheticDataset(16, 7).features;
  const int64_t polls = watcher.polls();
  for (int i = 0; i < 400 && watcher.polls() < polls + 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(inf.serving(), 1);
  EXPECT_EQ(Score(inf, rows).size(), 16u);
  EXPECT_EQ(CacheEntries(cache), std::vector<std::string>{"1"});

  // Storage back on the same address: the watcher converges on version 2.
  StartStorage(port_);
  ASSERT_NE(storage_, nullptr);
  for (int i = 0; i < 600 && inf.serving() != 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  watcher.Stop();
  EXPECT_EQ(inf.serving(), 2);
  EXPECT_EQ(CacheEntries(cache), (std::vector<std::string>{"1", "2"}));
}

// Predict with transaction ids stores the scored rows through the real storage (issue 17: live
// scoring is stored so delayed feedback can label it); Predict without ids stores nothing.
TEST_F(RegistryCacheTest, PredictWithTransactionIdsStoresTheRowsAndWithoutIdsStoresNothing) {
  const std::string published = Publish(1, kLogreg, /*champion=*/true);
  Inference inf(root_ + "/inference-live", stub_.get());
  ASSERT_THAT(inf.reloader.Reload(0), IsOk());
  Predictor predictor(&inf.holder, BatcherOptions{});
  StorageScoreRecorder recorder(stub_.get(), absl::Seconds(5));
  InferenceService service(&predictor, &inf.reloader, &inf.holder, "", &recorder);
  fraud::testing::InProcessServer server({&service}, "inference_live");
  ASSERT_THAT(server.Start(), IsOk());
  auto inference = v1::InferenceService::NewStub(server.channel());
  auto predict = [&](const v1::PredictRequest& req, v1::PredictResponse* resp) {
    grpc::ClientContext ctx;
    return inference->Predict(&ctx, req, resp);
  };
  const std::vector<double> rows = testing::SyntheticDataset(3, 21).features;
  v1::PredictRequest req;
  req.mutable_rows()->set_num_rows(3);
  req.mutable_rows()->mutable_features()->Add(rows.begin(), rows.end());

  v1::PredictResponse plain;
  ASSERT_TRUE(predict(req, &plain).ok());
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM transactions"), "0");
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM uploads"), "0");

  for (const char* id : {"t-1", "t-2", "t-3"}) req.add_transaction_ids(id);
  v1::PredictResponse scored;
  grpc::Status s = predict(req, &scored);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(scored.scores().scores_size(), 3);
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM transactions t JOIN uploads u ON u.id = t.upload_id"
                        " WHERE u.mode = 3 AND t.transaction_id IN ('t-1', 't-2', 't-3')"),
            "3");
  const std::vector<float> direct = DirectScores(published, rows);
  for (int i = 0; i < 3; ++i) {
    const std::string where = absl::StrCat(
        " FROM predictions p JOIN transactions t USING (upload_id, line)"
        " WHERE p.model_version = 1 AND p.scored_at IS NOT NULL AND t.transaction_id = 't-",
        i + 1, "'");
    EXPECT_EQ(std::stof(QueryScalar("SELECT p.score" + where)), direct[i]) << "row " << i;
    EXPECT_EQ(scored.scores().scores(i), direct[i]) << "row " << i;
    EXPECT_EQ(QueryScalar("SELECT p.decision" + where),
              scored.scores().decisions(i) ? "t" : "f")
        << "row " << i;
  }
  // Scored again: idempotent (no second row, one prediction per row and version).
  ASSERT_TRUE(predict(req, &scored).ok());
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM transactions"), "3");
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM predictions"), "3");

  // Not one id per row: INVALID_ARGUMENT, nothing scored or stored.
  v1::PredictRequest short_ids = req;
  short_ids.mutable_transaction_ids()->RemoveLast();
  s = predict(short_ids, &scored);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("transaction_ids: has 2 ids for 3 rows"));
  // An id stored with other features: storage's ALREADY_EXISTS reaches the caller.
  v1::PredictRequest other = req;
  other.mutable_rows()->set_features(1, other.rows().features(1) + 1);
  s = predict(other, &scored);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr("scores were not recorded"));

  // PredictStream stores each message's rows the same way; a message whose ids do not match its
  // rows ends the stream with INVALID_ARGUMENT naming the message, after the earlier ones were
  // answered and stored.
  {
    grpc::ClientContext ctx;
    auto stream = inference->PredictStream(&ctx);
    v1::PredictRequest first = req;
    for (int i = 0; i < 3; ++i) first.set_transaction_ids(i, absl::StrCat("s-", i + 1));
    ASSERT_TRUE(stream->Write(first));
    v1::PredictResponse answer;
    ASSERT_TRUE(stream->Read(&answer));
    EXPECT_EQ(answer.scores().scores_size(), 3);
    v1::PredictRequest bad = first;
    bad.mutable_transaction_ids()->RemoveLast();
    ASSERT_TRUE(stream->Write(bad));
    stream->WritesDone();
    EXPECT_FALSE(stream->Read(&answer));
    const grpc::Status st = stream->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(st.error_message(), HasSubstr("message 1"));
    EXPECT_THAT(st.error_message(), HasSubstr("transaction_ids: has 2 ids for 3 rows"));
  }
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM transactions WHERE transaction_id LIKE 's-%'"), "3");
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM predictions"), "6");

  // Storage down: the call fails UNAVAILABLE (the scores are not silently dropped); plain
  // scoring keeps working.
  storage_->Shutdown(absl::ZeroDuration());
  req.set_transaction_ids(0, "t-new");
  s = predict(req, &scored);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("scores were not recorded"));
  req.clear_transaction_ids();
  EXPECT_TRUE(predict(req, &plain).ok());
  server.Shutdown(absl::ZeroDuration());
}

// The rows a Predict with transaction ids flags are stored with their reason codes: computed for
// just the flagged rows when the caller did not ask for explain (its response stays without),
// the response's own (with its top_k) when it did. They explain the stored score.
TEST_F(RegistryCacheTest, PredictWithTransactionIdsStoresTheReasonsOfTheRowsItFlags) {
  Publish(1, kLogreg, /*champion=*/true);
  Inference inf(root_ + "/inference-reasons", stub_.get());
  ASSERT_THAT(inf.reloader.Reload(0), IsOk());
  Predictor predictor(&inf.holder, BatcherOptions{});
  StorageScoreRecorder recorder(stub_.get(), absl::Seconds(5));
  InferenceService service(&predictor, &inf.reloader, &inf.holder, "", &recorder);
  fraud::testing::InProcessServer server({&service}, "inference_reasons");
  ASSERT_THAT(server.Start(), IsOk());
  auto inference = v1::InferenceService::NewStub(server.channel());
  constexpr int kRows = 400;
  const std::vector<double> rows = testing::SyntheticDataset(kRows, 33, 0.2).features;
  auto request = [&](const std::string& prefix) {
    v1::PredictRequest req;
    req.mutable_rows()->set_num_rows(kRows);
    req.mutable_rows()->mutable_features()->Add(rows.begin(), rows.end());
    for (int i = 0; i < kRows; ++i) req.add_transaction_ids(absl::StrCat(prefix, i));
    return req;
  };
  auto flagged = [](const v1::PredictResponse& r) {
    return std::count(r.scores().decisions().begin(), r.scores().decisions().end(), true);
  };
  auto stored = [&](const std::string& prefix, const std::string& what) {
    return QueryScalar(absl::StrCat(
        "SELECT ", what, " FROM alert_explanations e JOIN transactions t USING (upload_id, line)"
        " JOIN predictions p USING (upload_id, line, model_version)"
        " WHERE t.transaction_id LIKE '", prefix, "%'"));
  };

  v1::PredictResponse plain;
  {
    grpc::ClientContext ctx;
    grpc::Status s = inference->Predict(&ctx, request("p-"), &plain);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  const int64_t alerts = flagged(plain);
  ASSERT_GT(alerts, 0);
  ASSERT_LT(alerts, kRows);
  EXPECT_EQ(plain.explanations_size(), 0);  // not asked for
  EXPECT_EQ(stored("p-", "count(*)"), std::to_string(alerts));
  EXPECT_EQ(stored("p-", "count(*) FILTER (WHERE NOT p.decision OR e.model_version <> 1"
                         " OR array_length(e.feature_index, 1) <> 5"
                         " OR abs(1 / (1 + exp(-e.margin)) - p.score) > 2e-6)"),
            "0");

  v1::PredictRequest explained_req = request("x-");
  explained_req.set_explain(true);
  explained_req.set_top_k(7);
  v1::PredictResponse explained;
  {
    grpc::ClientContext ctx;
    grpc::Status s = inference->Predict(&ctx, explained_req, &explained);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ASSERT_EQ(explained.explanations_size(), kRows);
  EXPECT_EQ(stored("x-", "count(*)"), std::to_string(alerts));
  for (int i = 0; i < kRows; ++i) {
    if (!explained.scores().decisions(i)) continue;
    const common::v1::Explanation& e = explained.explanations(i);
    const std::string where = absl::StrCat("x-", i);
    EXPECT_EQ(QueryScalar(absl::StrCat(
                  "SELECT e.margin = ", absl::StrFormat("%.17g", e.margin()),
                  " AND array_length(e.feature_index, 1) = 7 AND e.feature_index[1] = ",
                  e.top(0).index(), " FROM alert_explanations e JOIN transactions t USING"
                  " (upload_id, line) WHERE t.transaction_id = '", where, "'")),
              "t")
        << where;
  }
}

}  // namespace
}  // namespace fraud::inference
