// The retraining loop through the real services: replay on synthetic data, the promotion gate,
// inference serving the champion, champion history, cancellation, failed and killed runs,
// bootstrap and manual promotion/rollback.
#include <signal.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "clients/replay/label_delay.h"
#include "services/common/core/day.h"
#include "services/common/model/artifact.h"
#include "services/training/auto_trigger.h"
#include "services/training/bootstrap.h"
#include "tests/integration/training/training_harness.h"
#include "tests/testing/process_constellation.h"

namespace fraud::training::it {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

// Storage whose RegisterModel fails; everything else goes to the real service.
class FailingRegistryStorage final : public StorageApi {
 public:
  explicit FailingRegistryStorage(StorageApi* real) : real_(real) {}
  absl::Status ScanTransactions(
      const storage::v1::ScanTransactionsRequest& r,
      const std::function<absl::Status(const common::v1::TransactionBatch&)>& f) override {
    return real_->ScanTransactions(r, f);
  }
  absl::StatusOr<storage::v1::GetDataStatsResponse> GetDataStats(int64_t a) override {
    return real_->GetDataStats(a);
  }
  absl::StatusOr<storage::v1::StoreUploadResponse> StoreUpload(
      const storage::v1::UploadBegin& b,
      const std::function<absl::StatusOr<bool>(storage::v1::UploadRows*)>& n,
      const std::function<storage::v1::UploadCommit()>& c) override {
    return real_->StoreUpload(b, n, c);
  }
  absl::StatusOr<int64_t> AllocateModelVersion() override { return real_->AllocateModelVersion(); }
  absl::Status PutModelArtifact(int64_t v, const std::string& dir,
                                const std::vector<std::string>& names) override {
    return real_->PutModelArtifact(v, dir, names);
  }
  absl::StatusOr<std::string> FetchModelArtifact(int64_t v, const std::string& root) override {
    return real_->FetchModelArtifact(v, root);
  }
  absl::StatusOr<storage::v1::ModelVersion> RegisterModel(const storage::v1::ModelVersion&) override {
    return absl::UnavailableError("registry is down (injected)");
  }
  absl::StatusOr<storage::v1::ModelVersion> GetModel(int64_t v) override {
    return real_->GetModel(v);
  }
  absl::StatusOr<std::vector<storage::v1::ModelVersion>> ListModels() override {
    return real_->ListModels();
  }
  absl::StatusOr<std::optional<storage::v1::ModelVersion>> GetChampion() override {
    return real_->GetChampion();
  }
  absl::StatusOr<storage::v1::ChampionChange> SetChampion(
      const storage::v1::SetChampionRequest& r) override {
    return real_->SetChampion(r);
  }
  absl::StatusOr<std::vector<storage::v1::ChampionChange>> ListChampionHistory() override {
    return real_->ListChampionHistory();
  }
  absl::StatusOr<storage::v1::GetOperatingPointResponse> GetOperatingPoint(int64_t v) override {
    return real_->GetOperatingPoint(v);
  }
  absl::StatusOr<storage::v1::OperatingPoint> SetOperatingPoint(
      const storage::v1::OperatingPoint& p) override {
    return real_->SetOperatingPoint(p);
  }
  absl::StatusOr<storage::v1::TrainingRun> CreateRun(const storage::v1::TrainingRun& r) override {
    return real_->CreateRun(r);
  }
  absl::StatusOr<storage::v1::TrainingRun> UpdateRun(const storage::v1::TrainingRun& r) override {
    return real_->UpdateRun(r);
  }
  absl::StatusOr<storage::v1::TrainingRun> GetRun(int64_t id) override { return real_->GetRun(id); }
  absl::StatusOr<storage::v1::ListRunsResponse> ListRuns(int32_t n, int64_t b) override {
    return real_->ListRuns(n, b);
  }

 private:
  StorageApi* real_;
};

// Fast run settings for tests.
void SmallRun(v1::StartRunRequest* r, const std::vector<std::string>& families) {
  for (const std::string& f : families) r->add_families(f);
  (*r->mutable_params())["grid"] = "small";
  (*r->mutable_params())["max_epochs"] = "8";
  (*r->mutable_params())["logreg.batch_size"] = "256";
}

TEST_F(TrainingIntegrationTest, SyntheticReplayCreatesVersionsPromotesThroughTheGateAndServesTheChampion) {
  const std::string csv = WriteSyntheticCsv(root_ + "/synthetic.csv", 30000, 7, 0.01);
  replay::ReplayOptions o;
  o.csv_path = csv;
  o.initial_rows = 10000;
  o.work_dir = root_ + "/parts";
  o.families = {"logreg", "xgboost"};
  o.params = {{"grid", "small"}, {"max_epochs", "8"}, {"logreg.batch_size", "256"}};
  o.weight_to_rate = 0.001727;
  o.bootstrap_resamples = 50;
  o.token = kAdminToken;
  std::vector<std::string> log;
  o.log = [&](const std::string& line) { log.push_back(line); };
  std::unique_ptr<replay::Uploader> uploader = Uploader();
  absl::StatusOr<replay::ReplayResult> result = replay::RunReplay(o, *uploader, *training_stub_);
  ASSERT_THAT(result, IsOk());
  std::printf("%s", replay::FormatTable(*result).c_str());

  // Parts: the initial 10,000 rows then four parts of 5,000, in time order.
  ASSERT_EQ(result->parts.size(), 5u);
  EXPECT_EQ(result->parts[0].rows, 10000);
  for (int p = 1; p < 5; ++p) {
    EXPECT_EQ(result->parts[p].rows, 5000);
    EXPECT_GE(result->parts[p].time_min, result->parts[p - 1].time_max);
  }
  // P1..P3 were scored on upload by the champion of the moment.
  for (int p = 1; p <= 3; ++p) EXPECT_TRUE(result->parts[p].scored) << p;
  const int64_t p4_upload = result->parts[4].upload_id;

  // Four versions, each evaluated on all of P4, unweighted and weighted.
  ASSERT_EQ(result->versions.size(), 4u);
  EXPECT_EQ(result->comparison_rows, 5000);
  int64_t previous = 0;
  int64_t last_promoted = 0;
  int64_t expected_rows = 0;
  for (size_t i = 0; i < result->versions.size(); ++i) {
    const replay::VersionResult& v = result->versions[i];
    EXPECT_GT(v.version, previous);
    previous = v.version;
    EXPECT_TRUE(v.error.empty()) << v.error;
    EXPECT_EQ(v.metrics.rows(), 5000);
    EXPECT_GT(v.metrics.auprc(), 0.2) << "v" << v.version;
    ASSERT_TRUE(v.has_weighted);
    EXPECT_TRUE(v.weighted.weighted());
    EXPECT_LE(v.weighted.auprc(), v.metrics.auprc() + 1e-12);
    // From the second version on, the gate's paired comparison against the champion of the
    // moment: the difference lies inside its interval, and the table prints it.
    EXPECT_EQ(v.has_difference, i > 0) << "v" << v.version;
    if (v.has_difference) {
      EXPECT_EQ(v.compared_with, last_promoted);
      EXPECT_LE(v.difference.ci_low(), v.difference.difference());
      EXPECT_GE(v.difference.ci_high(), v.difference.difference());
      EXPECT_THAT(replay::FormatTable(*result), HasSubstr(absl::StrCat("v", v.compared_with, " ")));
    }
    if (v.promoted) last_promoted = v.version;
    // The run trained on the parts so far, never on P4.
    absl::StatusOr<storage::v1::TrainingRun> run = storage_api_->GetRun(v.run_id);
    ASSERT_THAT(run, IsOk());
    EXPECT_EQ(run->status(), storage::v1::RUN_STATUS_SUCCEEDED);
    EXPECT_EQ(run->trigger(), "replay");
    EXPECT_THAT(run->lineage().upload_ids(), Not(Contains(p4_upload)));
    expected_rows += result->parts[i].rows;
    EXPECT_EQ(run->lineage().train_rows() + run->lineage().validation_rows(), expected_rows);
    EXPECT_EQ(run->challenger_comparison().rows(), 5000);
    // Two configurations, then the refit of the backtest's winner (when the data held enough
    // frauds for a backtest block).
    const bool backtested = run->params().at("selection").rfind("backtest", 0) == 0;
    EXPECT_EQ(run->candidates_size(), backtested ? 3 : 2) << run->params().at("selection");
    if (backtested) {
      EXPECT_TRUE(run->candidates(2).is_refit() && run->candidates(2).selected());
    }
  }
  EXPECT_TRUE(result->versions[0].promoted);  // no champion before it
  EXPECT_EQ(ChampionVersion(), last_promoted);
  EXPECT_EQ(ServingVersion(), last_promoted);

  // The champion history records every promotion with its run.
  absl::StatusOr<std::vector<storage::v1::ChampionChange>> history =
      storage_api_->ListChampionHistory();
  ASSERT_THAT(history, IsOk());
  std::set<int64_t> promoted_in_history;
  for (const auto& c : *history) {
    promoted_in_history.insert(c.version());
    EXPECT_THAT(c.reason(), HasSubstr("run "));
  }
  for (const replay::VersionResult& v : result->versions) {
    if (v.promoted) {
      EXPECT_EQ(promoted_in_history.count(v.version), 1u) << v.version;
    }
  }

  // A huge margin forces a non-promotion: registered, but the champion keeps serving.
  v1::StartRunRequest request;
  SmallRun(&request, {"logreg"});
  for (int p = 0; p < 4; ++p) request.add_train_upload_ids(result->parts[p].upload_id);
  request.add_comparison_upload_ids(p4_upload);
  request.set_promotion_margin(10);
  storage::v1::TrainingRun run = TrainAndWait(request);
  EXPECT_EQ(run.status(), storage::v1::RUN_STATUS_SUCCEEDED);
  EXPECT_FALSE(run.promoted());
  EXPECT_GT(run.model_version(), previous);
  EXPECT_EQ(run.champion_version_before(), last_promoted);
  EXPECT_EQ(run.champion_comparison().rows(), 5000);
  EXPECT_THAT(run.message(), HasSubstr("not promoted"));
  EXPECT_EQ(ChampionVersion(), last_promoted);
  EXPECT_EQ(ServingVersion(), last_promoted);
  EXPECT_EQ(ListArtifacts(model_dir_).versions.size(), 5u);
  EXPECT_TRUE(ListArtifacts(model_dir_).others.empty());
}

// The delayed-label protocol (issue 17 item 7): P1..P3 go in unlabelled; reviews and delayed
// labels reach storage as feedback; each run trains only on the labels known at its time; at the
// end every label is in and the realised precision@K per (version, day) is within the summary
// histogram's error of a count made here from the stored scores and the truth.
TEST_F(TrainingIntegrationTest, DelayedLabelReplayTrainsOnKnownLabelsAndReportsRealisedPrecision) {
  const std::string csv = WriteSyntheticCsv(root_ + "/synthetic.csv", 30000, 11, 0.01);
  replay::ReplayOptions o;
  o.csv_path = csv;
  o.initial_rows = 10000;
  o.work_dir = root_ + "/parts";
  o.families = {"logreg"};
  o.params = {{"grid", "small"}, {"max_epochs", "8"}, {"logreg.batch_size", "256"}};
  o.bootstrap_resamples = 50;
  o.token = kAdminToken;
  o.label_delay.enabled = true;
  o.label_delay.days = 0.25;
  o.label_delay.review_budget = 20;
  std::unique_ptr<replay::Uploader> uploader = Uploader();
  // Without storage the protocol cannot send labels.
  EXPECT_EQ(replay::RunReplay(o, *uploader, *training_stub_).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<replay::ReplayResult> result =
      replay::RunReplay(o, *uploader, *training_stub_, storage_stub_.get());
  ASSERT_THAT(result, IsOk());
  const std::string table = replay::FormatTable(*result);
  std::printf("%s", table.c_str());
  EXPECT_THAT(table, HasSubstr("Delayed labels"));
  EXPECT_THAT(table, HasSubstr("precision@20"));

  // P1..P3 were scored without labels: no live metrics.
  for (int p = 1; p <= 3; ++p) {
    EXPECT_TRUE(result->parts[p].scored) << p;
    EXPECT_EQ(result->parts[p].live_metrics.rows(), 0) << p;
  }
  // Labels known grow step by step; reviews never exceed 20 per day; some arrive by delay.
  const replay::DelayedLabelResult& d = result->label_delay;
  ASSERT_EQ(d.steps.size(), 3u);
  int64_t previous_known = 0, delayed = 0, reviewed = 0;
  for (const replay::LabelStep& s : d.steps) {
    EXPECT_GT(s.known, previous_known);
    previous_known = s.known;
    delayed += s.delayed;
    reviewed += s.reviewed;
  }
  EXPECT_GT(delayed, 0);
  EXPECT_GT(reviewed, 0);
  EXPECT_LE(reviewed, 20 * 3);  // the parts' Times span at most three days
  EXPECT_EQ(d.steps.back().known + d.steps.back().pending, 15000);
  EXPECT_EQ(d.final_arrivals, d.steps.back().pending);

  // Each run trained on the initial rows plus exactly the labels known at its time.
  ASSERT_EQ(result->versions.size(), 4u);
  EXPECT_EQ(result->versions[0].labelled_rows, 10000);
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(result->versions[i].labelled_rows, 10000 + d.steps[i - 1].known) << i;
  }

  // The highest-scored row of P1 was reviewed: its label event says so.
  storage::v1::ListPredictionsRequest top;
  top.set_upload_id(result->parts[1].upload_id);
  top.set_order(storage::v1::PREDICTION_ORDER_SCORE_DESC);
  top.set_page_size(1);
  storage::v1::ListPredictionsResponse top_response;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(storage_stub_->ListPredictions(&ctx, top, &top_response).ok());
  }
  ASSERT_EQ(top_response.predictions_size(), 1);
  storage::v1::ListLabelHistoryRequest history;
  history.set_upload_id(top_response.predictions(0).upload_id());
  history.set_line(top_response.predictions(0).line());
  storage::v1::ListLabelHistoryResponse history_response;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(storage_stub_->ListLabelHistory(&ctx, history, &history_response).ok());
  }
  ASSERT_GE(history_response.events_size(), 1);
  EXPECT_EQ(history_response.events(0).source(), "review");

  // Realised precision@20 per (version, day), recomputed here from every stored score and label.
  std::map<std::pair<int64_t, int64_t>, std::vector<std::pair<float, int32_t>>> scored;
  for (int p = 1; p <= 3; ++p) {
    for (int64_t offset = 0;;) {
      storage::v1::ListPredictionsRequest page;
      page.set_upload_id(result->parts[p].upload_id);
      page.set_page_size(1000);
      page.set_offset(offset);
      storage::v1::ListPredictionsResponse r;
      grpc::ClientContext ctx;
      ASSERT_TRUE(storage_stub_->ListPredictions(&ctx, page, &r).ok());
      for (const storage::v1::Prediction& pr : r.predictions()) {
        ASSERT_NE(pr.label(), -1) << "every label has arrived";
        scored[{pr.model_version(), layout::DayOf(pr.features(0))}].push_back(
            {pr.score(), pr.label()});
      }
      offset += r.predictions_size();
      if (r.predictions_size() == 0 || offset >= r.total()) break;
    }
  }
  ASSERT_EQ(d.realised.size(), scored.size());
  for (const storage::v1::RealisedMetrics& m : d.realised) {
    auto it = scored.find({m.model_version(), m.period()});
    ASSERT_NE(it, scored.end()) << "v" << m.model_version() << " day " << m.period();
    std::vector<std::pair<float, int32_t>>& rows = it->second;
    EXPECT_EQ(m.rows_scored(), static_cast<int64_t>(rows.size()));
    EXPECT_EQ(m.rows_labelled(), m.rows_scored());
    const size_t k = std::min<size_t>(20, rows.size());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    int64_t frauds = 0;
    for (size_t i = 0; i < k; ++i) frauds += rows[i].second;
    // Storage reads precision@k from its score histogram (1024 logit bins, the bin holding the
    // k-th row counted in proportion; storage README): close to the exact count, not equal.
    EXPECT_NEAR(static_cast<double>(m.top_k_labelled()), static_cast<double>(k), 1.0);
    EXPECT_NEAR(m.precision_at_k(), static_cast<double>(frauds) / static_cast<double>(k), 0.05)
        << "v" << m.model_version() << " day " << m.period();
  }
}

TEST_F(TrainingIntegrationTest, BootstrapPublishesVersionOneThenManualPromotionAndRollback) {
  BootstrapOptions b;
  b.rows = 20000;
  b.seed = 42;
  absl::StatusOr<int64_t> run_id = MaybeBootstrap(
      *storage_api_, b,
      [&](const v1::StartRunRequest& r) -> absl::StatusOr<storage::v1::TrainingRun> {
        v1::StartRunRequest request = r;
        SmallRun(&request, {"logreg"});
        absl::StatusOr<std::map<std::string, std::string>> params =
            ResolveRunParams(request, pipeline_);
        if (!params.ok()) return params.status();
        return runs_->Submit(request, *params);
      });
  ASSERT_THAT(run_id, IsOk());
  ASSERT_GT(*run_id, 0);
  absl::StatusOr<storage::v1::TrainingRun> run = runs_->WaitFor(*run_id, absl::Minutes(5));
  ASSERT_THAT(run, IsOk());
  EXPECT_EQ(run->status(), storage::v1::RUN_STATUS_SUCCEEDED) << run->message();
  EXPECT_EQ(run->trigger(), "bootstrap");
  EXPECT_TRUE(run->promoted());
  const int64_t v1 = run->model_version();
  EXPECT_EQ(ChampionVersion(), v1);
  EXPECT_EQ(ServingVersion(), v1);
  absl::StatusOr<storage::v1::GetDataStatsResponse> stats = storage_api_->GetDataStats(0);
  ASSERT_THAT(stats, IsOk());
  EXPECT_EQ(stats->labelled_rows(), 20000);
  // With a model registered, bootstrap does nothing more.
  absl::StatusOr<int64_t> again = MaybeBootstrap(
      *storage_api_, b, [](const v1::StartRunRequest&) -> absl::StatusOr<storage::v1::TrainingRun> {
        return absl::InternalError("must not be called");
      });
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(*again, 0);

  // A second version, registered only.
  v1::StartRunRequest request;
  SmallRun(&request, {"xgboost"});
  request.set_no_promote(true);
  storage::v1::TrainingRun second = TrainAndWait(request);
  ASSERT_EQ(second.status(), storage::v1::RUN_STATUS_SUCCEEDED) << second.message();
  const int64_t v2 = second.model_version();
  EXPECT_EQ(ChampionVersion(), v1);

  // Manual promotion, then rollback, each reloading inference.
  for (int64_t target : {v2, v1}) {
    grpc::ClientContext ctx;
    rpc::AddBearerToken(&ctx, kAdminToken);
    v1::PromoteRequest promote;
    promote.set_version(target);
    promote.set_reason(absl::StrCat("test: promote v", target));
    v1::PromoteResponse response;
    grpc::Status s = training_stub_->Promote(&ctx, promote, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(response.reloaded()) << response.message();
    EXPECT_EQ(ChampionVersion(), target);
    EXPECT_EQ(ServingVersion(), target);
  }
  absl::StatusOr<std::vector<storage::v1::ChampionChange>> history =
      storage_api_->ListChampionHistory();
  ASSERT_THAT(history, IsOk());
  ASSERT_GE(history->size(), 3u);
  bool saw_rollback = false;
  for (const auto& c : *history) {
    if (c.version() == v1 && c.previous_version() == v2) {
      saw_rollback = true;
      EXPECT_EQ(c.reason(), absl::StrCat("test: promote v", v1));
    }
  }
  EXPECT_TRUE(saw_rollback);
}

TEST_F(TrainingIntegrationTest, CancelledRunLeavesNoArtifactAndTheRegistryUnchanged) {
  BootstrapOptions b;
  b.rows = 20000;
  ASSERT_THAT(StoreInitialData(*storage_api_, b), IsOk());
  v1::StartRunRequest request;
  request.add_families("mlp");
  (*request.mutable_params())["mlp.epochs"] = "500";
  (*request.mutable_params())["mlp.patience"] = "500";
  grpc::ClientContext ctx;
  rpc::AddBearerToken(&ctx, kAdminToken);
  v1::StartRunResponse started;
  ASSERT_TRUE(training_stub_->StartRun(&ctx, request, &started).ok());
  const int64_t id = started.run().id();
  // Wait until it trains (an epoch reported), then cancel.
  for (int i = 0; i < 600; ++i) {
    absl::StatusOr<storage::v1::TrainingRun> r = runs_->Get(id);
    ASSERT_THAT(r, IsOk());
    if (r->progress().phase() == "training" && r->progress().epoch() >= 1) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  grpc::ClientContext cancel_ctx;
  rpc::AddBearerToken(&cancel_ctx, kAdminToken);
  v1::CancelRunRequest cancel;
  cancel.set_run_id(id);
  v1::CancelRunResponse cancelled;
  ASSERT_TRUE(training_stub_->CancelRun(&cancel_ctx, cancel, &cancelled).ok());
  absl::StatusOr<storage::v1::TrainingRun> done = runs_->WaitFor(id, absl::Minutes(2));
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->status(), storage::v1::RUN_STATUS_CANCELLED);
  absl::StatusOr<storage::v1::TrainingRun> stored = storage_api_->GetRun(id);
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(stored->status(), storage::v1::RUN_STATUS_CANCELLED);
  EXPECT_EQ(ModelCount(), 0u);
  EXPECT_EQ(ChampionVersion(), 0);
  ArtifactListing artifacts = ListArtifacts(model_dir_);
  EXPECT_TRUE(artifacts.versions.empty());
  EXPECT_TRUE(artifacts.others.empty());
}

TEST_F(TrainingIntegrationTest, FailedRegistrationLeavesNoArtifactVisible) {
  BootstrapOptions b;
  b.rows = 10000;
  ASSERT_THAT(StoreInitialData(*storage_api_, b), IsOk());
  StopTraining();
  std::unique_ptr<StorageApi> real = MakeGrpcStorageApi(storage_channel_);
  FailingRegistryStorage failing(real.get());
  storage_for_runs_ = &failing;
  StartTraining();
  v1::StartRunRequest request;
  SmallRun(&request, {"logreg"});
  storage::v1::TrainingRun run = TrainAndWait(request);
  EXPECT_EQ(run.status(), storage::v1::RUN_STATUS_FAILED);
  EXPECT_THAT(run.message(), HasSubstr("registry is down"));
  EXPECT_EQ(ModelCount(), 0u);
  // The artifact reached the registry before the registration failed, but an unregistered
  // version is never served from it.
  EXPECT_THAT(real->FetchModelArtifact(run.model_version() > 0 ? run.model_version() : 1,
                                       root_ + "/probe"),
              fraud::testing::StatusIs(absl::StatusCode::kNotFound));
  ArtifactListing artifacts = ListArtifacts(model_dir_);
  EXPECT_TRUE(artifacts.versions.empty());
  EXPECT_TRUE(artifacts.others.empty());
  StopTraining();
  storage_for_runs_ = nullptr;
}

#ifdef TRAINING_BINARY
TEST_F(TrainingIntegrationTest, KilledTrainingProcessLeavesNothingVisibleAndIsMarkedInterrupted) {
  BootstrapOptions b;
  b.rows = 30000;
  ASSERT_THAT(StoreInitialData(*storage_api_, b), IsOk());
  // A leftover of a writer killed mid-write: only the start-up clean-up may remove it.
  const std::string leftover = model_dir_ + "/.tmp-7-deadbeef";
  std::filesystem::create_directories(leftover);
  std::ofstream(leftover + "/weights.pt") << "partial";

  // Output to the test's stderr, as a plain child's would.
  ::fraud::testing::ServiceProcess child(
      "training", TRAINING_BINARY,
      {"--run_once", "--bootstrap=false", "--inference_target=", "--families=mlp",
       "--log_level=warning", "--storage_target=" + storage_->target(),
       "--model_dir=" + model_dir_},
      "/dev/stderr", 0, ::fraud::testing::ServiceProcess::Health::kListening);
  ASSERT_THAT(child.Spawn(), IsOk());
  // Wait until the child's run is training, then kill it without warning.
  int64_t run_id = 0;
  for (int i = 0; i < 1200 && run_id == 0; ++i) {
    absl::StatusOr<storage::v1::ListRunsResponse> runs = storage_api_->ListRuns(10, 0);
    ASSERT_THAT(runs, IsOk());
    for (const auto& r : runs->runs()) {
      if (r.status() == storage::v1::RUN_STATUS_RUNNING && r.progress().phase() == "training") {
        run_id = r.id();
      }
    }
    if (run_id == 0) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_GT(run_id, 0) << "the child never started training";
  // The child's start-up removed the leftover temporary directory.
  EXPECT_FALSE(std::filesystem::exists(leftover));
  child.Kill(SIGKILL);
  absl::StatusOr<int> exit_code = child.Wait(absl::Seconds(30));
  ASSERT_THAT(exit_code, IsOk());
  EXPECT_EQ(*exit_code, 128 + SIGKILL);  // ended by the signal

  // Nothing was published: no version directory, no registry entry, inference has nothing.
  EXPECT_TRUE(ListArtifacts(model_dir_).versions.empty());
  EXPECT_EQ(ModelCount(), 0u);
  EXPECT_EQ(ServingVersion(), 0);
  absl::StatusOr<storage::v1::TrainingRun> stale = storage_api_->GetRun(run_id);
  ASSERT_THAT(stale, IsOk());
  EXPECT_EQ(stale->status(), storage::v1::RUN_STATUS_RUNNING);
  // The next training service marks the run interrupted.
  StopTraining();
  StartTraining();
  absl::StatusOr<storage::v1::TrainingRun> recovered = storage_api_->GetRun(run_id);
  ASSERT_THAT(recovered, IsOk());
  EXPECT_EQ(recovered->status(), storage::v1::RUN_STATUS_FAILED);
  EXPECT_THAT(recovered->message(), HasSubstr("interrupted"));
}
#endif

TEST_F(TrainingIntegrationTest, AutoTriggerStartsARunOnceEnoughNewRowsArrive) {
  BootstrapOptions b;
  b.rows = 6000;
  b.seed = 3;
  ASSERT_THAT(StoreInitialData(*storage_api_, b), IsOk());
  AutoTriggerOptions options;
  options.min_new_rows = 10000;
  options.params = {{"grid", "small"}, {"max_epochs", "3"}};
  auto submit = [&](const v1::StartRunRequest& r) -> absl::StatusOr<storage::v1::TrainingRun> {
    v1::StartRunRequest request = r;
    request.add_families("logreg");
    absl::StatusOr<std::map<std::string, std::string>> params = ResolveRunParams(request, pipeline_);
    if (!params.ok()) return params.status();
    return runs_->Submit(request, *params);
  };
  AutoTrigger trigger(storage_api_.get(), [&] { return runs_->Busy(); }, submit, options);
  absl::StatusOr<int64_t> none = trigger.CheckOnce();
  ASSERT_THAT(none, IsOk());
  EXPECT_EQ(*none, 0);  // 6,000 < 10,000
  b.rows = 5000;
  b.seed = 4;
  ASSERT_THAT(StoreInitialData(*storage_api_, b), IsOk());
  absl::StatusOr<int64_t> started = trigger.CheckOnce();
  ASSERT_THAT(started, IsOk());
  ASSERT_GT(*started, 0);
  absl::StatusOr<storage::v1::TrainingRun> run = runs_->WaitFor(*started, absl::Minutes(5));
  ASSERT_THAT(run, IsOk());
  EXPECT_EQ(run->trigger(), "auto");
  EXPECT_EQ(run->status(), storage::v1::RUN_STATUS_SUCCEEDED) << run->message();
  // The run recorded the data it saw: the same rows do not trigger again.
  absl::StatusOr<int64_t> after = trigger.CheckOnce();
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(*after, 0);

  // 10,000 rows uploaded without labels (scored by the new champion) trigger nothing ...
  csv::GeneratorOptions unlabelled;
  unlabelled.rows = 10000;
  unlabelled.seed = 5;
  unlabelled.with_labels = false;
  const std::string path = root_ + "/unlabelled.csv";
  {
    std::ofstream out(path, std::ios::binary);
    ASSERT_THAT(csv::WriteSyntheticCsv(unlabelled, out), IsOk());
  }
  absl::StatusOr<ingest::v1::UploadSummary> uploaded = Uploader()->Upload(path, "unlabelled.csv");
  ASSERT_THAT(uploaded, IsOk());
  after = trigger.CheckOnce();
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(*after, 0);
  // ... until their delayed labels arrive by feedback: then a run starts, though no upload came.
  grpc::ClientContext ctx;
  storage::v1::RecordFeedbackResponse fed;
  auto writer = storage_stub_->RecordFeedback(&ctx, &fed);
  storage::v1::RecordFeedbackRequest labels;
  for (int64_t line = 2; line <= 10001; ++line) {
    storage::v1::LabelFeedback* f = labels.add_labels();
    f->set_upload_id(uploaded->upload_id());
    f->set_line(line);
    f->set_label(line % 97 == 0 ? 1 : 0);
  }
  ASSERT_TRUE(writer->Write(labels));
  writer->WritesDone();
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(fed.applied(), 10000);
  absl::StatusOr<int64_t> relabelled = trigger.CheckOnce();
  ASSERT_THAT(relabelled, IsOk());
  ASSERT_GT(*relabelled, 0) << trigger.last_reason();
  EXPECT_THAT(trigger.last_reason(), HasSubstr("10000 new labelled rows (>= 10000) since the last "
                                               "run's data (11000 labelled rows, now 21000)"));
  run = runs_->WaitFor(*relabelled, absl::Minutes(5));
  ASSERT_THAT(run, IsOk());
  EXPECT_EQ(run->status(), storage::v1::RUN_STATUS_SUCCEEDED) << run->message();
  // It read every labelled row: training, validation and the held-out comparison set.
  EXPECT_EQ(run->lineage().train_rows() + run->lineage().validation_rows() +
                run->challenger_comparison().rows(),
            21000);
}

}  // namespace
}  // namespace fraud::training::it
