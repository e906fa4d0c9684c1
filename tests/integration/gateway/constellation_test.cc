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
#include "absl/strings/match.h"
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

  void StartGateway(const std::string& upload_token, const std::string& admin_token = "") {
    if (gateway_) gateway_->Shutdown(absl::Seconds(1));
    GatewayOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.rate_limit_rps = 0;
    o.upload_token = upload_token;
    o.admin_token = admin_token;
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

// The delayed-label loop through REST: an unlabelled upload is scored, its labels arrive later
// as a feedback CSV, and the realised metrics of the scoring version change accordingly.
TEST_F(ConstellationTest, FeedbackCsvLabelsAnUnlabelledUploadAndChangesRealisedMetrics) {
  StartGateway("", "admin-secret");
  const httplib::Headers admin = {{"Authorization", "Bearer admin-secret"}};
  // The same rows with and without their Class column (the last one).
  const std::vector<std::string> lines =
      absl::StrSplit(SyntheticCsv(1500, 31), '\n', absl::SkipEmpty());
  std::string unlabelled;
  std::vector<int> truth;
  for (size_t i = 0; i < lines.size(); ++i) {
    const size_t comma = lines[i].rfind(',');
    absl::StrAppend(&unlabelled, lines[i].substr(0, comma), "\n");
    if (i > 0) truth.push_back(absl::StrContains(lines[i].substr(comma + 1), '1') ? 1 : 0);
  }
  auto up = Upload(unlabelled, "?file_name=live.csv");
  ASSERT_TRUE(up);
  ASSERT_EQ(up->status, 200) << up->body;
  const std::string id = json::parse(up->body)["uploadId"].get<std::string>();

  auto realised = [&]() {
    auto r = client_->Get("/api/v1/monitoring/realised?by=upload&k=50");
    EXPECT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
    json doc = json::parse(r->body);
    EXPECT_EQ(doc["metrics"].size(), 1u) << r->body;
    return doc["metrics"][0];
  };
  json before = realised();
  EXPECT_EQ(before["modelVersion"], "3");
  EXPECT_EQ(before["period"], id);
  EXPECT_EQ(before["rowsScored"], "1500");
  EXPECT_EQ(before["rowsLabelled"], "0");
  EXPECT_DOUBLE_EQ(before["unlabelledShare"].get<double>(), 1.0);

  // Labels for every row but the last 100, by upload id and line (data rows start at line 2).
  std::string feedback = "upload_id,line,label,source,note\n";
  int frauds = 0;
  for (size_t i = 0; i + 100 < truth.size(); ++i) {
    absl::StrAppend(&feedback, id, ",", i + 2, ",", truth[i], ",chargeback,\"batch, 1\"\n");
    frauds += truth[i];
  }
  ASSERT_GT(frauds, 0);
  auto denied = client_->Post("/api/v1/feedback", feedback, "text/csv");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 401);
  EXPECT_EQ(Count("SELECT count(*) FROM label_events"), 0);

  auto fb = client_->Post("/api/v1/feedback", admin, feedback, "text/csv");
  ASSERT_TRUE(fb);
  ASSERT_EQ(fb->status, 200) << fb->body;
  json applied = json::parse(fb->body);
  EXPECT_EQ(applied["received"], "1400");
  EXPECT_EQ(applied["applied"], "1400");
  EXPECT_EQ(applied["unknown"], "0");
  EXPECT_EQ(QueryScalar("SELECT note FROM label_events ORDER BY id LIMIT 1"), "batch, 1");
  EXPECT_EQ(QueryScalar("SELECT actor FROM label_events ORDER BY id LIMIT 1"), "admin");

  json after = realised();
  EXPECT_EQ(after["rowsLabelled"], "1400");
  EXPECT_NEAR(after["unlabelledShare"].get<double>(), 100.0 / 1500.0, 1e-12);
  EXPECT_EQ(after["frauds"], std::to_string(frauds));
  const int64_t true_alerts = Count(
      "SELECT count(*) FROM predictions p JOIN current_transactions t USING (upload_id, line)"
      " WHERE p.decision AND t.class = 1");
  const int64_t labelled_alerts = Count(
      "SELECT count(*) FROM predictions p JOIN current_transactions t USING (upload_id, line)"
      " WHERE p.decision AND t.class IS NOT NULL");
  EXPECT_EQ(after["trueAlerts"], std::to_string(true_alerts));
  ASSERT_GT(labelled_alerts, 0);
  EXPECT_DOUBLE_EQ(after["precision"].get<double>(),
                   static_cast<double>(true_alerts) / static_cast<double>(labelled_alerts));
  EXPECT_DOUBLE_EQ(after["recall"].get<double>(),
                   static_cast<double>(true_alerts) / static_cast<double>(frauds));
  EXPECT_GT(after["auprc"].get<double>(), 0.0);

  // The same file again changes nothing.
  auto again = client_->Post("/api/v1/feedback", admin, feedback, "text/csv");
  ASSERT_TRUE(again);
  ASSERT_EQ(again->status, 200) << again->body;
  EXPECT_EQ(json::parse(again->body)["unchanged"], "1400");
  EXPECT_EQ(Count("SELECT count(*) FROM label_events"), 1400);

  // JSON body: an unknown upload is reported with its row; a conflicting label wins.
  const std::string body = absl::StrCat(
      R"({"labels": [{"uploadId": "999999", "line": "2", "label": 1},)",
      R"( {"uploadId": ")", id, R"(", "line": "2", "label": )", 1 - truth[0],
      R"(, "source": "analyst"}]})");
  auto mixed = client_->Post("/api/v1/feedback", admin, body, "application/json");
  ASSERT_TRUE(mixed);
  ASSERT_EQ(mixed->status, 200) << mixed->body;
  json m = json::parse(mixed->body);
  EXPECT_EQ(m["unknown"], "1");
  EXPECT_EQ(m["conflicts"], "1");
  ASSERT_EQ(m["unknownRows"].size(), 1u);
  EXPECT_EQ(m["unknownRows"][0]["row"], "1");
  EXPECT_EQ(m["unknownRows"][0]["field"], "upload_id");
  auto history = client_->Get(absl::StrCat("/api/v1/uploads/", id, "/rows/2/labels"));
  ASSERT_TRUE(history);
  ASSERT_EQ(history->status, 200) << history->body;
  json h = json::parse(history->body);
  EXPECT_EQ(h["currentLabel"], 1 - truth[0]);
  ASSERT_EQ(h["events"].size(), 2u);
  EXPECT_EQ(h["events"][1]["previousLabel"], truth[0]);

  // A bad CSV row: 400 naming line and column, nothing stored.
  const std::string bad = absl::StrCat("upload_id,line,label\n", id, ",3,1\n", id, ",4,yes\n");
  auto rejected = client_->Post("/api/v1/feedback", admin, bad, "text/csv");
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->status, 400);
  EXPECT_THAT(rejected->body, HasSubstr("line 3, column label (3): must be 0 or 1"));
  EXPECT_EQ(Count("SELECT count(*) FROM label_events"), 1401);
  WaitForStorageIdle();

  auto bad_by = client_->Get("/api/v1/monitoring/realised?by=week");
  ASSERT_TRUE(bad_by);
  EXPECT_EQ(bad_by->status, 400);
}

}  // namespace
}  // namespace fraud::gateway

namespace fraud::gateway {
namespace {

// The review queue through REST: alerts of a scored upload come with the reasons stored when
// ingest scored them (the same the real inference computes) and the serving model's population;
// only the admin may review; a fraud disposition labels the row (source review) and takes it out
// of the queue; an alert without stored reasons is explained by inference ("computed"); without
// inference the queue and an upload's predictions still answer the stored reasons.
TEST_F(ConstellationTest, ReviewQueueExplainsAlertsAndADispositionLabelsTheRow) {
  common::v1::ModelManifest manifest;
  manifest.set_version(3);
  manifest.set_threshold(0.35);
  common::v1::FeatureReference* amount = manifest.add_reference();
  amount->set_feature("Amount");
  amount->add_edges(10);
  amount->add_edges(100);
  amount->add_fractions(0.5);
  amount->add_fractions(0.4);
  amount->add_fractions(0.1);
  holder_.Swap(LoadedLogisticModel(manifest));
  StartGateway("", "admin-secret");
  const httplib::Headers admin = {{"Authorization", "Bearer admin-secret"}};
  auto up = Upload(SyntheticCsv(1500, 32, /*labels=*/false), "?file_name=review.csv");
  ASSERT_TRUE(up);
  ASSERT_EQ(up->status, 200) << up->body;
  const std::string id = json::parse(up->body)["uploadId"].get<std::string>();
  const int64_t alerts = Count("SELECT count(*) FROM predictions WHERE decision");
  ASSERT_GT(alerts, 3);
  EXPECT_EQ(Count("SELECT count(*) FROM alert_explanations"), alerts);

  auto page = client_->Get("/api/v1/review/queue?page_size=3");
  ASSERT_TRUE(page);
  ASSERT_EQ(page->status, 200) << page->body;
  json doc = json::parse(page->body);
  ASSERT_EQ(doc["items"].size(), 3u) << page->body;
  EXPECT_FALSE(doc["nextPageToken"].get<std::string>().empty());
  EXPECT_FALSE(doc.contains("explanationModelVersion"));  // nothing had to be computed
  EXPECT_FALSE(doc.contains("explanationError"));
  for (const json& item : doc["items"]) {
    EXPECT_EQ(item["explanationSource"], "stored") << item.dump();
    EXPECT_EQ(item["explanationModelVersion"], "3");
    EXPECT_TRUE(item.contains("explanationComputedAt"));
  }
  ASSERT_EQ(doc["population"]["features"].size(), 1u);
  EXPECT_EQ(doc["population"]["features"][0]["feature"], "Amount");
  double previous = 2;
  for (const json& item : doc["items"]) {
    EXPECT_EQ(item["uploadId"], id);
    EXPECT_EQ(item["features"].size(), 30u);
    EXPECT_EQ(item["explanation"]["top"].size(), 5u) << item.dump();
    const double score = item["score"].get<double>();
    EXPECT_LE(score, previous);
    previous = score;
  }
  const json top = doc["items"][0];
  const std::string line = top["line"].get<std::string>();

  auto next = client_->Get(absl::StrCat("/api/v1/review/queue?page_size=3&page_token=",
                                        doc["nextPageToken"].get<std::string>()));
  ASSERT_TRUE(next);
  ASSERT_EQ(next->status, 200) << next->body;
  EXPECT_NE(json::parse(next->body)["items"][0]["line"], top["line"]);

  const std::string body = absl::StrCat("{\"uploadId\": \"", id, "\", \"line\": \"", line,
                                        "\", \"disposition\": \"fraud\", \"note\": \"seen\"}");
  auto denied = client_->Post("/api/v1/review", body, "application/json");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 401) << denied->body;
  EXPECT_EQ(Count("SELECT count(*) FROM review_dispositions"), 0);
  auto bad = client_->Post("/api/v1/review", admin,
                           absl::StrCat("{\"uploadId\": \"", id, "\", \"line\": \"", line,
                                        "\", \"disposition\": \"maybe\"}"),
                           "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400) << bad->body;
  auto ok = client_->Post("/api/v1/review?actor=ana", admin, body, "application/json");
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200) << ok->body;
  json reviewed = json::parse(ok->body);
  EXPECT_EQ(reviewed["labelOutcome"], "applied");
  EXPECT_EQ(reviewed["currentLabel"], 1);
  EXPECT_EQ(QueryScalar("SELECT source || '/' || actor || '/' || note FROM label_events"),
            "review/ana/seen");
  auto after = client_->Get("/api/v1/review/queue?page_size=500");
  ASSERT_TRUE(after);
  json rest = json::parse(after->body);
  EXPECT_EQ(static_cast<int64_t>(rest["items"].size()), alerts - 1);
  for (const json& item : rest["items"]) EXPECT_NE(item["line"], top["line"]);

  // An alert whose reasons were not stored (as for rows stored before migration 0008) is
  // explained by the serving model, and the stored reasons are exactly what it computes.
  const json stored = rest["items"][0];
  Exec(absl::StrCat("DELETE FROM alert_explanations WHERE upload_id = ", id,
                    " AND line = ", stored["line"].get<std::string>()));
  auto mixed = client_->Get("/api/v1/review/queue?page_size=2");
  ASSERT_TRUE(mixed);
  ASSERT_EQ(mixed->status, 200) << mixed->body;
  json m = json::parse(mixed->body);
  ASSERT_EQ(m["items"].size(), 2u);
  EXPECT_EQ(m["items"][0]["line"], stored["line"]);
  EXPECT_EQ(m["items"][0]["explanationSource"], "computed");
  EXPECT_EQ(m["items"][0]["explanationModelVersion"], "3");
  EXPECT_EQ(m["explanationModelVersion"], "3");
  EXPECT_EQ(m["items"][1]["explanationSource"], "stored");
  const json& computed = m["items"][0]["explanation"];
  EXPECT_NEAR(computed["margin"].get<double>(), stored["explanation"]["margin"].get<double>(),
              1e-12);
  EXPECT_NEAR(computed["bias"].get<double>(), stored["explanation"]["bias"].get<double>(), 1e-12);
  ASSERT_EQ(computed["top"].size(), stored["explanation"]["top"].size());
  for (size_t j = 0; j < computed["top"].size(); ++j) {
    EXPECT_EQ(computed["top"][j]["feature"], stored["explanation"]["top"][j]["feature"]);
    EXPECT_EQ(computed["top"][j]["value"], stored["explanation"]["top"][j]["value"]);
    EXPECT_NEAR(computed["top"][j]["contribution"].get<double>(),
                stored["explanation"]["top"][j]["contribution"].get<double>(), 1e-12);
  }

  // Inference down: the stored reasons are still there; the one that was not stored is left out
  // and the answer says why.
  inference_server_->Shutdown();
  inference_server_.reset();
  auto degraded = client_->Get("/api/v1/review/queue?page_size=2");
  ASSERT_TRUE(degraded);
  ASSERT_EQ(degraded->status, 200) << degraded->body;
  json d = json::parse(degraded->body);
  ASSERT_EQ(d["items"].size(), 2u);
  EXPECT_FALSE(d["items"][0].contains("explanation"));
  EXPECT_FALSE(d["items"][0].contains("explanationSource"));
  EXPECT_EQ(d["items"][1]["explanationSource"], "stored");
  EXPECT_EQ(d["items"][1]["explanation"]["top"].size(), 5u);
  EXPECT_THAT(d["explanationError"].get<std::string>(), HasSubstr("inference"));

  // The upload's predictions, highest score first: every alert but that one with its stored
  // reasons, no reasons for the rows that are not alerts.
  auto predictions =
      client_->Get(absl::StrCat("/api/v1/uploads/", id, "/predictions?order=score&page_size=1000"));
  ASSERT_TRUE(predictions);
  ASSERT_EQ(predictions->status, 200) << predictions->body;
  json p = json::parse(predictions->body);
  ASSERT_EQ(p["predictions"].size(), 1000u);
  int64_t with_stored = 0;
  for (const json& row : p["predictions"]) {
    const bool alert = row.value("decision", false);
    if (!alert || row["line"] == stored["line"]) {
      EXPECT_FALSE(row.contains("explanation")) << row.dump();
      continue;
    }
    EXPECT_EQ(row["explanationSource"], "stored") << row.dump();
    EXPECT_EQ(row["explanation"]["top"].size(), 5u);
    ++with_stored;
  }
  EXPECT_EQ(with_stored, alerts - 1);
  EXPECT_THAT(p["explanationError"].get<std::string>(), HasSubstr("inference"));
}

}  // namespace
}  // namespace fraud::gateway
