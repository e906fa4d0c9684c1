// fraudctl's training commands (train, runs, promote, replay) run in-process against the
// training harness: exit codes, --help, output, and the replay's JSON.
#include <fstream>

#include "clients/cli/commands.h"
#include "nlohmann/json.hpp"
#include "services/training/bootstrap.h"
#include "tests/integration/training/training_harness.h"
#include "tests/testing/fraudctl_runner.h"

namespace fraud::training::it {
namespace {

using ::fraud::testing::CliResult;
using ::fraud::testing::RunCli;
using ::testing::HasSubstr;

TEST(FraudctlTrainingHelpTest, EveryTrainingCommandHasHelpAndRejectsBadArguments) {
  for (const std::string command : {"train", "runs", "promote", "replay"}) {
    CliResult help = RunCli({command, "--help"});
    EXPECT_EQ(help.code, cli::kExitOk) << command;
    EXPECT_THAT(help.out, HasSubstr("Usage: fraudctl " + command)) << command;
    CliResult bad = RunCli({command, "--no-such-flag"});
    EXPECT_EQ(bad.code, cli::kExitUsage) << command;
  }
  EXPECT_EQ(RunCli({"promote"}).code, cli::kExitUsage);
  EXPECT_EQ(RunCli({"promote", "vx"}).code, cli::kExitUsage);
  EXPECT_EQ(RunCli({"replay"}).code, cli::kExitUsage);
  EXPECT_EQ(RunCli({"replay", "x.csv", "--boundaries", "3,2,1,0"}).code, cli::kExitUsage);
  EXPECT_EQ(RunCli({"train", "--params", "novalue"}).code, cli::kExitUsage);
}

TEST(FraudctlTrainingHelpTest, UnreachableServiceFailsWithExitOne) {
  CliResult r = RunCli({"runs", "--target", "127.0.0.1:1", "--timeout", "2"});
  EXPECT_EQ(r.code, cli::kExitFailure);
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
}

TEST_F(TrainingIntegrationTest, FraudctlTrainWatchRunsAndPromote) {
  BootstrapOptions b;
  b.rows = 12000;
  ASSERT_THAT(StoreInitialData(*storage_api_, b), IsOk());
  const std::string target = training_server_->target();

  // Without the token: refused.
  CliResult refused = RunCli({"train", "--target", target, "--token", ""});
  EXPECT_EQ(refused.code, cli::kExitFailure);
  EXPECT_THAT(refused.err, HasSubstr("UNAUTHENTICATED"));

  CliResult train = RunCli({"train", "--target", target, "--token", kAdminToken, "--families",
                         "logreg", "--params", "grid=small,max_epochs=3", "--watch"});
  ASSERT_EQ(train.code, cli::kExitOk) << train.err << train.out;
  EXPECT_THAT(train.out, HasSubstr("run 1"));
  EXPECT_THAT(train.out, HasSubstr("succeeded"));
  EXPECT_THAT(train.out, HasSubstr("version v1 (promoted)"));
  EXPECT_EQ(ServingVersion(), 1);

  CliResult list = RunCli({"runs", "--target", target});
  ASSERT_EQ(list.code, cli::kExitOk) << list.err;
  EXPECT_THAT(list.out, HasSubstr("succeeded"));
  EXPECT_THAT(list.out, HasSubstr("v1"));
  CliResult detail = RunCli({"runs", "1", "--target", target});
  ASSERT_EQ(detail.code, cli::kExitOk) << detail.err;
  EXPECT_THAT(detail.out, HasSubstr("logreg"));
  EXPECT_THAT(detail.out, HasSubstr("val AUPRC"));
  CliResult json = RunCli({"runs", "1", "--json", "--target", target});
  ASSERT_EQ(json.code, cli::kExitOk);
  EXPECT_EQ(nlohmann::json::parse(json.out)["status"], "RUN_STATUS_SUCCEEDED");

  CliResult second = RunCli({"train", "--target", target, "--token", kAdminToken, "--families",
                          "xgboost", "--params", "grid=small,max_epochs=3", "--no-promote",
                          "--watch"});
  ASSERT_EQ(second.code, cli::kExitOk) << second.err;
  EXPECT_EQ(ChampionVersion(), 1);
  CliResult promote = RunCli({"promote", "v2", "--reason", "cli test", "--target", target, "--token",
                           kAdminToken});
  EXPECT_EQ(promote.code, cli::kExitOk) << promote.err;
  EXPECT_EQ(ChampionVersion(), 2);
  EXPECT_EQ(ServingVersion(), 2);
  CliResult missing = RunCli({"promote", "99", "--target", target, "--token", kAdminToken});
  EXPECT_EQ(missing.code, cli::kExitFailure);
  EXPECT_THAT(missing.err, HasSubstr("NOT_FOUND"));
}

TEST_F(TrainingIntegrationTest, FraudctlReplayPrintsTheTableAndWritesJson) {
  const std::string csv = WriteSyntheticCsv(root_ + "/small.csv", 16000, 9, 0.015);
  const std::string json_path = root_ + "/replay.json";
  CliResult r = RunCli({"replay", csv, "--initial-rows", "8000", "--target",
                     training_server_->target(), "--ingest-target", ingest_server_->target(),
                     "--token", kAdminToken, "--families", "logreg", "--params",
                     "grid=small,max_epochs=3", "--weight-to-rate", "0.001727", "--bootstrap",
                     "20", "--json", json_path, "--work-dir", root_ + "/parts"});
  ASSERT_EQ(r.code, cli::kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("AUPRC on P4"));
  EXPECT_THAT(r.out, HasSubstr("initial+P1+P2+P3"));
  EXPECT_THAT(r.err, HasSubstr("uploaded P1"));
  std::ifstream in(json_path);
  nlohmann::json j = nlohmann::json::parse(in);
  ASSERT_EQ(j["versions"].size(), 4u);
  EXPECT_EQ(j["comparison"]["rows"], 2000);
  for (const auto& v : j["versions"]) {
    EXPECT_GT(v["metrics"]["auprc"].get<double>(), 0.0);
    EXPECT_TRUE(v.contains("weighted_metrics"));
  }
  // A file that cannot be split fails with exit code 1.
  CliResult bad = RunCli({"replay", csv, "--initial-rows", "20000", "--target",
                       training_server_->target(), "--ingest-target", ingest_server_->target()});
  EXPECT_EQ(bad.code, cli::kExitFailure);
  EXPECT_THAT(bad.err, HasSubstr("--boundaries"));
}

TEST_F(TrainingIntegrationTest, FraudctlReplayWithLabelDelaySendsLabelsAndPrintsRealisedPrecision) {
  const std::string csv = WriteSyntheticCsv(root_ + "/small.csv", 16000, 5, 0.015);
  const std::string json_path = root_ + "/replay.json";
  const std::vector<std::string> common = {
      "replay", csv, "--initial-rows", "8000", "--target", training_server_->target(),
      "--ingest-target", ingest_server_->target(), "--storage-target", storage_->target(),
      "--token", kAdminToken, "--families", "logreg", "--params", "grid=small,max_epochs=3",
      "--bootstrap", "20", "--work-dir", root_ + "/parts"};
  // Usage errors first (nothing is uploaded).
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = common;
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCli(args);
  };
  CliResult no_delay = with({"--review-budget", "5"});
  EXPECT_EQ(no_delay.code, cli::kExitUsage);
  EXPECT_THAT(no_delay.err, HasSubstr("--review-budget needs --label-delay-days"));
  CliResult negative = with({"--label-delay-days", "-1"});
  EXPECT_EQ(negative.code, cli::kExitUsage);
  EXPECT_THAT(negative.err, HasSubstr("--label-delay-days must be >= 0"));
  CliResult budget = with({"--label-delay-days", "1", "--review-budget", "-3"});
  EXPECT_EQ(budget.code, cli::kExitUsage);

  CliResult r = with({"--label-delay-days", "0.2", "--review-budget", "10", "--json", json_path});
  ASSERT_EQ(r.code, cli::kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("uploaded without labels"));
  EXPECT_THAT(r.out, HasSubstr("precision@10"));
  EXPECT_THAT(r.err, HasSubstr("labels known after P1"));
  std::ifstream in(json_path);
  nlohmann::json j = nlohmann::json::parse(in);
  ASSERT_TRUE(j.contains("label_delay"));
  EXPECT_EQ(j["label_delay"]["review_budget"], 10);
  ASSERT_EQ(j["label_delay"]["steps"].size(), 3u);
  EXPECT_FALSE(j["label_delay"]["realised"].empty());
  for (const auto& m : j["label_delay"]["realised"]) {
    EXPECT_EQ(m["rows_labelled"], m["rows_scored"]);  // every label arrived at the end
    EXPECT_LE(m["top_k_labelled"].get<int64_t>(), 10);
  }
}

}  // namespace
}  // namespace fraud::training::it
