// Hostile-input and access tests on real processes: admin RPCs and admin REST routes refuse
// without the bearer token (and change nothing), tokens never appear in logs or answers, and the
// size/length/header/rate/connection limits hold, each checked against what the database holds.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "services/common/rpc/channel.h"
#include "tests/fault/processes/fault_util.h"

namespace fraud::fault {
namespace {

namespace fs = std::filesystem;
using ::testing::AnyOf;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kToken[] = "s3cret-admin-token-6f1d9c";
// Same length as the real token, differing only in the last byte.
constexpr char kWrongToken[] = "s3cret-admin-token-6f1d9d";
constexpr char kOtherToken[] = "guess-WRONGTOKEN-1234";

// A connected TCP socket to 127.0.0.1:port (-1 on failure).
int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fraud-web-root.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    web_root_ = tmpl;
    std::ofstream(web_root_ + "/index.html") << "<html>fraud</html>";
    env_.c.reset();
    absl::Status s = StartEnv();
    ASSERT_TRUE(s.ok()) << s;
    s = env_.WaitModelServing(absl::Seconds(60));
    ASSERT_TRUE(s.ok()) << s;
    inference_ = inference::v1::InferenceService::NewStub(env_.Channel("inference"));
    training_ = training::v1::TrainingService::NewStub(env_.Channel("training"));
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(web_root_, ec);
  }

  absl::Status StartEnv() {
    return env_.Start(
        {{"ingest", {"--max_upload_bytes=3000000"}},
         {"gateway",
          {"--max_upload_bytes=2000000", "--max_json_bytes=10000", "--rate_limit_rps=20",
           "--max_connections=8", absl::StrCat("--web_root=", web_root_)}}},
        {}, kToken);
  }

  // Adds "authorization: <value>" unless value is empty.
  static void Auth(grpc::ClientContext* ctx, const std::string& value) {
    if (!value.empty()) ctx->AddMetadata("authorization", value);
  }
  grpc::Status Reload(const std::string& auth, int64_t version) {
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(30));
    Auth(&ctx, auth);
    inference::v1::ReloadRequest r;
    r.set_version(version);
    inference::v1::ReloadResponse out;
    return inference_->Reload(&ctx, r, &out);
  }
  grpc::Status StartRun(const std::string& auth) {
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(10));
    Auth(&ctx, auth);
    training::v1::StartRunRequest r;
    r.add_families("logreg");
    training::v1::StartRunResponse out;
    return training_->StartRun(&ctx, r, &out);
  }
  grpc::Status CancelRun(const std::string& auth, int64_t id) {
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(10));
    Auth(&ctx, auth);
    training::v1::CancelRunRequest r;
    r.set_run_id(id);
    training::v1::CancelRunResponse out;
    return training_->CancelRun(&ctx, r, &out);
  }
  grpc::Status Promote(const std::string& auth, int64_t version) {
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(30));
    Auth(&ctx, auth);
    training::v1::PromoteRequest r;
    r.set_version(version);
    r.set_reason("security test");
    training::v1::PromoteResponse out;
    return training_->Promote(&ctx, r, &out);
  }

  // Everything the services wrote to their logs.
  std::string AllLogs() {
    std::string all;
    for (const auto& e : fs::directory_iterator(env_.c->work_dir())) {
      if (e.path().extension() != ".log") continue;
      std::ifstream in(e.path());
      std::stringstream s;
      s << in.rdbuf();
      all += s.str();
    }
    return all;
  }

  int64_t Runs() { return env_.CountOrDie("SELECT count(*) FROM training_runs"); }
  int64_t ChampionChanges() { return env_.CountOrDie("SELECT count(*) FROM champion_history"); }
  int64_t Uploads() { return env_.CountOrDie("SELECT count(*) FROM uploads"); }

  Env env_;
  std::string web_root_;
  std::unique_ptr<inference::v1::InferenceService::Stub> inference_;
  std::unique_ptr<training::v1::TrainingService::Stub> training_;
};

TEST_F(SecurityTest, AdminRpcsRefuseMissingOrWrongTokensAndChangeNothing) {
  const int64_t runs = Runs(), changes = ChampionChanges();
  const std::vector<std::string> refused = {
      "", std::string("Bearer ") + kWrongToken, std::string("Bearer ") + kOtherToken, kToken,
      std::string("Basic ") + kToken, std::string("Bearer ") + kToken + "x",
      std::string("Bearer  ") + kToken};
  for (const std::string& auth : refused) {
    SCOPED_TRACE(absl::StrCat("authorization '", auth, "'"));
    EXPECT_EQ(Reload(auth, 1).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(StartRun(auth).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(CancelRun(auth, 1).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Promote(auth, 1).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  EXPECT_EQ(Runs(), runs);
  EXPECT_EQ(ChampionChanges(), changes);

  // The right token is accepted (the header's scheme is case-insensitive).
  const std::string ok = std::string("Bearer ") + kToken;
  EXPECT_TRUE(Reload(ok, 1).ok()) << Reload(ok, 1).error_message();
  EXPECT_TRUE(Reload(std::string("bearer ") + kToken, 1).ok());
  EXPECT_EQ(CancelRun(ok, 99999).error_code(), grpc::StatusCode::NOT_FOUND);
  const grpc::Status promote = Promote(ok, 1);
  EXPECT_NE(promote.error_code(), grpc::StatusCode::UNAUTHENTICATED) << promote.error_message();
  EXPECT_TRUE(StartRun(ok).ok());
  EXPECT_EQ(Runs(), runs + 1);
}

TEST_F(SecurityTest, ReloadTakesOnlyAVersionNumberNeverAPath) {
  const std::string ok = std::string("Bearer ") + kToken;
  // Versions are numbers: negative or absent ones are refused without touching the filesystem
  // outside --model_dir (the artifact path is always <model_dir>/<decimal version>).
  for (int64_t v : {int64_t{-1}, int64_t{-1000}, int64_t{999999}, INT64_MAX}) {
    const grpc::Status s = Reload(ok, v);
    EXPECT_FALSE(s.ok()) << v;
    EXPECT_THAT(s.error_code(), AnyOf(Eq(grpc::StatusCode::INVALID_ARGUMENT),
                                      Eq(grpc::StatusCode::NOT_FOUND)))
        << v << ": " << s.error_message();
  }
  EXPECT_TRUE(env_.c->process("inference").running());
}

TEST_F(SecurityTest, AdminRestRoutesRefuseWithoutTheTokenAndChangeNothing) {
  if (!env_.has_gateway()) GTEST_SKIP() << "fraud-gateway is not built";
  const int64_t runs = Runs(), changes = ChampionChanges();
  httplib::Client http("127.0.0.1", env_.c->port("gateway"));
  struct Route {
    const char* path;
    const char* body;
  };
  const Route routes[] = {{"/api/v1/inference/reload", "{\"version\":\"1\"}"},
                          {"/api/v1/training/runs", "{\"families\":[\"logreg\"]}"},
                          {"/api/v1/training/runs/1/cancel", ""},
                          {"/api/v1/models/1/promote", "{\"reason\":\"x\"}"}};
  for (const Route& r : routes) {
    for (const std::string& auth :
         {std::string(), std::string("Bearer ") + kWrongToken, std::string("Bearer ") + kOtherToken}) {
      httplib::Headers headers;
      if (!auth.empty()) headers.emplace("Authorization", auth);
      auto res = http.Post(r.path, headers, r.body, "application/json");
      ASSERT_TRUE(res) << r.path;
      EXPECT_EQ(res->status, 401) << r.path << " with '" << auth << "': " << res->body;
      EXPECT_THAT(res->body, Not(HasSubstr(kToken)));
      EXPECT_THAT(res->body, Not(HasSubstr(kWrongToken)));
    }
  }
  EXPECT_EQ(Runs(), runs);
  EXPECT_EQ(ChampionChanges(), changes);
  httplib::Headers good = {{"Authorization", std::string("Bearer ") + kToken}};
  auto res = http.Post("/api/v1/inference/reload", good, "{\"version\":\"1\"}", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
}

TEST_F(SecurityTest, TokensNeverAppearInLogsOrAnswers) {
  // Refused and accepted admin calls, over gRPC and REST, with the token and with guesses.
  for (const std::string& auth :
       {std::string("Bearer ") + kWrongToken, std::string("Bearer ") + kOtherToken,
        std::string("Bearer ") + kToken}) {
    const grpc::Status s = Reload(auth, 1);
    EXPECT_THAT(s.error_message(), Not(HasSubstr("token-6f1d9")));
    (void)CancelRun(auth, 424242);
  }
  if (env_.has_gateway()) {
    httplib::Client http("127.0.0.1", env_.c->port("gateway"));
    for (const char* t : {kWrongToken, kOtherToken, kToken}) {
      httplib::Headers h = {{"Authorization", std::string("Bearer ") + t}};
      auto res = http.Post("/api/v1/training/runs/424242/cancel", h, "", "application/json");
      ASSERT_TRUE(res);
      EXPECT_THAT(res->body, Not(HasSubstr(t)));
    }
  }
  absl::SleepFor(absl::Milliseconds(300));  // let the services flush their log lines
  const std::string logs = AllLogs();
  ASSERT_FALSE(logs.empty());
  EXPECT_THAT(logs, Not(HasSubstr(kToken)));
  EXPECT_THAT(logs, Not(HasSubstr(kWrongToken)));
  EXPECT_THAT(logs, Not(HasSubstr(kOtherToken)));
  EXPECT_THAT(logs, Not(HasSubstr("token-6f1d9")));
}

TEST_F(SecurityTest, UploadLimitsRefuseAndStoreNothing) {
  const int64_t uploads = Uploads();
  // Over ingest's --max_upload_bytes (3 MB): RESOURCE_EXHAUSTED.
  const std::string big = SyntheticCsv(8000, 9001);
  ASSERT_GT(big.size(), 3000000u);
  const UploadOutcome too_big = UploadGrpc(env_.Channel("ingest"), "big.csv", big);
  EXPECT_EQ(too_big.code, grpc::StatusCode::RESOURCE_EXHAUSTED) << too_big.message;

  // A line longer than the 1 MiB line limit: INVALID_ARGUMENT naming the line, bounded memory.
  std::string long_line = SyntheticCsv(3, 9002);
  long_line += std::string(1500000, '7') + "\n";
  const UploadOutcome too_long = UploadGrpc(env_.Channel("ingest"), "long.csv", long_line);
  EXPECT_EQ(too_long.code, grpc::StatusCode::INVALID_ARGUMENT) << too_long.message;
  EXPECT_THAT(too_long.message, HasSubstr("line 5"));

  // A header listing the same column hundreds of times: a clear INVALID_ARGUMENT whose message
  // stays small (it travels in gRPC trailers, which are limited to a few KiB).
  std::string dup = "Time";
  for (int i = 1; i <= 28; ++i) absl::StrAppend(&dup, ",V", i);
  dup += ",Amount";
  for (int i = 0; i < 600; ++i) dup += ",V1";
  dup += "\n1\n";
  const UploadOutcome dup_header = UploadGrpc(env_.Channel("ingest"), "dup.csv", dup);
  EXPECT_EQ(dup_header.code, grpc::StatusCode::INVALID_ARGUMENT) << dup_header.message;
  EXPECT_THAT(dup_header.message, HasSubstr("duplicated"));
  EXPECT_LT(dup_header.message.size(), 4096u);

  if (env_.has_gateway()) {
    // Over the gateway's --max_upload_bytes (2 MB): 413 while streaming.
    const std::string mid = SyntheticCsv(5000, 9003);
    ASSERT_GT(mid.size(), 2000000u);
    const HttpOutcome rest = UploadRest(env_.c->port("gateway"), "mid.csv", mid);
    EXPECT_EQ(rest.status, 413) << rest.body;
    // A JSON body over --max_json_bytes: 413.
    httplib::Client http("127.0.0.1", env_.c->port("gateway"));
    auto res = http.Post("/api/v1/score", std::string(20000, ' ') + "{}", "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 413) << res->body;
  }
  EXPECT_EQ(Uploads(), uploads);
  EXPECT_EQ(env_.WritingTransactions(), 0);
  EXPECT_TRUE(env_.c->process("ingest").running());
}

TEST_F(SecurityTest, GatewayRefusesOversizedHeadersAndPathTraversal) {
  if (!env_.has_gateway()) GTEST_SKIP() << "fraud-gateway is not built";
  httplib::Client http("127.0.0.1", env_.c->port("gateway"));
  // One 40 KiB header (limit 32 KiB) and 150 headers (limit 100).
  auto big = http.Get("/api/v1/models", {{"X-Big", std::string(40 * 1024, 'a')}});
  if (big) {
    EXPECT_THAT(big->status, AnyOf(Eq(431), Eq(400))) << big->body;
  }
  httplib::Headers many;
  for (int i = 0; i < 150; ++i) many.emplace(absl::StrCat("X-H", i), "v");
  auto lots = http.Get("/api/v1/models", many);
  ASSERT_TRUE(lots);
  EXPECT_EQ(lots->status, 431) << lots->body;
  // Static files never leave --web_root, however the path is spelled.
  for (const char* path : {"/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                           "/assets/..%2f..%2f..%2fetc%2fpasswd", "/..%5c..%5cetc%5cpasswd",
                           "/index.html%00.png", "//etc/passwd"}) {
    auto res = http.Get(path);
    if (!res) continue;  // the HTTP layer refused the request line outright
    EXPECT_THAT(res->body, Not(HasSubstr("root:"))) << path;
    EXPECT_NE(res->status, 500) << path;
  }
  auto index = http.Get("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_THAT(index->body, HasSubstr("fraud"));
}

TEST_F(SecurityTest, GatewayRateLimitSheds429AndRecovers) {
  if (!env_.has_gateway()) GTEST_SKIP() << "fraud-gateway is not built";
  httplib::Client http("127.0.0.1", env_.c->port("gateway"));
  int ok = 0, limited = 0, other = 0;
  std::string retry_after;
  for (int i = 0; i < 120; ++i) {
    auto res = http.Get("/api/v1/models");
    if (!res) {
      ++other;
    } else if (res->status == 200) {
      ++ok;
    } else if (res->status == 429) {
      ++limited;
      retry_after = res->get_header_value("Retry-After");
    } else {
      ++other;
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(limited, 0);
  EXPECT_EQ(other, 0);
  EXPECT_FALSE(retry_after.empty());
  absl::SleepFor(absl::Seconds(std::max(1, std::atoi(retry_after.c_str())) + 1));
  auto res = http.Get("/api/v1/models");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(SecurityTest, IdleConnectionsDoNotLockOutOtherClients) {
  if (!env_.has_gateway()) GTEST_SKIP() << "fraud-gateway is not built";
  // A slowloris client: as many connections as the gateway has workers (8), each sending half a
  // request line and then nothing. A normal request must still be served promptly.
  std::vector<int> idle;
  for (int i = 0; i < 12; ++i) {
    const int fd = Connect(env_.c->port("gateway"));
    ASSERT_GE(fd, 0);
    const char partial[] = "GET /api/v1/mod";
    ASSERT_GT(::send(fd, partial, sizeof(partial) - 1, MSG_NOSIGNAL), 0);
    idle.push_back(fd);
  }
  absl::SleepFor(absl::Milliseconds(300));
  httplib::Client http("127.0.0.1", env_.c->port("gateway"));
  http.set_connection_timeout(5, 0);
  http.set_read_timeout(10, 0);
  const absl::Time start = absl::Now();
  auto res = http.Get("/healthz");
  const absl::Duration took = absl::Now() - start;
  for (int fd : idle) ::close(fd);
  ASSERT_TRUE(res) << "no answer within 10 s while idle connections were held";
  EXPECT_EQ(res->status, 200);
  EXPECT_LT(took, absl::Seconds(5)) << "a legitimate request waited for idle connections";
}

}  // namespace
}  // namespace fraud::fault
