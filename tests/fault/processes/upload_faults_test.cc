// Fault tests on real processes: PostgreSQL stopped, storage SIGKILLed, inference killed and
// restarted, clients that stall or vanish mid-upload. Each test starts its own PostgreSQL cluster
// (deploy/local/pg.sh, temporary directory) and its own constellation, injects the fault, and then
// checks what the database holds.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "tests/fault/processes/fault_util.h"

namespace fraud::fault {
namespace {

using ::testing::AnyOf;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Not;

// How long a client of storage may take to notice that storage is back.
constexpr absl::Duration kRecoveryBound = absl::Seconds(10);
constexpr char kStoreUpload[] = "/fraud.storage.v1.StorageService/StoreUpload";

class UploadFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::Status s = env_.Start();
    ASSERT_TRUE(s.ok()) << s;
    s = env_.WaitModelServing(absl::Seconds(60));
    ASSERT_TRUE(s.ok()) << s;
    baseline_uploads_ = env_.CountOrDie("SELECT count(*) FROM uploads");
    baseline_rows_ = env_.CountOrDie("SELECT count(*) FROM transactions");
    baseline_predictions_ = env_.CountOrDie("SELECT count(*) FROM predictions");
  }

  int64_t UploadsWithSha(const std::string& sha) {
    return env_.CountOrDie(absl::StrCat("SELECT count(*) FROM uploads WHERE sha256 = '", sha, "'"));
  }
  // Nothing at all was added since SetUp.
  void ExpectNothingStored() {
    EXPECT_EQ(env_.CountOrDie("SELECT count(*) FROM uploads"), baseline_uploads_);
    EXPECT_EQ(env_.CountOrDie("SELECT count(*) FROM transactions"), baseline_rows_);
    EXPECT_EQ(env_.CountOrDie("SELECT count(*) FROM predictions"), baseline_predictions_);
  }
  // The upload of `csv` is stored exactly once, with every row scored once.
  void ExpectStoredOnce(const std::string& csv, int64_t rows) {
    const std::string sha = Sha256Hex(csv);
    ASSERT_EQ(UploadsWithSha(sha), 1);
    const int64_t id =
        env_.CountOrDie(absl::StrCat("SELECT id FROM uploads WHERE sha256 = '", sha, "'"));
    EXPECT_EQ(env_.CountOrDie(absl::StrCat("SELECT count(*) FROM transactions WHERE upload_id = ",
                                           id)),
              rows);
    EXPECT_EQ(env_.CountOrDie(absl::StrCat("SELECT count(*) FROM predictions WHERE upload_id = ",
                                           id)),
              rows)
        << "an upload stored unscored; ingest's log:\n"
        << env_.c->process("ingest").LogTail(40) << "\ninference's log:\n"
        << env_.c->process("inference").LogTail(40);
  }
  // Resources of storage are released: no StoreUpload in flight, no pooled connection lent out.
  void ExpectStorageIdle() {
    EXPECT_TRUE(env_.WaitMetric("storage", "fraud_storage_rpc_in_flight", {{"method", kStoreUpload}},
                                0, absl::Seconds(10)))
        << env_.c->process("storage").Metrics();
    EXPECT_TRUE(env_.WaitMetric("storage", "fraud_storage_pool_connections_in_use", {}, 0,
                                absl::Seconds(10)))
        << env_.c->process("storage").Metrics();
    EXPECT_TRUE(env_.WaitMetric("ingest", "fraud_ingest_rpc_in_flight", {}, 0, absl::Seconds(10)))
        << env_.c->process("ingest").Metrics();
  }

  Env env_;
  int64_t baseline_uploads_ = 0;
  int64_t baseline_rows_ = 0;
  int64_t baseline_predictions_ = 0;
};

TEST_F(UploadFaultTest, PostgresStoppedMidUploadFailsUnavailableStoresNothingAndRetrySucceedsOnce) {
  const std::string csv = SyntheticCsv(20000, 101);
  const size_t half = csv.size() / 2;
  StreamingUpload up(env_.Channel("ingest"), "pg-stop.csv", absl::Seconds(60));
  ASSERT_TRUE(up.Send(csv.substr(0, half)));
  ASSERT_TRUE(env_.WaitWritingTransaction(absl::Seconds(15)))
      << "the upload never reached the database";
  ASSERT_TRUE(env_.pg->Stop().ok());
  up.Send(csv.substr(half));
  const UploadOutcome failed = up.Finish();
  EXPECT_EQ(failed.code, grpc::StatusCode::UNAVAILABLE) << failed.message;
  EXPECT_THAT(failed.message, HasSubstr("storage")) << "the message should say what is down";
  EXPECT_LT(failed.elapsed, absl::Seconds(30));
  EXPECT_EQ(failed.summary.upload_id(), 0);

  // While the database is down, a REST upload through the gateway gets a clear 503.
  if (env_.has_gateway()) {
    const HttpOutcome rest = UploadRest(env_.c->port("gateway"), "pg-down.csv",
                                        SyntheticCsv(3000, 102));
    EXPECT_EQ(rest.status, 503) << rest.body;
    EXPECT_THAT(rest.body, HasSubstr("UNAVAILABLE"));
  }

  ASSERT_TRUE(env_.pg->Restart().ok());
  ExpectNothingStored();
  EXPECT_EQ(UploadsWithSha(Sha256Hex(csv)), 0);

  // Storage reconnects by itself; the same upload now succeeds, and only once.
  ASSERT_TRUE(env_.c->process("storage").WaitHealthy(absl::Seconds(30)).ok());
  const UploadOutcome ok = UploadGrpc(env_.Channel("ingest"), "pg-stop.csv", csv);
  ASSERT_TRUE(ok.ok()) << ok.message;
  EXPECT_GT(ok.summary.upload_id(), 0);
  EXPECT_EQ(ok.summary.rows_accepted(), 20000);
  EXPECT_TRUE(ok.summary.scored());
  const UploadOutcome again = UploadGrpc(env_.Channel("ingest"), "pg-stop.csv", csv);
  ASSERT_TRUE(again.ok()) << again.message;
  EXPECT_EQ(again.summary.duplicate_of(), ok.summary.upload_id());
  ExpectStoredOnce(csv, 20000);
  ExpectStorageIdle();
}

TEST_F(UploadFaultTest, PostgresStoppedMidRestUploadAnswers503AndStoresNothing) {
  if (!env_.has_gateway()) GTEST_SKIP() << "fraud-gateway is not built";
  const std::string csv = SyntheticCsv(20000, 111);
  const HttpOutcome failed = UploadRest(env_.c->port("gateway"), "pg-stop-rest.csv", csv, [&] {
    EXPECT_TRUE(env_.WaitWritingTransaction(absl::Seconds(15)));
    EXPECT_TRUE(env_.pg->Stop().ok());
  });
  EXPECT_EQ(failed.status, 503) << failed.body;
  EXPECT_THAT(failed.body, HasSubstr("UNAVAILABLE"));
  ASSERT_TRUE(env_.pg->Restart().ok());
  ExpectNothingStored();
  ASSERT_TRUE(env_.c->process("storage").WaitHealthy(absl::Seconds(30)).ok());
  const HttpOutcome ok = UploadRest(env_.c->port("gateway"), "pg-stop-rest.csv", csv);
  EXPECT_EQ(ok.status, 200) << ok.body;
  // Scored: nothing about the database outage reaches inference (its body names why when not).
  EXPECT_THAT(ok.body, Not(HasSubstr("unscored"))) << ok.body;
  const HttpOutcome again = UploadRest(env_.c->port("gateway"), "pg-stop-rest.csv", csv);
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_THAT(again.body, HasSubstr("duplicateOf"));
  ExpectStoredOnce(csv, 20000);
}

TEST_F(UploadFaultTest, StorageKilledMidUploadStoresNothingAndIngestRecoversWithoutRestart) {
  const std::string csv = SyntheticCsv(20000, 201);
  const size_t half = csv.size() / 2;
  const pid_t ingest_pid = env_.c->process("ingest").pid();
  const pid_t gateway_pid = env_.has_gateway() ? env_.c->process("gateway").pid() : 0;

  StreamingUpload up(env_.Channel("ingest"), "storage-kill.csv", absl::Seconds(60));
  ASSERT_TRUE(up.Send(csv.substr(0, half)));
  ASSERT_TRUE(env_.WaitWritingTransaction(absl::Seconds(15)));
  env_.c->process("storage").Kill(SIGKILL);
  ASSERT_TRUE(env_.c->process("storage").Wait(absl::Seconds(10)).ok());
  up.Send(csv.substr(half));
  const UploadOutcome failed = up.Finish();
  EXPECT_EQ(failed.code, grpc::StatusCode::UNAVAILABLE) << failed.message;
  EXPECT_LT(failed.elapsed, absl::Seconds(30));

  // With storage down, new uploads fail fast and clearly too.
  const UploadOutcome down = UploadGrpc(env_.Channel("ingest"), "while-down.csv",
                                        SyntheticCsv(2000, 202), absl::Seconds(20));
  EXPECT_EQ(down.code, grpc::StatusCode::UNAVAILABLE) << down.message;
  if (env_.has_gateway()) {
    const HttpOutcome rest =
        UploadRest(env_.c->port("gateway"), "while-down-rest.csv", SyntheticCsv(2000, 203));
    EXPECT_EQ(rest.status, 503) << rest.body;
  }

  // PostgreSQL rolled the orphaned transaction back.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (env_.WritingTransactions() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ExpectNothingStored();

  ASSERT_TRUE(env_.c->process("storage").Start().ok());
  const absl::Time back = absl::Now();
  // Ingest and gateway were not restarted and recover by themselves once their channel to storage
  // reconnects (gRPC's reconnect backoff: failed attempts in the meantime store nothing).
  EXPECT_EQ(env_.c->process("ingest").pid(), ingest_pid);
  UploadOutcome ok;
  while (true) {
    ok = UploadGrpc(env_.Channel("ingest"), "storage-kill.csv", csv);
    if (ok.ok() || absl::Now() - back > kRecoveryBound) break;
    EXPECT_EQ(ok.code, grpc::StatusCode::UNAVAILABLE) << ok.message;
    absl::SleepFor(absl::Milliseconds(200));
  }
  std::printf("ingest recovered %.1f s after storage restarted\n",
              absl::ToDoubleSeconds(absl::Now() - back));
  ASSERT_TRUE(ok.ok()) << ok.message;
  EXPECT_EQ(ok.summary.rows_accepted(), 20000);
  ExpectStoredOnce(csv, 20000);
  if (env_.has_gateway()) {
    EXPECT_EQ(env_.c->process("gateway").pid(), gateway_pid);
    const std::string rest_csv = SyntheticCsv(3000, 204);
    HttpOutcome rest;
    while (true) {
      rest = UploadRest(env_.c->port("gateway"), "after-restart.csv", rest_csv);
      if (rest.status == 200 || absl::Now() - back > kRecoveryBound) break;
      EXPECT_EQ(rest.status, 503) << rest.body;
      absl::SleepFor(absl::Milliseconds(200));
    }
    std::printf("gateway recovered %.1f s after storage restarted\n",
                absl::ToDoubleSeconds(absl::Now() - back));
    EXPECT_EQ(rest.status, 200) << rest.body;
    ExpectStoredOnce(rest_csv, 3000);
  }
  EXPECT_EQ(UploadGrpc(env_.Channel("ingest"), "storage-kill.csv", csv).summary.duplicate_of(),
            ok.summary.upload_id());
  ExpectStoredOnce(csv, 20000);
}

TEST_F(UploadFaultTest, InferenceKilledAndRestartedDuringUploadsNeverStoresPartlyScoredUploads) {
  constexpr int kClients = 3;
  constexpr absl::Duration kDeadline = absl::Seconds(30);
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::pair<std::string, UploadOutcome>> outcomes;
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      auto channel = env_.Channel("ingest");
      for (int i = 0; !stop.load() && i < 200; ++i) {
        const std::string csv = SyntheticCsv(5000, 1000 + t * 1000 + i);
        UploadOutcome o = UploadGrpc(channel, absl::StrCat("inf-", t, "-", i, ".csv"), csv,
                                     kDeadline);
        std::lock_guard<std::mutex> lock(mu);
        outcomes.emplace_back(Sha256Hex(csv), std::move(o));
      }
    });
  }
  absl::SleepFor(absl::Seconds(2));
  env_.c->process("inference").Kill(SIGKILL);
  ASSERT_TRUE(env_.c->process("inference").Wait(absl::Seconds(10)).ok());
  absl::SleepFor(absl::Seconds(2));
  ASSERT_TRUE(env_.c->process("inference").Spawn().ok());
  ASSERT_TRUE(env_.WaitModelServing(absl::Seconds(30)).ok());
  absl::SleepFor(absl::Seconds(3));
  stop = true;
  for (auto& t : clients) t.join();

  int ok = 0, failed = 0, unscored = 0;
  for (const auto& [sha, o] : outcomes) {
    EXPECT_LE(o.elapsed, kDeadline + absl::Seconds(2));
    if (o.ok()) {
      ++ok;
      if (!o.summary.scored()) ++unscored;
      EXPECT_EQ(UploadsWithSha(sha), 1) << "a successful upload must be stored";
    } else {
      ++failed;
      EXPECT_THAT(o.code, AnyOf(Eq(grpc::StatusCode::UNAVAILABLE),
                                Eq(grpc::StatusCode::DEADLINE_EXCEEDED)))
          << o.message;
      EXPECT_FALSE(o.message.empty());
      EXPECT_EQ(UploadsWithSha(sha), 0) << "a failed upload must store nothing: " << o.message;
    }
  }
  std::printf("inference kill: %d uploads ok (%d stored unscored), %d failed\n", ok, unscored,
              failed);
  EXPECT_GT(ok, 0);
  // Per upload: every row scored by the upload's model, or (scoring unavailable from the start) no
  // prediction at all and model_version 0. Never a partly scored upload.
  auto rows = QueryRows(env_.db_uri,
                        "SELECT u.id, u.rows, u.model_version, "
                        "(SELECT count(*) FROM transactions t WHERE t.upload_id = u.id), "
                        "(SELECT count(*) FROM predictions p WHERE p.upload_id = u.id), "
                        "(SELECT count(*) FROM predictions p WHERE p.upload_id = u.id AND "
                        " p.model_version = u.model_version) FROM uploads u");
  ASSERT_TRUE(rows.ok()) << rows.status();
  for (const auto& r : *rows) {
    const int64_t n = std::stoll(r[1]), version = std::stoll(r[2]), tx = std::stoll(r[3]),
                  pred = std::stoll(r[4]), pred_same = std::stoll(r[5]);
    EXPECT_EQ(tx, n) << "upload " << r[0];
    if (version == 0) {
      EXPECT_EQ(pred, 0) << "upload " << r[0] << " unscored but has predictions";
    } else {
      EXPECT_EQ(pred, n) << "upload " << r[0] << " partly scored";
      EXPECT_EQ(pred_same, n) << "upload " << r[0];
    }
  }
}

TEST_F(UploadFaultTest, ClientCancellingMidUploadStoresNothingAndReleasesStorage) {
  const std::string csv = SyntheticCsv(20000, 301);
  for (int i = 0; i < 3; ++i) {
    StreamingUpload up(env_.Channel("ingest"), "cancelled.csv", absl::Seconds(60));
    if (!up.Send(csv.substr(0, csv.size() / 2))) {
      // Failed once in CI (3rd fresh-clone run, 2026-12-07) and not in 14 local runs: say why.
      const UploadOutcome ended = up.Finish();
      FAIL() << "upload " << i << " ended while its first half was sent: code " << ended.code
             << ": " << ended.message << "\ningest's log:\n"
             << env_.c->process("ingest").LogTail(40) << "\nstorage's log:\n"
             << env_.c->process("storage").LogTail(40);
    }
    ASSERT_TRUE(env_.WaitWritingTransaction(absl::Seconds(15)));
    up.Cancel();
    EXPECT_EQ(up.Finish().code, grpc::StatusCode::CANCELLED);
  }
  ExpectStorageIdle();
  EXPECT_EQ(env_.WritingTransactions(), 0);
  ExpectNothingStored();
  const UploadOutcome ok = UploadGrpc(env_.Channel("ingest"), "cancelled.csv", csv);
  ASSERT_TRUE(ok.ok()) << ok.message;
  ExpectStoredOnce(csv, 20000);
  ExpectStorageIdle();
}

TEST_F(UploadFaultTest, StalledClientsDoNotBlockOthersAndTheirDeadlineReleasesEverything) {
  // As many clients as storage has pooled connections send half a file and then stall; another
  // upload still completes promptly, and when the stalled clients' deadlines pass nothing of
  // theirs is stored and every resource is released.
  constexpr int kStalled = 8;
  constexpr absl::Duration kStallDeadline = absl::Seconds(25);
  std::vector<std::unique_ptr<StreamingUpload>> stalled;
  std::vector<std::string> files;
  for (int i = 0; i < kStalled; ++i) {
    files.push_back(SyntheticCsv(5000, 400 + i));
    stalled.push_back(std::make_unique<StreamingUpload>(
        env_.Channel("ingest"), absl::StrCat("stalled-", i, ".csv"), kStallDeadline));
    ASSERT_TRUE(stalled.back()->Send(files.back().substr(0, files.back().size() / 2)));
  }
  ASSERT_TRUE(env_.WaitWritingTransaction(absl::Seconds(15)));
  const std::string csv = SyntheticCsv(3000, 499);
  const UploadOutcome ok = UploadGrpc(env_.Channel("ingest"), "alongside-stalled.csv", csv,
                                      absl::Seconds(30));
  EXPECT_TRUE(ok.ok()) << ok.message;
  EXPECT_LT(ok.elapsed, absl::Seconds(5)) << "an upload waited for stalled clients";
  std::string rest_csv;
  if (env_.has_gateway()) {
    // Through the gateway: never "413 payload too large" for a small file refused because the
    // system is busy (that would tell the user to shrink a 1 MB file).
    rest_csv = SyntheticCsv(2000, 498);
    const HttpOutcome rest = UploadRest(env_.c->port("gateway"), "rest-alongside.csv", rest_csv);
    EXPECT_NE(rest.status, 413) << rest.body;
    EXPECT_EQ(rest.status, 200) << rest.body;
  }
  for (auto& up : stalled) {
    const UploadOutcome o = up->AwaitEnd();  // never half-closed: the deadline ends the call
    EXPECT_EQ(o.code, grpc::StatusCode::DEADLINE_EXCEEDED) << o.message;
  }
  for (const auto& f : files) EXPECT_EQ(UploadsWithSha(Sha256Hex(f)), 0);
  ExpectStorageIdle();
  EXPECT_EQ(env_.WritingTransactions(), 0);
  if (ok.ok()) ExpectStoredOnce(csv, 3000);
}

TEST_F(UploadFaultTest, RestClientThatStallsThenDisconnectsStoresNothingAndReleasesStorage) {
  if (!env_.has_gateway()) GTEST_SKIP() << "fraud-gateway is not built";
  const std::string csv = SyntheticCsv(20000, 501);
  for (int round = 0; round < 2; ++round) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(env_.c->port("gateway")));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    const std::string head = absl::StrCat(
        "POST /api/v1/uploads?mode=strict&file_name=stall.csv HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: text/csv\r\nContent-Length: ",
        csv.size(), "\r\n\r\n");
    ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
    const std::string part = csv.substr(0, csv.size() / 2);
    size_t sent = 0;
    while (sent < part.size()) {
      const ssize_t n = ::send(fd, part.data() + sent, part.size() - sent, MSG_NOSIGNAL);
      ASSERT_GT(n, 0);
      sent += static_cast<size_t>(n);
    }
    EXPECT_TRUE(env_.WaitWritingTransaction(absl::Seconds(15)));
    absl::SleepFor(absl::Seconds(1));  // a slow client: nothing more arrives for a while
    if (round == 0) {
      ::close(fd);  // the client goes away
    } else {
      ::shutdown(fd, SHUT_WR);  // half-close: the body ends early (truncated upload)
      char buf[4096];
      while (::recv(fd, buf, sizeof(buf), 0) > 0) {
      }
      ::close(fd);
    }
  }
  ExpectStorageIdle();
  EXPECT_EQ(env_.WritingTransactions(), 0);
  ExpectNothingStored();
  const HttpOutcome ok = UploadRest(env_.c->port("gateway"), "stall.csv", csv);
  EXPECT_EQ(ok.status, 200) << ok.body;
  ExpectStoredOnce(csv, 20000);
}

}  // namespace
}  // namespace fraud::fault
