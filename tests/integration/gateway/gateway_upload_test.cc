// Upload streaming through the gateway against a fake ingest: exact bytes in chunks of at most
// the configured size, raw and multipart bodies, rejections with the summary, limits (413, 429),
// cut-off bodies that must never be committed, and flat memory for a large upload.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "services/common/core/sha256.h"
#include "tests/integration/gateway/gateway_fakes.h"
#include "tests/testing/loopback.h"

namespace fraud::gateway::testing {
namespace {

using ::fraud::testing::ConnectLoopback;
using ::testing::Each;
using ::testing::HasSubstr;
using ::testing::Le;
using json = nlohmann::json;

// The gateway's default chunk (GatewayOptions::upload_chunk_bytes, 256 KiB).
const size_t kChunk = GatewayOptions().upload_chunk_bytes;

json Body(const httplib::Result& r) { return r ? json::parse(r->body, nullptr, false) : json(); }

// Deterministic pseudo-CSV bytes (the fake does not parse).
std::string Bytes(size_t n, uint32_t seed = 1) {
  std::string s(n, ' ');
  uint32_t x = seed;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    s[i] = static_cast<char>('0' + (x >> 24) % 10);
    if (i % 97 == 96) s[i] = '\n';
  }
  return s;
}

long RssKb() {
  std::ifstream in("/proc/self/status");
  std::string key;
  long kb = 0;
  while (in >> key) {
    if (key == "VmRSS:") {
      in >> kb;
      return kb;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0;
}

// The answer to a streamed upload and how far the RSS rose above its value before the upload.
struct StreamedUpload {
  httplib::Result result;
  long rss_growth_mb;
};

// Posts `total` bytes, `block` repeated and produced on the fly (the client holds no copy of the
// body), to /api/v1/uploads while a sampler records the peak RSS every 5 ms.
StreamedUpload PostRepeatedBlock(httplib::Client& client, const std::string& block, size_t total) {
  const long baseline = RssKb();
  std::atomic<long> peak{baseline};
  std::atomic<bool> done{false};
  std::thread sampler([&] {
    while (!done) {
      peak = std::max(peak.load(), RssKb());
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  httplib::Result result = client.Post(
      "/api/v1/uploads", total,
      [&](size_t offset, size_t length, httplib::DataSink& sink) {
        return sink.write(block.data(), std::min(length, block.size() - offset % block.size()));
      },
      "text/csv");
  done = true;
  sampler.join();
  return {std::move(result), (peak - baseline) / 1024};
}

TEST_F(GatewayTest, RawUploadReachesIngestByteForByteInChunksOfTheConfiguredSize) {
  StartGateway();
  const std::string data = Bytes(3 * kChunk + 12345);
  auto r = Client()->Post("/api/v1/uploads?mode=lenient&file_name=day1.csv", data, "text/csv");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  FakeIngest::Received got = ingest_.last();
  EXPECT_EQ(got.data, data);
  EXPECT_TRUE(got.completed);
  EXPECT_FALSE(got.validate_only);
  EXPECT_EQ(got.options.file_name(), "day1.csv");
  EXPECT_EQ(got.options.mode(), storagepb::UPLOAD_MODE_LENIENT);
  ASSERT_EQ(got.chunk_sizes.size(), 4u);
  EXPECT_THAT(got.chunk_sizes, Each(Le(kChunk)));
  EXPECT_EQ(got.chunk_sizes[0], kChunk);
  EXPECT_EQ(got.chunk_sizes[3], 12345u);
  json b = Body(r);
  EXPECT_EQ(b["uploadId"], "42");
  EXPECT_EQ(b["rowsTotal"], "1234567890123");
  EXPECT_EQ(b["mode"], "UPLOAD_MODE_LENIENT");
  EXPECT_EQ(b["bytes"], std::to_string(data.size()));
  EXPECT_EQ(b["rowsRejected"], "0");
  EXPECT_EQ(ingest_.Last().request_id, r->get_header_value("X-Request-Id"));
}

TEST_F(GatewayTest, MultipartFileFieldIsStreamedWithItsFilenameAndFormMode) {
  StartGateway();
  const std::string data = Bytes(200000, 3);
  httplib::MultipartFormDataItems items = {{"mode", "lenient", "", ""},
                                           {"note", "ignored", "", ""},
                                           {"file", data, "transactions.csv", "text/csv"}};
  auto r = Client()->Post("/api/v1/uploads", items);
  ASSERT_EQ(r->status, 200) << r->body;
  FakeIngest::Received got = ingest_.last();
  EXPECT_EQ(got.data, data);
  EXPECT_EQ(got.options.file_name(), "transactions.csv");
  EXPECT_EQ(got.options.mode(), storagepb::UPLOAD_MODE_LENIENT);
  EXPECT_THAT(got.chunk_sizes, Each(Le(kChunk)));
  // The query wins over the form.
  r = Client()->Post("/api/v1/uploads?mode=strict&file_name=q.csv", items);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(ingest_.last().options.mode(), storagepb::UPLOAD_MODE_STRICT);
  EXPECT_EQ(ingest_.last().options.file_name(), "q.csv");
}

TEST_F(GatewayTest, MultipartWithoutAFileFieldIs400) {
  StartGateway();
  httplib::MultipartFormDataItems items = {{"mode", "strict", "", ""}};
  auto r = Client()->Post("/api/v1/uploads", items);
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(Body(r)["message"].get<std::string>(), HasSubstr("'file'"));
  items = {{"file", "a", "a.csv", "text/csv"}, {"file", "b", "b.csv", "text/csv"}};
  r = Client()->Post("/api/v1/uploads", items);
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(Body(r)["message"].get<std::string>(), HasSubstr("more than one"));
}

TEST_F(GatewayTest, ValidateGoesToValidateOnly) {
  StartGateway();
  auto r = Client()->Post("/api/v1/uploads:validate", Bytes(1000), "text/csv");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(ingest_.last().validate_only);
  EXPECT_EQ(Body(r)["uploadId"], "0");
  EXPECT_EQ(ingest_.Count("Upload"), 0);
}

TEST_F(GatewayTest, EmptyBodyStillOpensTheStreamSoIngestSaysWhatIsWrong) {
  StartGateway();
  auto r = Client()->Post("/api/v1/uploads", "", "text/csv");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(ingest_.last().bytes, 0);
  EXPECT_TRUE(ingest_.last().completed);
}

TEST_F(GatewayTest, RejectedFileIs400WithTheSummaryInDetails) {
  StartGateway();
  ingest_.reject_after_bytes = 1;
  auto r = Client()->Post("/api/v1/uploads", Bytes(100000), "text/csv");
  ASSERT_EQ(r->status, 400) << r->body;
  json b = Body(r);
  EXPECT_EQ(b["code"], "INVALID_ARGUMENT");
  EXPECT_THAT(b["message"].get<std::string>(), HasSubstr("line 5"));
  json s = b["details"]["summary"];
  ASSERT_TRUE(s.is_object()) << r->body;
  EXPECT_EQ(s["rowsRejected"], "1");
  ASSERT_EQ(s["errors"].size(), 1u);
  EXPECT_EQ(s["errors"][0]["line"], "5");
  EXPECT_EQ(s["errors"][0]["column"], "Amount");
  EXPECT_EQ(s["errors"][0]["columnIndex"], 30);
  EXPECT_EQ(s["errors"][0]["reason"], "not a number: 'abc'");
}

TEST_F(GatewayTest, EarlyRejectionOfALargeBodyStillAnswers400) {
  StartGateway();
  ingest_.reject_after_bytes = kChunk;
  ingest_.keep_data = false;
  // Larger than the drain allowance would be read anyway; the client must still get the answer.
  auto r = Client()->Post("/api/v1/uploads", Bytes(8 << 20), "text/csv");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(Body(r)["details"].contains("summary"));
}

TEST_F(GatewayTest, IngestSizeLimitWithSummaryIs413) {
  StartGateway();
  ingest_.too_large_at_end = true;
  auto r = Client()->Post("/api/v1/uploads", Bytes(1000), "text/csv");
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(Body(r)["code"], "PAYLOAD_TOO_LARGE");
  EXPECT_TRUE(Body(r)["details"].contains("summary"));
}

TEST_F(GatewayTest, UploadOverTheLimitIs413AndIsCancelledNotCommitted) {
  GatewayOptions o = DefaultOptions();
  o.max_upload_bytes = 1 << 20;
  StartGateway(o);
  // Chunked (no Content-Length): the limit is enforced while streaming.
  const std::string data = Bytes(3 << 20);
  auto r = Client()->Post(
      "/api/v1/uploads",
      [&](size_t offset, httplib::DataSink& sink) {
        if (offset >= data.size()) {
          sink.done();
          return true;
        }
        const size_t n = std::min<size_t>(16384, data.size() - offset);
        return sink.write(data.data() + offset, n);
      },
      "text/csv");
  ASSERT_TRUE(ingest_.WaitFinished(1));
  FakeIngest::Received got = ingest_.last();
  EXPECT_FALSE(got.completed);
  EXPECT_TRUE(got.cancelled);
  EXPECT_LE(got.bytes, 1 << 20);
  // The overflow (2 MiB) is within the drain allowance, so the client reads the answer.
  ASSERT_TRUE(r);
  {
    EXPECT_EQ(r->status, 413);
    EXPECT_EQ(Body(r)["code"], "PAYLOAD_TOO_LARGE");
    EXPECT_THAT(Body(r)["message"].get<std::string>(), HasSubstr("1 MiB"));
  }
  // With a Content-Length the answer comes before any byte is streamed.
  r = Client()->Post("/api/v1/uploads", Bytes((1 << 20) + 1), "text/csv");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(ingest_.Count("Upload"), 1);
}

TEST_F(GatewayTest, ConcurrentUploadsBeyondTheLimitGet429) {
  GatewayOptions o = DefaultOptions();
  o.max_concurrent_uploads = 2;
  StartGateway(o);
  absl::Notification gate;
  ingest_.gate = &gate;
  std::vector<std::thread> holders;
  std::vector<int> statuses(2, 0);
  for (int i = 0; i < 2; ++i) {
    holders.emplace_back([&, i] {
      auto r = Client()->Post("/api/v1/uploads", Bytes(1000, i), "text/csv");
      statuses[i] = r ? r->status : -1;
    });
  }
  for (int i = 0; i < 500 && ingest_.in_flight < 2; ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(ingest_.in_flight, 2);
  auto r = Client()->Post("/api/v1/uploads", Bytes(1000, 9), "text/csv");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->get_header_value("Retry-After"), "5");
  EXPECT_THAT(Body(r)["message"].get<std::string>(), HasSubstr("concurrent uploads"));
  gate.Notify();
  for (auto& t : holders) t.join();
  EXPECT_EQ(statuses[0], 200);
  EXPECT_EQ(statuses[1], 200);
  ingest_.gate = nullptr;
  EXPECT_EQ(Client()->Post("/api/v1/uploads", Bytes(10), "text/csv")->status, 200);
}

TEST_F(GatewayTest, UploadTokenIsRequiredWhenConfiguredAndForwarded) {
  GatewayOptions o = DefaultOptions();
  o.upload_token = "up-tok";
  StartGateway(o);
  auto c = Client();
  auto r = c->Post("/api/v1/uploads", Bytes(10), "text/csv");
  EXPECT_EQ(r->status, 401);
  r = c->Post("/api/v1/uploads", {{"Authorization", "Bearer wrong"}}, Bytes(10), "text/csv");
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(ingest_.Count("Upload"), 0);
  r = c->Post("/api/v1/uploads", {{"Authorization", "Bearer up-tok"}}, Bytes(10), "text/csv");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(ingest_.Last().authorization, "Bearer up-tok");
}

TEST_F(GatewayTest, RejectsUnsupportedContentTypesAndModes) {
  StartGateway();
  auto c = Client();
  auto r = c->Post("/api/v1/uploads", "{}", "application/json");
  EXPECT_EQ(r->status, 415);
  EXPECT_EQ(Body(r)["code"], "UNSUPPORTED_MEDIA_TYPE");
  r = c->Post("/api/v1/uploads?mode=sloppy", "x", "text/csv");
  EXPECT_EQ(r->status, 400);
  EXPECT_THAT(Body(r)["message"].get<std::string>(), HasSubstr("mode"));
  EXPECT_EQ(ingest_.Count("Upload"), 0);
}

// Opens a raw connection, announces `announced` bytes, sends `sent`, then closes.
void SendCutOffUpload(int port, size_t announced, size_t sent) {
  const int fd = ConnectLoopback(port);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const std::string head = absl::StrCat(
      "POST /api/v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: ",
      announced, "\r\n\r\n");
  ASSERT_EQ(::send(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  const std::string body = Bytes(sent);
  size_t off = 0;
  while (off < body.size()) {
    const ssize_t n = ::send(fd, body.data() + off, body.size() - off, 0);
    ASSERT_GT(n, 0);
    off += static_cast<size_t>(n);
  }
  absl::SleepFor(absl::Milliseconds(100));
  ::close(fd);
}

TEST_F(GatewayTest, ClientsWaitingFor100ContinueGet413BeforeSendingTheBody) {
  GatewayOptions o = DefaultOptions();
  o.max_upload_bytes = 1 << 20;
  StartGateway(o);
  const int fd = ConnectLoopback(gateway_->port());
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const std::string head =
      "POST /api/v1/uploads HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
      "Expect: 100-continue\r\nContent-Length: 10000000000\r\n\r\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  // Read until the body arrived or the server closed (headers and body may come separately).
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string answer;
  char buf[4096];
  while (answer.find("PAYLOAD_TOO_LARGE") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  EXPECT_THAT(answer, ::testing::StartsWith("HTTP/1.1 413"));
  EXPECT_THAT(answer, HasSubstr("PAYLOAD_TOO_LARGE"));
  EXPECT_EQ(ingest_.Count("Upload"), 0);
}

TEST_F(GatewayTest, UploadCutOffMidStreamIsCancelledAndNeverCompleted) {
  StartGateway();
  SendCutOffUpload(gateway_->port(), 10 << 20, 1 << 20);
  ASSERT_TRUE(ingest_.WaitFinished(1));
  FakeIngest::Received got = ingest_.last();
  EXPECT_TRUE(got.cancelled);
  EXPECT_FALSE(got.completed);
  EXPECT_LE(got.bytes, 1 << 20);
  // The gateway stays usable.
  EXPECT_EQ(Client()->Post("/api/v1/uploads", Bytes(10), "text/csv")->status, 200);
}

TEST_F(GatewayTest, FiftyMegabyteUploadStreamsInFlatMemory) {
  StartGateway();
  ingest_.keep_data = false;
  constexpr size_t kTotal = 50u << 20;
  // The body is produced on the fly so the client holds no copy either.
  std::string block = Bytes(kChunk, 5);
  Sha256 expected;
  for (size_t off = 0; off < kTotal; off += block.size()) expected.Update(block);
  StreamedUpload upload = PostRepeatedBlock(*Client(), block, kTotal);
  const httplib::Result& r = upload.result;
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  FakeIngest::Received got = ingest_.last();
  EXPECT_EQ(got.bytes, static_cast<int64_t>(kTotal));
  EXPECT_EQ(got.sha256, expected.HexDigest());
  EXPECT_THAT(got.chunk_sizes, Each(Le(kChunk)));
  const long growth_mb = upload.rss_growth_mb;
  RecordProperty("rss_growth_mb", static_cast<int>(growth_mb));
  EXPECT_LT(growth_mb, 30) << "RSS grew by " << growth_mb << " MB for a 50 MB upload";
}

TEST_F(GatewayTest, SlowIngestAppliesBackpressureWithoutBuffering) {
  StartGateway();
  ingest_.keep_data = false;
  ingest_.per_chunk_delay_ms = 2;
  constexpr size_t kTotal = 16u << 20;
  std::string block = Bytes(kChunk, 6);
  StreamedUpload upload = PostRepeatedBlock(*Client(), block, kTotal);
  ASSERT_EQ(upload.result->status, 200);
  EXPECT_EQ(ingest_.last().bytes, static_cast<int64_t>(kTotal));
  EXPECT_LT(upload.rss_growth_mb, 20);
}

TEST_F(GatewayTest, IdleConnectionsDoNotLockOutOtherClients) {
  GatewayOptions o = DefaultOptions();
  o.max_connections = 4;
  StartGateway(o);
  std::vector<int> idle;
  for (int i = 0; i < 10; ++i) {
    const int fd = ConnectLoopback(gateway_->port());
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_GT(::send(fd, "GET /api/v1/mod", 15, MSG_NOSIGNAL), 0);
    idle.push_back(fd);
  }
  absl::SleepFor(absl::Milliseconds(200));
  auto c = Client();
  c->set_read_timeout(5, 0);
  const absl::Time start = absl::Now();
  auto r = c->Get("/api/v1/models");
  const absl::Duration took = absl::Now() - start;
  for (int fd : idle) ::close(fd);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(took, absl::Seconds(2));
}

TEST_F(GatewayTest, UploadMetricsCountBytesAndResults) {
  StartGateway();
  auto c = Client();
  ASSERT_EQ(c->Post("/api/v1/uploads", Bytes(4321), "text/csv")->status, 200);
  auto m = c->Get("/metrics");
  EXPECT_THAT(m->body, HasSubstr("fraud_gateway_uploads_total{result=\"ok\"}"));
  EXPECT_THAT(m->body, HasSubstr("fraud_gateway_upload_bytes_total"));
}

}  // namespace
}  // namespace fraud::gateway::testing
