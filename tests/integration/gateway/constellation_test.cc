// End to end through the gateway's REST API with the real services in-process: storage on a real
// PostgreSQL (PgFixture), the real inference handlers serving a deterministic logistic model, the
// real ingest service, and the gateway. Checks what lands in the database, not only the answers.
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/gateway/gateway_server.h"
#include "services/inference/inference_service.h"
#include "services/inference/model_holder.h"
#include "services/inference/predictor.h"
#include "services/ingest/ingest_service.h"
#include "tests/testing/in_process_server.h"
#include "tests/testing/in_process_storage.h"
#include "tests/testing/logistic_model.h"
#include "tests/testing/loopback.h"
#include "tests/testing/pg_fixture.h"
#include "tests/testing/reference_metrics.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/synthetic_csv.h"

namespace fraud::gateway {
namespace {

using ::fraud::testing::ConnectLoopback;
using ::fraud::testing::InProcessServer;
using ::fraud::testing::InProcessStorage;
using ::fraud::testing::IsOk;
using ::fraud::testing::LoadedLogisticModel;
using ::fraud::testing::NaiveAveragePrecision;
using ::fraud::testing::ReadStoredPredictions;
using ::fraud::testing::ReplaceLine;
using ::fraud::testing::StoredPredictions;
using ::fraud::testing::SyntheticCsv;
using ::testing::HasSubstr;
using json = nlohmann::json;

class ConstellationTest : public fraud::testing::PgFixture {
 protected:
  void SetUp() override {
    PgFixture::SetUp();
    if (IsSkipped() || HasFailure()) return;
    absl::StatusOr<std::unique_ptr<InProcessStorage>> storage = InProcessStorage::Start(
        {conninfo(), /*pool_size=*/16, /*server_name=*/"storage_e2e", /*max_threads=*/24});
    ASSERT_THAT(storage, IsOk());
    storage_ = std::move(*storage);

    common::v1::ModelManifest manifest;
    manifest.set_version(3);
    manifest.set_threshold(0.35);
    holder_.Swap(LoadedLogisticModel(manifest));
    inference::BatcherOptions batching;
    batching.enabled = false;
    predictor_ = std::make_unique<inference::Predictor>(&holder_, batching);
    inference_ =
        std::make_unique<inference::InferenceService>(predictor_.get(), nullptr, &holder_, "");
    inference_server_ = std::make_unique<InProcessServer>(
        std::vector<grpc::Service*>{inference_.get()}, "inference_e2e", 24);
    ASSERT_THAT(inference_server_->Start(), IsOk());

    ingest::IngestOptions io;
    io.batch_rows = 1000;
    ingest_ = std::make_unique<ingest::IngestService>(storage_->channel(),
                                                      inference_server_->channel(), io);
    ingest_server_ = std::make_unique<InProcessServer>(std::vector<grpc::Service*>{ingest_.get()},
                                                       "ingest_e2e", 24);
    ASSERT_THAT(ingest_server_->Start(), IsOk());
    StartGateway("");
  }

  void StartGateway(const std::string& upload_token) {
    if (gateway_) gateway_->Shutdown(absl::Seconds(1));
    GatewayOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.rate_limit_rps = 0;
    o.upload_token = upload_token;
    Backends b;
    b.ingest = ingest_server_->channel();
    b.storage = storage_->channel();
    b.inference = inference_server_->channel();
    gateway_ = std::make_unique<GatewayServer>(b, o);
    ASSERT_THAT(gateway_->Start(), IsOk());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", gateway_->port());
    client_->set_read_timeout(120, 0);
  }

  void TearDown() override {
    if (gateway_) gateway_->Shutdown(absl::Seconds(1));
    for (auto* s : {&ingest_server_, &inference_server_}) {
      if (*s) (*s)->Shutdown();
    }
    if (storage_) storage_->Shutdown();
    PgFixture::TearDown();
  }

  httplib::Result Upload(const std::string& csv, const std::string& query = "",
                         const httplib::Headers& headers = {}) {
    return client_->Post(absl::StrCat("/api/v1/uploads", query), headers, csv, "text/csv");
  }

  int64_t Count(const std::string& sql) { return std::stoll(QueryScalar(sql)); }
  std::string DbState() {
    return absl::StrCat(Count("SELECT count(*) FROM uploads"), "/",
                        Count("SELECT count(*) FROM transactions"), "/",
                        Count("SELECT count(*) FROM predictions"));
  }
  void WaitForStorageIdle() {
    for (int i = 0; i < 300 && storage_->pool().in_use() > 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  }

  std::unique_ptr<InProcessStorage> storage_;
  inference::ModelHolder holder_;
  std::unique_ptr<inference::Predictor> predictor_;
  std::unique_ptr<inference::InferenceService> inference_;
  std::unique_ptr<InProcessServer> inference_server_;
  std::unique_ptr<ingest::IngestService> ingest_;
  std::unique_ptr<InProcessServer> ingest_server_;
  std::unique_ptr<GatewayServer> gateway_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(ConstellationTest, LabelledUploadIsStoredScoredAndItsMetricsMatchTheStoredScores) {
  const std::string csv = SyntheticCsv(5000, 11);
  auto r = Upload(csv, "?file_name=labelled.csv");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json s = json::parse(r->body);
  const int64_t id = std::stoll(s["uploadId"].get<std::string>());
  ASSERT_GT(id, 0);
  EXPECT_EQ(s["rowsAccepted"], "5000");
  EXPECT_EQ(s["rowsRejected"], "0");
  EXPECT_TRUE(s["scored"].get<bool>());
  EXPECT_EQ(s["modelVersion"], "3");
  EXPECT_EQ(s["fileName"], "labelled.csv");
  EXPECT_EQ(Count(absl::StrCat("SELECT count(*) FROM transactions WHERE upload_id = ", id)), 5000);
  EXPECT_EQ(Count(absl::StrCat("SELECT count(*) FROM predictions WHERE upload_id = ", id)), 5000);

  // Metrics recomputed independently from what the database holds.
  const StoredPredictions stored = ReadStoredPredictions(conninfo(), id);
  ASSERT_EQ(stored.scores.size(), 5000u);
  EXPECT_NEAR(s["metrics"]["auprc"].get<double>(),
              NaiveAveragePrecision(stored.scores, stored.labels), 1e-9);
  const int64_t flagged = std::count(stored.decisions.begin(), stored.decisions.end(), true);
  EXPECT_EQ(s["predictedFrauds"], std::to_string(flagged));
  int64_t frauds = 0;
  for (int32_t y : stored.labels) frauds += y;
  EXPECT_EQ(s["metrics"]["positives"], std::to_string(frauds));

  // The same upload through the read routes.
  r = client_->Get(absl::StrCat("/api/v1/uploads/", id));
  ASSERT_EQ(r->status, 200);
  json u = json::parse(r->body)["upload"];
  EXPECT_EQ(u["rows"], "5000");
  EXPECT_EQ(u["frauds"], std::to_string(frauds));
  r = client_->Get(absl::StrCat("/api/v1/uploads/", id, "/predictions?order=score&page_size=1"));
  ASSERT_EQ(r->status, 200) << r->body;
  json p = json::parse(r->body);
  EXPECT_FLOAT_EQ(p["predictions"][0]["score"].get<float>(),
                  *std::max_element(stored.scores.begin(), stored.scores.end()));
  r = client_->Get("/api/v1/monitoring");
  ASSERT_EQ(r->status, 200);
  json mon = json::parse(r->body);
  ASSERT_FALSE(mon["uploads"].empty());
  EXPECT_EQ(mon["uploads"][0]["predictedFrauds"], std::to_string(flagged));
}

TEST_F(ConstellationTest, UnlabelledUploadIsScoredWithoutMetrics) {
  auto r = Upload(SyntheticCsv(800, 12, /*labels=*/false));
  ASSERT_EQ(r->status, 200) << r->body;
  json s = json::parse(r->body);
  const std::string id = s["uploadId"];
  EXPECT_TRUE(s["scored"].get<bool>());
  EXPECT_FALSE(s.contains("metrics"));
  EXPECT_EQ(
      Count("SELECT count(*) FROM transactions WHERE upload_id = " + id + " AND class IS NULL"),
      800);
  EXPECT_EQ(Count("SELECT count(*) FROM predictions WHERE upload_id = " + id), 800);
}

TEST_F(ConstellationTest, SameFileTwiceIsStoredOnce) {
  const std::string csv = SyntheticCsv(300, 13);
  auto first = Upload(csv);
  ASSERT_EQ(first->status, 200) << first->body;
  const std::string state = DbState();
  auto second = Upload(csv);
  ASSERT_EQ(second->status, 200) << second->body;
  EXPECT_EQ(json::parse(second->body)["duplicateOf"], json::parse(first->body)["uploadId"]);
  EXPECT_EQ(DbState(), state);
}

TEST_F(ConstellationTest, StrictRejectsABadRowWithItsLineLenientSkipsIt) {
  const std::string csv = ReplaceLine(SyntheticCsv(200, 14), 10, "1,2,3\n");
  const std::string before = DbState();
  auto r = Upload(csv, "?mode=strict");
  ASSERT_EQ(r->status, 400) << r->body;
  json b = json::parse(r->body);
  EXPECT_EQ(b["code"], "INVALID_ARGUMENT");
  ASSERT_TRUE(b["details"]["summary"]["errors"].is_array()) << r->body;
  EXPECT_EQ(b["details"]["summary"]["errors"][0]["line"], "10");
  EXPECT_EQ(DbState(), before);
  r = Upload(csv, "?mode=lenient");
  ASSERT_EQ(r->status, 200) << r->body;
  json s = json::parse(r->body);
  EXPECT_EQ(s["rowsAccepted"], "199");
  EXPECT_EQ(s["rowsRejected"], "1");
  EXPECT_EQ(Count("SELECT count(*) FROM transactions WHERE upload_id = " +
                  s["uploadId"].get<std::string>()),
            199);
}

TEST_F(ConstellationTest, MalformedFilesAre400WithASpecificMessageAndChangeNothing) {
  const std::string good = SyntheticCsv(50, 15);
  struct Case {
    std::string name;
    std::string csv;
    std::string expect;  // substring of message or of the first error
  };
  std::vector<std::string> lines = absl::StrSplit(good, '\n');
  std::vector<std::string> fields = absl::StrSplit(lines[2], ',');
  fields[29] = "abc";
  const std::string bad_amount = ReplaceLine(good, 3, absl::StrJoin(fields, ",") + "\n");
  const std::string extra_column = ReplaceLine(good, 4, lines[3] + ",7\n");
  const std::vector<Case> cases = {{"non-numeric Amount", bad_amount, "Amount"},
                                   {"wrong header", "Foo,Bar\n1,2\n", "header"},
                                   {"empty file", "", "INVALID_ARGUMENT"},
                                   {"extra column", extra_column, "\"line\":\"4\""}};
  for (const Case& k : cases) {
    const std::string before = DbState();
    auto r = Upload(k.csv);
    ASSERT_TRUE(r) << k.name;
    EXPECT_EQ(r->status, 400) << k.name << ": " << r->body;
    EXPECT_THAT(r->body, HasSubstr(k.expect)) << k.name;
    EXPECT_EQ(json::parse(r->body)["code"], "INVALID_ARGUMENT") << k.name;
    EXPECT_EQ(DbState(), before) << k.name;
  }
}

TEST_F(ConstellationTest, UploadCutOffMidStreamLeavesNothing) {
  const std::string csv = SyntheticCsv(20000, 16);
  const std::string before = DbState();
  const int fd = ConnectLoopback(gateway_->port());
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const std::string head = absl::StrCat(
      "POST /api/v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: ",
      csv.size(), "\r\n\r\n");
  ASSERT_GT(::send(fd, head.data(), head.size(), 0), 0);
  const size_t half = csv.size() / 2;
  size_t off = 0;
  while (off < half) {
    const ssize_t n = ::send(fd, csv.data() + off, half - off, 0);
    ASSERT_GT(n, 0);
    off += static_cast<size_t>(n);
  }
  absl::SleepFor(absl::Milliseconds(300));
  ::close(fd);
  absl::SleepFor(absl::Milliseconds(300));
  WaitForStorageIdle();
  EXPECT_EQ(DbState(), before);
  // And the whole file afterwards goes through.
  auto r = Upload(csv);
  EXPECT_EQ(r->status, 200) << r->body;
}

TEST_F(ConstellationTest, UploadTokenGuardsTheDatabase) {
  StartGateway("tok-e2e");
  const std::string csv = SyntheticCsv(20, 17);
  const std::string before = DbState();
  EXPECT_EQ(Upload(csv)->status, 401);
  EXPECT_EQ(Upload(csv, "", {{"Authorization", "Bearer nope"}})->status, 401);
  EXPECT_EQ(DbState(), before);
  auto r = Upload(csv, "", {{"Authorization", "Bearer tok-e2e"}});
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Count("SELECT count(*) FROM transactions"), 20);
}

TEST_F(ConstellationTest, MultipartUploadAndValidateOnly) {
  const std::string csv = SyntheticCsv(100, 18);
  httplib::MultipartFormDataItems items = {{"file", csv, "browser.csv", "text/csv"}};
  const std::string before = DbState();
  auto r = client_->Post("/api/v1/uploads:validate", items);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["rowsAccepted"], "100");
  EXPECT_EQ(DbState(), before);
  r = client_->Post("/api/v1/uploads", items);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["fileName"], "browser.csv");
  EXPECT_EQ(Count("SELECT count(*) FROM uploads WHERE file_name = 'browser.csv'"), 1);
}

}  // namespace
}  // namespace fraud::gateway
