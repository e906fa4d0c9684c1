// fraudctl's gRPC commands run in-process (RunFraudctl with string streams) against the real
// storage, inference handlers and ingest of the ingest harness.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "clients/cli/commands.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "tests/integration/ingest/ingest_harness.h"
#include "tests/testing/fraudctl_runner.h"
#include "tests/testing/process_constellation.h"

namespace fraud::ingest::it {
namespace {

using ::fraud::testing::CliResult;
using ::fraud::testing::RunCli;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

int CountLines(const std::string& s) {
  return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
}

class FraudctlRpcTest : public IngestServiceTest {
 protected:
  std::string WriteFile(const std::string& name, const std::string& data) {
    const std::string path = ::testing::TempDir() + "/" + schema() + "_" + name;
    std::ofstream f(path, std::ios::binary);
    f << data;
    paths_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const auto& p : paths_) std::remove(p.c_str());
    IngestServiceTest::TearDown();
  }
  std::string ingest() const { return ingest_server_->target(); }

  std::vector<std::string> paths_;
};

TEST_F(FraudctlRpcTest, UploadPrintsTheSummaryAndStoresTheFile) {
  ServeModel();
  const std::string path = WriteFile("p1.csv", SyntheticCsv(5000, 31));
  CliResult r = RunCli({"upload", path, "--target", ingest()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(r.out, HasSubstr("p1.csv: stored as upload #1 (5,000 rows, strict"));
  EXPECT_THAT(r.out, HasSubstr("scored by model v3"));
  EXPECT_THAT(r.out, HasSubstr("Metrics on 5,000 labelled rows"));
  EXPECT_THAT(r.out, HasSubstr("AUPRC 0."));
  EXPECT_THAT(r.out, HasSubstr("Most suspicious rows:"));
  EXPECT_THAT(r.out, HasSubstr("Data report:"));
  EXPECT_THAT(r.out, HasSubstr("0 of 29 features flagged"));
  EXPECT_EQ(Count("transactions"), 5000);
  EXPECT_EQ(QueryScalar("SELECT file_name FROM uploads"), schema() + "_p1.csv");

  // The same file again: recognised, nothing new stored.
  CliResult again = RunCli({"upload", path, "--target", ingest()});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("already uploaded as upload #1"));
  EXPECT_EQ(Count("uploads"), 1);
}

TEST_F(FraudctlRpcTest, UploadJsonIsTheSummaryInProtoJson) {
  ServeModel();
  const std::string path = WriteFile("p2.csv", SyntheticCsv(1200, 32));
  CliResult r = RunCli({"upload", path, "--json", "--target", ingest(), "--name", "named.csv"});
  ASSERT_EQ(r.code, 0) << r.err;
  UploadSummary summary;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &summary).ok()) << r.out;
  EXPECT_EQ(summary.rows_accepted(), 1200);
  EXPECT_EQ(summary.file_name(), "named.csv");
  EXPECT_TRUE(summary.has_metrics());
  EXPECT_EQ(summary.top_suspicious_size(), 20);
}

TEST_F(FraudctlRpcTest, ABadFileFailsWithOneErrorLineAndAnErrorsTable) {
  ServeModel();
  const std::string path = WriteFile("bad.csv", Header() + Row() + Row(29, "12,5"));
  CliResult r = RunCli({"upload", path, "--target", ingest()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(CountLines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, StartsWith("fraudctl upload: INVALID_ARGUMENT: line 3, field 32: too many "
                                "fields: expected 31, got 32"));
  EXPECT_THAT(r.out, HasSubstr("rejected, nothing stored"));
  EXPECT_THAT(r.out, HasSubstr("Errors:"));
  EXPECT_THAT(r.out, HasSubstr("too many fields"));
  EXPECT_EQ(Count("uploads"), 0);

  // With --json the attached summary is printed as JSON.
  CliResult j = RunCli({"upload", path, "--json", "--target", ingest()});
  EXPECT_EQ(j.code, 1);
  UploadSummary details;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(j.out, &details).ok()) << j.out;
  ASSERT_EQ(details.errors_size(), 1);
  EXPECT_EQ(details.errors(0).line(), 3);
}

TEST_F(FraudctlRpcTest, LenientUploadStoresGoodRowsAndListsTheBadOnes) {
  ServeModel();
  const std::string path =
      WriteFile("mixed.csv", Header() + Row() + Row(30, "3") + Row(0, "200") + Row(5, "x"));
  CliResult r = RunCli({"upload", path, "--lenient", "--target", ingest()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("2 accepted, 2 rejected"));
  EXPECT_THAT(r.out, HasSubstr("Class must be 0 or 1"));
  EXPECT_THAT(r.out, HasSubstr("not a number: 'x'"));
  EXPECT_EQ(Count("transactions"), 2);
}

TEST_F(FraudctlRpcTest, ValidateExitsZeroOnlyForAValidFileAndStoresNothing) {
  const std::string good = WriteFile("good.csv", SyntheticCsv(400, 33));
  CliResult ok = RunCli({"validate", good, "--target", ingest()});
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("valid"));
  const std::string bad = WriteFile("bad.csv", Header() + Row(1, "nan") + Row(2, "-") + Row());
  CliResult strict = RunCli({"validate", bad, "--target", ingest()});
  EXPECT_EQ(strict.code, 1);
  EXPECT_THAT(strict.err, HasSubstr("line 2, column V1 (2): not a finite number"));
  CliResult lenient = RunCli({"validate", bad, "--lenient", "--target", ingest()});
  EXPECT_EQ(lenient.code, 1);
  EXPECT_EQ(lenient.err, "fraudctl validate: 2 invalid rows in " + bad + "\n");
  EXPECT_THAT(lenient.out, HasSubstr("not a number: '-'"));
  EXPECT_EQ(Count("uploads"), 0);
}

TEST_F(FraudctlRpcTest, MissingFilesAndDeadTargetsFailWithOneLine) {
  CliResult missing = RunCli({"upload", "/nonexistent/x.csv", "--target", ingest()});
  EXPECT_EQ(missing.code, 1);
  EXPECT_EQ(missing.err, "fraudctl upload: cannot open /nonexistent/x.csv\n");
  const std::string path = WriteFile("p.csv", SyntheticCsv(10, 34));
  const std::string dead = absl::StrCat("127.0.0.1:", ::fraud::testing::FreePort());
  CliResult down = RunCli({"upload", path, "--target", dead});
  EXPECT_EQ(down.code, 1);
  EXPECT_EQ(CountLines(down.err), 1);
  EXPECT_THAT(down.err, StartsWith("fraudctl upload: UNAVAILABLE: "));
  EXPECT_THAT(down.err, HasSubstr("(target " + dead + ")"));
}

TEST_F(FraudctlRpcTest, ScoreSendsFeaturesOnlyAndPrintsOneLinePerRow) {
  ServeModel();
  std::vector<double> row(kF);
  for (int i = 0; i < kF; ++i) row[i] = 0.5 * i - 3;
  nlohmann::json rows = nlohmann::json::array({row, row});
  rows[1][14] = -6.0;  // a fraud-like V14
  CliResult r = RunCli(
      {"score", "--rows-json", rows.dump(), "--target", inference_server_->target(), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["modelVersion"], kModelVersion);
  ASSERT_EQ(out["rows"].size(), 2u);
  std::vector<double> second = rows[1].get<std::vector<double>>();
  EXPECT_FLOAT_EQ(out["rows"][0]["score"].get<float>(), static_cast<float>(Logistic(row.data())));
  EXPECT_FLOAT_EQ(out["rows"][1]["score"].get<float>(),
                  static_cast<float>(Logistic(second.data())));
  EXPECT_EQ(out["rows"][1]["fraud"].get<bool>(), Logistic(second.data()) >= kThreshold);

  const std::string path = WriteFile("s.csv", SyntheticCsv(300, 35));
  CliResult csv = RunCli(
      {"score", "--csv", path, "--target", inference_server_->target(), "--batch-rows", "64"});
  ASSERT_EQ(csv.code, 0) << csv.err;
  EXPECT_THAT(csv.out, HasSubstr("model v3, threshold 0.3500"));
  EXPECT_THAT(csv.out, HasSubstr("300 rows scored"));
  EXPECT_EQ(CountLines(csv.out), 300 + 3);
  EXPECT_EQ(recording_->requests_with_labels.load(), 0);

  CliResult bad = RunCli({"score", "--rows-json", "[[1,2,3]]"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, StartsWith("score: --rows-json row 1 must be an array of 30 numbers"));
}

TEST_F(FraudctlRpcTest, ScoreTransactionIdsAreValidatedAndSentWithTheRows) {
  ServeModel();
  const std::string rows =
      nlohmann::json::array({std::vector<double>(kF, 0.5), std::vector<double>(kF, 1.0)}).dump();
  CliResult no_rows = RunCli({"score", "--csv", "x.csv", "--transaction-id", "a"});
  EXPECT_EQ(no_rows.code, 2);
  EXPECT_THAT(no_rows.err, HasSubstr("--transaction-id needs --rows-json"));
  CliResult count = RunCli({"score", "--rows-json", rows, "--transaction-id", "a"});
  EXPECT_EQ(count.code, 2);
  EXPECT_THAT(count.err, HasSubstr("--transaction-id has 1 ids for 2 rows"));
  // This harness's inference has no storage: the ids reach it, and it refuses to score rows it
  // cannot record (the call fails rather than dropping them).
  CliResult sent = RunCli({"score", "--rows-json", rows, "--transaction-id", "a,b", "--target",
                           inference_server_->target()});
  EXPECT_EQ(sent.code, 1);
  EXPECT_THAT(sent.err, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(sent.err, HasSubstr("no storage to record scores in"));
}

TEST_F(FraudctlRpcTest, ScoreExplainPrintsTheTopReasonsWithSignedContributions) {
  ServeModel();
  // The served model's margin is -4 - 0.8 V14 - 0.5 V12 - 0.4 V10 + 0.3 V4 (logistic_model.cc).
  std::vector<double> row(kF, 0.0);
  row[14] = -6.0;  // +4.8
  row[12] = 2.0;   // -1.0
  row[4] = 1.0;    // +0.3
  const std::string rows = nlohmann::json::array({row}).dump();
  CliResult r = RunCli({"score", "--rows-json", rows, "--target", inference_server_->target(),
                        "--explain", "--top-k", "2", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json reasons = nlohmann::json::parse(r.out)["rows"][0]["reasons"];
  ASSERT_EQ(reasons["top"].size(), 2u);
  EXPECT_EQ(reasons["top"][0]["feature"], "V14");
  EXPECT_NEAR(reasons["top"][0]["contribution"].get<double>(), 4.8, 1e-9);
  EXPECT_EQ(reasons["top"][1]["feature"], "V12");
  EXPECT_NEAR(reasons["top"][1]["contribution"].get<double>(), -1.0, 1e-9);
  EXPECT_NEAR(reasons["bias"].get<double>(), -4.0, 1e-9);
  EXPECT_NEAR(reasons["rest"].get<double>(), 0.3, 1e-9);
  EXPECT_NEAR(reasons["margin"].get<double>(), 0.1, 1e-9);

  CliResult table =
      RunCli({"score", "--rows-json", rows, "--target", inference_server_->target(), "--explain"});
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("+4.8000  V14 = -6"));
  EXPECT_THAT(table.out, HasSubstr("-1.0000  V12 = 2"));
  EXPECT_THAT(table.out, HasSubstr("+0.3000  V4 = 1"));

  CliResult bad = RunCli({"score", "--rows-json", rows, "--explain", "--top-k", "31"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--top-k must be in 1..30"));
  EXPECT_EQ(RunCli({"score", "--rows-json", rows, "--top-k", "3"}).code, 2);
}

TEST_F(FraudctlRpcTest, ModelsListsTheRegistryAndMarksTheChampion) {
  auto stub = storage::v1::StorageService::NewStub(storage_->channel());
  CliResult empty = RunCli({"models", "--target", storage_->target()});
  ASSERT_EQ(empty.code, 0) << empty.err;
  EXPECT_THAT(empty.out, HasSubstr("no model registered yet"));
  for (int64_t version : {1, 2}) {
    grpc::ClientContext ctx;
    storage::v1::RegisterModelRequest req;
    storage::v1::ModelVersion* m = req.mutable_model();
    m->set_version(version);
    m->set_family(common::v1::MODEL_FAMILY_XGBOOST);
    m->mutable_manifest()->set_version(version);
    m->mutable_manifest()->set_family(common::v1::MODEL_FAMILY_XGBOOST);
    m->mutable_manifest()->set_threshold(0.25 * version);
    m->mutable_manifest()->mutable_validation_metrics()->set_rows(100);
    m->mutable_manifest()->mutable_validation_metrics()->set_auprc(0.5 + 0.1 * version);
    m->set_artifact_uri(absl::StrCat("models/", version));
    storage::v1::RegisterModelResponse resp;
    const grpc::Status s = stub->RegisterModel(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    storage::v1::SetChampionRequest req;
    req.set_version(2);
    req.set_reason("test");
    storage::v1::SetChampionResponse resp;
    const grpc::Status s = stub->SetChampion(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  CliResult r = RunCli({"models", "--target", storage_->target()});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n');
  ASSERT_GE(lines.size(), 4u) << r.out;
  EXPECT_THAT(lines[1], StartsWith("  1 "));
  EXPECT_THAT(lines[1], HasSubstr("xgboost"));
  EXPECT_THAT(lines[1], HasSubstr("0.6000"));
  EXPECT_THAT(lines[2], StartsWith("* 2 "));
  EXPECT_THAT(lines[2], HasSubstr("0.7000"));
  EXPECT_THAT(r.out, HasSubstr("champion: v2"));
  CliResult j = RunCli({"models", "--json", "--target", storage_->target()});
  ASSERT_EQ(j.code, 0) << j.err;
  nlohmann::json doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["championVersion"], 2);
  EXPECT_EQ(doc["registry"]["models"].size(), 2u);
}

TEST_F(FraudctlRpcTest, HealthAndRpcListTalkToEveryService) {
  CliResult h = RunCli({"health", "--target", ingest()});
  ASSERT_EQ(h.code, 0) << h.err;
  EXPECT_EQ(h.out, ingest() + " SERVING\n");
  const std::string dead = absl::StrCat("127.0.0.1:", ::fraud::testing::FreePort());
  CliResult d = RunCli({"health", "--target", dead, "--timeout", "2"});
  EXPECT_EQ(d.code, 1);
  EXPECT_EQ(d.err, "fraudctl health: 1 of 1 service is not serving\n");

  ::setenv("FRAUD_INGEST_TARGET", ingest().c_str(), 1);
  ::setenv("FRAUD_STORAGE_TARGET", storage_->target().c_str(), 1);
  ::setenv("FRAUD_INFERENCE_TARGET", inference_server_->target().c_str(), 1);
  ::setenv("FRAUD_TRAINING_TARGET", dead.c_str(), 1);
  CliResult all = RunCli({"health", "--all", "--timeout", "2"});
  ::unsetenv("FRAUD_INGEST_TARGET");
  ::unsetenv("FRAUD_STORAGE_TARGET");
  ::unsetenv("FRAUD_INFERENCE_TARGET");
  ::unsetenv("FRAUD_TRAINING_TARGET");
  EXPECT_EQ(all.code, 1);
  EXPECT_EQ(CountLines(all.out), 4);
  EXPECT_THAT(all.out, HasSubstr("storage"));
  EXPECT_THAT(all.out, HasSubstr("training   " + dead));
  EXPECT_EQ(all.err, "fraudctl health: 1 of 4 services are not serving\n");

  CliResult list = RunCli({"rpc", "list", "--target", ingest()});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_EQ(list.out,
            "fraud.ingest.v1.IngestService\ngrpc.health.v1.Health\n"
            "grpc.reflection.v1alpha.ServerReflection\n");
  CliResult storage_list = RunCli({"rpc", "list", "--target", storage_->target()});
  EXPECT_THAT(storage_list.out, HasSubstr("fraud.storage.v1.StorageService"));
  EXPECT_EQ(RunCli({"rpc", "describe", "--target", ingest()}).code, 2);
}

TEST(FraudctlRpcHelpTest, EveryRpcCommandHasHelpAndRejectsUnknownFlags) {
  for (const std::string command : {"upload", "validate", "score", "models", "health", "rpc"}) {
    SCOPED_TRACE(command);
    CliResult help = RunCli({command, "--help"});
    EXPECT_EQ(help.code, 0);
    EXPECT_THAT(help.out, HasSubstr("Usage: fraudctl " + command));
    EXPECT_THAT(help.out, HasSubstr("--target"));
    CliResult bad = RunCli({command, "--no-such-flag"});
    EXPECT_EQ(bad.code, 2);
    EXPECT_THAT(bad.err, HasSubstr("unknown flag --no-such-flag"));
  }
  // A token from the environment never shows in the help text.
  ::setenv("FRAUD_UPLOAD_TOKEN", "do-not-print", 1);
  EXPECT_THAT(RunCli({"upload", "--help"}).out, Not(HasSubstr("do-not-print")));
  ::unsetenv("FRAUD_UPLOAD_TOKEN");
}

}  // namespace
}  // namespace fraud::ingest::it
