#include "services/common/rpc/server_runner.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <future>
#include <set>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "services/common/core/metrics.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"
#include "tests/testing/in_process_server.h"
#include "tests/testing/loopback.h"
#include "tests/testing/process_constellation.h"
#include "tests/unit/rpc/test_services.h"

namespace fraud::rpc {
namespace {

using fraud::testing::InProcessServer;
using fraud::testing::IsOk;
using fraud::testing::SleepyInference;
namespace refl = grpc::reflection::v1alpha;

absl::StatusOr<int64_t> CallPredict(const std::shared_ptr<grpc::Channel>& channel, int sleep_ms,
                                    absl::Duration timeout = absl::Seconds(10)) {
  auto stub = fraud::inference::v1::InferenceService::NewStub(channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout);
  fraud::inference::v1::PredictRequest req;
  req.mutable_rows()->set_num_rows(sleep_ms);
  fraud::inference::v1::PredictResponse resp;
  grpc::Status s = stub->Predict(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  return resp.scores().model_version();
}

std::set<std::string> ListServicesByReflection(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = refl::ServerReflection::NewStub(channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(5));
  auto stream = stub->ServerReflectionInfo(&ctx);
  refl::ServerReflectionRequest req;
  req.set_list_services("*");
  stream->Write(req);
  stream->WritesDone();
  refl::ServerReflectionResponse resp;
  std::set<std::string> names;
  while (stream->Read(&resp)) {
    for (const auto& s : resp.list_services_response().service()) names.insert(s.name());
  }
  stream->Finish();
  return names;
}

TEST(ServerRunnerTest, StartsOnPortZeroAndAnswersCalls) {
  SleepyInference service;
  InProcessServer server({&service});
  ASSERT_THAT(server.Start(), IsOk());
  EXPECT_GT(server.port(), 0);
  auto result = CallPredict(server.channel(), 3);
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(*result, 3);
}

// Every call is counted by method and status code, timed and in flight while it runs, whichever
// thread makes it and whichever method comes first (the interceptor resolves each method's
// metrics once).
TEST(ServerRunnerTest, MetricsCountConcurrentCallsByMethodAndCode) {
  SleepyInference service;
  InProcessServer server({&service}, "metrics_test");
  ASSERT_THAT(server.Start(), IsOk());
  auto channel = server.channel();
  auto get_model = [&] {
    auto stub = fraud::inference::v1::InferenceService::NewStub(channel);
    grpc::ClientContext ctx;
    fraud::inference::v1::GetModelResponse resp;
    return stub->GetModel(&ctx, fraud::inference::v1::GetModelRequest(), &resp).error_code();
  };
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        EXPECT_THAT(CallPredict(channel, 0), IsOk());
        EXPECT_EQ(get_model(), grpc::StatusCode::UNIMPLEMENTED);  // SleepyInference has none
      }
    });
  }
  // One call still running while the metrics are read.
  auto slow = std::async(std::launch::async, [&] { return CallPredict(channel, 600); });
  for (auto& c : callers) c.join();
  absl::SleepFor(absl::Milliseconds(200));
  const std::string running = metrics::RenderText();
  ASSERT_THAT(slow.get(), IsOk());
  const std::string done = metrics::RenderText();

  using testing::MetricValue;
  const std::string p = "fraud_metrics_test_rpc_";
  EXPECT_EQ(MetricValue(running, p + "in_flight", {{"method", "Predict"}}), 1);
  EXPECT_EQ(MetricValue(done, p + "in_flight", {{"method", "Predict"}}), 0);
  EXPECT_EQ(MetricValue(done, p + "requests_total", {{"method", "Predict"}, {"code", "OK"}}), 21);
  EXPECT_EQ(MetricValue(done, p + "requests_total", {{"method", "Predict"}}), 21);
  EXPECT_EQ(MetricValue(done, p + "requests_total",
                        {{"method", "GetModel"}, {"code", "UNIMPLEMENTED"}}),
            20);
  EXPECT_EQ(MetricValue(done, p + "latency_seconds_count", {{"method", "Predict"}}), 21);
  EXPECT_EQ(MetricValue(done, p + "latency_seconds_count", {{"method", "GetModel"}}), 20);
  // The slow call's 600 ms is in the latency sum.
  EXPECT_GE(MetricValue(done, p + "latency_seconds_sum", {{"method", "Predict"}}), 0.6);
}

TEST(ServerRunnerTest, ReflectionListsTheServiceAndHealth) {
  SleepyInference service;
  InProcessServer server({&service});
  ASSERT_THAT(server.Start(), IsOk());
  std::set<std::string> names = ListServicesByReflection(server.channel());
  EXPECT_TRUE(names.count("fraud.inference.v1.InferenceService")) << names.size();
  EXPECT_TRUE(names.count("grpc.health.v1.Health"));
  EXPECT_TRUE(names.count("grpc.reflection.v1alpha.ServerReflection"));
}

TEST(ServerRunnerTest, ReflectionDescribesHealthService) {
  SleepyInference service;
  InProcessServer server({&service});
  ASSERT_THAT(server.Start(), IsOk());
  auto stub = refl::ServerReflection::NewStub(server.channel());
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(5));
  auto stream = stub->ServerReflectionInfo(&ctx);
  refl::ServerReflectionRequest req;
  req.set_file_containing_symbol("grpc.health.v1.Health");
  stream->Write(req);
  stream->WritesDone();
  refl::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_FALSE(resp.has_error_response()) << resp.error_response().error_message();
  EXPECT_GT(resp.file_descriptor_response().file_descriptor_proto_size(), 0);
  stream->Finish();
}

TEST(ServerRunnerTest, HealthReportsServingAndNotServing) {
  SleepyInference service;
  InProcessServer server({&service});
  ASSERT_THAT(server.Start(), IsOk());
  auto health = grpc::health::v1::Health::NewStub(server.channel());
  auto check = [&](const std::string& name) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::Seconds(5));
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(name);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = health->Check(&ctx, req, &resp);
    return s.ok() ? resp.status() : grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN;
  };
  EXPECT_EQ(check(""), grpc::health::v1::HealthCheckResponse::SERVING);
  server.runner().SetServing("fraud.inference.v1.InferenceService", false);
  EXPECT_EQ(check("fraud.inference.v1.InferenceService"),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  server.runner().SetServing("fraud.inference.v1.InferenceService", true);
  EXPECT_EQ(check("fraud.inference.v1.InferenceService"),
            grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST(ServerRunnerTest, AServerThatIsNotReadyIsNotServingFromTheStart) {
  SleepyInference service;
  InProcessServer server({&service});
  std::atomic<bool> ready{false};
  server.runner().SetReadyCheck([&] { return ready.load(); });
  ASSERT_THAT(server.Start(), IsOk());
  auto health = grpc::health::v1::Health::NewStub(server.channel());
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(5));
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
}

// Accepts one connection on 127.0.0.1 and, after `delay`, relays it both ways to `target_port`:
// a peer that is slow to answer the HTTP/2 handshake (a busy or starting server).
class SlowHandshakeProxy {
 public:
  SlowHandshakeProxy(int target_port, absl::Duration delay) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(::listen(listener_, 4), 0);
    EXPECT_EQ(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, target_port, delay] {
      const int client = ::accept(listener_, nullptr, nullptr);
      if (client < 0) return;
      absl::SleepFor(delay);
      const int server = fraud::testing::ConnectLoopback(target_port);
      std::thread up([client, server] { Pump(client, server); });
      Pump(server, client);
      up.join();
      ::close(client);
      ::close(server);
    });
  }
  ~SlowHandshakeProxy() {
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  static void Pump(int from, int to) {
    char buf[16384];
    ssize_t n;
    while ((n = ::read(from, buf, sizeof(buf))) > 0) {
      if (::send(to, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
    }
    ::shutdown(to, SHUT_WR);
  }
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST(ChannelTest, APeerSlowToCompleteTheHandshakeIsWaitedForWithinTheDeadline) {
  // The channel options once made gRPC give up on a connection after ~200 ms without the
  // server's SETTINGS frame, failing calls to a busy peer with UNAVAILABLE.
  SleepyInference service;
  InProcessServer server({&service});
  ASSERT_THAT(server.Start(), IsOk());
  SlowHandshakeProxy proxy(server.runner().port(), absl::Milliseconds(1500));
  auto channel = MakeChannel({absl::StrCat("127.0.0.1:", proxy.port())});
  absl::StatusOr<int64_t> r = CallPredict(channel, 1, absl::Seconds(10));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(*r, 1);
}

TEST(ServerRunnerTest, ShutdownLetsAnInFlightCallFinish) {
  SleepyInference service;
  InProcessServer server({&service});
  ASSERT_THAT(server.Start(), IsOk());
  auto channel = server.channel();
  auto call = std::async(std::launch::async, [&] { return CallPredict(channel, 400); });
  absl::SleepFor(absl::Milliseconds(100));  // the call is now inside the handler
  server.Shutdown(absl::Seconds(5));
  auto result = call.get();
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(*result, 400);
}

TEST(ServerRunnerTest, ShutdownCancelsCallsThatOutliveTheGracePeriod) {
  SleepyInference service;
  InProcessServer server({&service});
  ASSERT_THAT(server.Start(), IsOk());
  auto channel = server.channel();
  auto call = std::async(std::launch::async, [&] { return CallPredict(channel, 3000); });
  absl::SleepFor(absl::Milliseconds(100));
  const absl::Time start = absl::Now();
  server.Shutdown(absl::Milliseconds(200));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2.9));
  EXPECT_FALSE(call.get().ok());
}

TEST(ServerRunnerTest, OverloadShowsAsResourceExhausted) {
  SleepyInference service;
  // Threads: pollers take some of the quota; 2 leaves no room for many concurrent handlers.
  InProcessServer server({&service}, "overload", /*max_threads=*/2);
  ASSERT_THAT(server.Start(), IsOk());
  auto channel = server.channel();
  std::vector<std::future<absl::StatusOr<int64_t>>> calls;
  for (int i = 0; i < 8; ++i) {
    calls.push_back(std::async(std::launch::async, [&] { return CallPredict(channel, 300); }));
  }
  int exhausted = 0, ok = 0;
  for (auto& c : calls) {
    auto r = c.get();
    if (r.ok()) ++ok;
    if (r.status().code() == absl::StatusCode::kResourceExhausted) ++exhausted;
  }
  EXPECT_GT(exhausted, 0);
  EXPECT_EQ(ok + exhausted, 8);
}

TEST(ServerRunnerTest, SigtermDrainsAnInFlightCallInARealProcess) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    execl(SLEEPY_SERVER_PATH, SLEEPY_SERVER_PATH, nullptr);
    _exit(127);
  }
  close(out[1]);
  FILE* f = fdopen(out[0], "r");
  int port = 0;
  ASSERT_EQ(fscanf(f, "PORT %d", &port), 1);
  auto channel = MakeChannel({"127.0.0.1:" + std::to_string(port)});
  auto call = std::async(std::launch::async, [&] { return CallPredict(channel, 700); });
  absl::SleepFor(absl::Milliseconds(200));
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  auto result = call.get();
  EXPECT_THAT(result, IsOk());
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  EXPECT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 0);
  // After shutdown new calls fail fast.
  EXPECT_FALSE(CallPredict(channel, 1, absl::Milliseconds(500)).ok());
  fclose(f);
}

}  // namespace
}  // namespace fraud::rpc
