// Integration tests of the storage service against a real PostgreSQL (FRAUD_TEST_PG_URI), one
// schema per test, the service in-process on port 0.
#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cfloat>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <pqxx/pqxx>
#include <thread>

#include "absl/synchronization/barrier.h"
#include "absl/synchronization/notification.h"
#include "services/common/rpc/artifact_transfer.h"
#include "services/storage/feedback_store.h"
#include "services/storage/pg_store.h"
#include "services/storage/pg_util.h"
#include "services/storage/upload_writer.h"
#include "tests/integration/storage/storage_test_util.h"

namespace fraud::storage::testing {
namespace {

using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

std::vector<int64_t> ScanLines(const std::vector<TransactionBatch>& batches) {
  std::vector<int64_t> out;
  for (const auto& b : batches) out.insert(out.end(), b.line_numbers().begin(), b.line_numbers().end());
  return out;
}

int64_t ScanRows(const std::vector<TransactionBatch>& batches) {
  int64_t n = 0;
  for (const auto& b : batches) n += b.num_rows();
  return n;
}

// ---------------------------------------------------------------------------------------------
// StoreUpload

TEST_F(StorageTest, UploadRoundTripsEveryValueBitForBit) {
  // Values that break text round trips: subnormals, -0.0, extremes, non-terminating binaries.
  const std::vector<double> tricky = {1e-300,  -1e-300, -0.0, std::numeric_limits<double>::denorm_min(),
                                      DBL_MAX, -DBL_MAX, 0.1,  1.0 / 3.0,
                                      DBL_MIN, -2.5e-17, 1e300, 123456.78901234567};
  TransactionBatch batch = MakeBatch(40, 1, /*labelled=*/true);
  for (int r = 0; r < 40; ++r) {
    for (int v = 1; v <= 28; ++v) batch.set_features(r * 30 + v, tricky[(r + v) % tricky.size()]);
  }
  batch.set_features(0, -0.0);                 // Time of row 0
  batch.set_features(29, 1e-300);              // Amount of row 0
  batch.set_features(30 + 29, 1e15 + 0.125);  // Amount of row 1
  batch.set_features(60, 172792.0);            // Time of row 2
  const auto outcome = Upload(stub_.get(), "tricky.csv", {Scored(batch, 7)}, Sha(1), nullptr,
                              v1::UPLOAD_MODE_STRICT, R"({"accepted": 40, "auprc": 0.5})");
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  const v1::Upload& u = outcome.response.upload();
  EXPECT_EQ(outcome.response.duplicate_of(), 0);
  EXPECT_GT(u.id(), 0);
  EXPECT_EQ(u.sha256(), Sha(1));
  EXPECT_EQ(u.file_name(), "tricky.csv");
  EXPECT_EQ(u.status(), v1::UPLOAD_STATUS_COMMITTED);
  EXPECT_EQ(u.mode(), v1::UPLOAD_MODE_STRICT);
  EXPECT_EQ(u.rows(), 40);
  EXPECT_EQ(u.labelled_rows(), 40);
  EXPECT_EQ(u.frauds(), 6);  // rows 3, 10, 17, 24, 31, 38
  EXPECT_EQ(u.model_version(), 7);
  EXPECT_EQ(u.bytes(), 1234);
  EXPECT_TRUE(SameBits(u.time_min(), -0.0) || u.time_min() == 0.0);
  EXPECT_EQ(u.time_max(), 172792.0);
  EXPECT_GT(u.received_at().seconds(), 0);
  EXPECT_GE(u.committed_at().seconds(), u.received_at().seconds());
  EXPECT_THAT(u.summary_json(), HasSubstr("\"auprc\": 0.5"));

  grpc::ClientContext ctx;
  v1::GetUploadRequest get;
  get.set_upload_id(u.id());
  v1::GetUploadResponse got;
  ASSERT_TRUE(stub_->GetUpload(&ctx, get, &got).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(got.upload(), u)) << got.upload().DebugString();

  grpc::Status status;
  v1::ScanTransactionsRequest scan;
  scan.add_upload_ids(u.id());
  std::vector<TransactionBatch> batches = Scan(stub_.get(), scan, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(ScanRows(batches), 40);
  // Time order puts row 0 (Time -0.0) first and row 2 (Time 172792) last; compare by line.
  std::map<int64_t, std::vector<double>> by_line;
  for (const auto& b : batches) {
    ASSERT_EQ(b.features_size(), static_cast<int>(b.num_rows()) * 30);
    ASSERT_EQ(b.labels_size(), static_cast<int>(b.num_rows()));
    for (uint32_t i = 0; i < b.num_rows(); ++i) {
      EXPECT_EQ(b.upload_ids(i), u.id());
      EXPECT_EQ(b.labels(i), batch.labels(b.line_numbers(i) - 2));
      by_line[b.line_numbers(i)].assign(b.features().begin() + i * 30,
                                        b.features().begin() + (i + 1) * 30);
    }
  }
  for (int r = 0; r < 40; ++r) {
    const std::vector<double>& row = by_line[r + 2];
    ASSERT_EQ(row.size(), 30u);
    for (int c = 0; c < 30; ++c) {
      EXPECT_TRUE(SameBits(row[c], batch.features(r * 30 + c)))
          << "row " << r << " col " << c << ": " << row[c] << " vs " << batch.features(r * 30 + c);
    }
  }

  // Predictions come back with exact scores, features and labels.
  grpc::ClientContext lctx;
  v1::ListPredictionsRequest list;
  list.set_upload_id(u.id());
  list.set_page_size(1000);
  v1::ListPredictionsResponse preds;
  ASSERT_TRUE(stub_->ListPredictions(&lctx, list, &preds).ok());
  EXPECT_EQ(preds.total(), 40);
  ASSERT_EQ(preds.predictions_size(), 40);
  const v1::UploadRows scored = Scored(batch, 7);
  for (int r = 0; r < 40; ++r) {
    const v1::Prediction& p = preds.predictions(r);
    EXPECT_EQ(p.line(), r + 2);
    EXPECT_EQ(p.model_version(), 7);
    EXPECT_EQ(p.score(), scored.scores().scores(r));
    EXPECT_EQ(p.decision(), scored.scores().decisions(r));
    EXPECT_EQ(p.label(), batch.labels(r));
    ASSERT_EQ(p.features_size(), 30);
    for (int c = 0; c < 30; ++c) EXPECT_TRUE(SameBits(p.features(c), batch.features(r * 30 + c)));
  }
}

TEST_F(StorageTest, UploadAssignsLineNumbersWhenTheBatchHasNone) {
  TransactionBatch a = MakeBatch(3, 1, false);
  a.clear_line_numbers();
  TransactionBatch b = MakeBatch(2, 2, false);
  b.clear_line_numbers();
  const auto outcome = Upload(stub_.get(), "nolines.csv", {Rows(a), Rows(b)}, Sha(2));
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(outcome.response.upload().labelled_rows(), 0);
  grpc::Status status;
  v1::ScanTransactionsRequest scan;
  const auto batches = Scan(stub_.get(), scan, &status);
  ASSERT_TRUE(status.ok());
  std::vector<int64_t> lines = ScanLines(batches);
  std::sort(lines.begin(), lines.end());
  EXPECT_THAT(lines, ElementsAre(2, 3, 4, 5, 6));
  for (const auto& batch : batches) EXPECT_EQ(batch.labels_size(), 0);  // unlabelled rows
}

TEST_F(StorageTest, CancelledStreamStoresNothing) {
  grpc::ClientContext ctx;
  v1::StoreUploadResponse resp;
  std::vector<v1::UploadRows> batches;
  for (int i = 0; i < 3; ++i) batches.push_back(Rows(MakeBatch(500, i, true, 2 + i * 500)));
  bool written = false;
  auto writer = BeginUpload(stub_.get(), &ctx, &resp, "cancelled.csv", batches,
                            v1::UPLOAD_MODE_STRICT, &written);
  ASSERT_TRUE(written);
  // Let the server write the batches into its open transaction before cancelling.
  absl::SleepFor(absl::Milliseconds(500));
  ctx.TryCancel();
  const grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  ExpectNothingStored();

  // The service is still healthy afterwards.
  const auto outcome = Upload(stub_.get(), "after.csv", {Rows(MakeBatch(5, 9, true))}, Sha(3));
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.error_message();
  EXPECT_EQ(Count("transactions"), 5);
}

// rows_end makes storage write what waits (the open COPY, predictions) before the commit
// arrives, still invisible until it does; the commit then stores everything. The last COPY ends
// at rows_end, so with a pause before the commit, last_copy_to_commit_seconds covers the pause.
TEST_F(StorageTest, RowsEndWritesWhatWaitsBeforeTheCommitStoresIt) {
  grpc::ClientContext ctx;
  v1::StoreUploadResponse response;
  std::vector<v1::UploadRows> batches;
  for (int i = 0; i < 2; ++i) {
    batches.push_back(Scored(MakeBatch(300, 20 + i, true, 2 + i * 300), 4));
  }
  bool written = false;
  auto writer = BeginUpload(stub_.get(), &ctx, &response, "ended.csv", batches,
                            v1::UPLOAD_MODE_STRICT, &written);
  ASSERT_TRUE(written);
  v1::StoreUploadRequest req;
  req.mutable_rows_end();
  ASSERT_TRUE(writer->Write(req));
  absl::SleepFor(absl::Milliseconds(400));
  EXPECT_EQ(Count("transactions"), 0);  // written, not committed
  EXPECT_EQ(Count("predictions"), 0);
  req.Clear();
  req.mutable_commit()->set_sha256(Sha(21));
  ASSERT_TRUE(writer->Write(req));
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.upload().rows(), 600);
  EXPECT_EQ(Count("transactions"), 600);
  EXPECT_EQ(Count("predictions"), 600);
  EXPECT_GT(response.copy_seconds(), 0);
  EXPECT_GE(response.last_copy_to_commit_seconds(), 0.2);
}

TEST_F(StorageTest, BadBatchRollsBackTheWholeUpload) {
  TransactionBatch bad = MakeBatch(10, 2, true, 1000);
  bad.set_features(35, std::numeric_limits<double>::infinity());
  const auto outcome = Upload(stub_.get(), "bad.csv",
                              {Scored(MakeBatch(200, 1, true), 3), Rows(bad)}, Sha(4));
  EXPECT_EQ(outcome.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(outcome.status.error_message(), HasSubstr("not finite"));
  ExpectNothingStored();
}

TEST_F(StorageTest, StreamEndingWithoutCommitStoresNothing) {
  grpc::ClientContext ctx;
  v1::StoreUploadResponse resp;
  auto writer = stub_->StoreUpload(&ctx, &resp);
  v1::StoreUploadRequest req;
  req.mutable_begin()->set_file_name("nocommit.csv");
  writer->Write(req);
  req.Clear();
  *req.mutable_rows() = Rows(MakeBatch(20, 1, true));
  writer->Write(req);
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("before commit"));
  EXPECT_EQ(Count("uploads"), 0);
  EXPECT_EQ(Count("transactions"), 0);
}

TEST_F(StorageTest, DuplicateUploadAnswersDuplicateOfAndLeavesRowsUnchanged) {
  const auto first = Upload(stub_.get(), "a.csv", {Rows(MakeBatch(30, 1, true))}, Sha(5));
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  const std::string before = QueryScalar("SELECT sum(time + amount + (unpack_v(v))[3]) FROM transactions");

  const auto second = Upload(stub_.get(), "a-again.csv", {Rows(MakeBatch(50, 2, false))}, Sha(5));
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  EXPECT_EQ(second.response.duplicate_of(), first.response.upload().id());
  EXPECT_EQ(second.response.upload().id(), first.response.upload().id());
  EXPECT_EQ(second.response.upload().file_name(), "a.csv");
  EXPECT_EQ(second.response.upload().rows(), 30);
  EXPECT_EQ(Count("uploads"), 1);
  EXPECT_EQ(Count("transactions"), 30);
  EXPECT_EQ(QueryScalar("SELECT sum(time + amount + (unpack_v(v))[3]) FROM transactions"), before);
}

TEST_F(StorageTest, EightConcurrentUploadsAreEachStoredExactlyOnce) {
  std::vector<UploadOutcome> outcomes(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      outcomes[i] = Upload(stub_.get(), absl::StrCat("part", i, ".csv"),
                           {Rows(MakeBatch(300 + i, 10 + i, true)),
                            Rows(MakeBatch(100, 20 + i, true, 2 + 300 + i))},
                           Sha(100 + i));
    });
  }
  for (auto& t : threads) t.join();
  std::set<int64_t> ids;
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(outcomes[i].status.ok()) << i << ": " << outcomes[i].status.error_message();
    EXPECT_EQ(outcomes[i].response.duplicate_of(), 0);
    EXPECT_EQ(outcomes[i].response.upload().rows(), 400 + i);
    ids.insert(outcomes[i].response.upload().id());
    EXPECT_EQ(QueryScalar(absl::StrCat("SELECT count(*) FROM transactions WHERE upload_id = ",
                                       outcomes[i].response.upload().id())),
              std::to_string(400 + i));
  }
  EXPECT_EQ(ids.size(), 8u);
  EXPECT_EQ(Count("uploads"), 8);
  EXPECT_EQ(Count("transactions"), 8 * 400 + 28);
}

TEST_F(StorageTest, FourConcurrentIdenticalUploadsStoreExactlyOne) {
  // Every stream writes its rows, then all commit at the same moment.
  absl::Barrier* barrier = new absl::Barrier(4);
  std::vector<UploadOutcome> outcomes(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      outcomes[i] = Upload(stub_.get(), "same.csv", {Rows(MakeBatch(250, 77, true))}, Sha(42), [&] {
        absl::SleepFor(absl::Milliseconds(200));  // let the server write the batch
        if (barrier->Block()) delete barrier;
      });
    });
  }
  for (auto& t : threads) t.join();
  int stored = 0;
  int duplicates = 0;
  int64_t stored_id = 0;
  for (const auto& o : outcomes) {
    ASSERT_TRUE(o.status.ok()) << o.status.error_message();
    if (o.response.duplicate_of() == 0) {
      ++stored;
      stored_id = o.response.upload().id();
    } else {
      ++duplicates;
    }
  }
  EXPECT_EQ(stored, 1);
  EXPECT_EQ(duplicates, 3);
  for (const auto& o : outcomes) {
    if (o.response.duplicate_of() != 0) {
      EXPECT_EQ(o.response.duplicate_of(), stored_id);
    }
  }
  EXPECT_EQ(Count("uploads"), 1);
  EXPECT_EQ(Count("transactions"), 250);
}

TEST_F(StorageTest, ProtocolAndDataErrorsAreInvalidArgumentAndStoreNothing) {
  struct Case {
    const char* name;
    std::vector<v1::StoreUploadRequest> messages;
    const char* message;
  };
  auto begin = [] {
    v1::StoreUploadRequest r;
    r.mutable_begin()->set_file_name("x.csv");
    return r;
  };
  auto rows = [](TransactionBatch b) {
    v1::StoreUploadRequest r;
    *r.mutable_rows() = Rows(std::move(b));
    return r;
  };
  auto rows_req = [](v1::UploadRows ur) {
    v1::StoreUploadRequest r;
    *r.mutable_rows() = std::move(ur);
    return r;
  };
  auto commit = [](const std::string& sha) {
    v1::StoreUploadRequest r;
    r.mutable_commit()->set_sha256(sha);
    return r;
  };
  v1::StoreUploadRequest rows_end;
  rows_end.mutable_rows_end();
  TransactionBatch short_features = MakeBatch(3, 1, true);
  short_features.mutable_features()->RemoveLast();
  TransactionBatch extra_label = MakeBatch(3, 1, true);
  extra_label.add_labels(0);
  TransactionBatch short_lines = MakeBatch(3, 1, true);
  short_lines.mutable_line_numbers()->RemoveLast();
  TransactionBatch nan_value = MakeBatch(3, 1, true);
  nan_value.set_features(40, std::nan(""));
  TransactionBatch label_two = MakeBatch(3, 1, true);
  label_two.set_labels(1, 2);
  TransactionBatch negative_amount = MakeBatch(3, 1, true);
  negative_amount.set_features(59, -3);
  v1::UploadRows few_scores = Scored(MakeBatch(3, 1, true), 2);
  few_scores.mutable_scores()->mutable_scores()->RemoveLast();
  v1::UploadRows nan_score = Scored(MakeBatch(3, 1, true), 2);
  nan_score.mutable_scores()->set_scores(0, std::nanf(""));
  v1::StoreUploadRequest bad_mode = begin();
  bad_mode.mutable_begin()->set_mode(static_cast<v1::UploadMode>(9));
  v1::StoreUploadRequest rejected_strict = commit(Sha(1));
  rejected_strict.mutable_commit()->set_rows_rejected(3);
  v1::StoreUploadRequest bad_json = commit(Sha(1));
  bad_json.mutable_commit()->set_summary_json("{oops");

  const std::vector<Case> cases = {
      {"rows before begin", {rows(MakeBatch(3, 1, true))}, "rows before begin"},
      {"commit before begin", {commit(Sha(1))}, "commit before begin"},
      {"second begin", {begin(), begin()}, "second begin"},
      {"rows_end before begin", {rows_end}, "rows_end before begin"},
      {"rows after rows_end",
       {begin(), rows(MakeBatch(3, 1, true)), rows_end, rows(MakeBatch(3, 2, true, 4))},
       "rows after rows_end"},
      {"second rows_end",
       {begin(), rows(MakeBatch(3, 1, true)), rows_end, rows_end},
       "second rows_end"},
      {"empty message", {begin(), v1::StoreUploadRequest()}, "empty StoreUploadRequest"},
      {"bad mode", {bad_mode}, "unknown mode"},
      {"feature count", {begin(), rows(short_features)}, "num_rows*30"},
      {"labels size", {begin(), rows(extra_label)}, "labels has 4"},
      {"lines size", {begin(), rows(short_lines)}, "line_numbers has 2"},
      {"nan feature", {begin(), rows(nan_value)}, "not finite"},
      {"label 2", {begin(), rows(label_two)}, "label is 2"},
      {"negative amount", {begin(), rows(negative_amount)}, "negative Time or Amount"},
      {"scores size", {begin(), rows_req(few_scores)}, "2 scores for 3 rows"},
      {"nan score", {begin(), rows_req(nan_score)}, "want a value in [0, 1]"},
      {"lines not increasing",
       {begin(), rows(MakeBatch(3, 1, true, 10)), rows(MakeBatch(3, 2, true, 11))},
       "line numbers must increase"},
      {"bad sha", {begin(), rows(MakeBatch(3, 1, true)), commit("abc")}, "sha256"},
      {"rejected in strict mode", {begin(), rejected_strict}, "lenient"},
      {"bad summary json", {begin(), bad_json}, "summary_json"},
  };
  for (const Case& c : cases) {
    grpc::ClientContext ctx;
    v1::StoreUploadResponse resp;
    auto writer = stub_->StoreUpload(&ctx, &resp);
    for (const auto& m : c.messages) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    const grpc::Status status = writer->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.name;
  }
  ExpectNothingStored();
}

TEST_F(StorageTest, LenientUploadRecordsRejectedRows) {
  const auto outcome = Upload(stub_.get(), "lenient.csv", {Rows(MakeBatch(10, 1, true))}, Sha(9),
                              nullptr, v1::UPLOAD_MODE_LENIENT);
  ASSERT_TRUE(outcome.status.ok());
  EXPECT_EQ(outcome.response.upload().mode(), v1::UPLOAD_MODE_LENIENT);
}

// ---------------------------------------------------------------------------------------------
// Reads

TEST_F(StorageTest, GetUploadOfAnUnknownIdIsNotFound) {
  grpc::ClientContext ctx;
  v1::GetUploadRequest req;
  req.set_upload_id(12345);
  v1::GetUploadResponse resp;
  EXPECT_EQ(stub_->GetUpload(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(StorageTest, ListUploadsPagesNewestFirst) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i) {
    const auto o = Upload(stub_.get(), absl::StrCat(i, ".csv"), {Rows(MakeBatch(2, i, true))},
                          Sha(200 + i));
    ASSERT_TRUE(o.status.ok());
    ids.push_back(o.response.upload().id());
  }
  std::vector<int64_t> seen;
  int64_t before = 0;
  int pages = 0;
  do {
    grpc::ClientContext ctx;
    v1::ListUploadsRequest req;
    req.set_page_size(2);
    req.set_before_id(before);
    v1::ListUploadsResponse resp;
    ASSERT_TRUE(stub_->ListUploads(&ctx, req, &resp).ok());
    for (const auto& u : resp.uploads()) seen.push_back(u.id());
    before = resp.next_before_id();
    ++pages;
  } while (before != 0 && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(seen, ElementsAre(ids[4], ids[3], ids[2], ids[1], ids[0]));

  grpc::ClientContext ctx;
  v1::ListUploadsRequest bad;
  bad.set_page_size(-1);
  v1::ListUploadsResponse resp;
  EXPECT_EQ(stub_->ListUploads(&ctx, bad, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

class ScanTest : public StorageTest {
 protected:
  void SetUp() override {
    StorageTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // a: labelled, Time 0..148.5; b: unlabelled, Time 50..198.5; c: labelled, Time 1000..1028.5
    a_ = Upload(stub_.get(), "a.csv", {Rows(MakeBatch(100, 1, true, 2, 0))}, Sha(1))
             .response.upload()
             .id();
    b_ = Upload(stub_.get(), "b.csv", {Rows(MakeBatch(100, 2, false, 2, 50))}, Sha(2))
             .response.upload()
             .id();
    c_ = Upload(stub_.get(), "c.csv", {Rows(MakeBatch(20, 3, true, 2, 1000))}, Sha(3))
             .response.upload()
             .id();
    ASSERT_GT(a_, 0);
    ASSERT_GT(b_, 0);
    ASSERT_GT(c_, 0);
  }

  // Rows of a scan as (time, upload) pairs, checking Time order on the way.
  std::vector<std::pair<double, int64_t>> Scanned(const v1::ScanTransactionsRequest& req,
                                                std::vector<TransactionBatch>* batches = nullptr) {
    grpc::Status status;
    std::vector<TransactionBatch> got = Scan(stub_.get(), req, &status);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::pair<double, int64_t>> out;
    for (const auto& b : got) {
      for (uint32_t i = 0; i < b.num_rows(); ++i) out.emplace_back(b.features(i * 30), b.upload_ids(i));
    }
    EXPECT_TRUE(std::is_sorted(out.begin(), out.end())) << "not in Time order";
    if (batches != nullptr) *batches = std::move(got);
    return out;
  }

  int64_t a_ = 0, b_ = 0, c_ = 0;
};

TEST_F(ScanTest, AllRowsComeInTimeOrderAcrossUploads) {
  EXPECT_EQ(Scanned({}).size(), 220u);
}

TEST_F(ScanTest, FiltersByUploadIdsAndExclusions) {
  v1::ScanTransactionsRequest req;
  req.add_upload_ids(a_);
  req.add_upload_ids(c_);
  auto rows = Scanned(req);
  EXPECT_EQ(rows.size(), 120u);
  for (const auto& [t, u] : rows) EXPECT_TRUE(u == a_ || u == c_);

  v1::ScanTransactionsRequest excl;
  excl.add_exclude_upload_ids(a_);
  rows = Scanned(excl);
  EXPECT_EQ(rows.size(), 120u);
  for (const auto& [t, u] : rows) EXPECT_NE(u, a_);

  v1::ScanTransactionsRequest both;
  both.add_upload_ids(a_);
  both.add_upload_ids(b_);
  both.add_exclude_upload_ids(b_);
  EXPECT_EQ(Scanned(both).size(), 100u);
}

TEST_F(ScanTest, FiltersByTimeRangeWithExclusiveUpperBound) {
  v1::ScanTransactionsRequest req;
  req.set_time_min(50);
  req.set_time_max(100);
  auto rows = Scanned(req);
  // a (Time 1.5k): 51, 52.5, ..., 99 -> 33 rows; b (Time 50 + 1.5k): 50, 51.5, ..., 99.5 -> 34.
  for (const auto& [t, u] : rows) {
    EXPECT_GE(t, 50);
    EXPECT_LT(t, 100);
  }
  EXPECT_EQ(rows.size(), 67u);

  v1::ScanTransactionsRequest open_ended;
  open_ended.set_time_min(1000);
  rows = Scanned(open_ended);
  EXPECT_EQ(rows.size(), 20u);

  // The range reaches rows through the uploads whose Time range overlaps it (migration 0012), so
  // the bounds of those ranges are the cases to get right: b's last row (198.5) is in
  // [198.5, 1000) and c's first (1000) is not; [148.5, 1000.5) holds a's last row.
  v1::ScanTransactionsRequest at_ends;
  at_ends.set_time_min(198.5);
  at_ends.set_time_max(1000);
  rows = Scanned(at_ends);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0], std::make_pair(198.5, b_));
  v1::ScanTransactionsRequest across;
  across.set_time_min(148.5);
  across.set_time_max(1000.5);
  rows = Scanned(across);
  EXPECT_EQ(rows.size(), 1u + 34u + 1u);
  EXPECT_EQ(rows.front(), std::make_pair(148.5, a_));
  EXPECT_EQ(rows.back(), std::make_pair(1000.0, c_));
  v1::ScanTransactionsRequest below;
  below.set_time_max(1.5);
  rows = Scanned(below);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0], std::make_pair(0.0, a_));
}

TEST_F(ScanTest, LabelledOnlySkipsUnlabelledRowsAndLabelsAreFilled) {
  v1::ScanTransactionsRequest req;
  req.set_labelled_only(true);
  std::vector<TransactionBatch> batches;
  auto rows = Scanned(req, &batches);
  EXPECT_EQ(rows.size(), 120u);
  int64_t frauds = 0;
  for (const auto& b : batches) {
    ASSERT_EQ(b.labels_size(), static_cast<int>(b.num_rows()));
    for (int l : b.labels()) {
      EXPECT_TRUE(l == 0 || l == 1);
      frauds += l;
    }
  }
  EXPECT_EQ(frauds, 14 + 3);  // rows 3, 10, ..., 94 of a; 3, 10, 17 of c

  // Mixed batches mark unlabelled rows with -1.
  v1::ScanTransactionsRequest all;
  all.set_batch_rows(1000);
  Scanned(all, &batches);
  ASSERT_EQ(batches.size(), 1u);
  int unlabelled = 0;
  for (int i = 0; i < batches[0].labels_size(); ++i) {
    if (batches[0].labels(i) == -1) {
      ++unlabelled;
      EXPECT_EQ(batches[0].upload_ids(i), b_);
    }
  }
  EXPECT_EQ(unlabelled, 100);
}

TEST_F(ScanTest, BatchRowsSplitsTheStream) {
  v1::ScanTransactionsRequest req;
  req.set_batch_rows(7);
  std::vector<TransactionBatch> batches;
  Scanned(req, &batches);
  ASSERT_EQ(batches.size(), 32u);  // 31 * 7 + 3 = 220
  for (size_t i = 0; i + 1 < batches.size(); ++i) EXPECT_EQ(batches[i].num_rows(), 7u);
  EXPECT_EQ(batches.back().num_rows(), 3u);
  for (const auto& b : batches) {
    EXPECT_EQ(b.features_size(), static_cast<int>(b.num_rows()) * 30);
    EXPECT_EQ(b.line_numbers_size(), static_cast<int>(b.num_rows()));
    EXPECT_EQ(b.upload_ids_size(), static_cast<int>(b.num_rows()));
  }
  v1::ScanTransactionsRequest big;
  big.set_batch_rows(1 << 30);  // capped at 65536
  Scanned(big, &batches);
  EXPECT_EQ(batches.size(), 1u);
}

TEST_F(ScanTest, BadScanRequestsAreInvalidArgument) {
  grpc::Status status;
  v1::ScanTransactionsRequest req;
  req.set_time_min(10);
  req.set_time_max(5);
  Scan(stub_.get(), req, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ScanTransactionsRequest neg;
  neg.set_batch_rows(-1);
  Scan(stub_.get(), neg, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ScanTest, CancelledScanReleasesItsConnection) {
  // Enough rows that the server is still streaming when the client stops.
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(Upload(stub_.get(), "big.csv", {Rows(MakeBatch(5000, 50 + i, true))}, Sha(60 + i))
                    .status.ok());
  }
  grpc::ClientContext ctx;
  v1::ScanTransactionsRequest req;
  req.set_batch_rows(50);
  auto reader = stub_->ScanTransactions(&ctx, req);
  v1::ScanTransactionsResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  ctx.TryCancel();
  while (reader->Read(&resp)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  WaitForIdlePool();
  EXPECT_EQ(Scanned({}).size(), 20220u);  // connections still work
}

TEST_F(ScanTest, DataStatsCountUploadsAfterAnId) {
  grpc::ClientContext ctx;
  v1::GetDataStatsResponse stats;
  ASSERT_TRUE(stub_->GetDataStats(&ctx, {}, &stats).ok());
  EXPECT_EQ(stats.uploads(), 3);
  EXPECT_EQ(stats.rows(), 220);
  EXPECT_EQ(stats.labelled_rows(), 120);
  EXPECT_EQ(stats.frauds(), 17);
  EXPECT_EQ(stats.max_upload_id(), c_);

  grpc::ClientContext ctx2;
  v1::GetDataStatsRequest after;
  after.set_after_upload_id(a_);
  ASSERT_TRUE(stub_->GetDataStats(&ctx2, after, &stats).ok());
  EXPECT_EQ(stats.uploads(), 2);
  EXPECT_EQ(stats.rows(), 120);
  EXPECT_EQ(stats.labelled_rows(), 20);
  EXPECT_EQ(stats.frauds(), 3);
  EXPECT_EQ(stats.max_upload_id(), c_);
}

// ---------------------------------------------------------------------------------------------
// Predictions

TEST_F(StorageTest, RecordPredictionsUpsertsAndListPredictionsPagesByScore) {
  const auto o = Upload(stub_.get(), "p.csv", {Rows(MakeBatch(30, 1, true))}, Sha(1));
  ASSERT_TRUE(o.status.ok());
  const int64_t id = o.response.upload().id();
  EXPECT_EQ(o.response.upload().model_version(), 0);

  v1::RecordPredictionsRequest rec;
  rec.set_upload_id(id);
  rec.mutable_scores()->set_model_version(4);
  for (int i = 0; i < 30; ++i) {
    rec.add_line_numbers(i + 2);
    rec.mutable_scores()->add_scores(static_cast<float>((i * 7) % 30) / 30.0f);
    rec.mutable_scores()->add_decisions((i * 7) % 30 >= 15);
  }
  {
    grpc::ClientContext ctx;
    v1::RecordPredictionsResponse resp;
    ASSERT_TRUE(stub_->RecordPredictions(&ctx, rec, &resp).ok());
    EXPECT_EQ(resp.recorded(), 30);
  }
  EXPECT_EQ(store_->GetUpload(id)->model_version(), 4);  // adopted as the scoring model

  // By descending score, pages of 10.
  std::vector<float> scores;
  for (int offset = 0; offset < 30; offset += 10) {
    grpc::ClientContext ctx;
    v1::ListPredictionsRequest list;
    list.set_upload_id(id);
    list.set_order(v1::PREDICTION_ORDER_SCORE_DESC);
    list.set_page_size(10);
    list.set_offset(offset);
    v1::ListPredictionsResponse resp;
    ASSERT_TRUE(stub_->ListPredictions(&ctx, list, &resp).ok());
    EXPECT_EQ(resp.total(), 30);
    ASSERT_EQ(resp.predictions_size(), 10);
    for (const auto& p : resp.predictions()) {
      scores.push_back(p.score());
      EXPECT_EQ(p.features_size(), 30);
      EXPECT_TRUE(p.label() == 0 || p.label() == 1);
    }
  }
  EXPECT_TRUE(std::is_sorted(scores.rbegin(), scores.rend()));
  EXPECT_EQ(scores.front(), 29.0f / 30.0f);

  // Upsert: re-recording line 2 changes its score, no new row.
  v1::RecordPredictionsRequest again;
  again.set_upload_id(id);
  again.add_line_numbers(2);
  again.mutable_scores()->set_model_version(4);
  again.mutable_scores()->add_scores(0.999f);
  again.mutable_scores()->add_decisions(true);
  {
    grpc::ClientContext ctx;
    v1::RecordPredictionsResponse resp;
    ASSERT_TRUE(stub_->RecordPredictions(&ctx, again, &resp).ok());
  }
  EXPECT_EQ(Count("predictions"), 30);
  EXPECT_EQ(QueryScalar("SELECT score FROM predictions WHERE line = 2"), "0.999");

  // Lines that are not rows of the upload: nothing stored.
  v1::RecordPredictionsRequest unknown_line = again;
  unknown_line.set_line_numbers(0, 999);
  unknown_line.mutable_scores()->set_model_version(5);
  {
    grpc::ClientContext ctx;
    v1::RecordPredictionsResponse resp;
    const grpc::Status s = stub_->RecordPredictions(&ctx, unknown_line, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("not rows of upload"));
  }
  v1::RecordPredictionsRequest unknown_upload = again;
  unknown_upload.set_upload_id(id + 100);
  {
    grpc::ClientContext ctx;
    v1::RecordPredictionsResponse resp;
    EXPECT_EQ(stub_->RecordPredictions(&ctx, unknown_upload, &resp).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  v1::RecordPredictionsRequest mismatch = again;
  mismatch.add_line_numbers(3);
  {
    grpc::ClientContext ctx;
    v1::RecordPredictionsResponse resp;
    EXPECT_EQ(stub_->RecordPredictions(&ctx, mismatch, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_EQ(Count("predictions"), 30);

  // Another model version is listed separately.
  {
    grpc::ClientContext ctx;
    v1::ListPredictionsRequest list;
    list.set_upload_id(id);
    list.set_model_version(5);
    v1::ListPredictionsResponse resp;
    ASSERT_TRUE(stub_->ListPredictions(&ctx, list, &resp).ok());
    EXPECT_EQ(resp.total(), 0);
  }
  {
    grpc::ClientContext ctx;
    v1::ListPredictionsRequest list;
    list.set_upload_id(id + 100);
    v1::ListPredictionsResponse resp;
    EXPECT_EQ(stub_->ListPredictions(&ctx, list, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
}

// ---------------------------------------------------------------------------------------------
// Model registry

v1::ModelVersion MakeModel(int64_t version, int64_t run_id) {
  v1::ModelVersion m;
  m.set_version(version);
  m.set_family(fraud::common::v1::MODEL_FAMILY_MLP);
  m.set_artifact_uri(absl::StrCat("models/", version));
  m.set_artifact_sha256(Sha(static_cast<int>(version)));
  m.set_run_id(run_id);
  auto* mf = m.mutable_manifest();
  for (const char* f : {"Time", "V1", "Amount"}) mf->add_feature_names(f);
  mf->set_threshold(0.123456789012345678);
  for (double v : {1e-300, -0.0, 1.0 / 3.0, 172792.0}) mf->mutable_preprocessing()->add_mean(v);
  mf->mutable_preprocessing()->set_log_amount(true);
  (*mf->mutable_params())["hidden"] = "64,32";
  mf->mutable_lineage()->add_upload_ids(3);
  mf->mutable_lineage()->set_train_rows(100000);
  mf->mutable_lineage()->set_description("initial synthetic set");
  mf->mutable_validation_metrics()->set_auprc(0.8123456789);
  mf->mutable_smoke()->add_expected_scores(0.1f);
  mf->mutable_smoke()->add_expected_scores(1.0f / 3.0f);
  return m;
}

TEST_F(StorageTest, RegistryStoresManifestsExactlyAndAllocatesVersions) {
  auto allocated = store_->AllocateModelVersion();
  ASSERT_THAT(allocated, IsOk());
  EXPECT_EQ(*allocated, 1);

  grpc::ClientContext ctx;
  v1::RegisterModelRequest reg;
  *reg.mutable_model() = MakeModel(*allocated, 11);
  v1::RegisterModelResponse resp;
  ASSERT_TRUE(stub_->RegisterModel(&ctx, reg, &resp).ok());
  EXPECT_EQ(resp.model().version(), 1);
  EXPECT_EQ(resp.model().manifest().version(), 1);
  EXPECT_EQ(resp.model().manifest().family(), fraud::common::v1::MODEL_FAMILY_MLP);
  EXPECT_EQ(resp.model().manifest().run_id(), 11);
  EXPECT_GT(resp.model().created_at().seconds(), 0);
  EXPECT_FALSE(resp.model().is_champion());

  // The manifest survives the JSON round trip exactly (doubles incl. 1e-300, floats, maps); only
  // the sign of a zero is lost (jsonb numbers have no -0), which == comparison ignores.
  grpc::ClientContext gctx;
  v1::GetModelRequest get;
  get.set_version(1);
  v1::GetModelResponse got;
  ASSERT_TRUE(stub_->GetModel(&gctx, get, &got).ok());
  fraud::common::v1::ModelManifest want = MakeModel(1, 11).manifest();
  want.set_version(1);
  want.set_family(fraud::common::v1::MODEL_FAMILY_MLP);
  want.set_run_id(11);
  EXPECT_TRUE(MessageDifferencer::Equals(got.model().manifest(), want))
      << got.model().manifest().DebugString();
  EXPECT_TRUE(SameBits(got.model().manifest().preprocessing().mean(0), 1e-300));
  EXPECT_EQ(got.model().artifact_uri(), "models/1");
  EXPECT_EQ(got.model().run_id(), 11);

  // Version 0 allocates; explicit numbers keep the sequence ahead.
  v1::ModelVersion auto_version = MakeModel(0, 12);
  auto registered = store_->RegisterModel(auto_version);
  ASSERT_THAT(registered, IsOk());
  EXPECT_EQ(registered->version(), 2);
  ASSERT_THAT(store_->RegisterModel(MakeModel(10, 13)), IsOk());
  EXPECT_EQ(*store_->AllocateModelVersion(), 11);

  // Duplicates, unknown versions and contradictions.
  EXPECT_THAT(store_->RegisterModel(MakeModel(10, 13)),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already registered")));
  EXPECT_THAT(store_->GetModel(99), StatusIs(absl::StatusCode::kNotFound));
  v1::ModelVersion contradicting = MakeModel(20, 1);
  contradicting.mutable_manifest()->set_version(21);
  EXPECT_THAT(store_->RegisterModel(contradicting), StatusIs(absl::StatusCode::kInvalidArgument));
  v1::ModelVersion no_family = MakeModel(22, 1);
  no_family.set_family(fraud::common::v1::MODEL_FAMILY_UNSPECIFIED);
  EXPECT_THAT(store_->RegisterModel(no_family), StatusIs(absl::StatusCode::kInvalidArgument));

  auto models = store_->ListModels();
  ASSERT_THAT(models, IsOk());
  std::vector<int64_t> versions;
  for (const auto& m : *models) versions.push_back(m.version());
  EXPECT_THAT(versions, ElementsAre(10, 2, 1));
}

TEST_F(StorageTest, ChampionHistoryRecordsPromotionsCompareAndSetAndRollback) {
  for (int v = 1; v <= 3; ++v) ASSERT_THAT(store_->RegisterModel(MakeModel(v, v)), IsOk());
  {
    grpc::ClientContext ctx;
    v1::GetChampionResponse resp;
    ASSERT_TRUE(stub_->GetChampion(&ctx, {}, &resp).ok());
    EXPECT_FALSE(resp.has_model());
  }
  auto set = [&](int64_t version, bool check, int64_t expected, const std::string& reason) {
    v1::SetChampionRequest req;
    req.set_version(version);
    req.set_reason(reason);
    req.set_actor("test");
    req.set_check_current(check);
    req.set_expected_current(expected);
    return store_->SetChampion(req);
  };
  auto c1 = set(1, true, 0, "bootstrap");
  ASSERT_THAT(c1, IsOk());
  EXPECT_EQ(c1->previous_version(), 0);
  auto c2 = set(2, true, 1, "promoted by run 2");
  ASSERT_THAT(c2, IsOk());
  EXPECT_EQ(c2->previous_version(), 1);
  // A stale compare-and-set (someone else promoted meanwhile) is refused.
  EXPECT_THAT(set(3, true, 1, "promoted by run 3"),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("current is 2")));
  EXPECT_THAT(set(99, false, 0, "unknown"), StatusIs(absl::StatusCode::kNotFound));
  // Rollback to version 1 without a check.
  auto c3 = set(1, false, 0, "rollback by admin");
  ASSERT_THAT(c3, IsOk());
  EXPECT_EQ(c3->previous_version(), 2);

  grpc::ClientContext ctx;
  v1::GetChampionResponse champion;
  ASSERT_TRUE(stub_->GetChampion(&ctx, {}, &champion).ok());
  EXPECT_EQ(champion.model().version(), 1);
  EXPECT_TRUE(champion.model().is_champion());
  EXPECT_EQ(champion.since().seconds(), c3->changed_at().seconds());

  grpc::ClientContext hctx;
  v1::ListChampionHistoryResponse history;
  ASSERT_TRUE(stub_->ListChampionHistory(&hctx, {}, &history).ok());
  ASSERT_EQ(history.changes_size(), 3);
  EXPECT_EQ(history.changes(0).version(), 1);
  EXPECT_EQ(history.changes(0).reason(), "rollback by admin");
  EXPECT_EQ(history.changes(1).version(), 2);
  EXPECT_EQ(history.changes(2).version(), 1);
  EXPECT_EQ(history.changes(2).actor(), "test");

  auto models = store_->ListModels();
  ASSERT_THAT(models, IsOk());
  for (const auto& m : *models) EXPECT_EQ(m.is_champion(), m.version() == 1) << m.version();

  // The audit trail cannot be rewritten.
  EXPECT_ANY_THROW(Exec("UPDATE champion_history SET reason = 'x'"));
  EXPECT_ANY_THROW(Exec("DELETE FROM champion_history"));
  EXPECT_EQ(Count("champion_history"), 3);
}

TEST_F(StorageTest, ConcurrentCompareAndSetPromotionsLetExactlyOneWin) {
  for (int v = 1; v <= 6; ++v) ASSERT_THAT(store_->RegisterModel(MakeModel(v, v)), IsOk());
  std::vector<absl::StatusOr<v1::ChampionChange>> results(6, absl::UnknownError(""));
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      v1::SetChampionRequest req;
      req.set_version(i + 1);
      req.set_check_current(true);
      req.set_expected_current(0);
      results[i] = store_->SetChampion(req);
    });
  }
  for (auto& t : threads) t.join();
  int wins = 0;
  for (const auto& r : results) {
    if (r.ok()) {
      ++wins;
    } else {
      EXPECT_THAT(r, StatusIs(absl::StatusCode::kAborted));
    }
  }
  EXPECT_EQ(wins, 1);
  EXPECT_EQ(Count("champion_history"), 1);
}

// ---------------------------------------------------------------------------------------------
// Training runs

TEST_F(StorageTest, TrainingRunsCreateGetUpdateAndList) {
  v1::TrainingRun run;
  run.set_trigger("manual");
  (*run.mutable_params())["families"] = "mlp,xgboost";
  run.mutable_lineage()->add_upload_ids(1);
  grpc::ClientContext ctx;
  v1::CreateRunRequest create;
  *create.mutable_run() = run;
  v1::CreateRunResponse created;
  ASSERT_TRUE(stub_->CreateRun(&ctx, create, &created).ok());
  const int64_t id = created.run().id();
  EXPECT_GT(id, 0);
  EXPECT_EQ(created.run().status(), v1::RUN_STATUS_QUEUED);
  EXPECT_GT(created.run().created_at().seconds(), 0);

  auto got = store_->GetRun(id);
  ASSERT_THAT(got, IsOk());
  EXPECT_TRUE(MessageDifferencer::Equals(*got, created.run())) << got->DebugString();

  // UpdateRun replaces the whole run, keeping created_at when not given.
  v1::TrainingRun update;
  update.set_id(id);
  update.set_status(v1::RUN_STATUS_SUCCEEDED);
  update.set_trigger("manual");
  update.mutable_started_at()->set_seconds(1700000000);
  update.mutable_finished_at()->set_seconds(1700000100);
  auto* cand = update.add_candidates();
  cand->set_name("mlp[64,32] lr=0.001");
  cand->set_family(fraud::common::v1::MODEL_FAMILY_MLP);
  cand->mutable_validation_metrics()->set_auprc(0.8123456789012345);
  cand->add_curve()->set_train_loss(1e-300);
  cand->set_selected(true);
  update.set_model_version(3);
  update.set_promoted(true);
  update.set_message("promoted: AUPRC 0.81 > 0.78 + margin");
  grpc::ClientContext uctx;
  v1::UpdateRunRequest ureq;
  *ureq.mutable_run() = update;
  v1::UpdateRunResponse uresp;
  ASSERT_TRUE(stub_->UpdateRun(&uctx, ureq, &uresp).ok());
  got = store_->GetRun(id);
  ASSERT_THAT(got, IsOk());
  v1::TrainingRun want = update;
  *want.mutable_created_at() = created.run().created_at();
  EXPECT_TRUE(MessageDifferencer::Equals(*got, want)) << got->DebugString();
  EXPECT_EQ(got->params_size(), 0);  // replaced, not merged
  EXPECT_EQ(QueryScalar(absl::StrCat("SELECT status FROM training_runs WHERE id = ", id)), "3");

  v1::TrainingRun unknown = update;
  unknown.set_id(id + 100);
  EXPECT_THAT(store_->UpdateRun(unknown), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->GetRun(id + 100), StatusIs(absl::StatusCode::kNotFound));
  v1::TrainingRun with_id = run;
  with_id.set_id(5);
  EXPECT_THAT(store_->CreateRun(with_id), StatusIs(absl::StatusCode::kInvalidArgument));

  for (int i = 0; i < 4; ++i) ASSERT_THAT(store_->CreateRun(run), IsOk());
  v1::ListRunsRequest list;
  list.set_page_size(3);
  auto page1 = store_->ListRuns(list);
  ASSERT_THAT(page1, IsOk());
  ASSERT_EQ(page1->runs_size(), 3);
  EXPECT_GT(page1->runs(0).id(), page1->runs(1).id());
  EXPECT_NE(page1->next_before_id(), 0);
  list.set_before_id(page1->next_before_id());
  auto page2 = store_->ListRuns(list);
  ASSERT_THAT(page2, IsOk());
  ASSERT_EQ(page2->runs_size(), 2);
  EXPECT_EQ(page2->runs(1).id(), id);
  EXPECT_EQ(page2->next_before_id(), 0);
}

// ---------------------------------------------------------------------------------------------
// Service plumbing

TEST_F(StorageTest, ServiceAnswersUnavailableUntilReady) {
  service_->SetReady(false);
  grpc::ClientContext ctx;
  v1::GetDataStatsResponse resp;
  const grpc::Status s = stub_->GetDataStats(&ctx, {}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("migrations"));
  service_->SetReady(true);
}

TEST_F(StorageTest, PoolExhaustionIsResourceExhaustedAndStatementTimeoutIsDeadlineExceeded) {
  const PgPoolOptions o = OneConnection(100);
  PgPool small(o);
  {
    auto held = small.Acquire();
    ASSERT_THAT(held, IsOk());
    EXPECT_EQ(small.in_use(), 1);
    EXPECT_THAT(small.Acquire(absl::Now() + absl::Milliseconds(50)),
                StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("pool exhausted")));
    EXPECT_THAT(small.Ping(absl::Milliseconds(50)), IsOk());  // busy is not down
  }
  EXPECT_EQ(small.in_use(), 0);
  EXPECT_THAT(Transact(small, [](pqxx::work& txn) {
                txn.exec("SELECT pg_sleep(1)");
                return absl::OkStatus();
              }),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(Transact(small, [](pqxx::work& txn) {
                txn.exec("SELECT 1");
                return absl::OkStatus();
              }),
              IsOk());
}

// The COPY into transactions stays open while the client sends its batches, so a slow client
// must not run into the per-statement timeout (it did under TSan: "canceling statement due to
// statement timeout" at the commit of eight concurrent uploads); the commit's own statements
// still have it.
TEST_F(StorageTest, AnUploadSlowerThanTheStatementTimeoutIsStored) {
  const PgPoolOptions o = OneConnection(300);
  PgPool pool(o);
  UploadWriter writer(&pool, absl::Now() + absl::Seconds(30));
  v1::UploadBegin begin;
  begin.set_file_name("slow.csv");
  ASSERT_THAT(writer.Begin(begin), IsOk());
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(writer.Append(Scored(MakeBatch(100, i, true, 2 + 100 * i), 3)), IsOk());
    absl::SleepFor(absl::Milliseconds(400));
  }
  v1::UploadCommit commit;
  commit.set_sha256(Sha(77));
  absl::StatusOr<v1::StoreUploadResponse> r = writer.Commit(commit);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->upload().rows(), 300);
  EXPECT_EQ(Count("transactions"), 300);
  EXPECT_EQ(Count("predictions"), 300);
  // The timeout is back for the pooled connection's next statements.
  EXPECT_THAT(Transact(pool, [](pqxx::work& txn) {
                txn.exec("SELECT pg_sleep(1)");
                return absl::OkStatus();
              }),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST_F(StorageTest, TerminatedConnectionIsReplacedTransparently) {
  ASSERT_THAT(store_->GetDataStats({}), IsOk());
  // Kill every pooled backend, as a database restart would.
  Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" +
       application_name() + "' AND pid <> pg_backend_pid()");
  for (int i = 0; i < 10; ++i) EXPECT_THAT(store_->GetDataStats({}), IsOk());
  EXPECT_THAT(store_->ListModels(), IsOk());
}

// ---------------------------------------------------------------------------------------------
// Migrations

class MigrationTest : public fraud::testing::PgFixture {
 protected:
  // Applies the embedded migrations numbered below `version` (a database as an earlier release
  // left it); returns how many.
  size_t ApplyMigrationsBelow(PgPool& pool, int version) {
    std::vector<Migration> before;
    for (const Migration& m : EmbeddedMigrations()) {
      if (m.version < version) before.push_back(m);
    }
    EXPECT_THAT(ApplyMigrations(pool, before), IsOk());
    return before.size();
  }
};

TEST_F(MigrationTest, AppliedTwiceAndConcurrentlyEachMigrationIsRecordedOnce) {
  const auto& migrations = EmbeddedMigrations();
  ASSERT_FALSE(migrations.empty());
  int applied[3] = {0, 0, 0};
  absl::Status status[3];
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      PgPoolOptions o;
      o.conninfo = conninfo();
      o.size = 1;
      PgPool pool(o);
      status[i] = ApplyMigrations(pool, migrations, &applied[i]);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_THAT(status[0], IsOk());
  EXPECT_THAT(status[1], IsOk());
  EXPECT_EQ(applied[0] + applied[1], static_cast<int>(migrations.size()));

  PgPoolOptions o;
  o.conninfo = conninfo();
  PgPool pool(o);
  EXPECT_THAT(ApplyMigrations(pool, migrations, &applied[2]), IsOk());
  EXPECT_EQ(applied[2], 0);
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM schema_migrations"),
            std::to_string(migrations.size()));
  EXPECT_EQ(QueryScalar("SELECT count(DISTINCT version) FROM schema_migrations"),
            std::to_string(migrations.size()));
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = '" +
                        schema() + "' AND table_name = 'transactions'"),
            "1");
}

// A database that feedback wrote under 0003-0008 (labels in transactions.class, one
// label_events row per change) keeps its current labels and its history through 0009, and its
// review dispositions name the converted events.
TEST_F(MigrationTest, LabelEventsOfEarlierVersionsBecomeBatchesWithTheSameHistory) {
  PgPoolOptions o;
  o.conninfo = conninfo();
  PgPool pool(o);
  const size_t before = ApplyMigrationsBelow(pool, 9);
  ASSERT_FALSE(HasFailure());
  Exec("INSERT INTO uploads (id, sha256, status, rows) VALUES (7, repeat('7', 64), 1, 2);"
       "INSERT INTO transactions (upload_id, line, time, amount, v, class) VALUES"
       " (7, 2, 0, 1, array_fill(0::float8, ARRAY[28]), 0),"
       " (7, 1500, 5, 1, array_fill(0::float8, ARRAY[28]), 1);"
       "INSERT INTO label_events (upload_id, line, label, previous_label, source, note, actor, at,"
       " recorded_at) VALUES"
       " (7, 2, 1, NULL, 'import', '', 'ops', '2026-01-01 00:00:00.25+00', '2026-01-02+00'),"
       " (7, 1500, 1, NULL, 'import', 'batch 1', 'ops', '2026-01-01+00', '2026-01-02+00'),"
       " (7, 2, 0, 1, 'review', 'not fraud', 'ana', '2026-01-03+00', '2026-01-04+00');"
       "INSERT INTO review_dispositions (upload_id, line, disposition, label_event_id)"
       " VALUES (7, 2, 2, 3)");
  int applied = 0;
  ASSERT_THAT(ApplyMigrations(pool, EmbeddedMigrations(), &applied), IsOk());
  EXPECT_EQ(applied, static_cast<int>(EmbeddedMigrations().size() - before));
  EXPECT_EQ(QueryScalar("SELECT string_agg(line || '=' || class, ',' ORDER BY line)"
                        " FROM current_transactions"),
            "2=0,1500=1");
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM label_batches"), "2");
  EXPECT_EQ(QueryScalar(
                "SELECT string_agg(concat_ws('/', line, label, COALESCE(previous_label, -1), source,"
                " note, actor, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS')), '; '"
                " ORDER BY id) FROM label_events"),
            "2/1/-1/import//ops/2026-01-01 00:00:00.250; "
            "1500/1/-1/import/batch 1/ops/2026-01-01 00:00:00.000; "
            "2/0/1/review/not fraud/ana/2026-01-03 00:00:00.000");
  // The disposition names the third event under its new id.
  EXPECT_EQ(QueryScalar("SELECT e.note FROM review_dispositions d JOIN label_events e"
                        " ON e.id = d.label_event_id"),
            "not fraud");
  v1::ListLabelHistoryRequest req;
  req.set_upload_id(7);
  req.set_line(2);
  absl::StatusOr<v1::ListLabelHistoryResponse> h = ListLabelHistory(pool, req);
  ASSERT_THAT(h, IsOk());
  ASSERT_EQ(h->events_size(), 2);
  EXPECT_EQ(h->events(1).source(), "review");
  EXPECT_EQ(h->current_label(), 0);
  // History stays append-only.
  EXPECT_THROW(Exec("DELETE FROM label_changes"), std::exception);
  EXPECT_THROW(Exec("UPDATE label_batches SET actor = 'x'"), std::exception);
}

// 0010 stores V1..V28 as 224 bytes: rows stored before it keep every bit (signed zeros,
// subnormals, extremes, NaN, infinities), and unpack_v / pack_v turn the bytes back into the
// same float8[] and back.
TEST_F(MigrationTest, FeatureArraysOfEarlierVersionsBecomeBytesBitForBit) {
  PgPoolOptions o;
  o.conninfo = conninfo();
  PgPool pool(o);
  ApplyMigrationsBelow(pool, 10);
  ASSERT_FALSE(HasFailure());
  // Row 2: 28 tricky values; row 3: 28 ordinary ones.
  const std::string tricky =
      "ARRAY['-0', '0', '4.9e-324', '-2.2250738585072009e-308', '2.2250738585072014e-308',"
      " '1.7976931348623157e308', '-1.7976931348623157e308', 'NaN', 'Infinity', '-Infinity',"
      " '0.1', '-0.30000000000000004', '1e-300', '123456789.123456789', '-1.3598071336738',"
      " '2.53634673796914', '1', '-1', '0.5', '1e22', '-4.66e-320', '3.141592653589793',"
      " '2.718281828459045', '-1e-5', '9007199254740993', '1.0000000000000002', '6.02e23',"
      " '-7.5']::float8[]";
  Exec("INSERT INTO uploads (id, sha256, status, rows) VALUES (8, repeat('8', 64), 1, 2);"
       "INSERT INTO transactions (upload_id, line, time, amount, v, class) VALUES"
       " (8, 2, 0, 1, " + tricky + ", 0),"
       " (8, 3, 1, 2, (SELECT array_agg(g::float8 / 7 - 2) FROM generate_series(1, 28) g), 1);"
       "CREATE TABLE v_before AS SELECT line, (SELECT string_agg(float8send(x), ''::bytea"
       " ORDER BY k) FROM unnest(v) WITH ORDINALITY AS u(x, k)) AS bits, v AS arr"
       " FROM transactions");
  ASSERT_THAT(ApplyMigrations(pool, EmbeddedMigrations()), IsOk());
  EXPECT_EQ(QueryScalar("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE"
                        " attrelid = 'transactions'::regclass AND attname = 'v'"),
            "bytea");
  // The stored bytes are float8send's bytes of the old elements, in order.
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM transactions t JOIN v_before b USING (line)"
                        " WHERE t.v = b.bits AND octet_length(t.v) = 224"),
            "2");
  // unpack_v gives back every element bit for bit; pack_v of that is the stored bytes again.
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM transactions t JOIN v_before b USING (line)"
                        " WHERE pack_v(unpack_v(t.v)) = t.v AND cardinality(unpack_v(t.v)) = 28"
                        " AND unpack_v(t.v)::text = b.arr::text"),
            "2");
  EXPECT_EQ(QueryScalar("SELECT (unpack_v(v))[1]::text || ' ' || (unpack_v(v))[3]::text || ' ' ||"
                        " (unpack_v(v))[8]::text FROM transactions WHERE line = 2"),
            "-0 5e-324 NaN");
  // The view readers use still serves the rows, and the check refuses a short value.
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM current_transactions WHERE upload_id = 8"), "2");
  EXPECT_THROW(Exec("INSERT INTO transactions (upload_id, line, time, amount, v)"
                    " VALUES (8, 4, 0, 0, pack_v(ARRAY[1, 2]::float8[]))"),
               std::exception);
}

// 0012 drops the Time index: rows stored before it are still found by a Time range, through the
// uploads whose recorded Time range overlaps it and the primary key.
TEST_F(MigrationTest, TimeRangesOfEarlierRowsGoThroughTheirUploads) {
  PgPoolOptions o;
  o.conninfo = conninfo();
  PgPool pool(o);
  ApplyMigrationsBelow(pool, 12);
  ASSERT_FALSE(HasFailure());
  // 50 uploads of 400 rows; upload k holds Time k * 1000 .. k * 1000 + 399.
  Exec("INSERT INTO uploads (id, sha256, status, rows, time_min, time_max)"
       " SELECT k, lpad(to_hex(k), 64, '0'), 1, 400, k * 1000, k * 1000 + 399"
       " FROM generate_series(1, 50) k;"
       "INSERT INTO transactions (upload_id, line, time, amount, v)"
       " SELECT k, g, k * 1000 + g, 1, decode(repeat('00', 224), 'hex')"
       " FROM generate_series(1, 50) k, generate_series(0, 399) g");
  ASSERT_THAT(ApplyMigrations(pool, EmbeddedMigrations()), IsOk());
  // (Through the catalogs of this test's schema: pg_indexes would decode the indexes of every
  // schema, including those other tests are dropping at the same time.)
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM pg_index x JOIN pg_attribute a"
                        " ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey)"
                        " WHERE x.indrelid = 'transactions'::regclass AND a.attname = 'time'"),
            "0");
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM pg_index WHERE indrelid = 'transactions'::regclass"),
            "2");  // the primary key and live scoring's transaction_id index
  // ScanTransactions' query: the rows, and a plan reaching upload 20's through the key.
  Exec("ANALYZE transactions; ANALYZE uploads");
  pqxx::connection conn(conninfo());
  pqxx::work txn(conn);
  v1::ScanTransactionsRequest req;
  req.set_time_min(20050);
  req.set_time_max(20060);
  const std::string range = ScanTransactionsQuery(txn, req);
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM (" + range + ") s"), "10");
  req.set_time_min(20398.5);
  req.set_time_max(21000.5);
  EXPECT_EQ(QueryScalar("SELECT string_agg(upload_id || ':' || line, ',' ORDER BY time) FROM (" +
                        ScanTransactionsQuery(txn, req) + ") s"),
            "20:399,21:0");
  req.set_time_min(100000);
  req.set_time_max(0);
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM (" + ScanTransactionsQuery(txn, req) + ") s"), "0");
  Exec("CREATE FUNCTION plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$"
       " DECLARE line text; plan text := ''; BEGIN"
       " FOR line IN EXECUTE 'EXPLAIN ' || q LOOP plan := plan || line || ' '; END LOOP;"
       " RETURN plan; END $$");
  const std::string plan = QueryScalar("SELECT plan_of($q$" + range + "$q$)");
  EXPECT_THAT(plan, HasSubstr("transactions_pkey"));
  EXPECT_THAT(plan, Not(HasSubstr("Seq Scan on transactions")));
}

TEST_F(MigrationTest, DatabaseMigratedByANewerBinaryIsRefused) {
  PgPoolOptions o;
  o.conninfo = conninfo();
  PgPool pool(o);
  ASSERT_THAT(ApplyMigrations(pool, EmbeddedMigrations()), IsOk());
  Exec("INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future')");
  EXPECT_THAT(ApplyMigrations(pool, EmbeddedMigrations()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("newer")));
}

TEST_F(MigrationTest, AFailingMigrationIsRolledBackAndReported) {
  PgPoolOptions o;
  o.conninfo = conninfo();
  PgPool pool(o);
  std::vector<Migration> migrations = EmbeddedMigrations();
  migrations.push_back({9000, "9000_broken", "CREATE TABLE half (x int); SELECT nonsense FROM nowhere"});
  EXPECT_THAT(ApplyMigrations(pool, migrations),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("9000_broken")));
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM information_schema.tables WHERE table_schema = '" +
                        schema() + "' AND table_name = 'half'"),
            "0");
  EXPECT_EQ(QueryScalar("SELECT max(version) FROM schema_migrations"),
            std::to_string(EmbeddedMigrations().back().version));
}

// ---------------------------------------------------------------------------------------------
// Service-to-service authentication

// The status code of one unary call on `stub`.
template <typename Request, typename Response>
grpc::StatusCode Call(v1::StorageService::Stub* stub,
                      grpc::Status (v1::StorageService::Stub::*method)(grpc::ClientContext*,
                                                                      const Request&, Response*),
                      const Request& request) {
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, absl::Seconds(10));
  Response response;
  return (stub->*method)(&ctx, request, &response).error_code();
}

class AuthenticatedStorageTest : public StorageTest {
 protected:
  std::string service_token() const override { return "s3rvice-t0ken"; }
  // A stub whose channel sends `token` on every call, as the services' channels do.
  std::unique_ptr<v1::StorageService::Stub> StubWithToken(const std::string& token) {
    rpc::ChannelOptions o;
    o.target = server_->target();
    o.service_token = token;
    return v1::StorageService::NewStub(rpc::MakeChannel(o));
  }
  // A directory holding one small artifact file "a.bin".
  std::string ArtifactSource() {
    const std::string dir = ::testing::TempDir() + "/auth_artifact_" + schema();
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/a.bin") << "weights";
    return dir;
  }
};

TEST_F(AuthenticatedStorageTest, WritesWithoutTheServiceTokenAreUnauthenticatedAndStoreNothing) {
  const std::vector<v1::UploadRows> rows = {Rows(MakeBatch(20, 1, true))};
  const std::unique_ptr<v1::StorageService::Stub> wrong = StubWithToken("wrong-token");
  for (v1::StorageService::Stub* stub : {stub_.get(), wrong.get()}) {
    const UploadOutcome up = Upload(stub, "a.csv", rows, std::string(64, 'a'));
    EXPECT_EQ(up.status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << up.status.error_message();
    EXPECT_THAT(up.status.error_message(), Not(HasSubstr(service_token())));
    v1::SetChampionRequest champion;
    champion.set_version(1);
    EXPECT_EQ(Call(stub, &v1::StorageService::Stub::SetChampion, champion),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Call(stub, &v1::StorageService::Stub::AllocateModelVersion, v1::AllocateModelVersionRequest()),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Call(stub, &v1::StorageService::Stub::RegisterModel, v1::RegisterModelRequest()),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Call(stub, &v1::StorageService::Stub::CreateRun, v1::CreateRunRequest()),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(Call(stub, &v1::StorageService::Stub::RecordPredictions, v1::RecordPredictionsRequest()),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_THAT(rpc::PutModelArtifact(*stub, 1, ArtifactSource(), {"a.bin"}, absl::Seconds(10)),
                StatusIs(absl::StatusCode::kUnauthenticated));
    // Reads stay open (the gateway's UI reads; .github/SECURITY.md).
    EXPECT_EQ(Call(stub, &v1::StorageService::Stub::ListModels, v1::ListModelsRequest()),
              grpc::StatusCode::OK);
  }
  EXPECT_EQ(Count("model_artifacts"), 0);
  EXPECT_EQ(Count("uploads"), 0);
  EXPECT_EQ(Count("transactions"), 0);
  EXPECT_EQ(Count("champion_history"), 0);
  EXPECT_EQ(Count("model_versions"), 0);
}

TEST_F(AuthenticatedStorageTest, WritesWithTheServiceTokenSucceed) {
  auto stub = StubWithToken(service_token());
  const UploadOutcome up =
      Upload(stub.get(), "a.csv", {Rows(MakeBatch(20, 1, true))}, std::string(64, 'b'));
  ASSERT_TRUE(up.status.ok()) << up.status.error_message();
  EXPECT_EQ(Count("transactions"), 20);
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, absl::Seconds(10));
  v1::AllocateModelVersionResponse allocated;
  EXPECT_TRUE(stub->AllocateModelVersion(&ctx, v1::AllocateModelVersionRequest(), &allocated).ok());
  EXPECT_GT(allocated.version(), 0);
  EXPECT_THAT(rpc::PutModelArtifact(*stub, allocated.version(), ArtifactSource(), {"a.bin"},
                                    absl::Seconds(10)),
              IsOk());
  EXPECT_EQ(Count("model_artifacts"), 1);
}

}  // namespace
}  // namespace fraud::storage::testing
