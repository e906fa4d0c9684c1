// Route-by-route tests of the gateway against in-process fake services: status mapping, JSON
// shapes, auth, query/body validation, SSE, monitoring, static files, CORS, limits, OpenAPI.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "services/common/core/metrics.h"
#include "services/common/csv/synthetic_generator.h"
#include "services/gateway/route_spec.h"
#include "tests/integration/gateway/gateway_fakes.h"

namespace fraud::gateway::testing {
namespace {

using ::testing::AllOf;
using ::testing::ContainerEq;
using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

json Body(const httplib::Result& r) {
  if (!r) return json();
  return json::parse(r->body, nullptr, false);
}

TEST_F(GatewayTest, MapsEveryGrpcCodeThroughTheOneStatusTable) {
  StartGateway();
  auto c = Client();
  const std::vector<std::pair<grpc::StatusCode, int>> table = {
      {grpc::StatusCode::INVALID_ARGUMENT, 400},
      {grpc::StatusCode::OUT_OF_RANGE, 400},
      {grpc::StatusCode::FAILED_PRECONDITION, 400},
      {grpc::StatusCode::UNAUTHENTICATED, 401},
      {grpc::StatusCode::PERMISSION_DENIED, 403},
      {grpc::StatusCode::NOT_FOUND, 404},
      {grpc::StatusCode::ALREADY_EXISTS, 409},
      {grpc::StatusCode::ABORTED, 409},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, 429},
      {grpc::StatusCode::UNAVAILABLE, 503},
      {grpc::StatusCode::DEADLINE_EXCEEDED, 504},
      {grpc::StatusCode::INTERNAL, 500},
      {grpc::StatusCode::UNKNOWN, 500},
      {grpc::StatusCode::DATA_LOSS, 500}};
  for (const auto& [code, http] : table) {
    auto r = c->Get(absl::StrCat("/api/v1/uploads/", 1000 + static_cast<int>(code)));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, http) << "gRPC code " << code;
    json b = Body(r);
    EXPECT_TRUE(b.contains("code") && b.contains("message")) << r->body;
    EXPECT_THAT(b["message"].get<std::string>(), HasSubstr("fake failure"));
  }
  auto r = c->Get("/api/v1/uploads/1005");
  EXPECT_EQ(Body(r)["code"], "NOT_FOUND");
  EXPECT_EQ(Body(r)["message"], "fake failure 5");
}

TEST_F(GatewayTest, PrintsInt64AsStringsEnumsByNameAndZeroFields) {
  StartGateway();
  auto r = Client()->Get("/api/v1/uploads/7");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  json u = Body(r)["upload"];
  EXPECT_EQ(u["id"], "7");
  EXPECT_EQ(u["rows"], "123456789012");
  EXPECT_EQ(u["mode"], "UPLOAD_MODE_LENIENT");
  EXPECT_EQ(u["status"], "UPLOAD_STATUS_COMMITTED");
  EXPECT_EQ(u["rowsRejected"], "0");
  EXPECT_EQ(u["fileName"], "file7.csv");
  EXPECT_EQ(u["receivedAt"], "2023-11-14T22:13:27Z");
  EXPECT_EQ(u["timeMin"], 0);
}

TEST_F(GatewayTest, ForwardsQueryParametersAndRejectsBadOnesByName) {
  StartGateway();
  auto c = Client();
  auto r = c->Get("/api/v1/uploads?page_size=7&before_id=99");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(storage_.last_list.page_size(), 7);
  EXPECT_EQ(storage_.last_list.before_id(), 99);
  EXPECT_EQ(Body(r)["nextBeforeId"], "2");
  r = c->Get("/api/v1/uploads?page_size=abc");
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(Body(r)["message"].get<std::string>(), HasSubstr("page_size"));
  r = c->Get("/api/v1/uploads/5/predictions?order=score&offset=10&page_size=3");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(storage_.last_predictions.order(), storagepb::PREDICTION_ORDER_SCORE_DESC);
  EXPECT_EQ(storage_.last_predictions.offset(), 10);
  EXPECT_EQ(storage_.last_predictions.upload_id(), 5);
  r = c->Get("/api/v1/uploads/5/predictions?order=random");
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(Body(r)["message"].get<std::string>(), HasSubstr("order"));
}

TEST_F(GatewayTest, PropagatesTheClientsRequestIdOrMakesOne) {
  StartGateway();
  auto c = Client();
  auto r = c->Get("/api/v1/models", {{"X-Request-Id", "ui-abc-123"}});
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("X-Request-Id"), "ui-abc-123");
  EXPECT_EQ(storage_.Last().request_id, "ui-abc-123");
  r = c->Get("/api/v1/models", {{"X-Request-Id", "bad id with spaces"}});
  const std::string made = r->get_header_value("X-Request-Id");
  EXPECT_EQ(made.size(), 16u);
  EXPECT_EQ(storage_.Last().request_id, made);
}

TEST_F(GatewayTest, AdminRoutesNeedTheBearerTokenAndForwardIt) {
  GatewayOptions o = DefaultOptions();
  o.admin_token = "s3cret-token";
  StartGateway(o);
  auto c = Client();
  struct Case {
    std::string path;
    std::string body;
    Recorder* fake;
    std::string method;
  };
  const std::vector<Case> cases = {
      {"/api/v1/models/4/promote", R"({"reason":"better"})", &training_, "Promote"},
      {"/api/v1/models/4/operating-point",
       R"({"kind":"OPERATING_POINT_KIND_ALERTS_PER_DAY","value":40,"reason":"capacity"})",
       &training_, "SetOperatingPoint"},
      {"/api/v1/inference/reload", "{}", &inference_, "Reload"},
      {"/api/v1/training/runs", R"({"families":["mlp"]})", &training_, "StartRun"},
      {"/api/v1/training/runs/9/cancel", "{}", &training_, "CancelRun"},
      {"/api/v1/training/evaluate", "{}", &training_, "Evaluate"}};
  for (const Case& k : cases) {
    auto r = c->Post(k.path, k.body, "application/json");
    EXPECT_EQ(r->status, 401) << k.path;
    EXPECT_EQ(Body(r)["code"], "UNAUTHENTICATED");
    EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer");
    r = c->Post(k.path, {{"Authorization", "Bearer s3cret-tokeX"}}, k.body, "application/json");
    EXPECT_EQ(r->status, 401) << k.path;
    EXPECT_EQ(k.fake->Count(k.method), 0) << k.path;
    r = c->Post(k.path, {{"Authorization", "Bearer s3cret-token"}}, k.body, "application/json");
    EXPECT_EQ(r->status, 200) << k.path << " " << r->body;
    EXPECT_EQ(k.fake->Count(k.method), 1) << k.path;
    EXPECT_EQ(k.fake->Last().authorization, "Bearer s3cret-token") << k.path;
  }
  EXPECT_EQ(training_.last_promote.version(), 4);
  EXPECT_EQ(training_.last_promote.reason(), "better");
  ASSERT_EQ(training_.last_start.families_size(), 1);
  // Reads stay open.
  EXPECT_EQ(c->Get("/api/v1/training/runs")->status, 200);
}

TEST_F(GatewayTest, WhatIfAndOperatingPointRoutesForwardTheirArguments) {
  StartGateway(DefaultOptions());
  auto c = Client();
  auto r = c->Get("/api/v1/models/4/what-if?days=3&alerts_per_day=12.5&points=20");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(training_.last_what_if.version(), 4);
  EXPECT_EQ(training_.last_what_if.days(), 3);
  EXPECT_EQ(training_.last_what_if.points(), 20);
  EXPECT_TRUE(training_.last_what_if.has_alerts_per_day());
  EXPECT_EQ(training_.last_what_if.alerts_per_day(), 12.5);
  EXPECT_FALSE(training_.last_what_if.has_threshold());
  EXPECT_EQ(Body(r)["curve"][0]["threshold"], 0.5);
  r = c->Get("/api/v1/models/champion/what-if?threshold=0.25");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(training_.last_what_if.version(), 0);
  EXPECT_EQ(training_.last_what_if.threshold(), 0.25);
  // Bad query values never reach training.
  const int before = training_.Count("WhatIf");
  for (const char* bad : {"threshold=1.5", "threshold=abc", "days=-1", "alert_fraction=2"}) {
    r = c->Get(std::string("/api/v1/models/4/what-if?") + bad);
    EXPECT_EQ(r->status, 400) << bad;
  }
  EXPECT_EQ(training_.Count("WhatIf"), before);
  r = c->Get("/api/v1/models/4/operating-point");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(storage_.last_operating_point.version(), 4);
  EXPECT_TRUE(storage_.last_operating_point.include_history());
  EXPECT_EQ(Body(r)["threshold"], 0.42);
  r = c->Post("/api/v1/models/4/operating-point",
              R"({"version":"5","kind":"OPERATING_POINT_KIND_THRESHOLD","value":0.5})",
              "application/json");
  EXPECT_EQ(r->status, 400);
  r = c->Post("/api/v1/models/4/operating-point",
              R"({"kind":"OPERATING_POINT_KIND_THRESHOLD","value":0.75,"reason":"x"})",
              "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(training_.last_set_point.version(), 4);
  EXPECT_EQ(training_.last_set_point.value(), 0.75);
  EXPECT_EQ(training_.last_set_point.kind(), storagepb::OPERATING_POINT_KIND_THRESHOLD);
}

TEST_F(GatewayTest, RejectsBadJsonBodiesNamingTheProblem) {
  GatewayOptions o = DefaultOptions();
  o.max_json_bytes = 1000;
  StartGateway(o);
  auto c = Client();
  auto r = c->Post("/api/v1/training/runs", R"({"famlies":["mlp"]})", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(Body(r)["message"].get<std::string>(),
              AllOf(HasSubstr("StartRunRequest"), HasSubstr("famlies")));
  r = c->Post("/api/v1/training/runs", "{not json", "application/json");
  EXPECT_EQ(r->status, 400);
  r = c->Post("/api/v1/training/runs", R"({"validationFraction":"x"})", "application/json");
  EXPECT_EQ(r->status, 400);
  r = c->Post("/api/v1/training/runs", std::string(2000, ' '), "application/json");
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(Body(r)["code"], "PAYLOAD_TOO_LARGE");
  r = c->Post("/api/v1/models/4/promote", R"({"version":"5"})", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(training_.Count("StartRun") + training_.Count("Promote"), 0);
  // Snake-case names are accepted too (protobuf's parser takes both).
  r = c->Post("/api/v1/training/runs", R"({"no_promote":true,"trigger":"manual"})",
              "application/json");
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(training_.last_start.no_promote());
}

// One row of 30 numbers as a JSON array: [1,0.5,1,...,14.5].
std::string RowJson() {
  std::string row = "[1";
  for (int i = 1; i < 30; ++i) absl::StrAppend(&row, ",", i * 0.5);
  return row + "]";
}

TEST_F(GatewayTest, ScoresRowsGivenAsArraysOrAsAPredictRequest) {
  StartGateway();
  auto c = Client();
  const std::string row = RowJson();
  auto r = c->Post("/api/v1/score", absl::StrCat(R"({"rows":[)", row, ",", row, "]}"),
                   "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(inference_.last_predict.rows().num_rows(), 2u);
  ASSERT_EQ(inference_.last_predict.rows().features_size(), 60);
  EXPECT_EQ(inference_.last_predict.rows().features(29), 14.5);
  json b = Body(r);
  EXPECT_EQ(b["scores"]["scores"].size(), 2u);
  EXPECT_EQ(b["scores"]["modelVersion"], "4");
  r = c->Post("/api/v1/score",
              R"({"rows":{"numRows":1,"features":[)" + row.substr(1, row.size() - 2) + "]}}",
              "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(inference_.last_predict.rows().num_rows(), 1u);
  r = c->Post("/api/v1/score", absl::StrCat(R"({"rows":[)", row, ",[1,2,3]]}"), "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(Body(r)["message"].get<std::string>(), HasSubstr("rows[1]"));
  r = c->Post("/api/v1/score", R"({"rows":[]})", "application/json");
  EXPECT_EQ(r->status, 400);
}

TEST_F(GatewayTest, ScoreForwardsExplainAndTopKAndReturnsTheReasons) {
  StartGateway();
  auto c = Client();
  const std::string row = RowJson();
  auto r =
      c->Post("/api/v1/score", absl::StrCat(R"({"rows":[)", row, R"(],"explain":true,"top_k":7})"),
              "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(inference_.last_predict.explain());
  EXPECT_EQ(inference_.last_predict.top_k(), 7);
  json b = Body(r);
  ASSERT_EQ(b["explanations"].size(), 1u);
  const json& top = b["explanations"][0]["top"][0];
  EXPECT_EQ(top["feature"], "V14");
  EXPECT_EQ(top["index"], 14);
  EXPECT_EQ(top["value"], 7.0);
  EXPECT_EQ(top["contribution"], 0.75);
  EXPECT_EQ(b["explanations"][0]["bias"], -2.0);
  EXPECT_EQ(b["explanations"][0]["margin"], -1.0);
  EXPECT_EQ(b["explanations"][0]["rest"], 0.25);
  // The PredictRequest form carries them as its own fields.
  r = c->Post("/api/v1/score",
              R"({"explain":true,"topK":3,"rows":{"numRows":1,"features":[)" +
                  row.substr(1, row.size() - 2) + "]}}",
              "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(inference_.last_predict.top_k(), 3);
  // Anything else beside rows, or a wrongly typed option, is refused before inference is called.
  const int calls = inference_.Count("Predict");
  for (const char* extra : {R"("explain":"yes")", R"("top_k":2.5)", R"("verbose":true)"}) {
    r = c->Post("/api/v1/score", absl::StrCat(R"({"rows":[)", row, "],", extra, "}"),
                "application/json");
    EXPECT_EQ(r->status, 400) << extra;
    EXPECT_THAT(Body(r)["message"].get<std::string>(), HasSubstr("besides rows")) << extra;
  }
  EXPECT_EQ(inference_.Count("Predict"), calls);
}

TEST_F(GatewayTest, ScoreForwardsTransactionIdsInBothBodyForms) {
  StartGateway();
  auto c = Client();
  const std::string row = RowJson();
  auto r = c->Post("/api/v1/score",
                   absl::StrCat(R"({"rows":[)", row, ",", row, R"(],"transactionIds":["a-1","a-2"]})"),
                   "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_THAT(inference_.last_predict.transaction_ids(), ::testing::ElementsAre("a-1", "a-2"));
  r = c->Post("/api/v1/score",
              R"({"transactionIds":["b-1"],"rows":{"numRows":1,"features":[)" +
                  row.substr(1, row.size() - 2) + "]}}",
              "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_THAT(inference_.last_predict.transaction_ids(), ::testing::ElementsAre("b-1"));
  // Without ids none are sent; ids that are not strings are refused before inference is called.
  r = c->Post("/api/v1/score", absl::StrCat(R"({"rows":[)", row, "]}"), "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(inference_.last_predict.transaction_ids_size(), 0);
  const int calls = inference_.Count("Predict");
  r = c->Post("/api/v1/score", absl::StrCat(R"({"rows":[)", row, R"(],"transactionIds":[7]})"),
              "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(Body(r)["message"].get<std::string>(), HasSubstr("array of strings"));
  EXPECT_EQ(inference_.Count("Predict"), calls);
}

TEST_F(GatewayTest, UnknownRoutesAndMethodsGetJsonErrors) {
  StartGateway();
  auto c = Client();
  auto r = c->Get("/api/v1/nothing");
  EXPECT_EQ(r->status, 404);
  EXPECT_THAT(Body(r)["message"].get<std::string>(), HasSubstr("no route"));
  r = c->Get("/api/v1/score");
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "POST");
  r = c->Post("/api/v1/nothing", std::string(100000, 'x'), "text/csv");
  EXPECT_EQ(r->status, 404);
  r = c->Delete("/api/v1/uploads/3");
  EXPECT_EQ(r->status, 405);
  r = c->Get("/api/v1/models/abc");
  EXPECT_EQ(r->status, 404);
  r = c->Get("/api/v1/models/5");
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(Body(r)["message"], "no such version");
  r = c->Get("/api/v1/uploads/99999999999999999999");
  EXPECT_EQ(r->status, 400);
}

TEST_F(GatewayTest, BackendDownIs503NamingTheService) {
  StartGateway();
  storage_server_->Shutdown(absl::ZeroDuration());
  storage_server_.reset();
  auto r = Client()->Get("/api/v1/models");
  EXPECT_EQ(r->status, 503);
  EXPECT_THAT(Body(r)["message"].get<std::string>(), HasSubstr("storage ListModels"));
}

TEST_F(GatewayTest, HealthIsOkWhenAllServeAndDegradedOtherwise) {
  StartGateway();
  auto c = Client();
  auto r = c->Get("/api/v1/health");
  ASSERT_EQ(r->status, 200) << r->body;
  json b = Body(r);
  EXPECT_EQ(b["status"], "ok");
  EXPECT_EQ(b["services"]["ingest"], "SERVING");
  EXPECT_EQ(b["services"]["training"], "SERVING");
  inference_server_->runner().SetServing("", false);
  r = c->Get("/api/v1/health");
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(Body(r)["status"], "degraded");
  EXPECT_EQ(Body(r)["services"]["inference"], "NOT_SERVING");
  training_server_->Shutdown(absl::ZeroDuration());
  r = c->Get("/healthz");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(Body(r)["services"]["training"], "UNAVAILABLE");
}

std::string EventsOf(const std::string& body) {
  std::string out;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "event: ")) out += line.substr(7) + ",";
  }
  return out;
}

TEST_F(GatewayTest, StreamsRunUpdatesAsServerSentEvents) {
  StartGateway();
  auto r = Client()->Get("/api/v1/training/runs/9/events");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  EXPECT_EQ(r->get_header_value("Cache-Control"), "no-cache");
  // Never compressed (a gzip stream would be buffered by browsers and proxies).
  EXPECT_FALSE(r->has_header("Content-Encoding"));
  EXPECT_EQ(EventsOf(r->body), "run,run,run,end,");
  // Each event is `event: run\ndata: <TrainingRun JSON>\n\n`.
  const size_t first = r->body.find("event: run\ndata: ");
  ASSERT_NE(first, std::string::npos);
  const size_t data = first + std::string("event: run\ndata: ").size();
  const size_t end = r->body.find("\n\n", data);
  json run = json::parse(r->body.substr(data, end - data));
  EXPECT_EQ(run["id"], "9");
  EXPECT_EQ(run["status"], "RUN_STATUS_RUNNING");
  EXPECT_THAT(r->body,
              HasSubstr("event: end\ndata: {\"id\":\"9\",\"status\":\"RUN_STATUS_SUCCEEDED\""));
}

TEST_F(GatewayTest, SendsHeartbeatsWhileARunIsQuiet) {
  GatewayOptions o = DefaultOptions();
  o.sse_heartbeat = absl::Milliseconds(50);
  StartGateway(o);
  training_.watch_updates = 2;
  training_.watch_interval = absl::Milliseconds(400);
  auto r = Client()->Get("/api/v1/training/runs/9/events");
  ASSERT_EQ(r->status, 200);
  EXPECT_THAT(r->body, HasSubstr(": keep-alive\n\n"));
  EXPECT_EQ(EventsOf(r->body), "run,run,end,");
}

TEST_F(GatewayTest, UnknownRunIsA404NotAnEmptyStream) {
  StartGateway();
  auto r = Client()->Get("/api/v1/training/runs/10/events");
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(Body(r)["code"], "NOT_FOUND");
}

TEST_F(GatewayTest, ClosingTheEventStreamCancelsTheWatch) {
  StartGateway();
  training_.watch_updates = 1000;
  training_.watch_interval = absl::Milliseconds(20);
  auto c = Client();
  int events = 0;
  auto r = c->Get("/api/v1/training/runs/9/events", [&](const char* data, size_t n) {
    events += static_cast<int>(std::count(data, data + n, '\n') > 0);
    return events < 3;  // hang up early
  });
  for (int i = 0; i < 200 && training_.watch_cancelled == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(training_.watch_cancelled, 1);
}

TEST_F(GatewayTest, ShutdownEndsOpenEventStreamsPromptly) {
  StartGateway();
  training_.watch_updates = 100000;
  training_.watch_interval = absl::Milliseconds(50);
  std::thread client([&] { Client()->Get("/api/v1/training/runs/9/events"); });
  for (int i = 0; i < 200 && training_.watches == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  const absl::Time start = absl::Now();
  gateway_->Shutdown(absl::Seconds(5));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  client.join();
}

TEST_F(GatewayTest, MonitoringAggregatesHealthMetricsChampionAndUploads) {
  FakeMetricsEndpoint ingest_metrics(
      "# TYPE fraud_ingest_rpc_requests_total counter\n"
      "fraud_ingest_rpc_requests_total{method=\"Upload\",code=\"OK\"} 5\n"
      "fraud_ingest_rpc_requests_total{method=\"Upload\",code=\"INVALID_ARGUMENT\"} 2\n"
      "fraud_ingest_rpc_latency_seconds_bucket{method=\"Upload\",le=\"0.1\"} 3\n"
      "fraud_ingest_rpc_latency_seconds_bucket{method=\"Upload\",le=\"1\"} 7\n"
      "fraud_ingest_rpc_latency_seconds_bucket{method=\"Upload\",le=\"+Inf\"} 7\n"
      "fraud_ingest_rpc_latency_seconds_sum{method=\"Upload\"} 2.5\n"
      "fraud_ingest_rpc_latency_seconds_count{method=\"Upload\"} 7\n"
      "go_threads 12\n");
  FakeMetricsEndpoint inference_metrics(
      "fraud_inference_model_reloads_total{result=\"ok\"} 3\n"
      "fraud_inference_model_reloads_total{result=\"failed\"} 1\n");
  GatewayOptions o = DefaultOptions();
  o.ingest_metrics = ingest_metrics.target();
  o.inference_metrics = inference_metrics.target();
  o.storage_metrics = "127.0.0.1:1";  // nothing listens: reported, not fatal
  StartGateway(o);
  ASSERT_EQ(Client()->Get("/api/v1/models")->status, 200);  // something for the gateway to count
  auto r = Client()->Get("/api/v1/monitoring");
  ASSERT_EQ(r->status, 200) << r->body;
  json b = Body(r);
  std::map<std::string, json> services;
  for (const json& s : b["services"]) services[s["name"]] = s;
  ASSERT_EQ(services.size(), 5u) << r->body;
  EXPECT_TRUE(services["ingest"]["healthy"].get<bool>());
  json im = services["ingest"]["metrics"];
  EXPECT_EQ(im["fraud_ingest_rpc_requests_total"], 7);
  EXPECT_EQ(im["fraud_ingest_rpc_requests_total{code=\"OK\"}"], 5);
  EXPECT_EQ(im["fraud_ingest_rpc_latency_seconds_sum"], 2.5);
  EXPECT_EQ(im["fraud_ingest_rpc_latency_seconds_count"], 7);
  // Rank 3.5 of 7 falls in (0.1, 1] holding 4 samples: 0.1 + 0.9 * 0.5 / 4.
  EXPECT_NEAR(im["fraud_ingest_rpc_latency_seconds_p50"].get<double>(), 0.2125, 1e-9);
  EXPECT_FALSE(im.contains("go_threads"));
  EXPECT_EQ(
      services["inference"]["metrics"]["fraud_inference_model_reloads_total{result=\"failed\"}"],
      1);
  EXPECT_EQ(services["inference"]["metrics"]["fraud_inference_model_reloads_total"], 4);
  EXPECT_TRUE(services["storage"].contains("metricsError"));
  EXPECT_TRUE(services["storage"]["healthy"].get<bool>());
  EXPECT_TRUE(services["gateway"]["metrics"].contains("fraud_gateway_http_requests_total"));
  EXPECT_EQ(b["champion"]["version"], "4");
  EXPECT_EQ(b["champion"]["family"], "MODEL_FAMILY_MLP");
  EXPECT_EQ(b["championSince"], "2023-11-14T22:13:20Z");
  ASSERT_EQ(b["uploads"].size(), 2u);
  EXPECT_EQ(b["uploads"][0]["id"], "3");
  EXPECT_EQ(b["uploads"][0]["rows"], "123456789012");
  EXPECT_EQ(b["uploads"][0]["frauds"], "5");
  EXPECT_EQ(b["uploads"][0]["predictedFrauds"], "13");
  EXPECT_EQ(b["uploads"][0]["time"], "2023-11-14T22:13:23Z");
}

TEST_F(GatewayTest, ServesItsOwnMetrics) {
  StartGateway();
  auto c = Client();
  c->Get("/api/v1/models");
  auto r = c->Get("/metrics");
  ASSERT_EQ(r->status, 200);
  EXPECT_THAT(r->get_header_value("Content-Type"), HasSubstr("text/plain"));
  EXPECT_THAT(r->body, HasSubstr("fraud_gateway_http_requests_total{"));
  EXPECT_THAT(r->body, HasSubstr("route=\"/api/v1/models\""));
  EXPECT_THAT(r->body, HasSubstr("fraud_gateway_http_request_duration_seconds_bucket"));
  EXPECT_THAT(r->body, HasSubstr("fraud_gateway_upload_bytes_total"));
  EXPECT_THAT(r->body, HasSubstr("fraud_gateway_uploads_in_flight"));
}

TEST_F(GatewayTest, DemoSampleStreamsTheGeneratorsExactBytes) {
  StartGateway();
  auto c = Client();
  auto r = c->Get("/api/v1/demo/sample.csv?rows=2500&seed=7&fraud_rate=0.01");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_THAT(r->get_header_value("Content-Type"), HasSubstr("text/csv"));
  EXPECT_THAT(r->get_header_value("Content-Disposition"), HasSubstr("attachment"));
  csv::GeneratorOptions g;
  g.rows = 2500;
  g.seed = 7;
  g.fraud_rate = 0.01;
  std::ostringstream expected;
  ASSERT_THAT(csv::WriteSyntheticCsv(g, expected), fraud::testing::IsOk());
  EXPECT_EQ(r->body, expected.str());
  r = c->Get("/api/v1/demo/sample.csv?rows=3&labels=false");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(std::count(r->body.begin(), r->body.end(), '\n'), 4);
  EXPECT_THAT(r->body, Not(HasSubstr("Class")));
  EXPECT_EQ(c->Get("/api/v1/demo/sample.csv?rows=200001")->status, 400);
  EXPECT_EQ(c->Get("/api/v1/demo/sample.csv?fraud_rate=2")->status, 400);
  EXPECT_EQ(c->Get("/api/v1/demo/sample.csv?labels=maybe")->status, 400);
}

class StaticFilesTest : public GatewayTest {
 protected:
  void SetUp() override {
    GatewayTest::SetUp();
    base_ = std::filesystem::temp_directory_path() /
            absl::StrCat("gw-static-", ::getpid(), "-", reinterpret_cast<uintptr_t>(this));
    root_ = base_ / "dist";
    std::filesystem::create_directories(root_ / "assets");
    Write(root_ / "index.html", "<!doctype html><title>app</title>");
    Write(root_ / "assets" / "index-3f2a1b.js", "console.log(1)");
    Write(root_ / "assets" / "index-3f2a1b.css", "body{}");
    Write(root_ / "favicon.svg", "<svg/>");
    Write(base_ / "secret.txt", "do not serve");
    std::filesystem::create_symlink(base_ / "secret.txt", root_ / "leak.txt");
    GatewayOptions o = DefaultOptions();
    o.web_root = root_.string();
    StartGateway(o);
  }
  void TearDown() override {
    GatewayTest::TearDown();
    std::filesystem::remove_all(base_);
  }
  static void Write(const std::filesystem::path& p, const std::string& text) {
    std::ofstream(p) << text;
  }
  // Sends the path exactly as given (no client-side normalisation).
  std::string RawGet(const std::string& path) {
    httplib::Client c("127.0.0.1", gateway_->port());
    auto r = c.Get(path);
    return r ? absl::StrCat(r->status, " ", r->body) : "no answer";
  }
  std::filesystem::path base_, root_;
};

TEST_F(StaticFilesTest, ServesFilesWithTypesAndCacheHeaders) {
  auto c = Client();
  auto r = c->Get("/");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "<!doctype html><title>app</title>");
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(r->get_header_value("Cache-Control"), "no-cache");
  r = c->Get("/assets/index-3f2a1b.js");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(r->get_header_value("Cache-Control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(c->Get("/assets/index-3f2a1b.css")->get_header_value("Content-Type"),
            "text/css; charset=utf-8");
  EXPECT_EQ(c->Get("/favicon.svg")->get_header_value("Content-Type"), "image/svg+xml");
}

TEST_F(StaticFilesTest, FallsBackToIndexForClientRoutesOnly) {
  auto c = Client();
  auto r = c->Get("/uploads/12");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "<!doctype html><title>app</title>");
  EXPECT_EQ(r->get_header_value("Cache-Control"), "no-cache");
  EXPECT_EQ(c->Get("/training")->status, 200);
  EXPECT_EQ(c->Get("/assets/missing-123.js")->status, 404);
  r = c->Get("/api/v1/unknown");
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(Body(r)["code"], "NOT_FOUND");
}

TEST_F(StaticFilesTest, RejectsTraversalAndSymlinksOutOfTheRoot) {
  for (const std::string path :
       {"/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt",
        "/assets/%2E%2E/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt", "/..\\secret.txt"}) {
    const std::string answer = RawGet(path);
    EXPECT_THAT(answer, Not(HasSubstr("do not serve"))) << path;
    EXPECT_THAT(answer, ::testing::StartsWith("4")) << path << " -> " << answer;
  }
  EXPECT_THAT(RawGet("/leak.txt"), ::testing::StartsWith("403"));
}

TEST_F(GatewayTest, CorsHeadersOnlyWhenConfigured) {
  StartGateway();
  auto c = Client();
  auto r = c->Get("/api/v1/models", {{"Origin", "http://ui.example"}});
  EXPECT_FALSE(r->has_header("Access-Control-Allow-Origin"));
  gateway_->Shutdown(absl::ZeroDuration());
  GatewayOptions o = DefaultOptions();
  o.cors_origin = "http://ui.example, http://other.example";
  StartGateway(o);
  c = Client();
  r = c->Get("/api/v1/models", {{"Origin", "http://ui.example"}});
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "http://ui.example");
  r = c->Get("/api/v1/models", {{"Origin", "http://evil.example"}});
  EXPECT_FALSE(r->has_header("Access-Control-Allow-Origin"));
  r = c->Options("/api/v1/training/runs",
                 {{"Origin", "http://ui.example"}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(r->status, 204);
  EXPECT_THAT(r->get_header_value("Access-Control-Allow-Headers"), HasSubstr("Authorization"));
  EXPECT_THAT(r->get_header_value("Access-Control-Allow-Methods"), HasSubstr("POST"));
}

TEST_F(GatewayTest, RateLimitPerClientAnswers429WithRetryAfter) {
  GatewayOptions o = DefaultOptions();
  o.rate_limit_rps = 2;
  o.rate_limit_burst = 4;
  StartGateway(o);
  auto c = Client();
  int ok = 0;
  httplib::Result last = c->Get("/api/v1/models");
  ok += last->status == 200;
  for (int i = 0; i < 5; ++i) {
    last = c->Get("/api/v1/models");
    if (last->status == 200) ++ok;
  }
  EXPECT_LE(ok, 5);
  EXPECT_GE(ok, 4);
  ASSERT_EQ(last->status, 429);
  EXPECT_EQ(Body(last)["code"], "RESOURCE_EXHAUSTED");
  EXPECT_GE(std::stoi(last->get_header_value("Retry-After")), 1);
  // Static files are not limited.
  EXPECT_NE(c->Get("/index.html")->status, 429);
  absl::SleepFor(absl::Milliseconds(600));
  EXPECT_EQ(c->Get("/api/v1/models")->status, 200);
}

TEST_F(GatewayTest, RefusesTooManyHeaders) {
  StartGateway();
  httplib::Headers h;
  for (int i = 0; i < 150; ++i) h.emplace(absl::StrCat("X-Filler-", i), "1");
  auto r = Client()->Get("/api/v1/models", h);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(storage_.Count("ListModels"), 0);
}

TEST_F(GatewayTest, ServesHttpsWhenGivenACertificate) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / absl::StrCat("gw-tls-", ::getpid());
  std::filesystem::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  const std::string cmd =
      absl::StrCat("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -keyout ",
                   key, " -out ", cert, " >/dev/null 2>&1");
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "openssl not available";
  GatewayOptions o = DefaultOptions();
  o.tls_cert_file = cert;
  o.tls_key_file = key;
  StartGateway(o);
  httplib::SSLClient c("127.0.0.1", gateway_->port());
  c.enable_server_certificate_verification(false);
  auto r = c.Get("/api/v1/models");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  // Plain HTTP on the TLS port gets no answer.
  httplib::Client plain("127.0.0.1", gateway_->port());
  plain.set_read_timeout(2, 0);
  auto p = plain.Get("/api/v1/models");
  EXPECT_TRUE(!p || p->status != 200);
  gateway_->Shutdown(absl::ZeroDuration());
  o.tls_key_file = (dir / "missing.pem").string();
  GatewayServer bad(Backends{}, o);
  EXPECT_EQ(bad.Start().code(), absl::StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

TEST_F(GatewayTest, OpenApiDocumentListsExactlyTheRegisteredRoutes) {
  StartGateway();
  auto r = Client()->Get("/api/v1/openapi.json");
  ASSERT_EQ(r->status, 200);
  json doc = Body(r);
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc["openapi"], "3.0.3");
  std::set<std::pair<std::string, std::string>> documented;
  for (const auto& [path, ops] : doc["paths"].items()) {
    for (const auto& [method, op] : ops.items()) {
      documented.insert({absl::AsciiStrToUpper(method), path});
    }
  }
  std::set<std::pair<std::string, std::string>> registered;
  for (const auto& rt : gateway_->registered_routes()) registered.insert(rt);
  std::set<std::pair<std::string, std::string>> table;
  for (const RouteSpec& s : GatewayServer::RouteSpecs()) table.insert({s.method, s.path});
  EXPECT_THAT(documented, ContainerEq(registered));
  EXPECT_THAT(table, ContainerEq(registered));
  // The contract's routes are all there.
  for (const std::pair<std::string, std::string>& must :
       std::vector<std::pair<std::string, std::string>>{
           {"POST", "/api/v1/uploads"},
           {"POST", "/api/v1/uploads:validate"},
           {"GET", "/api/v1/uploads/{id}/predictions"},
           {"POST", "/api/v1/models/{version}/promote"},
           {"GET", "/api/v1/training/runs/{id}/events"},
           {"GET", "/api/v1/monitoring"},
           {"GET", "/api/v1/demo/sample.csv"},
           {"GET", "/healthz"},
           {"GET", "/metrics"}}) {
    EXPECT_TRUE(registered.count(must)) << must.first << " " << must.second;
  }
  // Every $ref resolves.
  std::function<void(const json&)> check = [&](const json& j) {
    if (j.is_object()) {
      if (j.contains("$ref")) {
        const std::string ref = j["$ref"];
        const std::string name = ref.substr(ref.rfind('/') + 1);
        EXPECT_TRUE(doc["components"]["schemas"].contains(name)) << ref;
      }
      for (const auto& [k, v] : j.items()) check(v);
    } else if (j.is_array()) {
      for (const auto& v : j) check(v);
    }
  };
  check(doc);
  // Proto schemas follow the JSON mapping.
  json upload = doc["components"]["schemas"]["fraud.storage.v1.Upload"]["properties"];
  EXPECT_EQ(upload["rows"]["type"], "string");
  EXPECT_EQ(upload["receivedAt"]["format"], "date-time");
  EXPECT_EQ(upload["mode"]["enum"][1], "UPLOAD_MODE_STRICT");
  EXPECT_TRUE(doc["paths"]["/api/v1/models/{version}/promote"]["post"].contains("security"));
}

TEST_F(GatewayTest, EveryDocumentedPathIsServed) {
  GatewayOptions o = DefaultOptions();
  StartGateway(o);
  auto c = Client();
  for (const RouteSpec& s : GatewayServer::RouteSpecs()) {
    std::string path =
        absl::StrReplaceAll(s.path, {{"{id}", "9"}, {"{version}", "4"}, {"{line}", "2"}});
    httplib::Result r = s.method == "GET" ? c->Get(path) : c->Post(path, "{}", "application/json");
    ASSERT_TRUE(r) << path;
    const json b = json::parse(r->body, nullptr, false);
    const bool no_route = b.is_object() && b.contains("message") &&
                          absl::StartsWith(b["message"].get<std::string>(), "no route");
    EXPECT_FALSE(no_route) << s.method << " " << path;
    EXPECT_NE(r->status, 405) << s.method << " " << path;
  }
}

}  // namespace
}  // namespace fraud::gateway::testing
