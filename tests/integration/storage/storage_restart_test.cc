// The storage service across a PostgreSQL restart. Needs the test cluster's directory and port
// (FRAUD_TEST_PG_DIR, FRAUD_TEST_PG_PORT: a deploy/local/pg.sh cluster, the same one
// FRAUD_TEST_PG_URI names) because it stops and restarts it; skipped when they are absent. Runs
// serially (RUN_SERIAL) since other tests would see the outage.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "tests/integration/storage/storage_test_util.h"

namespace fraud::storage::testing {
namespace {

using ::testing::StartsWith;

class RestartTest : public StorageTest {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("FRAUD_TEST_PG_DIR");
    const char* port = std::getenv("FRAUD_TEST_PG_PORT");
    if (dir == nullptr || port == nullptr || *dir == '\0' || *port == '\0') {
      GTEST_SKIP() << "FRAUD_TEST_PG_DIR / FRAUD_TEST_PG_PORT not set; cannot restart the database";
    }
    dir_ = dir;
    port_ = port;
    StorageTest::SetUp();
  }

  void TearDown() override {
    if (stopped_) StartDatabase();
    StorageTest::TearDown();
  }

  void StopDatabase() {
    ASSERT_EQ(std::system(absl::StrCat(FRAUD_PG_SH, " stop '", dir_, "'").c_str()), 0);
    stopped_ = true;
  }
  void StartDatabase() {
    ASSERT_EQ(std::system(absl::StrCat(FRAUD_PG_SH, " start '", dir_, "' ", port_,
                                       " --throwaway >/dev/null")
                              .c_str()),
              0);
    stopped_ = false;
  }

  std::string dir_;
  std::string port_;
  bool stopped_ = false;
};

TEST_F(RestartTest, CallsFailUnavailableWhileTheDatabaseIsDownAndSucceedAfterItReturns) {
  const auto first = Upload(stub_.get(), "before.csv", {Rows(MakeBatch(100, 1, true))}, Sha(1));
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();

  // An upload is in flight (rows written, not committed) when the database goes down.
  grpc::ClientContext ctx;
  v1::StoreUploadResponse resp;
  auto writer = stub_->StoreUpload(&ctx, &resp);
  v1::StoreUploadRequest req;
  req.mutable_begin()->set_file_name("during.csv");
  writer->Write(req);
  req.Clear();
  *req.mutable_rows() = Rows(MakeBatch(500, 2, true));
  writer->Write(req);
  absl::SleepFor(absl::Milliseconds(300));
  StopDatabase();

  req.Clear();
  *req.mutable_rows() = Rows(MakeBatch(500, 3, true, 502));
  writer->Write(req);
  req.Clear();
  req.mutable_commit()->set_sha256(Sha(2));
  writer->Write(req);
  writer->WritesDone();
  const grpc::Status upload_status = writer->Finish();
  EXPECT_EQ(upload_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << upload_status.error_message();

  // Every call fails fast while the database is down.
  for (int i = 0; i < 5; ++i) {
    const absl::Time start = absl::Now();
    grpc::ClientContext c;
    v1::GetDataStatsResponse stats;
    const grpc::Status s = stub_->GetDataStats(&c, {}, &stats);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(s.error_message(), StartsWith("database unavailable: "));
    EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  }
  const auto refused = Upload(stub_.get(), "down.csv", {Rows(MakeBatch(10, 4, true))}, Sha(3));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_FALSE(pool_->Ping().ok());

  StartDatabase();
  // No restart of the service: the next calls reconnect.
  grpc::ClientContext c;
  v1::GetDataStatsResponse stats;
  const grpc::Status s = stub_->GetDataStats(&c, {}, &stats);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(stats.uploads(), 1);  // nothing of the interrupted upload is visible
  EXPECT_EQ(stats.rows(), 100);
  EXPECT_EQ(Count("transactions"), 100);
  EXPECT_TRUE(pool_->Ping().ok());

  const auto after = Upload(stub_.get(), "after.csv", {Rows(MakeBatch(500, 2, true))}, Sha(2));
  ASSERT_TRUE(after.status.ok()) << after.status.error_message();
  EXPECT_EQ(after.response.duplicate_of(), 0);
  EXPECT_EQ(Count("transactions"), 600);
}

}  // namespace
}  // namespace fraud::storage::testing
