// Delayed labels (RecordFeedback, ListLabelHistory) and realised metrics per model version
// (GetRealisedMetrics) against a real PostgreSQL.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>

#include "clients/cli/commands.h"
#include "services/common/eval/metrics.h"
#include "services/common/rpc/auth.h"
#include "absl/strings/str_cat.h"
#include "services/storage/feedback_store.h"
#include "services/storage/pg_copy.h"
#include "services/storage/realised_metrics.h"
#include "services/storage/validation.h"
#include "tests/integration/storage/storage_test_util.h"
#include "tests/testing/fraudctl_runner.h"
#include "tests/testing/realised_metrics_exact.h"

namespace fraud::storage::testing {
namespace {

using ::testing::HasSubstr;

struct FeedbackOutcome {
  grpc::Status status;
  v1::RecordFeedbackResponse response;
};

v1::LabelFeedback ByLine(int64_t upload_id, int64_t line, int label,
                         const std::string& source = "chargeback") {
  v1::LabelFeedback f;
  f.set_upload_id(upload_id);
  f.set_line(line);
  f.set_label(label);
  f.set_source(source);
  return f;
}

class FeedbackTest : public StorageTest {
 protected:
  // Sends `messages` as one RecordFeedback stream.
  FeedbackOutcome Send(const std::vector<std::vector<v1::LabelFeedback>>& messages,
                       const std::string& actor = "analyst-1") {
    grpc::ClientContext ctx;
    FeedbackOutcome out;
    auto writer = stub_->RecordFeedback(&ctx, &out.response);
    for (const auto& labels : messages) {
      v1::RecordFeedbackRequest req;
      req.set_actor(actor);
      for (const v1::LabelFeedback& f : labels) *req.add_labels() = f;
      if (!writer->Write(req)) break;
    }
    writer->WritesDone();
    out.status = writer->Finish();
    return out;
  }

  // Stores `n` unlabelled rows (lines 2..n+1, Time from time0) scored by `version`.
  int64_t ScoredUpload(int n, int64_t version, int sha, double time0 = 0) {
    UploadOutcome up = Upload(stub_.get(), "live.csv",
                              {Scored(MakeBatch(n, sha, /*labelled=*/false, 2, time0), version)},
                              Sha(sha));
    EXPECT_TRUE(up.status.ok()) << up.status.error_message();
    return up.response.upload().id();
  }

  v1::GetRealisedMetricsResponse Realised(v1::RealisedPeriod by, int k = 0,
                                          std::vector<int64_t> versions = {}) {
    grpc::ClientContext ctx;
    v1::GetRealisedMetricsRequest req;
    req.set_by(by);
    req.set_k(k);
    for (int64_t v : versions) req.add_model_versions(v);
    v1::GetRealisedMetricsResponse resp;
    grpc::Status s = stub_->GetRealisedMetrics(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  v1::ListLabelHistoryResponse History(int64_t upload_id, int64_t line) {
    grpc::ClientContext ctx;
    v1::ListLabelHistoryRequest req;
    req.set_upload_id(upload_id);
    req.set_line(line);
    v1::ListLabelHistoryResponse resp;
    grpc::Status s = stub_->ListLabelHistory(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  std::string ClassOf(int64_t upload_id, int64_t line) const {
    return QueryScalar("SELECT COALESCE(class::text, 'null') FROM current_transactions"
                       " WHERE upload_id = " +
                       std::to_string(upload_id) + " AND line = " + std::to_string(line));
  }
};

// Scores of Scored(): row i (line i + 2) scores (i % 10) / 10 + 0.05; decision score > 0.5.
float ScoreOfLine(int64_t line) { return static_cast<float>((line - 2) % 10) / 10.0f + 0.05f; }

TEST_F(FeedbackTest, LaterLabelsChangeTheVersionsRealisedMetrics) {
  const int64_t upload = ScoredUpload(40, 3, 1);
  v1::GetRealisedMetricsResponse before = Realised(v1::REALISED_PERIOD_DAY, 5);
  ASSERT_EQ(before.metrics_size(), 1);
  EXPECT_EQ(before.metrics(0).model_version(), 3);
  EXPECT_EQ(before.metrics(0).period(), 0);
  EXPECT_EQ(before.metrics(0).rows_scored(), 40);
  EXPECT_EQ(before.metrics(0).rows_labelled(), 0);
  EXPECT_DOUBLE_EQ(before.metrics(0).unlabelled_share(), 1.0);
  EXPECT_EQ(before.metrics(0).alerts(), 20);  // scores 0.55..0.95: 5 of every 10 rows
  EXPECT_EQ(before.metrics(0).true_alerts(), 0);

  // Labels for the first 30 rows arrive later: frauds are lines with score 0.95 and 0.85, plus
  // one missed fraud at score 0.15 (line 3).
  std::vector<v1::LabelFeedback> labels;
  std::vector<float> scores;
  std::vector<int32_t> truth;
  for (int64_t line = 2; line < 32; ++line) {
    const float score = ScoreOfLine(line);
    const int label = (score > 0.8f || line == 3) ? 1 : 0;
    labels.push_back(ByLine(upload, line, label));
    scores.push_back(score);
    truth.push_back(label);
  }
  FeedbackOutcome fb = Send({labels});
  ASSERT_TRUE(fb.status.ok()) << fb.status.error_message();
  EXPECT_EQ(fb.response.received(), 30);
  EXPECT_EQ(fb.response.applied(), 30);
  EXPECT_EQ(fb.response.unchanged(), 0);
  EXPECT_EQ(fb.response.conflicts(), 0);
  EXPECT_EQ(fb.response.unknown(), 0);

  v1::GetRealisedMetricsResponse after = Realised(v1::REALISED_PERIOD_DAY, 5);
  ASSERT_EQ(after.metrics_size(), 1);
  const v1::RealisedMetrics& m = after.metrics(0);
  EXPECT_EQ(m.rows_scored(), 40);
  EXPECT_EQ(m.rows_labelled(), 30);
  EXPECT_DOUBLE_EQ(m.unlabelled_share(), 0.25);
  EXPECT_EQ(m.alerts(), 20);
  EXPECT_EQ(m.alerts_labelled(), 15);  // 5 alerts in each labelled block of 10
  EXPECT_EQ(m.frauds(), 7);            // 3 blocks x 2 + line 3
  EXPECT_EQ(m.true_alerts(), 6);
  EXPECT_DOUBLE_EQ(m.precision(), 0.4);
  EXPECT_DOUBLE_EQ(m.recall(), 6.0 / 7.0);
  absl::StatusOr<double> ap = eval::AveragePrecision(scores, truth);
  ASSERT_TRUE(ap.ok());
  EXPECT_NEAR(m.auprc(), *ap, 1e-12);
  // Top 5 by score: the four 0.95 rows (three labelled frauds, line 32+ unlabelled) and a 0.85.
  EXPECT_EQ(m.top_k_labelled(), 4);
  EXPECT_DOUBLE_EQ(m.precision_at_k(), 1.0);
  EXPECT_EQ(after.k(), 5);
}

TEST_F(FeedbackTest, SameFeedbackTwiceChangesNothing) {
  const int64_t upload = ScoredUpload(10, 2, 2);
  const std::vector<v1::LabelFeedback> labels = {ByLine(upload, 2, 1), ByLine(upload, 3, 0)};
  FeedbackOutcome first = Send({labels});
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.response.applied(), 2);
  const std::string uploads_before =
      QueryScalar("SELECT labelled_rows || '/' || frauds FROM uploads WHERE id = " +
                  std::to_string(upload));
  EXPECT_EQ(uploads_before, "2/1");

  FeedbackOutcome again = Send({labels});
  ASSERT_TRUE(again.status.ok()) << again.status.error_message();
  EXPECT_EQ(again.response.received(), 2);
  EXPECT_EQ(again.response.applied(), 0);
  EXPECT_EQ(again.response.unchanged(), 2);
  EXPECT_EQ(again.response.conflicts(), 0);
  EXPECT_EQ(Count("label_events"), 2);
  EXPECT_EQ(QueryScalar("SELECT labelled_rows || '/' || frauds FROM uploads WHERE id = " +
                        std::to_string(upload)),
            uploads_before);
}

TEST_F(FeedbackTest, ConflictingLabelKeepsHistoryAndLatestWins) {
  const int64_t upload = ScoredUpload(10, 2, 3);
  v1::LabelFeedback fraud = ByLine(upload, 4, 1, "chargeback");
  fraud.set_note("cardholder dispute");
  fraud.mutable_at()->set_seconds(1700000000);
  ASSERT_TRUE(Send({{fraud}}).status.ok());
  FeedbackOutcome flip = Send({{ByLine(upload, 4, 0, "analyst")}}, "reviewer-2");
  ASSERT_TRUE(flip.status.ok()) << flip.status.error_message();
  EXPECT_EQ(flip.response.conflicts(), 1);
  EXPECT_EQ(flip.response.applied(), 0);
  EXPECT_EQ(ClassOf(upload, 4), "0");

  v1::ListLabelHistoryResponse h = History(upload, 4);
  EXPECT_EQ(h.current_label(), 0);
  ASSERT_EQ(h.events_size(), 2);
  EXPECT_EQ(h.events(0).label(), 1);
  EXPECT_EQ(h.events(0).previous_label(), -1);
  EXPECT_EQ(h.events(0).source(), "chargeback");
  EXPECT_EQ(h.events(0).note(), "cardholder dispute");
  EXPECT_EQ(h.events(0).actor(), "analyst-1");
  EXPECT_EQ(h.events(0).at().seconds(), 1700000000);
  EXPECT_EQ(h.events(1).label(), 0);
  EXPECT_EQ(h.events(1).previous_label(), 1);
  EXPECT_EQ(h.events(1).source(), "analyst");
  EXPECT_EQ(h.events(1).actor(), "reviewer-2");
  EXPECT_GT(h.events(1).at().seconds(), 1700000000);  // default: now
  // The counters follow: one labelled row, no fraud left.
  EXPECT_EQ(QueryScalar("SELECT labelled_rows || '/' || frauds FROM uploads WHERE id = " +
                        std::to_string(upload)),
            "1/0");
  // The history is append-only.
  EXPECT_THROW(Exec("DELETE FROM label_events"), std::exception);
}

TEST_F(FeedbackTest, UnknownIdsAreReportedAndTheRestApplied) {
  const int64_t upload = ScoredUpload(5, 2, 4);
  v1::LabelFeedback by_id;
  by_id.set_transaction_id("tx-missing");
  by_id.set_label(1);
  FeedbackOutcome fb = Send({{ByLine(upload, 2, 1), ByLine(upload + 100, 2, 1)},
                             {ByLine(upload, 999, 0), by_id, ByLine(upload, 3, 0)}});
  ASSERT_TRUE(fb.status.ok()) << fb.status.error_message();
  EXPECT_EQ(fb.response.received(), 5);
  EXPECT_EQ(fb.response.applied(), 2);
  EXPECT_EQ(fb.response.unknown(), 3);
  ASSERT_EQ(fb.response.unknown_rows_size(), 3);
  EXPECT_EQ(fb.response.unknown_rows(0).row(), 2);
  EXPECT_EQ(fb.response.unknown_rows(0).field(), "upload_id");
  EXPECT_EQ(fb.response.unknown_rows(0).upload_id(), upload + 100);
  EXPECT_EQ(fb.response.unknown_rows(1).row(), 3);
  EXPECT_EQ(fb.response.unknown_rows(1).field(), "line");
  EXPECT_EQ(fb.response.unknown_rows(1).line(), 999);
  EXPECT_EQ(fb.response.unknown_rows(2).row(), 4);
  EXPECT_EQ(fb.response.unknown_rows(2).field(), "transaction_id");
  EXPECT_EQ(fb.response.unknown_rows(2).transaction_id(), "tx-missing");
  EXPECT_THAT(fb.response.unknown_rows(2).reason(), HasSubstr("transaction_id"));
  EXPECT_EQ(ClassOf(upload, 2), "1");
  EXPECT_EQ(ClassOf(upload, 3), "0");
}

TEST_F(FeedbackTest, FeedbackByTransactionIdResolvesTheRow) {
  const int64_t upload = ScoredUpload(5, 2, 5);
  // Scoring calls with an id will fill the column; here it is set directly.
  Exec("UPDATE transactions SET transaction_id = 'tx-42' WHERE upload_id = " +
       std::to_string(upload) + " AND line = 5");
  v1::LabelFeedback f;
  f.set_transaction_id("tx-42");
  f.set_label(1);
  FeedbackOutcome fb = Send({{f}});
  ASSERT_TRUE(fb.status.ok()) << fb.status.error_message();
  EXPECT_EQ(fb.response.applied(), 1);
  EXPECT_EQ(ClassOf(upload, 5), "1");
  // The same row named twice (by id and by line) is a bad request.
  FeedbackOutcome twice = Send({{f, ByLine(upload, 5, 1)}});
  EXPECT_EQ(twice.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(twice.status.error_message(), HasSubstr("row 2"));
  EXPECT_THAT(twice.status.error_message(), HasSubstr("as row 1"));
  // transaction_id is unique where set.
  EXPECT_THROW(Exec("UPDATE transactions SET transaction_id = 'tx-42' WHERE upload_id = " +
                    std::to_string(upload) + " AND line = 6"),
               std::exception);
}

TEST_F(FeedbackTest, BadRowsAreRejectedWithRowFieldAndReasonAndNothingIsLost) {
  const int64_t upload = ScoredUpload(5, 2, 6);
  ASSERT_TRUE(Send({{ByLine(upload, 2, 1)}}).status.ok());
  v1::LabelFeedback no_id;
  no_id.set_label(0);
  FeedbackOutcome bad = Send({{ByLine(upload, 2, 0), ByLine(upload, 3, 2)},
                              {no_id, ByLine(upload, 4, 1, "Bad Source!"), ByLine(upload, -1, 0)}});
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.status.error_message(), HasSubstr("4 invalid feedback row(s)"));
  EXPECT_THAT(bad.status.error_message(), HasSubstr("row 2, field label: must be 0 or 1"));
  EXPECT_THAT(bad.status.error_message(), HasSubstr("row 3, field upload_id: missing"));
  EXPECT_THAT(bad.status.error_message(), HasSubstr("row 4, field source"));
  EXPECT_THAT(bad.status.error_message(), HasSubstr("row 5, field line"));
  // Row 1 was valid but the stream is all-or-nothing on invalid rows: the earlier label stays.
  EXPECT_EQ(ClassOf(upload, 2), "1");
  EXPECT_EQ(ClassOf(upload, 3), "null");
  EXPECT_EQ(Count("label_events"), 1);
  EXPECT_EQ(Count("transactions"), 5);
  WaitForIdlePool();
}

TEST_F(FeedbackTest, TrainingScanSeesFeedbackLabels) {
  const int64_t upload = ScoredUpload(8, 2, 7);
  v1::ScanTransactionsRequest scan;
  scan.set_labelled_only(true);
  grpc::Status s;
  EXPECT_TRUE(Scan(stub_.get(), scan, &s).empty());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(Send({{ByLine(upload, 3, 1), ByLine(upload, 6, 0)}}).status.ok());
  std::vector<TransactionBatch> batches = Scan(stub_.get(), scan, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches[0].num_rows(), 2u);
  EXPECT_EQ(batches[0].line_numbers(0), 3);
  EXPECT_EQ(batches[0].labels(0), 1);
  EXPECT_EQ(batches[0].line_numbers(1), 6);
  EXPECT_EQ(batches[0].labels(1), 0);

  grpc::ClientContext ctx;
  v1::GetDataStatsResponse stats;
  ASSERT_TRUE(stub_->GetDataStats(&ctx, v1::GetDataStatsRequest(), &stats).ok());
  EXPECT_EQ(stats.labelled_rows(), 2);
  EXPECT_EQ(stats.frauds(), 1);
}

TEST_F(FeedbackTest, RealisedMetricsGroupByUploadAndDayPerVersion) {
  const int64_t a = ScoredUpload(10, 2, 8, 0);            // day 0
  const int64_t b = ScoredUpload(10, 3, 9, 86400 * 2.0);  // day 2
  std::vector<v1::LabelFeedback> labels;
  for (int64_t line = 2; line < 12; ++line) {
    labels.push_back(ByLine(a, line, line == 11 ? 1 : 0));
    labels.push_back(ByLine(b, line, 0));
  }
  ASSERT_TRUE(Send({labels}).status.ok());
  v1::GetRealisedMetricsResponse by_day = Realised(v1::REALISED_PERIOD_DAY);
  ASSERT_EQ(by_day.metrics_size(), 2);
  EXPECT_EQ(by_day.k(), 100);
  EXPECT_EQ(by_day.metrics(0).model_version(), 2);
  EXPECT_EQ(by_day.metrics(0).period(), 0);
  EXPECT_EQ(by_day.metrics(0).frauds(), 1);
  EXPECT_DOUBLE_EQ(by_day.metrics(0).auprc(), 1.0);  // line 11 scores 0.95, the highest
  EXPECT_EQ(by_day.metrics(1).model_version(), 3);
  EXPECT_EQ(by_day.metrics(1).period(), 2);
  EXPECT_EQ(by_day.metrics(1).frauds(), 0);
  EXPECT_DOUBLE_EQ(by_day.metrics(1).precision(), 0.0);
  EXPECT_DOUBLE_EQ(by_day.metrics(1).time_min(), 86400 * 2.0);

  v1::GetRealisedMetricsResponse by_upload = Realised(v1::REALISED_PERIOD_UPLOAD, 0, {3});
  ASSERT_EQ(by_upload.metrics_size(), 1);
  EXPECT_EQ(by_upload.metrics(0).period(), b);
  EXPECT_EQ(by_upload.by(), v1::REALISED_PERIOD_UPLOAD);

  grpc::ClientContext ctx;
  v1::GetRealisedMetricsRequest bad;
  bad.set_k(-1);
  v1::GetRealisedMetricsResponse resp;
  EXPECT_EQ(stub_->GetRealisedMetrics(&ctx, bad, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(FeedbackTest, EmptyStreamStoresNothingAndHistoryOfUnknownRowIsNotFound) {
  FeedbackOutcome fb = Send({});
  ASSERT_TRUE(fb.status.ok()) << fb.status.error_message();
  EXPECT_EQ(fb.response.received(), 0);
  grpc::ClientContext ctx;
  v1::ListLabelHistoryRequest req;
  req.set_upload_id(77);
  req.set_line(2);
  v1::ListLabelHistoryResponse resp;
  EXPECT_EQ(stub_->ListLabelHistory(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(FeedbackTest, CancelledStreamStoresNothingAndLeavesTheConnectionUsable) {
  const int64_t upload = ScoredUpload(5, 2, 11);
  {
    grpc::ClientContext ctx;
    v1::RecordFeedbackResponse resp;
    auto writer = stub_->RecordFeedback(&ctx, &resp);
    v1::RecordFeedbackRequest req;
    *req.add_labels() = ByLine(upload, 2, 1);
    ASSERT_TRUE(writer->Write(req));  // the server holds the row until the stream ends
    absl::SleepFor(absl::Milliseconds(200));
    ctx.TryCancel();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  WaitForIdlePool();
  EXPECT_EQ(ClassOf(upload, 2), "null");
  EXPECT_EQ(Count("label_events"), 0);
  // Every pooled connection still works (none was returned in COPY state).
  for (int i = 0; i < 3; ++i) {
    FeedbackOutcome fb = Send({{ByLine(upload, 2 + i, 1)}});
    ASSERT_TRUE(fb.status.ok()) << fb.status.error_message();
    EXPECT_EQ(fb.response.applied(), 1);
  }
}

// The overlay and history of migration 0009 across a chunk boundary (1024 lines): each change
// keeps its own source, note and time, chunks whose changes all have the stream's defaults store
// no attrs, and a later flip appends to the history of the row it names only.
TEST_F(FeedbackTest, ChangesAcrossChunksKeepEachRowsSourceNoteAndTime) {
  const int64_t upload = ScoredUpload(1100, 3, 41);
  std::vector<v1::LabelFeedback> labels;
  for (int64_t line = 1020; line <= 1030; ++line) labels.push_back(ByLine(upload, line, 1));
  labels[2].set_note("called the cardholder");         // line 1022
  labels[2].mutable_at()->set_seconds(1700000000);
  labels[2].mutable_at()->set_nanos(123456000);
  labels.push_back(ByLine(upload, 3, 0, "analyst"));   // chunk 0 again, another source
  FeedbackOutcome fb = Send({labels}, "bulk");
  ASSERT_TRUE(fb.status.ok()) << fb.status.error_message();
  EXPECT_EQ(fb.response.applied(), 12);
  EXPECT_EQ(Count("label_batches"), 1);
  EXPECT_EQ(Count("label_changes"), 2);  // chunks 0 (lines 3, 1020-1023) and 1 (1024-1030)
  EXPECT_EQ(QueryScalar("SELECT string_agg(chunk || ':' || (attrs IS NULL), ',' ORDER BY chunk)"
                        " FROM label_changes"),
            "0:false,1:true");
  EXPECT_EQ(Count("label_events"), 12);
  EXPECT_EQ(Count("label_overlay"), 2);
  for (int64_t line : {1020, 1023, 1024, 1030}) {
    SCOPED_TRACE(line);
    EXPECT_EQ(ClassOf(upload, line), "1");
    v1::ListLabelHistoryResponse h = History(upload, line);
    ASSERT_EQ(h.events_size(), 1);
    EXPECT_EQ(h.events(0).line(), line);
    EXPECT_EQ(h.events(0).source(), "chargeback");
    EXPECT_EQ(h.events(0).note(), "");
    EXPECT_EQ(h.events(0).actor(), "bulk");
    // No `at` given: the time the stream was recorded.
    EXPECT_EQ(h.events(0).at().seconds(), h.events(0).recorded_at().seconds());
  }
  v1::ListLabelHistoryResponse noted = History(upload, 1022);
  ASSERT_EQ(noted.events_size(), 1);
  EXPECT_EQ(noted.events(0).note(), "called the cardholder");
  EXPECT_EQ(noted.events(0).at().seconds(), 1700000000);
  EXPECT_EQ(noted.events(0).at().nanos(), 123456000);
  v1::ListLabelHistoryResponse analyst = History(upload, 3);
  ASSERT_EQ(analyst.events_size(), 1);
  EXPECT_EQ(analyst.events(0).source(), "analyst");
  EXPECT_EQ(analyst.events(0).label(), 0);
  EXPECT_EQ(ClassOf(upload, 2), "null");     // same chunk, not named
  EXPECT_EQ(ClassOf(upload, 1031), "null");  // same chunk, not named

  FeedbackOutcome flip = Send({{ByLine(upload, 1024, 0, "review")}}, "second");
  ASSERT_TRUE(flip.status.ok()) << flip.status.error_message();
  EXPECT_EQ(flip.response.conflicts(), 1);
  EXPECT_EQ(ClassOf(upload, 1024), "0");
  EXPECT_EQ(ClassOf(upload, 1025), "1");
  v1::ListLabelHistoryResponse h = History(upload, 1024);
  ASSERT_EQ(h.events_size(), 2);
  EXPECT_LT(h.events(0).id(), h.events(1).id());
  EXPECT_EQ(h.events(1).previous_label(), 1);
  EXPECT_EQ(h.events(1).label(), 0);
  EXPECT_EQ(h.events(1).source(), "review");
  EXPECT_EQ(h.events(1).actor(), "second");
  EXPECT_EQ(h.current_label(), 0);
  EXPECT_EQ(History(upload, 1025).events_size(), 1);
  // The upload's counters follow: 12 rows labelled, 11 - 1 frauds.
  EXPECT_EQ(QueryScalar("SELECT labelled_rows || '/' || frauds FROM uploads WHERE id = " +
                        std::to_string(upload)),
            "12/10");
  // Training reads the current labels.
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM current_transactions WHERE class IS NOT NULL"),
            "12");
}

// StoreUpload writes the upload's line map (label_overlay, every stored row's label), which
// feedback reads alone. Uploads stored before migration 0009 (and the live-scoring upload) have
// none: feedback reads their rows' labels instead, with the same outcome.
TEST_F(FeedbackTest, AnUploadWithoutALineMapTakesFeedbackTheSameWay) {
  const int64_t unlabelled = ScoredUpload(3, 2, 52);
  EXPECT_EQ(QueryScalar("SELECT get_byte(labels, 2) || ',' || get_byte(labels, 4) || ','"
                        " || get_byte(labels, 5) FROM label_overlay WHERE upload_id = " +
                        std::to_string(unlabelled)),
            "254,254,255");
  for (const bool line_map : {true, false}) {
    SCOPED_TRACE(line_map);
    const int sha = line_map ? 50 : 51;
    UploadOutcome up =
        Upload(stub_.get(), "labelled.csv", {Rows(MakeBatch(20, sha, true))}, Sha(sha));
    ASSERT_TRUE(up.status.ok()) << up.status.error_message();
    const std::string id = std::to_string(up.response.upload().id());
    EXPECT_EQ(QueryScalar("SELECT line_map FROM uploads WHERE id = " + id), "t");
    // Rows are lines 2..21; line 5 is a fraud, the others legit; lines 1 and 22 have no row.
    EXPECT_EQ(QueryScalar("SELECT get_byte(labels, 5) || ',' || get_byte(labels, 2) || ','"
                          " || get_byte(labels, 1) || ',' || get_byte(labels, 22)"
                          " FROM label_overlay WHERE upload_id = " + id),
              "1,0,255,255");
    if (!line_map) {
      Exec("DELETE FROM label_overlay WHERE upload_id = " + id +
           "; UPDATE uploads SET line_map = false WHERE id = " + id);
    }
    const int64_t upload = up.response.upload().id();
    FeedbackOutcome fb = Send({{ByLine(upload, 5, 0), ByLine(upload, 6, 0), ByLine(upload, 7, 1),
                                ByLine(upload, 22, 1)}});
    ASSERT_TRUE(fb.status.ok()) << fb.status.error_message();
    EXPECT_EQ(fb.response.conflicts(), 2);
    EXPECT_EQ(fb.response.unchanged(), 1);
    EXPECT_EQ(fb.response.applied(), 0);
    EXPECT_EQ(fb.response.unknown(), 1);
    ASSERT_EQ(fb.response.unknown_rows_size(), 1);
    EXPECT_EQ(fb.response.unknown_rows(0).field(), "line");
    EXPECT_EQ(ClassOf(upload, 5), "0");
    EXPECT_EQ(ClassOf(upload, 6), "0");
    EXPECT_EQ(ClassOf(upload, 7), "1");
    EXPECT_EQ(ClassOf(upload, 8), "0");
    v1::ListLabelHistoryResponse h = History(upload, 5);
    ASSERT_EQ(h.events_size(), 1);
    EXPECT_EQ(h.events(0).previous_label(), 1);
    EXPECT_EQ(QueryScalar("SELECT frauds FROM uploads WHERE id = " + id), "3");
  }
}

TEST_F(FeedbackTest, AStreamOverTheRowLimitIsRefusedAndStoresNothing) {
  const int64_t upload = ScoredUpload(10, 3, 42);
  FeedbackWriter writer(pool_.get(), absl::InfiniteFuture(), /*max_rows=*/3);
  v1::RecordFeedbackRequest first;
  *first.add_labels() = ByLine(upload, 2, 1);
  *first.add_labels() = ByLine(upload, 3, 1);
  FRAUD_ASSERT_OK(writer.Add(first));
  v1::RecordFeedbackRequest second;
  *second.add_labels() = ByLine(upload, 4, 1);
  *second.add_labels() = ByLine(upload, 5, 1);
  const absl::Status s = writer.Add(second);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("row 4: a feedback stream carries at most 3 labels"));
  EXPECT_EQ(writer.Finish().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ClassOf(upload, 2), "null");
  EXPECT_EQ(Count("label_batches"), 0);
}

// fraudctl feedback FILE.csv against a storage service that requires the service token.
class FeedbackCliTest : public FeedbackTest {
 protected:
  std::string service_token() const override { return "svc-secret"; }

  std::string WriteCsv(const std::string& text) {
    const std::string path = ::testing::TempDir() + "/feedback_" + schema() + ".csv";
    std::ofstream(path) << text;
    return path;
  }
};

TEST_F(FeedbackCliTest, FeedbackCommandStreamsTheFileAndPrintsTheSummary) {
  // Uploads need the token too (the stub below has none): store the rows directly.
  Exec("INSERT INTO uploads (id, sha256, status, rows) VALUES (5, repeat('a', 64), 1, 3)");
  Exec("INSERT INTO transactions (upload_id, line, time, amount, v, class) SELECT 5, g, g, 1,"
       " pack_v(array_fill(0::float8, ARRAY[28])), CASE WHEN g = 4 THEN 0 END"
       " FROM generate_series(2, 4) g");
  const std::string path = WriteCsv(
      "upload_id,line,label,source,note\n"
      "5,2,1,chargeback,\"disputed, twice\"\n"
      "\n"
      "5,3,0,analyst,\n"
      "5,4,1,analyst,\n"
      "5,99,1,analyst,\n"
      "6,2,0,analyst,\n");
  const std::string target = server_->target();
  fraud::testing::CliResult denied =
      fraud::testing::RunCli({"feedback", path, "--target", target, "--service-token", "wrong"});
  EXPECT_EQ(denied.code, cli::kExitFailure);
  EXPECT_THAT(denied.err, HasSubstr("UNAUTHENTICATED"));
  EXPECT_EQ(Count("label_events"), 0);

  fraud::testing::CliResult r = fraud::testing::RunCli(
      {"feedback", path, "--target", target, "--service-token", "svc-secret", "--actor", "ops"});
  ASSERT_EQ(r.code, cli::kExitOk) << r.err;
  EXPECT_THAT(r.out, HasSubstr("5 rows: 2 applied, 0 unchanged, 1 conflicts"));
  EXPECT_THAT(r.out, HasSubstr("2 unknown"));
  // File lines, not stream rows (line 3 of the file is blank).
  EXPECT_THAT(r.out, HasSubstr("unknown: file line 6 (upload 5 line 99): the upload has no row"));
  EXPECT_THAT(r.out, HasSubstr("unknown: file line 7 (upload 6 line 2): no such upload"));
  EXPECT_EQ(ClassOf(5, 2), "1");
  EXPECT_EQ(ClassOf(5, 4), "1");
  EXPECT_EQ(QueryScalar("SELECT note || '/' || actor FROM label_events WHERE line = 2"),
            "disputed, twice/ops");

  // The same file again: nothing changes.
  fraud::testing::CliResult again = fraud::testing::RunCli(
      {"feedback", path, "--target", target, "--service-token", "svc-secret"});
  ASSERT_EQ(again.code, cli::kExitOk) << again.err;
  EXPECT_THAT(again.out, HasSubstr("0 applied, 3 unchanged, 0 conflicts"));
  EXPECT_EQ(Count("label_events"), 3);

  // A malformed row fails the whole file with its line and column; nothing is stored.
  const std::string bad = WriteCsv("upload_id,line,label\n5,3,1\n5,x,1\n");
  fraud::testing::CliResult rejected = fraud::testing::RunCli(
      {"feedback", bad, "--target", target, "--service-token", "svc-secret"});
  EXPECT_EQ(rejected.code, cli::kExitFailure);
  EXPECT_THAT(rejected.err, HasSubstr("line 3, column line (2): not a positive integer: 'x'"));
  EXPECT_EQ(ClassOf(5, 3), "0");
  WaitForIdlePool();
  std::remove(path.c_str());
  std::remove(bad.c_str());
}

// ---- live scoring (RecordScoredTransactions): rows scored with a transaction id, no upload ----

struct LiveOutcome {
  grpc::Status status;
  v1::RecordScoredTransactionsResponse response;
};

class LiveScoringTest : public FeedbackTest {
 protected:
  std::string service_token() const override { return "svc-live"; }

  // `ids.size()` unlabelled rows from MakeBatch(seed) scored by `version` (Scored()'s scores).
  static v1::RecordScoredTransactionsRequest Request(const std::vector<std::string>& ids,
                                                     int64_t version, uint64_t seed) {
    v1::UploadRows scored =
        Scored(MakeBatch(static_cast<int>(ids.size()), seed, /*labelled=*/false), version);
    v1::RecordScoredTransactionsRequest req;
    *req.mutable_rows() = scored.rows();
    req.mutable_rows()->clear_line_numbers();
    *req.mutable_scores() = scored.scores();
    for (const std::string& id : ids) req.add_transaction_ids(id);
    return req;
  }

  LiveOutcome Record(const v1::RecordScoredTransactionsRequest& req,
                     const std::string& token = "svc-live") {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata(rpc::kServiceTokenHeader, token);
    LiveOutcome out;
    out.status = stub_->RecordScoredTransactions(&ctx, req, &out.response);
    return out;
  }

  FeedbackOutcome SendWithToken(const std::vector<v1::LabelFeedback>& labels) {
    grpc::ClientContext ctx;
    ctx.AddMetadata(rpc::kServiceTokenHeader, "svc-live");
    FeedbackOutcome out;
    auto writer = stub_->RecordFeedback(&ctx, &out.response);
    v1::RecordFeedbackRequest req;
    for (const v1::LabelFeedback& f : labels) *req.add_labels() = f;
    writer->Write(req);
    writer->WritesDone();
    out.status = writer->Finish();
    return out;
  }

  v1::Upload GetUpload(int64_t id) {
    grpc::ClientContext ctx;
    v1::GetUploadRequest req;
    req.set_upload_id(id);
    v1::GetUploadResponse resp;
    grpc::Status s = stub_->GetUpload(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.upload();
  }
};

TEST_F(LiveScoringTest, StoresRowsAndPredictionsInTheLiveUploadThenFeedbackLabelsThem) {
  EXPECT_EQ(Count("uploads"), 0);  // the live upload is created by the first call only
  LiveOutcome first = Record(Request({"tx-1", "tx-2", "tx-3"}, 4, 11));
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  EXPECT_EQ(first.response.stored(), 3);
  EXPECT_EQ(first.response.already_stored(), 0);
  EXPECT_THAT(first.response.lines(), ::testing::ElementsAre(1, 2, 3));
  const int64_t live = first.response.upload_id();

  const v1::Upload upload = GetUpload(live);
  EXPECT_EQ(upload.mode(), v1::UPLOAD_MODE_LIVE);
  EXPECT_EQ(upload.file_name(), "live scoring");
  EXPECT_EQ(upload.rows(), 3);
  EXPECT_EQ(upload.labelled_rows(), 0);
  EXPECT_EQ(upload.model_version(), 4);
  EXPECT_DOUBLE_EQ(upload.time_min(), 0);
  EXPECT_DOUBLE_EQ(upload.time_max(), 3);
  EXPECT_EQ(QueryScalar("SELECT transaction_id FROM transactions WHERE upload_id = " +
                        std::to_string(live) + " AND line = 2"),
            "tx-2");
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM predictions WHERE model_version = 4"
                        " AND scored_at IS NOT NULL"),
            "3");
  // Features are stored bit for bit.
  const v1::RecordScoredTransactionsRequest req = Request({"tx-1", "tx-2", "tx-3"}, 4, 11);
  grpc::Status scan_status;
  std::vector<TransactionBatch> rows = Scan(stub_.get(), v1::ScanTransactionsRequest(), &scan_status);
  ASSERT_TRUE(scan_status.ok()) << scan_status.error_message();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_THAT(rows[0].features(), ::testing::ElementsAreArray(req.rows().features()));

  // The realised metrics count the live rows once feedback labels them by transaction_id.
  v1::LabelFeedback fraud;
  fraud.set_transaction_id("tx-3");
  fraud.set_label(1);
  v1::LabelFeedback genuine;
  genuine.set_transaction_id("tx-1");
  genuine.set_label(0);
  FeedbackOutcome fb = SendWithToken({fraud, genuine});
  ASSERT_TRUE(fb.status.ok()) << fb.status.error_message();
  EXPECT_EQ(fb.response.applied(), 2);
  EXPECT_EQ(ClassOf(live, 3), "1");
  EXPECT_EQ(GetUpload(live).labelled_rows(), 2);
  EXPECT_EQ(GetUpload(live).frauds(), 1);
  v1::GetRealisedMetricsResponse m = Realised(v1::REALISED_PERIOD_UPLOAD, 5);
  ASSERT_EQ(m.metrics_size(), 1);
  EXPECT_EQ(m.metrics(0).model_version(), 4);
  EXPECT_EQ(m.metrics(0).period(), live);
  EXPECT_EQ(m.metrics(0).rows_scored(), 3);
  EXPECT_EQ(m.metrics(0).rows_labelled(), 2);
  EXPECT_EQ(m.metrics(0).frauds(), 1);
}

TEST_F(LiveScoringTest, RescoringTheSameIdsUpsertsThePredictionAndStoresNoSecondRow) {
  ASSERT_TRUE(Record(Request({"a", "b"}, 4, 12)).status.ok());
  // The same rows scored again by the same version, with a new score: one row, one prediction.
  v1::RecordScoredTransactionsRequest again = Request({"a", "b"}, 4, 12);
  again.mutable_scores()->set_scores(0, 0.99f);
  LiveOutcome second = Record(again);
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  EXPECT_EQ(second.response.stored(), 0);
  EXPECT_EQ(second.response.already_stored(), 2);
  EXPECT_THAT(second.response.lines(), ::testing::ElementsAre(1, 2));
  EXPECT_EQ(Count("transactions"), 2);
  EXPECT_EQ(Count("predictions"), 2);
  EXPECT_EQ(QueryScalar("SELECT score FROM predictions WHERE line = 1"), "0.99");
  // Another version adds its own prediction of the same rows; a new id in the same request is
  // stored next to them.
  v1::RecordScoredTransactionsRequest by5 = Request({"b", "a"}, 5, 12);
  // Request() draws rows in order, so swap the feature rows back to match the ids.
  std::vector<double> f(by5.rows().features().begin(), by5.rows().features().end());
  std::rotate(f.begin(), f.begin() + kNumFeatures, f.end());
  by5.mutable_rows()->mutable_features()->Assign(f.begin(), f.end());
  LiveOutcome third = Record(by5);
  ASSERT_TRUE(third.status.ok()) << third.status.error_message();
  EXPECT_THAT(third.response.lines(), ::testing::ElementsAre(2, 1));
  EXPECT_EQ(Count("transactions"), 2);
  EXPECT_EQ(Count("predictions"), 4);
  EXPECT_EQ(GetUpload(third.response.upload_id()).model_version(), 5);
  EXPECT_EQ(GetUpload(third.response.upload_id()).rows(), 2);
}

TEST_F(LiveScoringTest, AnIdStoredWithOtherFeaturesIsAlreadyExistsAndNothingIsStored) {
  ASSERT_TRUE(Record(Request({"x"}, 4, 13)).status.ok());
  v1::RecordScoredTransactionsRequest other = Request({"new", "x"}, 4, 99);
  LiveOutcome conflict = Record(other);
  EXPECT_EQ(conflict.status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(conflict.status.error_message(), HasSubstr("row 1"));
  EXPECT_THAT(conflict.status.error_message(), HasSubstr("\"x\" is already stored"));
  EXPECT_THAT(conflict.status.error_message(), HasSubstr("different features"));
  EXPECT_EQ(Count("transactions"), 1);  // "new" was rolled back with the rest
  EXPECT_EQ(Count("predictions"), 1);
  // One bit of difference is enough.
  v1::RecordScoredTransactionsRequest nudged = Request({"x"}, 4, 13);
  const double amount = nudged.rows().features(kNumFeatures - 1);
  nudged.mutable_rows()->set_features(kNumFeatures - 1, std::nextafter(amount, 1e9));
  EXPECT_EQ(Record(nudged).status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(LiveScoringTest, InvalidRequestsAreRejectedWithTheFieldAndStoreNothing) {
  auto expect_invalid = [&](const v1::RecordScoredTransactionsRequest& req,
                            const std::string& what) {
    LiveOutcome out = Record(req);
    EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << what;
    EXPECT_THAT(out.status.error_message(), HasSubstr(what));
  };
  v1::RecordScoredTransactionsRequest r = Request({"a", ""}, 4, 14);
  expect_invalid(r, "transaction_ids: row 1: empty");
  r = Request({"a", std::string(129, 'z')}, 4, 14);
  expect_invalid(r, "transaction_ids: row 1: longer than 128 bytes");
  r = Request({"a", std::string("b\0c", 3)}, 4, 14);
  expect_invalid(r, "NUL");
  r = Request({"a", "b", "a"}, 4, 14);
  expect_invalid(r, "transaction_ids: row 2 repeats the id of row 0");
  r = Request({"a", "b"}, 4, 14);
  r.add_transaction_ids("c");
  expect_invalid(r, "transaction_ids: has 3 ids for 2 rows");
  r = Request({"a", "b"}, 4, 14);
  r.mutable_rows()->set_features(kNumFeatures + 5, std::nan(""));
  expect_invalid(r, "rows: row 1 V5 is not finite");
  r = Request({"a", "b"}, 4, 14);
  r.mutable_rows()->add_features(1.0);
  expect_invalid(r, "rows: features has 61 values");
  r = Request({"a", "b"}, 4, 14);
  r.mutable_rows()->add_labels(0);
  r.mutable_rows()->add_labels(1);
  expect_invalid(r, "labels and line_numbers must be empty");
  r = Request({"a", "b"}, 4, 14);
  r.mutable_scores()->mutable_scores()->RemoveLast();
  expect_invalid(r, "scores: has 1 scores for 2 rows");
  r = Request({"a", "b"}, 0, 14);
  expect_invalid(r, "model_version must be positive");
  r = Request({"a"}, 4, 14);
  r.mutable_scored_at()->set_seconds(-5);
  expect_invalid(r, "scored_at");
  EXPECT_EQ(Count("transactions"), 0);
  EXPECT_EQ(Count("uploads"), 0);
  // A write: the service token is required.
  EXPECT_EQ(Record(Request({"a"}, 4, 14), "").status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(LiveScoringTest, StoreUploadCannotUseTheLiveMode) {
  grpc::ClientContext ctx;
  ctx.AddMetadata(rpc::kServiceTokenHeader, "svc-live");
  v1::StoreUploadResponse resp;
  auto writer = stub_->StoreUpload(&ctx, &resp);
  v1::StoreUploadRequest begin;
  begin.mutable_begin()->set_mode(v1::UPLOAD_MODE_LIVE);
  writer->Write(begin);
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("reserved for live scoring"));
}


// ---- the realised-metrics summary (realised_bins, migration 0007) ----

class RealisedSummaryTest : public LiveScoringTest {
 protected:
  std::string service_token() const override { return ""; }

  // Bins whose counts differ from a from-scratch aggregation of predictions joined to their
  // transactions (empty bins on either side ignore).
  int64_t SummaryMismatches() const {
    const std::string fresh =
        "SELECT p.upload_id, p.model_version, floor(t.time / 86400)::bigint AS day, p.decision,"
        " realised_bin(p.score) AS bin, count(*) FILTER (WHERE t.class = 1) AS frauds,"
        " count(*) FILTER (WHERE t.class = 0) AS legits,"
        " count(*) FILTER (WHERE t.class IS NULL) AS unlabelled"
        " FROM predictions p JOIN current_transactions t ON t.upload_id = p.upload_id"
        " AND t.line = p.line GROUP BY 1, 2, 3, 4, 5";
    const std::string stored =
        "SELECT upload_id, model_version, day, decision, bin, frauds, legits, unlabelled"
        " FROM realised_bins WHERE frauds <> 0 OR legits <> 0 OR unlabelled <> 0";
    return std::stoll(QueryScalar("SELECT count(*) FROM ((" + fresh + " EXCEPT " + stored +
                                  ") UNION ALL (" + stored + " EXCEPT " + fresh + ")) d"));
  }

  // The largest |summary - exact| of AUPRC and precision@k over every group, both periods;
  // every other figure must be equal.
  struct MaxDiff {
    double auprc = 0;
    double precision_at_k = 0;
    int groups = 0;
  };
  MaxDiff CompareWithExact(int k = 0) {
    MaxDiff d;
    for (v1::RealisedPeriod by : {v1::REALISED_PERIOD_DAY, v1::REALISED_PERIOD_UPLOAD}) {
      v1::GetRealisedMetricsRequest req;
      req.set_by(by);
      req.set_k(k);
      absl::StatusOr<v1::GetRealisedMetricsResponse> summary = GetRealisedMetrics(*pool_, req);
      absl::StatusOr<v1::GetRealisedMetricsResponse> exact =
          ::fraud::testing::GetRealisedMetricsExact(*pool_, req);
      EXPECT_TRUE(summary.ok()) << summary.status();
      EXPECT_TRUE(exact.ok()) << exact.status();
      if (!summary.ok() || !exact.ok()) return d;
      EXPECT_EQ(summary->metrics_size(), exact->metrics_size());
      for (int i = 0; i < std::min(summary->metrics_size(), exact->metrics_size()); ++i) {
        const v1::RealisedMetrics& s = summary->metrics(i);
        const v1::RealisedMetrics& e = exact->metrics(i);
        SCOPED_TRACE(e.DebugString());
        EXPECT_EQ(s.model_version(), e.model_version());
        EXPECT_EQ(s.period(), e.period());
        EXPECT_EQ(s.rows_scored(), e.rows_scored());
        EXPECT_EQ(s.rows_labelled(), e.rows_labelled());
        EXPECT_EQ(s.alerts(), e.alerts());
        EXPECT_EQ(s.alerts_labelled(), e.alerts_labelled());
        EXPECT_EQ(s.true_alerts(), e.true_alerts());
        EXPECT_EQ(s.frauds(), e.frauds());
        EXPECT_DOUBLE_EQ(s.precision(), e.precision());
        EXPECT_DOUBLE_EQ(s.recall(), e.recall());
        EXPECT_DOUBLE_EQ(s.unlabelled_share(), e.unlabelled_share());
        EXPECT_DOUBLE_EQ(s.time_min(), e.time_min());
        EXPECT_DOUBLE_EQ(s.time_max(), e.time_max());
        d.auprc = std::max(d.auprc, std::abs(s.auprc() - e.auprc()));
        d.precision_at_k = std::max(d.precision_at_k, std::abs(s.precision_at_k() -
                                                               e.precision_at_k()));
        ++d.groups;
      }
    }
    return d;
  }

  // Both checks after a write. Scores of Scored() and Request() are 0.05, 0.15, ... 0.95, each
  // in its own bin, so the histogram's AUPRC is exact here, and so is precision@k with k = 100
  // (more than any group's rows: no tie group is cut at the k-th row).
  void ExpectSummaryExact(const std::string& after) {
    SCOPED_TRACE("after " + after);
    EXPECT_EQ(SummaryMismatches(), 0);
    const MaxDiff d = CompareWithExact(100);
    EXPECT_GT(d.groups, 0);
    EXPECT_NEAR(d.auprc, 0, 1e-12);
    EXPECT_NEAR(d.precision_at_k, 0, 1e-12);
  }

  // Empties the summary and rebuilds it from what is stored, the way migration 0007's backfill
  // did, over the current labels (0009): realised_apply() of every prediction.
  void RebuildSummary() {
    Exec("DELETE FROM realised_bins; SELECT realised_apply('SELECT p.model_version, p.upload_id,"
         " t.time, p.score, p.decision, t.class, 1 AS sign FROM predictions p"
         " JOIN current_transactions t ON t.upload_id = p.upload_id AND t.line = p.line')");
  }
};

TEST_F(RealisedSummaryTest, SummaryEqualsARecomputationAfterEveryKindOfWrite) {
  // Uploads: one unlabelled scored by version 3, one labelled (every 7th row a fraud) scored by
  // version 5 and spanning two days.
  const int64_t a = ScoredUpload(40, 3, 21);
  ExpectSummaryExact("an unlabelled scored upload");
  UploadOutcome labelled = Upload(stub_.get(), "labelled.csv",
                                  {Scored(MakeBatch(30, 22, /*labelled=*/true, 2, 86400 - 20), 5)},
                                  Sha(22));
  ASSERT_TRUE(labelled.status.ok()) << labelled.status.error_message();
  const int64_t b = labelled.response.upload().id();
  ExpectSummaryExact("a labelled upload across two days");
  EXPECT_EQ(QueryScalar("SELECT count(DISTINCT day) FROM realised_bins WHERE upload_id = " +
                        std::to_string(b)),
            "2");

  // RecordPredictions: version 3 rescores some rows of `a` (upsert moves them between bins),
  // version 4 scores them for the first time.
  for (int64_t version : {3, 4}) {
    grpc::ClientContext ctx;
    v1::RecordPredictionsRequest req;
    req.set_upload_id(a);
    req.mutable_scores()->set_model_version(version);
    for (int64_t line = 2; line < 22; ++line) {
      req.add_line_numbers(line);
      req.mutable_scores()->add_scores(ScoreOfLine(line + 3));
      req.mutable_scores()->add_decisions(ScoreOfLine(line + 3) > 0.5f);
    }
    v1::RecordPredictionsResponse resp;
    ASSERT_TRUE(stub_->RecordPredictions(&ctx, req, &resp).ok());
  }
  ExpectSummaryExact("RecordPredictions");

  // Live scoring, then the same ids rescored with another score.
  LiveOutcome live = Record(Request({"s-1", "s-2", "s-3", "s-4"}, 4, 23));
  ASSERT_TRUE(live.status.ok()) << live.status.error_message();
  v1::RecordScoredTransactionsRequest again = Request({"s-1", "s-2", "s-3", "s-4"}, 4, 23);
  again.mutable_scores()->set_scores(1, 0.95f);
  ASSERT_TRUE(Record(again).status.ok());
  ExpectSummaryExact("live scoring");

  // Feedback: new labels on `a` (by line) and on live rows (by id) ...
  std::vector<v1::LabelFeedback> labels;
  for (int64_t line = 2; line < 30; ++line) labels.push_back(ByLine(a, line, line % 4 == 0));
  v1::LabelFeedback by_id;
  by_id.set_transaction_id("s-2");
  by_id.set_label(1);
  labels.push_back(by_id);
  FeedbackOutcome fb = Send({labels});
  ASSERT_TRUE(fb.status.ok()) << fb.status.error_message();
  EXPECT_EQ(fb.response.applied(), 29);
  ExpectSummaryExact("first feedback");
  // ... then conflicting labels (flips on `a` and on the upload's own labels of `b`), with one
  // unchanged row.
  labels.clear();
  for (int64_t line = 2; line < 10; ++line) labels.push_back(ByLine(a, line, line % 4 != 0));
  for (int64_t line = 2; line < 12; ++line) labels.push_back(ByLine(b, line, 1));
  labels.push_back(ByLine(a, 12, 1));  // line 12 is a fraud already
  fb = Send({labels});
  ASSERT_TRUE(fb.status.ok()) << fb.status.error_message();
  // b's line 5 (row 3) is a fraud already, as is a's line 12.
  EXPECT_EQ(fb.response.conflicts(), 8 + 9);
  EXPECT_EQ(fb.response.unchanged(), 2);
  ExpectSummaryExact("conflicting feedback");

  // A re-upload of b's content with another version adopts the predictions and discards its
  // own rows (INSERT ... SELECT and DELETE on predictions).
  UploadOutcome again_b = Upload(
      stub_.get(), "labelled-again.csv",
      {Scored(MakeBatch(30, 22, /*labelled=*/true, 2, 86400 - 20), 6)}, Sha(22));
  ASSERT_TRUE(again_b.status.ok()) << again_b.status.error_message();
  EXPECT_EQ(again_b.response.duplicate_of(), b);
  EXPECT_EQ(again_b.response.predictions_added(), 30);
  ExpectSummaryExact("a re-upload adopting predictions");
  // The discarded upload's bins went with its predictions.
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM realised_bins WHERE upload_id NOT IN (" +
                        std::to_string(a) + ", " + std::to_string(b) + ", " +
                        std::to_string(live.response.upload_id()) + ")"),
            "0");

  // A rebuild from what is stored gives the same summary.
  const std::string before = QueryScalar(
      "SELECT string_agg(concat_ws(',', upload_id, model_version, day, decision, bin, frauds,"
      " legits, unlabelled), ';' ORDER BY upload_id, model_version, day, decision, bin)"
      " FROM realised_bins WHERE frauds <> 0 OR legits <> 0 OR unlabelled <> 0");
  RebuildSummary();
  EXPECT_EQ(QueryScalar("SELECT string_agg(concat_ws(',', upload_id, model_version, day,"
                        " decision, bin, frauds, legits, unlabelled), ';' ORDER BY upload_id,"
                        " model_version, day, decision, bin) FROM realised_bins"),
            before);
  ExpectSummaryExact("a rebuild");
}

TEST_F(RealisedSummaryTest, InMemoryBinEqualsTheSqlBinForEveryKindOfScore) {
  // StoreUpload bins its rows with RealisedBin(), the other writers with SQL realised_bin().
  std::vector<float> scores = {0.0f, 1e-30f, 1e-9f, 1.1e-7f, 1e-7f, 0.25f, 0.5f, 0.75f,
                               0.9999999f, 0.99999994f, 1.0f};
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> unit(0, 1);
  std::uniform_real_distribution<double> exponent(-20, 0);
  for (int i = 0; i < 20000; ++i) {
    scores.push_back(static_cast<float>(unit(rng)));
    const auto tiny = static_cast<float>(std::pow(10.0, exponent(rng)));
    scores.push_back(tiny);
    scores.push_back(1.0f - tiny);
  }
  std::string array = "{";
  std::string expected;
  for (size_t i = 0; i < scores.size(); ++i) {
    absl::StrAppend(&array, i == 0 ? "" : ",", FloatLiteral(scores[i]));
    absl::StrAppend(&expected, i == 0 ? "" : ",", RealisedBin(scores[i]));
  }
  array += "}";
  EXPECT_EQ(QueryScalar("SELECT string_agg(realised_bin(s)::text, ',' ORDER BY i) FROM unnest('" +
                        array + "'::real[]) WITH ORDINALITY u(s, i)"),
            expected);
  EXPECT_EQ(RealisedBin(0.5f), 512);
  EXPECT_EQ(RealisedBin(0.0f), 0);
  EXPECT_EQ(RealisedBin(1.0f), 1023);
}

TEST_F(RealisedSummaryTest, RolledBackFeedbackLeavesTheSummaryAsItWas) {
  const int64_t a = ScoredUpload(20, 3, 31);
  const std::string before =
      QueryScalar("SELECT sum(unlabelled) || '/' || sum(frauds) FROM realised_bins");
  // The second row repeats the first's transaction: the stream is rejected as a whole.
  FeedbackOutcome fb = Send({{ByLine(a, 2, 1), ByLine(a, 2, 0)}});
  EXPECT_EQ(fb.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(QueryScalar("SELECT sum(unlabelled) || '/' || sum(frauds) FROM realised_bins"),
            before);
  EXPECT_EQ(before, "20/0");
}

// The genuine creditcard sample ($FRAUD_REAL_DATA, 39,416 rows), scored by fixed logistic
// models of a few V columns (two "versions"), 80% of the rows labelled: the histogram's AUPRC and precision@k beside the exact
// computation. Prints the largest differences (stated in the storage README).
TEST_F(RealisedSummaryTest, HistogramMetricsStayCloseToTheExactOnesOnRealData) {
  const char* path = std::getenv("FRAUD_REAL_DATA");
  std::ifstream in(path == nullptr ? "" : path);
  if (!in) GTEST_SKIP() << "FRAUD_REAL_DATA not set or unreadable";
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::vector<double>> features;
  std::vector<int> labels;
  while (std::getline(in, line)) {
    const char* p = line.c_str();
    char* end = nullptr;
    std::vector<double> f(kNumFeatures);
    for (double& x : f) {
      x = std::strtod(p, &end);
      p = end + 1;
    }
    features.push_back(std::move(f));
    labels.push_back(static_cast<int>(std::strtol(p, &end, 10)));
  }
  ASSERT_GT(features.size(), 10000u);
  // Version 1 scores every row; version 2 (another model) the labelled part.
  auto score = [](const std::vector<double>& f, int version) {
    // V14, V12, V10, V17, V4 carry most of the signal in this dataset.
    const double z = version == 1 ? -0.9 * f[14] - 0.6 * f[12] - 0.4 * f[10] - 0.5 * f[17] - 7.0
                                  : -1.2 * f[14] + 0.3 * f[4] - 0.8 * f[12] - 8.0;
    return static_cast<float>(1.0 / (1.0 + std::exp(-z)));
  };
  // Two uploads: the first 80% of the file with its labels, the rest unlabelled; batches of
  // 8192 rows as ingest sends them.
  constexpr size_t kBatch = 8192;
  const size_t split = features.size() * 4 / 5;
  auto batches = [&](size_t from, size_t to, bool labelled, int version) {
    std::vector<v1::UploadRows> out;
    for (size_t i = from; i < to; ++i) {
      if ((i - from) % kBatch == 0) {
        out.emplace_back();
        out.back().mutable_scores()->set_model_version(version);
        out.back().mutable_scores()->set_threshold(version == 1 ? 0.5 : 0.3);
      }
      TransactionBatch* b = out.back().mutable_rows();
      for (double x : features[i]) b->add_features(x);
      b->add_line_numbers(static_cast<int64_t>(i - from) + 2);
      b->set_num_rows(b->num_rows() + 1);
      if (labelled) b->add_labels(labels[i]);
      const float s = score(features[i], version);
      out.back().mutable_scores()->add_scores(s);
      out.back().mutable_scores()->add_decisions(s > (version == 1 ? 0.5f : 0.3f));
    }
    return out;
  };
  UploadOutcome up1 =
      Upload(stub_.get(), "real-labelled.csv", batches(0, split, true, 1), Sha(41));
  ASSERT_TRUE(up1.status.ok()) << up1.status.error_message();
  UploadOutcome up2 = Upload(stub_.get(), "real-unlabelled.csv",
                             batches(split, features.size(), false, 1), Sha(42));
  ASSERT_TRUE(up2.status.ok()) << up2.status.error_message();
  // Version 2 on the labelled part, through the duplicate upload's adoption.
  UploadOutcome up3 =
      Upload(stub_.get(), "real-labelled.csv", batches(0, split, true, 2), Sha(41));
  ASSERT_TRUE(up3.status.ok()) << up3.status.error_message();
  EXPECT_EQ(up3.response.duplicate_of(), up1.response.upload().id());
  EXPECT_EQ(SummaryMismatches(), 0);
  for (int k : {100, 1000}) {
    const MaxDiff d = CompareWithExact(k);
    std::printf("real data, k=%d: %d groups, max |AUPRC diff| %.6f, max |precision@k diff| %.6f\n",
                k, d.groups, d.auprc, d.precision_at_k);
    EXPECT_EQ(d.groups, 2 * 2 + 3);  // by day: 2 versions x 2 days; by upload: v1 x 2 + v2 x 1
    EXPECT_LT(d.auprc, 0.002);  // measured 0.000594
    EXPECT_LT(d.precision_at_k, 0.005);  // measured 0 (k = 100), 0.000275 (k = 1000)
  }
}

}  // namespace
}  // namespace fraud::storage::testing
