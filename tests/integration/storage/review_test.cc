// The review queue (ListReviewQueue, SubmitReview) against a real PostgreSQL: queue order and
// paging, dispositions that become labels (history, realised metrics) or only leave the queue,
// argument validation, and the index the queue reads.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "clients/cli/commands.h"
#include "services/storage/review_store.h"
#include "tests/integration/storage/storage_test_util.h"
#include "tests/testing/fraudctl_runner.h"

namespace fraud::storage::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ReviewTest : public StorageTest {
 protected:
  // `n` unlabelled rows (lines 2..n+1) scored by `version` as Scored() does: row i scores
  // (i % 10) / 10 + 0.05, flagged when > 0.5.
  int64_t ScoredUpload(int n, int64_t version, int sha, bool labelled = false) {
    UploadOutcome up =
        Upload(stub_.get(), absl::StrCat("u", sha, ".csv"),
               {Scored(MakeBatch(n, sha, labelled, 2, 1000.0 * sha), version)}, Sha(sha));
    EXPECT_TRUE(up.status.ok()) << up.status.error_message();
    return up.response.upload().id();
  }

  grpc::Status Queue(const v1::ListReviewQueueRequest& req, v1::ListReviewQueueResponse* resp) {
    grpc::ClientContext ctx;
    return stub_->ListReviewQueue(&ctx, req, resp);
  }

  v1::ListReviewQueueResponse QueueOk(int page_size = 0, const std::string& token = "",
                                      int64_t version = 0, int64_t upload = 0) {
    v1::ListReviewQueueRequest req;
    req.set_page_size(page_size);
    req.set_page_token(token);
    req.set_model_version(version);
    req.set_upload_id(upload);
    v1::ListReviewQueueResponse resp;
    grpc::Status s = Queue(req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  grpc::Status Review(int64_t upload, int64_t line, v1::ReviewDisposition d,
                      v1::SubmitReviewResponse* resp, const std::string& note = "",
                      const std::string& transaction_id = "") {
    grpc::ClientContext ctx;
    v1::SubmitReviewRequest req;
    req.set_upload_id(upload);
    req.set_line(line);
    req.set_transaction_id(transaction_id);
    req.set_disposition(d);
    req.set_note(note);
    req.set_actor("analyst-7");
    return stub_->SubmitReview(&ctx, req, resp);
  }

  // Every item of the queue, following next_page_token with pages of `page_size`.
  std::vector<v1::ReviewItem> All(int page_size, int* pages) {
    std::vector<v1::ReviewItem> out;
    std::string token;
    *pages = 0;
    do {
      v1::ListReviewQueueResponse r = QueueOk(page_size, token);
      ++*pages;
      for (const v1::ReviewItem& item : r.items()) out.push_back(item);
      token = r.next_page_token();
      if (*pages > 100) break;
    } while (!token.empty());
    return out;
  }
};

TEST_F(ReviewTest, AlertsNewestUploadFirstThenByScore) {
  const int64_t older = ScoredUpload(20, 3, 1);
  const int64_t newer = ScoredUpload(20, 3, 2);
  v1::ListReviewQueueResponse r = QueueOk(100);
  // Scores 0.55..0.95 are flagged: 5 of every 10 rows, 10 per upload.
  ASSERT_EQ(r.items_size(), 20);
  EXPECT_TRUE(r.next_page_token().empty());
  for (int i = 0; i < 20; ++i) {
    const v1::ReviewItem& item = r.items(i);
    EXPECT_EQ(item.upload_id(), i < 10 ? newer : older) << i;
    EXPECT_GT(item.score(), 0.5f);
    EXPECT_EQ(item.model_version(), 3);
    EXPECT_EQ(item.features_size(), 30);
    EXPECT_DOUBLE_EQ(item.features(0), item.time());
    EXPECT_DOUBLE_EQ(item.features(29), item.amount());
    EXPECT_EQ(item.current_label(), -1);
    if (i % 10 != 0) {
      EXPECT_GE(r.items(i - 1).score(), item.score()) << i;
    }
  }
  EXPECT_FLOAT_EQ(r.items(0).score(), 0.95f);
  // Labelled uploads keep their alerts in the queue (review is about the alert), with the label.
  const int64_t labelled = ScoredUpload(10, 3, 3, /*labelled=*/true);
  v1::ListReviewQueueResponse only = QueueOk(0, "", 0, labelled);
  ASSERT_EQ(only.items_size(), 5);
  for (const v1::ReviewItem& item : only.items()) EXPECT_NE(item.current_label(), -1);
}

TEST_F(ReviewTest, PagingVisitsEveryAlertOnceEvenWithTiedScores) {
  ScoredUpload(60, 3, 1);  // 30 alerts, six rows at each of five scores
  ScoredUpload(20, 3, 2);
  int pages = 0;
  std::vector<v1::ReviewItem> all = All(7, &pages);
  ASSERT_EQ(all.size(), 40u);
  EXPECT_EQ(pages, 6);
  std::set<std::tuple<int64_t, int64_t>> seen;
  for (const v1::ReviewItem& item : all) seen.insert({item.upload_id(), item.line()});
  EXPECT_EQ(seen.size(), 40u);
  int one_page = 0;
  std::vector<v1::ReviewItem> together = All(500, &one_page);
  ASSERT_EQ(together.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].upload_id(), together[i].upload_id()) << i;
    EXPECT_EQ(all[i].line(), together[i].line()) << i;
  }
}

TEST_F(ReviewTest, RowFlaggedByTwoVersionsAppearsOnceUnlessFiltered) {
  const int64_t upload = ScoredUpload(10, 3, 1);
  // Version 4 flags line 2 (score 0.05 by version 3) and line 11 (0.95 by version 3) higher.
  grpc::ClientContext ctx;
  v1::RecordPredictionsRequest req;
  req.set_upload_id(upload);
  req.add_line_numbers(2);
  req.add_line_numbers(11);
  req.mutable_scores()->set_model_version(4);
  req.mutable_scores()->set_threshold(0.5);
  req.mutable_scores()->add_scores(0.7f);
  req.mutable_scores()->add_scores(0.99f);
  req.mutable_scores()->add_decisions(true);
  req.mutable_scores()->add_decisions(true);
  v1::RecordPredictionsResponse resp;
  ASSERT_TRUE(stub_->RecordPredictions(&ctx, req, &resp).ok());
  v1::ListReviewQueueResponse all = QueueOk();
  ASSERT_EQ(all.items_size(), 6);  // 5 of version 3 + line 2 of version 4, line 11 once
  EXPECT_EQ(all.items(0).line(), 11);
  EXPECT_EQ(all.items(0).model_version(), 4);
  EXPECT_FLOAT_EQ(all.items(0).score(), 0.99f);
  EXPECT_EQ(QueueOk(0, "", 3).items_size(), 5);
  EXPECT_EQ(QueueOk(0, "", 4).items_size(), 2);
}

TEST_F(ReviewTest, FraudDispositionIsAReviewLabelInHistoryAndRealisedMetrics) {
  const int64_t upload = ScoredUpload(20, 3, 1);
  v1::ListReviewQueueResponse before = QueueOk();
  ASSERT_EQ(before.items_size(), 10);
  const v1::ReviewItem top = before.items(0);

  grpc::ClientContext mctx;
  v1::GetRealisedMetricsRequest mreq;
  v1::GetRealisedMetricsResponse m0;
  ASSERT_TRUE(stub_->GetRealisedMetrics(&mctx, mreq, &m0).ok());
  ASSERT_EQ(m0.metrics_size(), 1);
  EXPECT_EQ(m0.metrics(0).true_alerts(), 0);
  EXPECT_EQ(m0.metrics(0).alerts_labelled(), 0);

  v1::SubmitReviewResponse r;
  grpc::Status s = Review(top.upload_id(), top.line(), v1::REVIEW_DISPOSITION_FRAUD, &r, "card stolen");
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.upload_id(), upload);
  EXPECT_EQ(r.line(), top.line());
  EXPECT_EQ(r.label_outcome(), "applied");
  EXPECT_EQ(r.current_label(), 1);
  EXPECT_GT(r.review_id(), 0);

  // Left the queue.
  v1::ListReviewQueueResponse after = QueueOk();
  ASSERT_EQ(after.items_size(), 9);
  for (const v1::ReviewItem& item : after.items()) EXPECT_NE(item.line(), top.line());

  // The label history shows the review as the source.
  grpc::ClientContext hctx;
  v1::ListLabelHistoryRequest hreq;
  hreq.set_upload_id(upload);
  hreq.set_line(top.line());
  v1::ListLabelHistoryResponse h;
  ASSERT_TRUE(stub_->ListLabelHistory(&hctx, hreq, &h).ok());
  EXPECT_EQ(h.current_label(), 1);
  ASSERT_EQ(h.events_size(), 1);
  EXPECT_EQ(h.events(0).source(), "review");
  EXPECT_EQ(h.events(0).note(), "card stolen");
  EXPECT_EQ(h.events(0).actor(), "analyst-7");
  EXPECT_EQ(h.events(0).previous_label(), -1);
  EXPECT_EQ(QueryScalar(absl::StrCat("SELECT label_event_id = ", h.events(0).id(),
                                     " FROM review_dispositions WHERE id = ", r.review_id())),
            "t");

  // Realised metrics of version 3 now count a labelled, true alert.
  grpc::ClientContext mctx2;
  v1::GetRealisedMetricsResponse m1;
  mreq.add_model_versions(3);
  ASSERT_TRUE(stub_->GetRealisedMetrics(&mctx2, mreq, &m1).ok());
  ASSERT_EQ(m1.metrics_size(), 1);
  EXPECT_EQ(m1.metrics(0).alerts_labelled(), 1);
  EXPECT_EQ(m1.metrics(0).true_alerts(), 1);
  EXPECT_EQ(m1.metrics(0).rows_labelled(), 1);
  EXPECT_EQ(m1.metrics(0).frauds(), 1);

  // Training sees the label: the upload's counters follow.
  EXPECT_EQ(QueryScalar(absl::StrCat("SELECT labelled_rows || '/' || frauds FROM uploads "
                                     "WHERE id = ", upload)),
            "1/1");

  // Reviewing again (NOT_FRAUD) replaces the label, keeping history; the same again changes
  // nothing.
  ASSERT_TRUE(Review(upload, top.line(), v1::REVIEW_DISPOSITION_NOT_FRAUD, &r).ok());
  EXPECT_EQ(r.label_outcome(), "conflict");
  EXPECT_EQ(r.current_label(), 0);
  ASSERT_TRUE(Review(upload, top.line(), v1::REVIEW_DISPOSITION_NOT_FRAUD, &r).ok());
  EXPECT_EQ(r.label_outcome(), "unchanged");
  EXPECT_EQ(QueryScalar(absl::StrCat("SELECT count(*) FROM label_events WHERE line = ",
                                     top.line())),
            "2");
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM review_dispositions"), "3");
}

TEST_F(ReviewTest, UnsureLeavesTheQueueWithoutALabel) {
  const int64_t upload = ScoredUpload(20, 3, 1);
  const v1::ReviewItem top = QueueOk().items(0);
  v1::SubmitReviewResponse r;
  ASSERT_TRUE(Review(upload, top.line(), v1::REVIEW_DISPOSITION_UNSURE, &r, "ask the bank").ok());
  EXPECT_EQ(r.label_outcome(), "");
  EXPECT_EQ(r.current_label(), -1);
  EXPECT_EQ(QueueOk().items_size(), 9);
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM label_events"), "0");
  EXPECT_EQ(QueryScalar(absl::StrCat("SELECT class IS NULL FROM transactions WHERE line = ",
                                     top.line())),
            "t");
  EXPECT_EQ(QueryScalar("SELECT disposition || ':' || note || ':' || actor || ':' || "
                        "(label_event_id IS NULL) FROM review_dispositions"),
            "3:ask the bank:analyst-7:true");
  // Append-only.
  EXPECT_THROW(Exec("DELETE FROM review_dispositions"), std::exception);
}

TEST_F(ReviewTest, ReviewByTransactionIdOfALiveScoredRow) {
  grpc::ClientContext ctx;
  v1::RecordScoredTransactionsRequest req;
  *req.mutable_rows() = MakeBatch(1, 9, false);
  req.mutable_rows()->clear_line_numbers();
  req.add_transaction_ids("tx-42");
  req.mutable_scores()->set_model_version(5);
  req.mutable_scores()->set_threshold(0.5);
  req.mutable_scores()->add_scores(0.9f);
  req.mutable_scores()->add_decisions(true);
  v1::RecordScoredTransactionsResponse stored;
  grpc::Status s = stub_->RecordScoredTransactions(&ctx, req, &stored);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::ListReviewQueueResponse q = QueueOk();
  ASSERT_EQ(q.items_size(), 1);
  EXPECT_EQ(q.items(0).transaction_id(), "tx-42");
  v1::SubmitReviewResponse r;
  s = Review(0, 0, v1::REVIEW_DISPOSITION_FRAUD, &r, "", "tx-42");
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.upload_id(), stored.upload_id());
  EXPECT_EQ(r.line(), stored.lines(0));
  EXPECT_EQ(QueueOk().items_size(), 0);
}

TEST_F(ReviewTest, InvalidArgumentsAreRejectedAndNothingIsStored) {
  const int64_t upload = ScoredUpload(10, 3, 1);
  v1::SubmitReviewResponse r;
  grpc::Status s = Review(upload, 11, v1::REVIEW_DISPOSITION_UNSPECIFIED, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("disposition"));
  s = Review(0, 0, v1::REVIEW_DISPOSITION_FRAUD, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("upload_id"));
  s = Review(upload, -1, v1::REVIEW_DISPOSITION_FRAUD, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("line"));
  s = Review(upload, 11, v1::REVIEW_DISPOSITION_FRAUD, &r, "", "tx-1");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("transaction_id"));
  s = Review(upload, 11, v1::REVIEW_DISPOSITION_FRAUD, &r, std::string(1001, 'x'));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("note"));
  s = Review(upload, 99, v1::REVIEW_DISPOSITION_FRAUD, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("line 99"));
  s = Review(upload, 99, v1::REVIEW_DISPOSITION_UNSURE, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  s = Review(0, 0, v1::REVIEW_DISPOSITION_FRAUD, &r, "", "no-such-id");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("no-such-id"));
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM review_dispositions"), "0");
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM label_events"), "0");

  v1::ListReviewQueueRequest q;
  v1::ListReviewQueueResponse resp;
  q.set_page_size(501);
  EXPECT_EQ(Queue(q, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  q.set_page_size(10);
  q.set_page_token("garbage");
  grpc::Status bad = Queue(q, &resp);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), HasSubstr("page_token"));
  q.set_page_token("");
  q.set_model_version(-1);
  EXPECT_EQ(Queue(q, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  q.set_model_version(0);
  q.set_upload_id(-2);
  EXPECT_EQ(Queue(q, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// The cost rule: with many predictions and few alerts, a page reads the partial alert index
// (no sequential scan of predictions), first page and later pages alike.
TEST_F(ReviewTest, QueuePageReadsThePartialAlertIndex) {
  ScoredUpload(20, 3, 1);
  Exec("INSERT INTO transactions (upload_id, line, time, amount, v)"
       " SELECT 1000, g, g, 1, pack_v(array_fill(0::float8, ARRAY[28]))"
       " FROM generate_series(2, 200001) g");
  Exec("INSERT INTO predictions (upload_id, line, model_version, score, decision)"
       " SELECT 1000, g, 3, 0.01, g % 5000 = 0 FROM generate_series(2, 200001) g");
  Exec("ANALYZE predictions");
  Exec("ANALYZE transactions");
  Exec("ANALYZE review_dispositions");
  // A sequential scan node of predictions or transactions (a node's fields precede its children).
  const std::regex kSeqScanOfABigTable(
      "\"Seq Scan\"[^{}]*\"Relation Name\": \"(predictions|transactions)\"");
  for (const char* params :
       {"(0, 0, true, 0, '0', 0, 0, 51)", "(0, 0, false, 1000, '0.5', 9, 3, 51)",
        "(3, 0, true, 0, '0', 0, 0, 51)"}) {
    // Prepared and executed with values: planned as the service's unnamed statements are.
    const std::string plan = QueryScalar(absl::StrCat(
        "PREPARE q AS ", kReviewQueuePageSql, "; EXPLAIN (FORMAT JSON) EXECUTE q", params));
    EXPECT_FALSE(std::regex_search(plan, kSeqScanOfABigTable)) << params << plan;
    EXPECT_THAT(plan, HasSubstr("predictions_alerts")) << params;
  }
  EXPECT_EQ(QueueOk().items_size(), 50);
}

// fraudctl review list / mark against a storage service that requires the service token.
class ReviewCliTest : public ReviewTest {
 protected:
  std::string service_token() const override { return "svc-review"; }
};

TEST_F(ReviewCliTest, ListsTheQueueAndMarksAnAlert) {
  // Uploads need the token too (the test stub has none): store rows and alerts directly.
  Exec("INSERT INTO uploads (id, sha256, status, rows) VALUES (5, repeat('a', 64), 1, 3)");
  Exec("INSERT INTO transactions (upload_id, line, time, amount, v) SELECT 5, g, g, 10 * g,"
       " pack_v(array_fill(0::float8, ARRAY[28])) FROM generate_series(2, 4) g");
  Exec("INSERT INTO predictions (upload_id, line, model_version, score, decision)"
       " VALUES (5, 2, 3, 0.7, true), (5, 3, 3, 0.9, true), (5, 4, 3, 0.2, false)");
  const std::string target = server_->target();
  fraud::testing::CliResult list =
      fraud::testing::RunCli({"review", "list", "--page-size", "1", "--target", target});
  ASSERT_EQ(list.code, cli::kExitOk) << list.err;
  EXPECT_THAT(list.out, HasSubstr("upload 5 line 3"));
  EXPECT_THAT(list.out, HasSubstr("score 0.9000  v3  amount 30.00  unlabelled"));
  EXPECT_THAT(list.out, HasSubstr("next page: --page-token "));
  EXPECT_THAT(list.out, Not(HasSubstr("line 2")));

  fraud::testing::CliResult bad = fraud::testing::RunCli(
      {"review", "mark", "maybe", "--upload", "5", "--line", "3", "--target", target});
  EXPECT_EQ(bad.code, cli::kExitUsage);
  EXPECT_THAT(bad.err, HasSubstr("fraud, not-fraud or unsure"));
  fraud::testing::CliResult denied = fraud::testing::RunCli(
      {"review", "mark", "fraud", "--upload", "5", "--line", "3", "--target", target,
       "--service-token", "wrong"});
  EXPECT_EQ(denied.code, cli::kExitFailure);
  EXPECT_THAT(denied.err, HasSubstr("UNAUTHENTICATED"));

  fraud::testing::CliResult mark = fraud::testing::RunCli(
      {"review", "mark", "fraud", "--upload", "5", "--line", "3", "--note", "confirmed",
       "--actor", "ops", "--target", target, "--service-token", "svc-review"});
  ASSERT_EQ(mark.code, cli::kExitOk) << mark.err;
  EXPECT_THAT(mark.out, HasSubstr("upload 5 line 3 marked fraud"));
  EXPECT_THAT(mark.out, HasSubstr("label applied, now fraud"));
  EXPECT_EQ(QueryScalar("SELECT source || '/' || note || '/' || actor FROM label_events"),
            "review/confirmed/ops");

  fraud::testing::CliResult after =
      fraud::testing::RunCli({"review", "list", "--target", target});
  ASSERT_EQ(after.code, cli::kExitOk) << after.err;
  EXPECT_THAT(after.out, HasSubstr("upload 5 line 2"));
  EXPECT_THAT(after.out, Not(HasSubstr("line 3")));
}

}  // namespace
}  // namespace fraud::storage::testing
