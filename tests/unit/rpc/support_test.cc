// Status mapping, bearer tokens, env-configured flags, and the metrics endpoint's text format.
#include <gtest/gtest.h>

#include <cstdlib>

#include "absl/flags/flag.h"
#include "httplib.h"
#include "services/common/core/config.h"
#include "services/common/core/metrics.h"
#include "services/common/core/sha256.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/grpc_status.h"
#include "tests/testing/status_matchers.h"

ABSL_FLAG(int, support_test_port, 7, "test flag");
ABSL_FLAG(std::string, support_test_name, "x", "test flag");

namespace fraud {
namespace {

using ::testing::HasSubstr;
using testing::IsOk;
using testing::StatusIs;

TEST(GrpcStatusTest, EveryCodeSurvivesARoundTrip) {
  for (int c = 0; c <= 16; ++c) {
    absl::Status s(static_cast<absl::StatusCode>(c), c == 0 ? "" : "msg");
    absl::Status back = rpc::FromGrpcStatus(rpc::ToGrpcStatus(s));
    EXPECT_EQ(back.code(), s.code());
    EXPECT_EQ(back.message(), s.message());
  }
  EXPECT_STREQ(rpc::CodeName(absl::StatusCode::kResourceExhausted), "RESOURCE_EXHAUSTED");
}

TEST(AuthTest, AcceptsTheRightTokenAndRejectsOthers) {
  EXPECT_THAT(rpc::CheckAuthorizationHeader("Bearer s3cret", "s3cret"), IsOk());
  EXPECT_THAT(rpc::CheckAuthorizationHeader("bearer s3cret", "s3cret"), IsOk());
  EXPECT_THAT(rpc::CheckAuthorizationHeader("Bearer s3cre", "s3cret"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("invalid")));
  EXPECT_THAT(rpc::CheckAuthorizationHeader("", "s3cret"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("requires")));
  EXPECT_THAT(rpc::CheckAuthorizationHeader("Basic s3cret", "s3cret"),
              StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_THAT(rpc::CheckAuthorizationHeader("", ""), IsOk());  // auth disabled
  EXPECT_TRUE(rpc::ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(rpc::ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(rpc::ConstantTimeEquals("abc", "abcd"));
}

TEST(ConfigTest, EnvironmentSetsFlagDefaults) {
  EXPECT_EQ(EnvNameForFlag("support_test_port"), "FRAUD_SUPPORT_TEST_PORT");
  setenv("FRAUD_SUPPORT_TEST_PORT", "9123", 1);
  setenv("FRAUD_SUPPORT_TEST_NAME", "from-env", 1);
  EXPECT_TRUE(LoadFlagsFromEnv().empty());
  EXPECT_EQ(absl::GetFlag(FLAGS_support_test_port), 9123);
  EXPECT_EQ(absl::GetFlag(FLAGS_support_test_name), "from-env");
  setenv("FRAUD_SUPPORT_TEST_PORT", "not-a-number", 1);
  auto errors = LoadFlagsFromEnv();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("FRAUD_SUPPORT_TEST_PORT"), std::string::npos);
  unsetenv("FRAUD_SUPPORT_TEST_PORT");
  unsetenv("FRAUD_SUPPORT_TEST_NAME");
}

TEST(Sha256Test, MatchesKnownDigests) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 h;
  h.Update("a");
  h.Update("bc");
  EXPECT_EQ(h.HexDigest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_THAT(Sha256File("/nonexistent/file"), StatusIs(absl::StatusCode::kNotFound));
}

TEST(MetricsEndpointTest, ServesPrometheusTextFormatAndHealth) {
  auto& requests = metrics::Counter("fraud_test_requests_total", "Requests in the test");
  requests.Add({{"result", "ok"}}).Increment(3);
  auto& latency = metrics::Histogram("fraud_test_latency_seconds", "Latency in the test");
  latency.Add({}, metrics::LatencyBuckets()).Observe(0.002);
  bool ready = false;
  metrics::HttpEndpoint endpoint;
  ASSERT_THAT(endpoint.Start("127.0.0.1", 0, [&] { return ready; }), IsOk());
  httplib::Client client("127.0.0.1", endpoint.port());
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  const std::string& body = res->body;
  EXPECT_NE(body.find("# HELP fraud_test_requests_total Requests in the test"), std::string::npos);
  EXPECT_NE(body.find("# TYPE fraud_test_requests_total counter"), std::string::npos);
  EXPECT_NE(body.find("fraud_test_requests_total{result=\"ok\"} 3"), std::string::npos);
  EXPECT_NE(body.find("# TYPE fraud_test_latency_seconds histogram"), std::string::npos);
  EXPECT_NE(body.find("fraud_test_latency_seconds_bucket{le=\"0.0025\"} 1"), std::string::npos);
  EXPECT_NE(body.find("fraud_test_latency_seconds_bucket{le=\"+Inf\"} 1"), std::string::npos);
  EXPECT_NE(body.find("fraud_test_latency_seconds_count 1"), std::string::npos);
  // Every non-comment line is "<name>[{labels}] <number>".
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    std::string line = body.substr(pos, end - pos);
    pos = end == std::string::npos ? body.size() : end + 1;
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    char* parse_end = nullptr;
    std::strtod(line.c_str() + space + 1, &parse_end);
    EXPECT_EQ(*parse_end, '\0') << line;
  }
  auto health = client.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  ready = true;
  health = client.Get("/healthz");
  EXPECT_EQ(health->status, 200);
  endpoint.Stop();
}

}  // namespace
}  // namespace fraud
