// Fault tests of the model life cycle on real processes: a training process SIGKILLed in the
// middle of a run, and reloads to corrupt artifacts while predictions are under way.
#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "fraud/common/v1/types.pb.h"
#include "httplib.h"
#include "services/common/rpc/channel.h"
#include "tests/fault/processes/fault_util.h"
#include "tests/testing/fuzz_artifact.h"

namespace fraud::fault {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using storage::v1::RunStatus;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
void WriteFile(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Parses <dir>/manifest.textproto.
bool ReadManifest(const fs::path& dir, common::v1::ModelManifest* m) {
  return google::protobuf::TextFormat::ParseFromString(ReadFile(dir / "manifest.textproto"), m);
}

// An artifact directory is complete when its manifest parses and every file it lists is there
// with the listed sha256.
std::string ArtifactProblem(const fs::path& dir) {
  common::v1::ModelManifest m;
  if (!fs::exists(dir / "manifest.textproto")) return "no manifest";
  if (!ReadManifest(dir, &m)) return "manifest does not parse";
  if (m.files_size() == 0) return "manifest lists no file";
  for (const auto& f : m.files()) {
    if (!fs::exists(dir / f.name())) return absl::StrCat(f.name(), " missing");
    if (Sha256Hex(ReadFile(dir / f.name())) != f.sha256()) return absl::StrCat(f.name(), " sha256");
  }
  return "";
}

class ModelFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::Status s = env_.Start();
    ASSERT_TRUE(s.ok()) << s;
    s = env_.WaitModelServing(absl::Seconds(60));
    ASSERT_TRUE(s.ok()) << s;
    inference_ = inference::v1::InferenceService::NewStub(env_.Channel("inference"));
    training_ = training::v1::TrainingService::NewStub(env_.Channel("training"));
  }

  // A new channel to the restarted process (the old one's connection is gone).
  void RestartedTraining() {
    training_ = training::v1::TrainingService::NewStub(env_.Channel("training"));
  }

  int64_t ServingVersion() {
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(5));
    inference::v1::GetModelResponse r;
    if (!inference_->GetModel(&ctx, {}, &r).ok()) return -1;
    return r.version();
  }
  int64_t Champion() {
    return env_.CountOrDie("SELECT coalesce((SELECT version FROM champion_history ORDER BY id DESC "
                           "LIMIT 1), 0)");
  }
  int64_t RegisteredVersions() { return env_.CountOrDie("SELECT count(*) FROM model_versions"); }

  // Entries of training's model directory: version directories and temporary ones.
  void ListModelDir(std::set<int64_t>* versions, std::vector<std::string>* temporary,
                    std::vector<std::string>* other) {
    for (const auto& e : fs::directory_iterator(env_.c->training_model_dir())) {
      const std::string name = e.path().filename().string();
      int64_t v = 0;
      if (absl::SimpleAtoi(name, &v)) {
        versions->insert(v);
      } else if (absl::StartsWith(name, ".tmp-")) {
        temporary->push_back(name);
      } else {
        other->push_back(name);
      }
    }
  }

  // Every visible version directory is complete, and every registered version has one.
  void ExpectNoHalfWrittenArtifact() {
    std::set<int64_t> versions;
    std::vector<std::string> temporary, other;
    ListModelDir(&versions, &temporary, &other);
    EXPECT_THAT(other, ::testing::IsEmpty());
    for (int64_t v : versions) {
      EXPECT_EQ(ArtifactProblem(fs::path(env_.c->training_model_dir()) / std::to_string(v)), "")
          << "version " << v;
    }
    auto registered = QueryRows(env_.db_uri, "SELECT version FROM model_versions");
    ASSERT_TRUE(registered.ok());
    for (const auto& r : *registered) {
      EXPECT_EQ(versions.count(std::stoll(r[0])), 1u) << "registered version " << r[0]
                                                      << " has no artifact directory";
    }
    // ... and its artifact in the registry, where inference fetches it from.
    EXPECT_EQ(env_.CountOrDie("SELECT count(*) FROM model_versions v WHERE NOT EXISTS"
                              " (SELECT 1 FROM model_artifacts a WHERE a.version = v.version)"),
              0);
  }

  absl::StatusOr<storage::v1::TrainingRun> StartRun(const std::vector<std::string>& families,
                                                    const std::map<std::string, std::string>& params) {
    training::v1::StartRunRequest request;
    for (const auto& f : families) request.add_families(f);
    for (const auto& [k, v] : params) (*request.mutable_params())[k] = v;
    request.set_description("fault test");
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(10));
    AddToken(&ctx, env_.c->options().admin_token);
    training::v1::StartRunResponse response;
    grpc::Status s = training_->StartRun(&ctx, request, &response);
    if (!s.ok()) return absl::UnavailableError(s.error_message());
    return response.run();
  }

  absl::StatusOr<storage::v1::TrainingRun> GetRun(int64_t id) {
    training::v1::GetRunRequest request;
    request.set_run_id(id);
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(5));
    training::v1::GetRunResponse response;
    grpc::Status s = training_->GetRun(&ctx, request, &response);
    if (!s.ok()) return absl::UnavailableError(s.error_message());
    return response.run();
  }

  // Waits for a run to finish (polling GetRun).
  absl::StatusOr<storage::v1::TrainingRun> WaitRun(int64_t id, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      absl::StatusOr<storage::v1::TrainingRun> run = GetRun(id);
      if (run.ok() && run->status() != storage::v1::RUN_STATUS_QUEUED &&
          run->status() != storage::v1::RUN_STATUS_RUNNING) {
        return run;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    return absl::DeadlineExceededError("run did not finish");
  }

  Env env_;
  std::unique_ptr<inference::v1::InferenceService::Stub> inference_;
  std::unique_ptr<training::v1::TrainingService::Stub> training_;
};

TEST_F(ModelFaultTest, TrainingKilledMidRunLeavesRegistryChampionAndArtifactsIntact) {
  const int64_t champion = Champion();
  const int64_t registered = RegisteredVersions();
  const int64_t history = env_.CountOrDie("SELECT count(*) FROM champion_history");
  ASSERT_GT(champion, 0);
  std::set<int64_t> versions_before;
  std::vector<std::string> tmp, other;
  ListModelDir(&versions_before, &tmp, &other);

  // A run long enough to be killed in the middle of training: an MLP with many epochs.
  absl::StatusOr<storage::v1::TrainingRun> run =
      StartRun({"mlp"}, {{"grid", "small"},
                         {"mlp.epochs", "400"},
                         {"mlp.patience", "400"},
                         {"mlp.batch_size", "256"}});
  ASSERT_TRUE(run.ok()) << run.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  bool mid_run = false;
  while (absl::Now() < deadline) {
    absl::StatusOr<storage::v1::TrainingRun> r = GetRun(run->id());
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_THAT(r->status(), ::testing::AnyOf(storage::v1::RUN_STATUS_QUEUED,
                                              storage::v1::RUN_STATUS_RUNNING))
        << "the run ended before it could be killed: " << r->message();
    if (r->progress().phase() == "training" && r->progress().epoch() >= 2) {
      mid_run = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(mid_run) << "the run never reached its second epoch";
  env_.c->process("training").Kill(SIGKILL);
  ASSERT_TRUE(env_.c->process("training").Wait(absl::Seconds(10)).ok());

  // Registry, champion and serving model unchanged; no new version directory.
  EXPECT_EQ(RegisteredVersions(), registered);
  EXPECT_EQ(Champion(), champion);
  EXPECT_EQ(env_.CountOrDie("SELECT count(*) FROM champion_history"), history);
  EXPECT_EQ(ServingVersion(), champion);
  std::set<int64_t> versions_after;
  tmp.clear();
  ListModelDir(&versions_after, &tmp, &other);
  EXPECT_EQ(versions_after, versions_before);
  EXPECT_THAT(other, ::testing::IsEmpty());
  ExpectNoHalfWrittenArtifact();

  // A restarted training service removes temporary directories, marks the run failed, and the
  // next run succeeds.
  ASSERT_TRUE(env_.c->process("training").Start().ok());
  RestartedTraining();
  versions_after.clear();
  tmp.clear();
  ListModelDir(&versions_after, &tmp, &other);
  EXPECT_THAT(tmp, ::testing::IsEmpty());
  absl::StatusOr<storage::v1::TrainingRun> killed = WaitRun(run->id(), absl::Seconds(10));
  ASSERT_TRUE(killed.ok()) << killed.status();
  EXPECT_EQ(killed->status(), storage::v1::RUN_STATUS_FAILED);
  EXPECT_THAT(killed->message(), HasSubstr("interrupted"));
  EXPECT_EQ(killed->model_version(), 0);

  absl::StatusOr<storage::v1::TrainingRun> next = StartRun({"logreg"}, {});
  ASSERT_TRUE(next.ok()) << next.status();
  absl::StatusOr<storage::v1::TrainingRun> done = WaitRun(next->id(), absl::Seconds(60));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status(), storage::v1::RUN_STATUS_SUCCEEDED) << done->message();
  EXPECT_GT(done->model_version(), 0);
  EXPECT_EQ(RegisteredVersions(), registered + 1);
  ExpectNoHalfWrittenArtifact();
}

TEST_F(ModelFaultTest, TrainingKilledAtRandomMomentsNeverLeavesAHalfWrittenArtifact) {
  // Short runs killed after a random delay hit every phase, the artifact write included.
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> delay_ms(20, 600);
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<storage::v1::TrainingRun> run = StartRun({"logreg"}, {});
    ASSERT_TRUE(run.ok()) << run.status();
    absl::SleepFor(absl::Milliseconds(delay_ms(rng)));
    env_.c->process("training").Kill(SIGKILL);
    ASSERT_TRUE(env_.c->process("training").Wait(absl::Seconds(10)).ok());
    ExpectNoHalfWrittenArtifact();
    ASSERT_TRUE(env_.c->process("training").Start().ok());
    RestartedTraining();
    std::set<int64_t> versions;
    std::vector<std::string> tmp, other;
    ListModelDir(&versions, &tmp, &other);
    EXPECT_THAT(tmp, ::testing::IsEmpty()) << "a restarted training removes .tmp-* directories";
    // The champion is always a complete, registered version that inference can serve.
    const int64_t champion = Champion();
    EXPECT_EQ(versions.count(champion), 1u);
  }
  absl::StatusOr<storage::v1::TrainingRun> next = StartRun({"logreg"}, {});
  ASSERT_TRUE(next.ok()) << next.status();
  absl::StatusOr<storage::v1::TrainingRun> done = WaitRun(next->id(), absl::Seconds(60));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status(), storage::v1::RUN_STATUS_SUCCEEDED) << done->message();
  ExpectNoHalfWrittenArtifact();
}

TEST_F(ModelFaultTest, ReloadsToCorruptArtifactsUnderLoadFailNoPrediction) {
  const int64_t v = ServingVersion();
  ASSERT_GT(v, 0);
  // Corrupt versions placed straight into inference's cache: the loader, not the registry's
  // checksums, must refuse them.
  const fs::path root = env_.c->inference_model_dir();
  const fs::path good = root / std::to_string(v);
  common::v1::ModelManifest manifest;
  ASSERT_TRUE(ReadManifest(good, &manifest));
  ASSERT_GT(manifest.files_size(), 0);
  const std::string weights = manifest.files(0).name();

  // Corrupt versions, each a copy of the serving one with one defect.
  auto copy_as = [&](int64_t version) {
    const fs::path dir = root / std::to_string(version);
    fs::copy(good, dir, fs::copy_options::recursive);
    common::v1::ModelManifest m = manifest;
    m.set_version(version);
    std::string text;
    google::protobuf::TextFormat::PrintToString(m, &text);
    WriteFile(dir / "manifest.textproto", text);
    return dir;
  };
  {  // 901: one weight byte flipped (sha256 mismatch)
    const fs::path dir = copy_as(901);
    std::string bytes = ReadFile(dir / weights);
    bytes[bytes.size() / 2] ^= 0x5a;
    WriteFile(dir / weights, bytes);
  }
  {  // 902: weights truncated, manifest checksum updated to match (the loader must still refuse)
    const fs::path dir = copy_as(902);
    const std::string bytes = ReadFile(dir / weights).substr(0, 40);
    WriteFile(dir / weights, bytes);
    common::v1::ModelManifest m = manifest;
    m.set_version(902);
    m.mutable_files(0)->set_sha256(Sha256Hex(bytes));
    m.mutable_files(0)->set_size_bytes(static_cast<int64_t>(bytes.size()));
    std::string text;
    google::protobuf::TextFormat::PrintToString(m, &text);
    WriteFile(dir / "manifest.textproto", text);
  }
  {  // 903: manifest is not a manifest
    const fs::path dir = copy_as(903);
    WriteFile(dir / "manifest.textproto", "family: \"not a family\" {{{");
  }
  {  // 904: smoke expectations that the weights do not reproduce
    const fs::path dir = copy_as(904);
    common::v1::ModelManifest m = manifest;
    m.set_version(904);
    for (int i = 0; i < m.smoke().expected_scores_size(); ++i) {
      m.mutable_smoke()->set_expected_scores(i, 1.0 - m.smoke().expected_scores(i));
    }
    std::string text;
    google::protobuf::TextFormat::PrintToString(m, &text);
    WriteFile(dir / "manifest.textproto", text);
  }
  {  // 905: a directory named for another version than its manifest says
    fs::copy(good, root / "905", fs::copy_options::recursive);
  }
  {  // 907: the fuzz finding fuzz_manifest-crash-38fef195 (kept in the corpus): a manifest and an
     // XGBoost model.json with consistent checksums whose num_trees disagrees with its trees.
     // XGBoost's predictor read out of bounds on it; the loader must refuse it before XGBoost.
    const fs::path dir = root / "907";
    fs::create_directories(dir);
    const absl::Status written = testing::WriteArtifactFromFuzzInput(
        (fs::path(testing::SourceRoot(FRAUD_SOURCE_DIR)) /
         "tests/fuzz/corpus/manifest/regression_xgboost_num_trees_disagrees_with_trees_38fef195")
            .string(),
        dir.string(), 907);
    ASSERT_TRUE(written.ok()) << written;
  }
  copy_as(906);  // a valid copy: the final reload swaps it in under load

  // Load: gRPC Predict from three threads (one row and 64 rows) and REST /api/v1/score.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> ok{0}, failed{0}, wrong_version{0};
  std::mutex mu;
  std::string first_error;
  std::vector<std::thread> load;
  for (int t = 0; t < 3; ++t) {
    load.emplace_back([&, t] {
      auto stub = inference::v1::InferenceService::NewStub(env_.Channel("inference"));
      for (uint64_t i = 0; !stop.load(); ++i) {
        inference::v1::PredictResponse r;
        grpc::Status s = Predict(stub.get(), t == 0 ? 64 : 1, i + 1, &r);
        if (s.ok()) {
          ++ok;
          const int64_t mv = r.scores().model_version();
          if (mv != v && mv != 906) ++wrong_version;
        } else {
          ++failed;
          std::lock_guard<std::mutex> l(mu);
          if (first_error.empty()) first_error = s.error_message();
        }
      }
    });
  }
  if (env_.has_gateway()) {
    load.emplace_back([&] {
      httplib::Client client("127.0.0.1", env_.c->port("gateway"));
      std::string body = "{\"rows\": [[0";
      for (int i = 1; i < 29; ++i) absl::StrAppend(&body, ", ", 0.1 * i);
      body += ", 12.5]]}";
      while (!stop.load()) {
        auto res = client.Post("/api/v1/score", body, "application/json");
        // The gateway's per-client rate limit may answer 429; anything else must be 200.
        if (res && res->status == 200) {
          ++ok;
        } else if (!res || res->status != 429) {
          ++failed;
          std::lock_guard<std::mutex> l(mu);
          if (first_error.empty()) first_error = res ? res->body : "no HTTP answer";
        } else {
          absl::SleepFor(absl::Milliseconds(50));
        }
      }
    });
  }

  const double failed_reloads_before =
      env_.Metric("inference", "fraud_inference_model_reloads_total", {{"result", "failed"}});
  auto reload = [&](int64_t version) {
    inference::v1::ReloadRequest request;
    request.set_version(version);
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(30));
    AddToken(&ctx, env_.c->options().admin_token);
    inference::v1::ReloadResponse response;
    return inference_->Reload(&ctx, request, &response);
  };
  absl::SleepFor(absl::Milliseconds(500));
  for (int64_t bad : {901, 902, 903, 904, 905, 907, 999}) {
    grpc::Status s = reload(bad);
    EXPECT_FALSE(s.ok()) << "version " << bad << " must be refused";
    if (bad == 907) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
      EXPECT_THAT(s.error_message(), HasSubstr("model.json: gbtree_model_param: num_trees is 1"));
    }
    EXPECT_NE(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
    EXPECT_EQ(ServingVersion(), v) << "after refusing " << bad;
    absl::SleepFor(absl::Milliseconds(200));
  }
  const grpc::Status good_reload = reload(906);
  EXPECT_TRUE(good_reload.ok()) << good_reload.error_message();
  absl::SleepFor(absl::Milliseconds(500));
  stop = true;
  for (auto& t : load) t.join();

  std::printf("predictions during reloads: %lld ok, %lld failed\n", static_cast<long long>(ok),
              static_cast<long long>(failed));
  EXPECT_GT(ok.load(), 100);
  EXPECT_EQ(failed.load(), 0) << first_error;
  EXPECT_EQ(wrong_version.load(), 0);
  EXPECT_EQ(env_.Metric("inference", "fraud_inference_model_reloads_total", {{"result", "failed"}}) -
                failed_reloads_before,
            7);
}

}  // namespace
}  // namespace fraud::fault
