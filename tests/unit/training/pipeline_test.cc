// One run end to end on in-memory storage, with the real model library on small data (logistic
// regression, three epochs): split, candidate tracking, publishing, the gate, cancellation and
// failure clean-up.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>

#include "services/common/model/artifact.h"
#include "services/common/rpc/artifact_transfer.h"
#include "services/training/pipeline.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/training/fakes.h"

namespace fraud::training {
namespace {

using ::fraud::testing::StatusIs;
using ::fraud::training::testing::FakeInference;
using ::fraud::training::testing::FakeStorage;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class RecordingSink final : public RunSink {
 public:
  void Update(const std::function<void(storage_pb::TrainingRun&)>& mutate, bool persist) override {
    mutate(run);
    persists += persist;
    phases.push_back(run.progress().phase());
  }
  storage_pb::TrainingRun run;
  int persists = 0;
  std::vector<std::string> phases;
};

// Entries of a directory (names), empty when it does not exist.
std::vector<std::string> DirEntries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fraud-training-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    options_.model_dir = root_ + "/models";
    options_.max_epochs = 3;
    options_.threads = 1;
    options_.comparison_bootstrap = 20;
    deps_.storage = &storage_;
    deps_.inference = &inference_;
    // Training data: two uploads, then the comparison upload (later in time).
    train_a_ = storage_.AddSyntheticUpload(3000, 11, 0.03, 0);
    train_b_ = storage_.AddSyntheticUpload(2000, 12, 0.03, 200000);
    comparison_ = storage_.AddSyntheticUpload(1500, 13, 0.03, 400000);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  training::v1::StartRunRequest Request() {
    training::v1::StartRunRequest r;
    r.add_families("logreg");
    r.add_comparison_upload_ids(comparison_);
    (*r.mutable_params())["logreg.batch_size"] = "128";
    return r;
  }

  absl::Status Run(const training::v1::StartRunRequest& request, RecordingSink* sink,
                   int64_t run_id = 1) {
    return ExecuteRun(request, run_id, options_, deps_, *sink, cancel_);
  }

  std::string root_;
  FakeStorage storage_;
  FakeInference inference_;
  PipelineOptions options_;
  PipelineDeps deps_;
  std::atomic<bool> cancel_{false};
  int64_t train_a_ = 0, train_b_ = 0, comparison_ = 0;
};

TEST_F(PipelineTest, FirstRunRegistersPromotesAndReloadsVersionOne) {
  RecordingSink sink;
  FRAUD_ASSERT_OK(Run(Request(), &sink));
  const storage_pb::TrainingRun& run = sink.run;
  EXPECT_EQ(run.model_version(), 1);
  EXPECT_TRUE(run.promoted());
  EXPECT_EQ(storage_.champion(), 1);
  EXPECT_THAT(inference_.reloads(), ElementsAre(1));
  EXPECT_THAT(run.message(), HasSubstr("no champion yet"));
  // The comparison upload never reached training or validation.
  EXPECT_EQ(run.lineage().train_rows() + run.lineage().validation_rows(), 5000);
  EXPECT_THAT(run.lineage().upload_ids(), ElementsAre(train_a_, train_b_));
  EXPECT_EQ(run.challenger_comparison().rows(), 1500);
  EXPECT_GT(run.challenger_comparison().auprc(), 0.1);
  EXPECT_GT(run.challenger_comparison().auprc_ci_high(), 0);
  // The configuration is backtested block by block (the validation window's 1000 rows hold
  // ~30 frauds: at most 3 blocks of >= 10), then refit; both are tracked with curve, metrics,
  // time and memory, and the refit is the selected model.
  EXPECT_THAT(run.params().at("selection"), HasSubstr("backtest over "));
  ASSERT_EQ(run.candidates_size(), 2);
  const storage_pb::Candidate& backtested = run.candidates(0);
  EXPECT_FALSE(backtested.selected());
  ASSERT_GE(backtested.backtest_size(), 1);
  double sum = 0;
  double worst = 1;
  double previous_end = 0;
  for (const storage_pb::BacktestBlock& b : backtested.backtest()) {
    EXPECT_TRUE(b.error().empty()) << b.error();
    EXPECT_GE(b.frauds(), 10);
    EXPECT_GT(b.auprc(), 0);
    EXPECT_GE(b.time_min(), previous_end);  // oldest block first, disjoint
    previous_end = b.time_max();
    EXPECT_GT(b.train_rows(), 0);
    EXPECT_EQ(b.normal_sample_rate(), 1);  // 5000 rows: under the fold row limit
    sum += b.auprc();
    worst = std::min(worst, b.auprc());
  }
  EXPECT_NEAR(backtested.backtest_mean_auprc(), sum / backtested.backtest_size(), 1e-12);
  EXPECT_DOUBLE_EQ(backtested.backtest_worst_auprc(), worst);
  const storage_pb::Candidate& c = run.candidates(1);
  EXPECT_TRUE(c.is_refit());
  EXPECT_EQ(c.refit_of(), 0);
  EXPECT_EQ(c.family(), common::v1::MODEL_FAMILY_LOGREG);
  EXPECT_TRUE(c.selected());
  EXPECT_GE(c.curve_size(), 1);
  EXPECT_LE(c.curve_size(), 3);
  EXPECT_GT(c.validation_metrics().auprc(), 0);
  EXPECT_GT(c.validation_metrics().pr_curve_size(), 1);
  // The refit early-stopped on the newest block only.
  EXPECT_EQ(c.validation_metrics().rows(), backtested.backtest().rbegin()->rows());
  EXPECT_GT(c.train_seconds(), 0);
  EXPECT_GT(c.peak_rss_bytes(), 0);
  EXPECT_EQ(c.params().at("epochs"), "3");
  EXPECT_EQ(run.progress().candidates_done(), 2);
  EXPECT_EQ(run.params().at("data.max_upload_id"), std::to_string(comparison_));
  EXPECT_EQ(run.params().at("data.labelled_rows"),
            std::to_string(storage_.GetDataStats(0)->labelled_rows()));
  // The artifact is complete and registered with lineage and comparison metrics.
  EXPECT_THAT(DirEntries(options_.model_dir), ElementsAre("1"));
  absl::StatusOr<common::v1::ModelManifest> manifest =
      model::ReadManifest(model::ArtifactDir(options_.model_dir, 1));
  FRAUD_ASSERT_OK(manifest);
  EXPECT_EQ(manifest->version(), 1);
  EXPECT_EQ(manifest->run_id(), 1);
  EXPECT_THAT(manifest->lineage().upload_ids(), ElementsAre(train_a_, train_b_));
  EXPECT_EQ(manifest->comparison_metrics().rows(), 1500);
  EXPECT_EQ(manifest->reference_size(), 30);
  EXPECT_GT(manifest->smoke().expected_scores_size(), 0);
  absl::StatusOr<storage_pb::ModelVersion> registered = storage_.GetModel(1);
  FRAUD_ASSERT_OK(registered);
  // The artifact went to the registry before the registration; the URI names it there.
  EXPECT_EQ(registered->artifact_uri(), rpc::RegistryArtifactUri(1));
  EXPECT_EQ(storage_.artifact_count(), 1);
  EXPECT_EQ(registered->artifact_sha256().size(), 64u);
  EXPECT_EQ(sink.run.progress().phase(), "done");
  EXPECT_THAT(sink.phases, ::testing::IsSupersetOf({"loading", "training", "evaluating",
                                                    "publishing", "done"}));
}

TEST_F(PipelineTest, BacktestOffSelectsOnTheValidationWindow) {
  RecordingSink sink;
  training::v1::StartRunRequest request = Request();
  (*request.mutable_params())["backtest_blocks"] = "0";
  FRAUD_ASSERT_OK(Run(request, &sink));
  const storage_pb::TrainingRun& run = sink.run;
  EXPECT_EQ(run.params().at("selection"), "validation window (backtest off)");
  ASSERT_EQ(run.candidates_size(), 1);
  const storage_pb::Candidate& c = run.candidates(0);
  EXPECT_TRUE(c.selected());
  EXPECT_FALSE(c.is_refit());
  EXPECT_EQ(c.backtest_size(), 0);
  EXPECT_EQ(c.validation_metrics().rows(), run.lineage().validation_rows());
  EXPECT_EQ(run.model_version(), 1);
}

TEST_F(PipelineTest, TooFewFraudsForABlockFallsBackToTheValidationWindow) {
  RecordingSink sink;
  training::v1::StartRunRequest request = Request();
  (*request.mutable_params())["backtest_min_frauds"] = "1000";
  FRAUD_ASSERT_OK(Run(request, &sink));
  EXPECT_THAT(sink.run.params().at("selection"), HasSubstr("too few frauds"));
  ASSERT_EQ(sink.run.candidates_size(), 1);
  EXPECT_TRUE(sink.run.candidates(0).selected());
}

TEST_F(PipelineTest, TheRefitIsTheConfigurationWithTheBestMeanBlockAuprc) {
  RecordingSink sink;
  training::v1::StartRunRequest request = Request();
  request.add_families("mlp");
  (*request.mutable_params())["grid"] = "small";
  FRAUD_ASSERT_OK(Run(request, &sink));
  const storage_pb::TrainingRun& run = sink.run;
  ASSERT_EQ(run.candidates_size(), 3);  // logreg, mlp, then the refit
  const storage_pb::Candidate& refit = run.candidates(2);
  ASSERT_TRUE(refit.is_refit());
  EXPECT_TRUE(refit.selected());
  const int chosen = refit.refit_of();
  const int other = 1 - chosen;
  ASSERT_TRUE(chosen == 0 || chosen == 1);
  EXPECT_EQ(refit.family(), run.candidates(chosen).family());
  EXPECT_GE(run.candidates(chosen).backtest_mean_auprc(),
            run.candidates(other).backtest_mean_auprc());
  EXPECT_EQ(run.candidates(0).backtest_size(), run.candidates(1).backtest_size());
}

TEST_F(PipelineTest, HugeMarginRegistersButKeepsTheChampion) {
  RecordingSink first;
  FRAUD_ASSERT_OK(Run(Request(), &first, 1));
  training::v1::StartRunRequest request = Request();
  request.set_promotion_margin(10);
  RecordingSink second;
  FRAUD_ASSERT_OK(Run(request, &second, 2));
  EXPECT_EQ(second.run.model_version(), 2);
  EXPECT_FALSE(second.run.promoted());
  EXPECT_EQ(storage_.champion(), 1);
  EXPECT_EQ(second.run.champion_version_before(), 1);
  // Both were scored on the same rows.
  EXPECT_EQ(second.run.champion_comparison().rows(), 1500);
  EXPECT_EQ(second.run.challenger_comparison().rows(), 1500);
  EXPECT_THAT(second.run.message(), HasSubstr("not promoted"));
  EXPECT_THAT(inference_.reloads(), ElementsAre(1));
  EXPECT_THAT(DirEntries(options_.model_dir), ElementsAre("1", "2"));
  // Both runs trained on the same rows: no backtest block is newer than v1's training rows, so
  // the gate compared on the comparison set.
  EXPECT_FALSE(second.run.has_backtest_gate());
}

TEST_F(PipelineTest, OnNewerDataTheGateComparesOnTheBacktestBlocksTheChampionNeverSaw) {
  // v1 trains on upload a only (Time up to 172,792); the second run adds upload b (Time from
  // 200,000), which holds its whole validation window and so every backtest block.
  training::v1::StartRunRequest older = Request();
  older.add_train_upload_ids(train_a_);
  RecordingSink first;
  FRAUD_ASSERT_OK(Run(older, &first, 1));
  EXPECT_FALSE(first.run.has_backtest_gate());  // no champion yet
  RecordingSink second;
  FRAUD_ASSERT_OK(Run(Request(), &second, 2));
  ASSERT_TRUE(second.run.has_backtest_gate());
  const storage_pb::BacktestGate& g = second.run.backtest_gate();
  EXPECT_EQ(g.champion_version(), 1);
  const storage_pb::Candidate& backtested = second.run.candidates(0);
  EXPECT_EQ(g.blocks(), backtested.backtest_size());
  // The challenger side is the selected configuration's own block AUPRCs.
  double sum = 0;
  for (const storage_pb::BacktestBlock& b : backtested.backtest()) sum += b.auprc();
  EXPECT_NEAR(g.challenger_mean_auprc(), sum / g.blocks(), 1e-9);
  EXPECT_GT(g.champion_mean_auprc(), 0);
  EXPECT_NEAR(g.difference().difference(), g.challenger_mean_auprc() - g.champion_mean_auprc(),
              1e-9);
  EXPECT_LE(g.difference().ci_low(), g.difference().difference());
  EXPECT_GE(g.difference().ci_high(), g.difference().difference());
  EXPECT_EQ(g.difference().resamples(), options_.comparison_bootstrap);
  EXPECT_THAT(second.run.message(), HasSubstr("on the backtest: mean AUPRC over "));
  EXPECT_EQ(second.run.promoted(), g.difference().difference() >= 0);
  // The comparison set is still scored and recorded, for the record.
  EXPECT_EQ(second.run.challenger_comparison().rows(), 1500);
  // A margin no difference can clear keeps the champion on the same evidence.
  training::v1::StartRunRequest strict = Request();
  strict.set_promotion_margin(10);
  RecordingSink third;
  FRAUD_ASSERT_OK(Run(strict, &third, 3));
  EXPECT_FALSE(third.run.promoted());
}

TEST_F(PipelineTest, ReloadFailureRollsBackAndTheRunSaysWhy) {
  RecordingSink first;
  FRAUD_ASSERT_OK(Run(Request(), &first, 1));
  inference_.set_error(absl::DataLossError("checksum mismatch"));
  training::v1::StartRunRequest request = Request();
  request.set_promotion_margin(-1);  // always beats the champion
  RecordingSink second;
  FRAUD_ASSERT_OK(Run(request, &second, 2));
  EXPECT_FALSE(second.run.promoted());
  EXPECT_EQ(storage_.champion(), 1);
  EXPECT_THAT(second.run.message(), HasSubstr("rolled back to v1"));
  EXPECT_THAT(second.run.message(), HasSubstr("checksum mismatch"));
  std::vector<storage_pb::ChampionChange> history = storage_.history();
  ASSERT_EQ(history.size(), 3u);
  EXPECT_EQ(history[1].version(), 2);
  EXPECT_EQ(history[2].version(), 1);
}

TEST_F(PipelineTest, NoPromoteRegistersOnly) {
  training::v1::StartRunRequest request = Request();
  request.set_no_promote(true);
  RecordingSink sink;
  FRAUD_ASSERT_OK(Run(request, &sink));
  EXPECT_EQ(sink.run.model_version(), 1);
  EXPECT_FALSE(sink.run.promoted());
  EXPECT_EQ(storage_.champion(), 0);
  EXPECT_TRUE(inference_.reloads().empty());
}

TEST_F(PipelineTest, CancelledRunLeavesNoArtifactAndNoRegistryEntry) {
  deps_.trainer = [this](const model::CandidateSpec& spec, const model::Dataset& train,
                         const model::Dataset& validation, const model::TrainCallbacks& callbacks) {
    absl::StatusOr<model::TrainedCandidate> c =
        model::TrainCandidate(spec, train, validation, callbacks);
    cancel_.store(true);  // the admin cancels while the candidate finishes
    return c;
  };
  RecordingSink sink;
  EXPECT_THAT(Run(Request(), &sink), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(storage_.model_count(), 0u);
  EXPECT_EQ(storage_.champion(), 0);
  EXPECT_TRUE(DirEntries(options_.model_dir).empty());
  EXPECT_TRUE(inference_.reloads().empty());
}

TEST_F(PipelineTest, CancelFlagStopsTrainingInsideTheCandidate) {
  cancel_.store(true);
  RecordingSink sink;
  EXPECT_THAT(Run(Request(), &sink), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(storage_.model_count(), 0u);
}

TEST_F(PipelineTest, FailedRegistrationRemovesTheArtifact) {
  storage_.set_register_error(absl::UnavailableError("storage went away"));
  RecordingSink sink;
  EXPECT_THAT(Run(Request(), &sink), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(DirEntries(options_.model_dir).empty());
  EXPECT_EQ(storage_.champion(), 0);
}

TEST_F(PipelineTest, ValidationWindowWithoutFraudFailsWithAClearMessage) {
  FakeStorage storage;
  std::vector<double> times;
  std::vector<int32_t> labels;
  for (int i = 0; i < 1000; ++i) {
    times.push_back(i);
    labels.push_back(i < 500 && i % 10 == 0 ? 1 : 0);  // frauds only in the older half
  }
  storage.AddUpload(times, labels);
  deps_.storage = &storage;
  training::v1::StartRunRequest request;
  request.add_families("logreg");
  RecordingSink sink;
  EXPECT_THAT(Run(request, &sink),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("validation window")));
  EXPECT_EQ(storage.model_count(), 0u);
}

TEST_F(PipelineTest, TrainUploadIdsRestrictTheTrainingRows) {
  training::v1::StartRunRequest request = Request();
  request.add_train_upload_ids(train_a_);
  RecordingSink sink;
  FRAUD_ASSERT_OK(Run(request, &sink));
  EXPECT_THAT(sink.run.lineage().upload_ids(), ElementsAre(train_a_));
  EXPECT_EQ(sink.run.lineage().train_rows() + sink.run.lineage().validation_rows(), 3000);
  EXPECT_EQ(sink.run.challenger_comparison().rows(), 1500);
}

TEST_F(PipelineTest, MaxTrainRowsTrainsOnTheNewestRowsAndRecordsHowManyWereLeftOut) {
  options_.max_train_rows = 2500;
  RecordingSink sink;
  FRAUD_ASSERT_OK(Run(Request(), &sink));
  // 5,000 training rows stored: upload a (3,000 rows, Time 0..172,792) and the later upload b
  // (2,000 rows from Time 200,000): the newest 2,500 are all of b and a's newest 500.
  EXPECT_EQ(sink.run.lineage().train_rows() + sink.run.lineage().validation_rows(), 2500);
  EXPECT_THAT(sink.run.lineage().upload_ids(), ElementsAre(train_a_, train_b_));
  EXPECT_GT(sink.run.lineage().time_min(), 100000);
  EXPECT_EQ(sink.run.params().at("data.rows_over_limit"), "2500");
  EXPECT_EQ(sink.run.challenger_comparison().rows(), 1500);
}

TEST(BuildCandidatesTest, DefaultsToEveryFamilyWithItsGrid) {
  absl::StatusOr<std::vector<model::CandidateSpec>> specs =
      BuildCandidates(training::v1::StartRunRequest(), PipelineOptions());
  FRAUD_ASSERT_OK(specs);
  EXPECT_EQ(specs->size(), model::DefaultCandidates().size());
  std::set<int> families;
  for (const auto& s : *specs) families.insert(s.family);
  EXPECT_EQ(families.size(), model::Families().size());
}

TEST(BuildCandidatesTest, SmallGridEpochCapsAndFamilyOverrides) {
  training::v1::StartRunRequest r;
  r.add_families("mlp,xgboost");
  (*r.mutable_params())["grid"] = "small";
  (*r.mutable_params())["max_epochs"] = "3";
  (*r.mutable_params())["mlp.hidden"] = "8";
  absl::StatusOr<std::vector<model::CandidateSpec>> specs = BuildCandidates(r, PipelineOptions());
  FRAUD_ASSERT_OK(specs);
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[0].family, common::v1::MODEL_FAMILY_MLP);
  EXPECT_EQ((*specs)[0].params.at("epochs"), "3");
  EXPECT_EQ((*specs)[0].params.at("hidden"), "8");
  EXPECT_EQ((*specs)[1].family, common::v1::MODEL_FAMILY_XGBOOST);
  EXPECT_EQ((*specs)[1].params.at("rounds"), "3");
}

TEST(BuildCandidatesTest, RejectsUnknownFamiliesAndParameters) {
  training::v1::StartRunRequest r;
  r.add_families("svm");
  EXPECT_THAT(BuildCandidates(r, PipelineOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("svm")));
  training::v1::StartRunRequest p;
  (*p.mutable_params())["learning_rate"] = "1";
  EXPECT_THAT(BuildCandidates(p, PipelineOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("learning_rate")));
  training::v1::StartRunRequest f;
  (*f.mutable_params())["holdout_fraction"] = "1.5";
  EXPECT_THAT(ResolveRunParams(f, PipelineOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(BuildCandidatesTest, ResolvedParamsRecordTheRunSettings) {
  training::v1::StartRunRequest r;
  r.add_families("logreg");
  r.add_comparison_upload_ids(4);
  r.set_description("parts 0-1");
  absl::StatusOr<std::map<std::string, std::string>> params =
      ResolveRunParams(r, PipelineOptions());
  FRAUD_ASSERT_OK(params);
  EXPECT_EQ(params->at("families"), "logreg");
  EXPECT_EQ(params->at("comparison_upload_ids"), "4");
  EXPECT_EQ(params->at("validation_fraction"), "0.2");
  EXPECT_EQ(params->count("holdout_fraction"), 0u);
}

}  // namespace
}  // namespace fraud::training
