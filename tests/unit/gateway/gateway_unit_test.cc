// Unit tests of the gateway's transport-free pieces: the status table, the upload forwarder's
// chunking and limits, the Prometheus text reader, the rate limiter, static path resolution, the
// route pattern helpers and the OpenAPI schema generation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/gateway/gateway_server.h"
#include "services/gateway/http_status.h"
#include "services/gateway/json_util.h"
#include "services/gateway/openapi.h"
#include "services/gateway/prometheus_text.h"
#include "services/gateway/rate_limiter.h"
#include "services/gateway/static_files.h"
#include "services/gateway/upload_forwarder.h"

namespace fraud::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

TEST(HttpStatusTest, MapsCodesAsTheContractSays) {
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kOk), 200);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kOutOfRange), 400);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kFailedPrecondition), 400);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kAlreadyExists), 409);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kAborted), 409);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kInternal), 500);
  EXPECT_EQ(HttpStatusForCode(absl::StatusCode::kDataLoss), 500);
}

TEST(HttpStatusTest, GatewayKindsKeepTheirOwnStatus) {
  HttpError e = ToHttpError(PayloadTooLarge("too big"));
  EXPECT_EQ(e.http_status, 413);
  EXPECT_EQ(e.code, "PAYLOAD_TOO_LARGE");
  EXPECT_EQ(e.message, "too big");
  e = ToHttpError(UnsupportedMediaType("nope"));
  EXPECT_EQ(e.http_status, 415);
  e = ToHttpError(absl::ResourceExhaustedError("busy"));
  EXPECT_EQ(e.http_status, 429);
  EXPECT_EQ(e.code, "RESOURCE_EXHAUSTED");
}

TEST(HttpStatusTest, ErrorBodyIsJsonWithDetailsAndSurvivesBadUtf8) {
  json b = json::parse(ErrorBodyJson({400, "INVALID_ARGUMENT", "bad \xff byte"},
                                     R"({"summary":{"rowsTotal":"3"}})"));
  EXPECT_EQ(b["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(b["details"]["summary"]["rowsTotal"], "3");
  EXPECT_THAT(b["message"].get<std::string>(), HasSubstr("bad"));
  b = json::parse(ErrorBodyJson({404, "NOT_FOUND", "x"}));
  EXPECT_FALSE(b.contains("details"));
}

// Records what the forwarder sends.
class RecordingSink : public ChunkSink {
 public:
  bool Open(const ingest::v1::UploadOptions& o) override {
    options = o;
    ++opens;
    return open_ok;
  }
  bool Write(absl::string_view chunk) override {
    chunks.emplace_back(chunk.data(), chunk.size());
    return static_cast<int>(chunks.size()) < fail_after_chunks;
  }
  std::string All() const {
    std::string s;
    for (const auto& c : chunks) s += c;
    return s;
  }
  ingest::v1::UploadOptions options;
  std::vector<std::string> chunks;
  int opens = 0;
  bool open_ok = true;
  int fail_after_chunks = 1 << 30;
};

UploadRequestParams Params(int64_t max = 1 << 20, size_t chunk = 10) {
  UploadRequestParams p;
  p.max_bytes = max;
  p.chunk_bytes = chunk;
  p.drain_bytes = 100;
  return p;
}

TEST(UploadForwarderTest, RegroupsArbitraryPiecesIntoFixedChunks) {
  RecordingSink sink;
  UploadForwarder f(&sink, Params());
  const std::string data = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (size_t i = 0; i < data.size(); i += 7) {
    ASSERT_TRUE(f.OnData(data.data() + i, std::min<size_t>(7, data.size() - i)));
  }
  ASSERT_TRUE(f.Finish(true).ok());
  EXPECT_EQ(sink.All(), data);
  EXPECT_THAT(sink.chunks, ElementsAre("abcdefghij", "klmnopqrst", "uvwxyz0123", "456789"));
  EXPECT_EQ(sink.options.mode(), storage::v1::UPLOAD_MODE_STRICT);
  EXPECT_EQ(sink.options.file_name(), "upload.csv");
  EXPECT_EQ(f.bytes(), 36);
}

TEST(UploadForwarderTest, OpensLazilySoEmptyBodiesStillReachIngest) {
  RecordingSink sink;
  UploadForwarder f(&sink, Params());
  EXPECT_EQ(sink.opens, 0);
  ASSERT_TRUE(f.Finish(true).ok());
  EXPECT_EQ(sink.opens, 1);
  EXPECT_TRUE(sink.chunks.empty());
}

TEST(UploadForwarderTest, StopsAtTheLimitWithPayloadTooLargeAndDrainsABit) {
  RecordingSink sink;
  UploadForwarder f(&sink, Params(25));
  const std::string piece(20, 'x');
  EXPECT_TRUE(f.OnData(piece.data(), piece.size()));
  EXPECT_TRUE(f.OnData(piece.data(), piece.size()));  // 40 > 25: refused, drained
  EXPECT_TRUE(f.OnData(piece.data(), piece.size()));  // drained 20 + 20 <= 100
  for (int i = 0; i < 5; ++i) f.OnData(piece.data(), piece.size());
  EXPECT_FALSE(f.OnData(piece.data(), piece.size()));  // past the drain allowance
  absl::Status s = f.Finish(true);
  EXPECT_EQ(ToHttpError(s).http_status, 413);
  EXPECT_THAT(std::string(s.message()), HasSubstr("25 bytes"));
  EXPECT_LE(sink.All().size(), 25u);
}

TEST(UploadForwarderTest, ClosedSinkIsReportedSoTheServersStatusWins) {
  RecordingSink sink;
  sink.fail_after_chunks = 1;
  UploadForwarder f(&sink, Params());
  const std::string data(50, 'y');
  EXPECT_TRUE(f.OnData(data.data(), data.size()));
  absl::Status s = f.Finish(true);
  EXPECT_TRUE(f.sink_closed());
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(sink.chunks.size(), 1u);
}

TEST(UploadForwarderTest, CutOffBodyIsABadRequestNotAComplete) {
  RecordingSink sink;
  UploadForwarder f(&sink, Params());
  f.OnData("abc", 3);
  absl::Status s = f.Finish(/*read_ok=*/false);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("nothing was stored"));
}

TEST(UploadForwarderTest, MultipartTakesTheFileFieldAndFormFieldsBeforeIt) {
  RecordingSink sink;
  UploadRequestParams p = Params();
  p.multipart = true;
  UploadForwarder f(&sink, p);
  ASSERT_TRUE(f.OnPartHeader("mode", ""));
  ASSERT_TRUE(f.OnPartData("len", 3));
  ASSERT_TRUE(f.OnPartData("ient", 4));
  ASSERT_TRUE(f.OnPartHeader("other", ""));
  ASSERT_TRUE(f.OnPartData("zzz", 3));
  ASSERT_TRUE(f.OnPartHeader("file", "day2.csv"));
  ASSERT_TRUE(f.OnPartData("Time,V1\n", 8));
  ASSERT_TRUE(f.Finish(true).ok());
  EXPECT_EQ(sink.options.mode(), storage::v1::UPLOAD_MODE_LENIENT);
  EXPECT_EQ(sink.options.file_name(), "day2.csv");
  EXPECT_EQ(sink.All(), "Time,V1\n");
}

TEST(UploadForwarderTest, MultipartWithoutFileOrWithTwoFilesIsRefused) {
  RecordingSink sink;
  UploadRequestParams p = Params();
  p.multipart = true;
  {
    UploadForwarder f(&sink, p);
    f.OnPartHeader("mode", "");
    f.OnPartData("strict", 6);
    EXPECT_THAT(std::string(f.Finish(true).message()), HasSubstr("no 'file'"));
  }
  {
    UploadForwarder f(&sink, p);
    f.OnPartHeader("file", "a.csv");
    f.OnPartData("a", 1);
    EXPECT_FALSE(f.OnPartHeader("file", "b.csv"));
    EXPECT_THAT(std::string(f.Finish(true).message()), HasSubstr("more than one"));
  }
}

TEST(UploadForwarderTest, ParsesModes) {
  storage::v1::UploadMode m;
  EXPECT_TRUE(ParseUploadMode("", &m).ok());
  EXPECT_EQ(m, storage::v1::UPLOAD_MODE_STRICT);
  EXPECT_TRUE(ParseUploadMode("LENIENT", &m).ok());
  EXPECT_EQ(m, storage::v1::UPLOAD_MODE_LENIENT);
  EXPECT_TRUE(ParseUploadMode("UPLOAD_MODE_STRICT", &m).ok());
  EXPECT_FALSE(ParseUploadMode("loose", &m).ok());
}

TEST(PrometheusTextTest, ParsesLabelsEscapesTimestampsAndSpecialValues) {
  auto samples = ParsePrometheusText(
      "# HELP x y\n# TYPE a counter\n"
      "a{k=\"v\",q=\"with \\\"quote\\\"\"} 3 1700000000000\n"
      "b 1e3\n"
      "c_bucket{le=\"+Inf\"} 4\n"
      "d NaN\n\n");
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 4u);
  EXPECT_EQ((*samples)[0].name, "a");
  EXPECT_EQ((*samples)[0].labels[1].second, "with \"quote\"");
  EXPECT_EQ((*samples)[0].value, 3);
  EXPECT_EQ((*samples)[1].value, 1000);
  EXPECT_FALSE(ParsePrometheusText("a{k=\"v\" 3\n").ok());
  EXPECT_FALSE(ParsePrometheusText("a notanumber\n").ok());
}

TEST(PrometheusTextTest, SummarisesCountersByResultAndHistogramQuantiles) {
  auto samples = ParsePrometheusText(
      "fraud_x_total{result=\"ok\",m=\"a\"} 2\n"
      "fraud_x_total{result=\"ok\",m=\"b\"} 3\n"
      "fraud_x_total{result=\"failed\",m=\"a\"} 1\n"
      "fraud_h_seconds_bucket{m=\"a\",le=\"0.01\"} 50\n"
      "fraud_h_seconds_bucket{m=\"b\",le=\"0.01\"} 40\n"
      "fraud_h_seconds_bucket{m=\"a\",le=\"0.1\"} 50\n"
      "fraud_h_seconds_bucket{m=\"b\",le=\"0.1\"} 50\n"
      "fraud_h_seconds_bucket{m=\"a\",le=\"+Inf\"} 50\n"
      "fraud_h_seconds_bucket{m=\"b\",le=\"+Inf\"} 50\n"
      "fraud_h_seconds_sum{m=\"a\"} 0.2\n"
      "fraud_h_seconds_count{m=\"a\"} 50\n"
      "other_total 9\n");
  ASSERT_TRUE(samples.ok());
  auto m = SummarizeMetrics(*samples);
  EXPECT_EQ(m["fraud_x_total"], 6);
  EXPECT_EQ(m["fraud_x_total{result=\"ok\"}"], 5);
  EXPECT_EQ(m["fraud_x_total{result=\"failed\"}"], 1);
  EXPECT_EQ(m["fraud_h_seconds_sum"], 0.2);
  EXPECT_EQ(m["fraud_h_seconds_count"], 50);
  // 90 of 100 observations are <= 0.01: p50 interpolates in [0, 0.01], p99 in (0.01, 0.1].
  EXPECT_NEAR(m["fraud_h_seconds_p50"], 0.01 * 50 / 90, 1e-12);
  EXPECT_NEAR(m["fraud_h_seconds_p99"], 0.01 + 0.09 * 9 / 10, 1e-12);
  EXPECT_EQ(m.count("other_total"), 0u);
  EXPECT_EQ(m.count("fraud_h_seconds_bucket"), 0u);
}

TEST(RateLimiterTest, AllowsBurstThenRefillsAtTheRate) {
  RateLimiter limiter(2, 3);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_EQ(limiter.Acquire("a", t0), 0);
  EXPECT_EQ(limiter.Acquire("a", t0), 0);
  EXPECT_EQ(limiter.Acquire("a", t0), 0);
  EXPECT_EQ(limiter.Acquire("a", t0), 1);  // empty: 1 token needs 0.5 s -> Retry-After 1
  EXPECT_EQ(limiter.Acquire("b", t0), 0);  // other clients are independent
  EXPECT_EQ(limiter.Acquire("a", t0 + absl::Milliseconds(500)), 0);
  EXPECT_EQ(limiter.Acquire("a", t0 + absl::Milliseconds(500)), 1);
  RateLimiter slow(0.1, 1);
  EXPECT_EQ(slow.Acquire("c", t0), 0);
  EXPECT_EQ(slow.Acquire("c", t0), 10);
  RateLimiter off(0, 0);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(off.Acquire("d", t0), 0);
}

TEST(RateLimiterTest, ForgetsIdleClients) {
  RateLimiter limiter(10, 10);
  absl::Time t = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 5000; ++i) limiter.Acquire(absl::StrCat("10.0.", i / 256, ".", i % 256), t);
  EXPECT_EQ(limiter.tracked_keys(), 5000u);
  limiter.Acquire("late", t + absl::Minutes(5));
  EXPECT_EQ(limiter.tracked_keys(), 1u);
}

class StaticFilesUnitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() / absl::StrCat("gw-unit-", ::getpid());
    std::filesystem::create_directories(root_ / "dist" / "assets");
    std::ofstream(root_ / "dist" / "index.html") << "<html>";
    std::ofstream(root_ / "dist" / "assets" / "a-1.js") << "js";
    std::ofstream(root_ / "outside.txt") << "secret";
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::filesystem::path root_;
};

TEST_F(StaticFilesUnitTest, ResolvesFilesFallbackAndRefusesTraversal) {
  StaticFiles files((root_ / "dist").string());
  auto f = files.Resolve("/");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->content_type, "text/html; charset=utf-8");
  f = files.Resolve("/assets/a-1.js");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->cache_control, "public, max-age=31536000, immutable");
  f = files.Resolve("/models/3");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->spa_fallback);
  EXPECT_EQ(files.Resolve("/assets/b-2.js").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(files.Resolve("/../outside.txt").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(files.Resolve("/assets/./a-1.js").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(files.Resolve("/a//b").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(files.Resolve(std::string("/a\0b", 4)).status().code(),
            absl::StatusCode::kInvalidArgument);
  StaticFiles none("");
  EXPECT_FALSE(none.enabled());
  EXPECT_EQ(none.Resolve("/").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ContentTypeForPath("x.woff2"), "font/woff2");
  EXPECT_EQ(ContentTypeForPath("dir.d/file"), "application/octet-stream");
}

TEST(RouteSpecTest, PatternsBecomeAnchoredNumericRegexes) {
  EXPECT_THAT(PathParams("/api/v1/uploads/{id}/predictions"), ElementsAre("id"));
  EXPECT_EQ(PathRegex("/api/v1/uploads/{id}/predictions"), "/api/v1/uploads/([0-9]+)/predictions");
  EXPECT_EQ(PathRegex("/api/v1/demo/sample.csv"), "/api/v1/demo/sample\\.csv");
  EXPECT_EQ(PathRegex("/api/v1/uploads:validate"), "/api/v1/uploads:validate");
}

TEST(RouteSpecTest, EveryRouteNamesKnownSchemasAndUniqueOperations) {
  std::set<std::string> ops;
  std::set<std::pair<std::string, std::string>> keys;
  for (const RouteSpec& r : GatewayServer::RouteSpecs()) {
    EXPECT_TRUE(ops.insert(r.operation_id).second) << r.operation_id;
    EXPECT_TRUE(keys.insert({r.method, r.path}).second) << r.path;
    EXPECT_TRUE(r.method == "GET" || r.method == "POST") << r.path;
    if (!r.response_schema.empty()) {
      EXPECT_TRUE(IsKnownSchema(r.response_schema)) << r.path;
    }
    if (r.body == BodyKind::kJson) {
      EXPECT_TRUE(IsKnownSchema(r.request_schema)) << r.path;
    }
    if (r.method == "GET") {
      EXPECT_EQ(r.body, BodyKind::kNone) << r.path;
    }
  }
}

TEST(OpenApiTest, ProtoSchemasFollowTheJsonMapping) {
  json doc = json::parse(BuildOpenApiJson(GatewayServer::RouteSpecs(), "9.9"));
  EXPECT_EQ(doc["info"]["version"], "9.9");
  json run = doc["components"]["schemas"]["fraud.storage.v1.TrainingRun"]["properties"];
  EXPECT_EQ(run["id"]["type"], "string");
  EXPECT_EQ(run["id"]["format"], "int64");
  EXPECT_EQ(run["params"]["type"], "object");
  EXPECT_EQ(run["params"]["additionalProperties"]["type"], "string");
  EXPECT_EQ(run["candidates"]["type"], "array");
  EXPECT_EQ(run["startedAt"]["format"], "date-time");
  json batch = doc["components"]["schemas"]["fraud.common.v1.TransactionBatch"]["properties"];
  EXPECT_EQ(batch["numRows"]["type"], "integer");
  EXPECT_EQ(batch["features"]["items"]["type"], "number");
  json upload_req = doc["paths"]["/api/v1/uploads"]["post"]["requestBody"]["content"];
  EXPECT_TRUE(upload_req.contains("text/csv"));
  EXPECT_TRUE(upload_req.contains("multipart/form-data"));
  // POST /score: explain and top_k in the simple form, reasons in the response.
  json score_rows = doc["components"]["schemas"]["ScoreRows"]["properties"];
  EXPECT_EQ(score_rows["explain"]["type"], "boolean");
  EXPECT_EQ(score_rows["top_k"]["maximum"], 30);
  json predict = doc["components"]["schemas"]["fraud.inference.v1.PredictResponse"]["properties"];
  EXPECT_EQ(predict["explanations"]["items"]["$ref"],
            "#/components/schemas/fraud.common.v1.Explanation");
  json reason = doc["components"]["schemas"]["fraud.common.v1.FeatureContribution"]["properties"];
  EXPECT_EQ(reason["contribution"]["type"], "number");
}

TEST(JsonUtilTest, RoundTripsAndNamesUnknownFields) {
  storage::v1::Upload u;
  u.set_id(5);
  json j = json::parse(ToJson(u));
  EXPECT_EQ(j["id"], "5");
  EXPECT_EQ(j["rows"], "0");
  EXPECT_EQ(j["mode"], "UPLOAD_MODE_UNSPECIFIED");
  storage::v1::Upload back;
  ASSERT_TRUE(FromJson(ToJson(u), &back).ok());
  EXPECT_EQ(back.id(), 5);
  EXPECT_TRUE(FromJson("", &back).ok());
  absl::Status s = FromJson(R"({"idd":1})", &back);
  EXPECT_THAT(std::string(s.message()), HasSubstr("idd"));
  EXPECT_FALSE(ParseInt("n", "12x", 0, 100).ok());
  EXPECT_FALSE(ParseInt("n", "101", 0, 100).ok());
  EXPECT_EQ(*ParseInt("n", "42", 0, 100), 42);
  EXPECT_FALSE(ParseDouble("r", "nan", 0, 1).ok());
  EXPECT_TRUE(*ParseBool("b", "TRUE"));
}

TEST(MetricsTargetTest, DerivesFromTheGrpcTargetWithTheSameOffset) {
  EXPECT_EQ(DeriveMetricsTarget("ingest:50051", 50051, 9101), "ingest:9101");
  EXPECT_EQ(DeriveMetricsTarget("127.0.0.1:50152", 50052, 9102), "127.0.0.1:9202");
  EXPECT_EQ(DeriveMetricsTarget("dns:///storage:50052", 50052, 9102), "storage:9102");
  EXPECT_EQ(DeriveMetricsTarget("[::1]:50053", 50053, 9103), "[::1]:9103");
  EXPECT_EQ(DeriveMetricsTarget("unix:/tmp/sock", 50053, 9103), "");
}

}  // namespace
}  // namespace fraud::gateway
