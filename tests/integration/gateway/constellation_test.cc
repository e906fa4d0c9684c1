// End to end through the gateway's REST API with the real services in-process: storage on a real
// PostgreSQL (PgFixture), the real inference handlers serving a deterministic logistic model, the
// real ingest service, and the gateway. Checks what lands in the database, not only the answers.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/common/csv/synthetic_generator.h"
#include "services/gateway/gateway_server.h"
#include "services/inference/inference_service.h"
#include "services/inference/loaded_model.h"
#include "services/inference/model_holder.h"
#include "services/inference/predictor.h"
#include "services/ingest/ingest_service.h"
#include "services/storage/migrations.h"
#include "services/storage/pg_pool.h"
#include "services/storage/pg_store.h"
#include "services/storage/storage_service.h"
#include "tests/testing/in_process_server.h"
#include "tests/testing/pg_fixture.h"
#include "tests/testing/status_matchers.h"

namespace fraud::gateway {
namespace {

using ::fraud::testing::InProcessServer;
using ::fraud::testing::IsOk;
using ::testing::HasSubstr;
using json = nlohmann::json;

constexpr int kF = csv::kNumFeatures;

double Logistic(const double* f) {
  const double z = -0.8 * f[14] - 0.5 * f[12] - 0.4 * f[10] + 0.3 * f[4] - 4.0;
  return 1.0 / (1.0 + std::exp(-z));
}

class LogisticModel final : public inference::ScoringModel {
 public:
  explicit LogisticModel(common::v1::ModelManifest m) : manifest_(std::move(m)) {}
  absl::Status Score(const double* features, size_t rows, float* out) const override {
    for (size_t i = 0; i < rows; ++i) out[i] = static_cast<float>(Logistic(features + i * kF));
    return absl::OkStatus();
  }
  const common::v1::ModelManifest& manifest() const override { return manifest_; }

 private:
  common::v1::ModelManifest manifest_;
};

std::string SyntheticCsv(int64_t rows, uint64_t seed, bool labels = true) {
  csv::GeneratorOptions o;
  o.rows = rows;
  o.seed = seed;
  o.with_labels = labels;
  o.fraud_rate = 0.03;
  std::ostringstream out;
  EXPECT_THAT(csv::WriteSyntheticCsv(o, out), IsOk());
  return out.str();
}

// scikit-learn's average precision, written out plainly.
double NaiveAveragePrecision(const std::vector<float>& s, const std::vector<int>& y) {
  std::vector<size_t> idx(s.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return s[a] > s[b]; });
  double positives = 0;
  for (int v : y) positives += v;
  double tp = 0, fp = 0, ap = 0, prev = 0;
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j < idx.size() && s[idx[j]] == s[idx[i]]) {
      tp += y[idx[j]];
      fp += 1 - y[idx[j]];
      ++j;
    }
    ap += (tp / positives - prev) * tp / (tp + fp);
    prev = tp / positives;
    i = j;
  }
  return ap;
}

// Replaces line `line` (1-based) of `text`.
std::string ReplaceLine(const std::string& text, int line, const std::string& replacement) {
  size_t begin = 0;
  for (int l = 1; l < line; ++l) begin = text.find('\n', begin) + 1;
  const size_t end = text.find('\n', begin) + 1;
  return text.substr(0, begin) + replacement + text.substr(end);
}

class ConstellationTest : public fraud::testing::PgFixture {
 protected:
  void SetUp() override {
    PgFixture::SetUp();
    if (IsSkipped() || HasFailure()) return;
    storage::PgPoolOptions pool_options;
    pool_options.conninfo = conninfo();
    pool_options.size = 16;
    pool_ = std::make_unique<storage::PgPool>(pool_options);
    ASSERT_THAT(storage::ApplyMigrations(*pool_, storage::EmbeddedMigrations()), IsOk());
    store_ = std::make_unique<storage::PgStore>(pool_.get());
    storage_service_ = std::make_unique<storage::StorageService>(pool_.get(), store_.get());
    storage_service_->SetReady(true);
    storage_server_ = std::make_unique<InProcessServer>(
        std::vector<grpc::Service*>{storage_service_.get()}, "storage_e2e", 24);
    ASSERT_THAT(storage_server_->Start(), IsOk());

    common::v1::ModelManifest manifest;
    manifest.set_version(3);
    manifest.set_threshold(0.35);
    auto loaded = std::make_shared<inference::LoadedModel>();
    loaded->version = 3;
    loaded->artifact_path = "/test/3";
    loaded->loaded_at = absl::Now();
    loaded->threshold = 0.35;
    loaded->model = std::make_unique<LogisticModel>(manifest);
    holder_.Swap(std::move(loaded));
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
    ingest_ = std::make_unique<ingest::IngestService>(storage_server_->channel(),
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
    b.storage = storage_server_->channel();
    b.inference = inference_server_->channel();
    gateway_ = std::make_unique<GatewayServer>(b, o);
    ASSERT_THAT(gateway_->Start(), IsOk());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", gateway_->port());
    client_->set_read_timeout(120, 0);
  }

  void TearDown() override {
    if (gateway_) gateway_->Shutdown(absl::Seconds(1));
    for (auto* s : {&ingest_server_, &inference_server_, &storage_server_}) {
      if (*s) (*s)->Shutdown();
    }
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
    for (int i = 0; i < 300 && pool_->in_use() > 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  }

  std::unique_ptr<storage::PgPool> pool_;
  std::unique_ptr<storage::PgStore> store_;
  std::unique_ptr<storage::StorageService> storage_service_;
  std::unique_ptr<InProcessServer> storage_server_;
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
  pqxx::connection conn(conninfo());
  pqxx::work txn(conn);
  std::vector<float> scores;
  std::vector<int> labels;
  int64_t flagged = 0;
  for (const auto& row : txn.exec(absl::StrCat(
           "SELECT p.score, t.class, p.decision FROM predictions p JOIN transactions t "
           "USING (upload_id, line) WHERE upload_id = ",
           id))) {
    scores.push_back(row[0].as<float>());
    labels.push_back(row[1].as<int>());
    flagged += row[2].as<bool>();
  }
  ASSERT_EQ(scores.size(), 5000u);
  EXPECT_NEAR(s["metrics"]["auprc"].get<double>(), NaiveAveragePrecision(scores, labels), 1e-9);
  EXPECT_EQ(s["predictedFrauds"], std::to_string(flagged));
  int64_t frauds = 0;
  for (int y : labels) frauds += y;
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
                  *std::max_element(scores.begin(), scores.end()));
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
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(gateway_->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
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
