// Reason codes stored for alerts (migration 0008) against a real PostgreSQL: StoreUpload and
// RecordScoredTransactions store the explanations of alert rows, ListReviewQueue and
// ListPredictions answer them with the row's values, every bad explanation is INVALID_ARGUMENT
// naming the explanation and field with nothing stored and nothing stored before lost, and the
// table is write-once.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/integration/storage/storage_test_util.h"

namespace fraud::storage::testing {
namespace {

using fraud::common::v1::Explanation;
using ::testing::HasSubstr;

// The contributions every test explanation lists, largest |contribution| first.
const std::vector<int> kTopIndex = {14, 4, 12, 0, 29};

// An explanation of row `row` of `batch` whose numbers depend on `salt`: five contributions,
// bias, rest, and the margin they add up to.
Explanation MakeExplanation(const TransactionBatch& batch, int row, double salt) {
  Explanation e;
  e.set_bias(-8.25 + salt);
  e.set_rest(0.125 * salt);
  double sum = e.bias() + e.rest();
  for (size_t j = 0; j < kTopIndex.size(); ++j) {
    auto* c = e.add_top();
    c->set_index(kTopIndex[j]);
    c->set_feature("ignored");
    c->set_value(batch.features(row * 30 + kTopIndex[j]));
    c->set_contribution((j % 2 == 0 ? 1 : -1) * (3.0 - 0.5 * j) / 3.0 * (1 + salt));
    sum += c->contribution();
  }
  e.set_margin(sum);
  return e;
}

// Scored(batch) with the explanations of its alert rows (decision true), all but `skip`.
v1::UploadRows ExplainedRows(TransactionBatch batch, int64_t version, int skip = -1,
                             int64_t computed_at_s = 1700000000) {
  v1::UploadRows rows = Scored(std::move(batch), version);
  for (int i = 0; i < rows.scores().decisions_size(); ++i) {
    if (!rows.scores().decisions(i) || i == skip) continue;
    v1::RowExplanation* x = rows.add_explanations();
    x->set_row(i);
    *x->mutable_explanation() = MakeExplanation(rows.rows(), i, i / 100.0);
    x->mutable_computed_at()->set_seconds(computed_at_s + i);
  }
  return rows;
}

void ExpectStored(const Explanation& got, const google::protobuf::RepeatedField<double>& features,
                  int row) {
  TransactionBatch one;
  one.mutable_features()->CopyFrom(features);
  const Explanation want = MakeExplanation(one, 0, row / 100.0);
  EXPECT_EQ(got.bias(), want.bias());
  EXPECT_EQ(got.margin(), want.margin());
  EXPECT_EQ(got.rest(), want.rest());
  ASSERT_EQ(got.top_size(), want.top_size());
  for (int j = 0; j < got.top_size(); ++j) {
    EXPECT_EQ(got.top(j).index(), want.top(j).index());
    EXPECT_EQ(got.top(j).feature(), j == 3 ? "Time" : j == 4 ? "Amount"
                                                              : absl::StrCat("V", kTopIndex[j]));
    EXPECT_EQ(got.top(j).value(), features.Get(kTopIndex[j]));  // bit for bit
    EXPECT_EQ(got.top(j).contribution(), want.top(j).contribution());
  }
}

class StorageExplanationTest : public StorageTest {
 protected:
  v1::ListReviewQueueResponse Queue(int64_t upload = 0) {
    v1::ListReviewQueueRequest req;
    req.set_page_size(500);
    req.set_upload_id(upload);
    v1::ListReviewQueueResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->ListReviewQueue(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  v1::ListPredictionsResponse Predictions(int64_t upload) {
    v1::ListPredictionsRequest req;
    req.set_upload_id(upload);
    req.set_page_size(1000);
    v1::ListPredictionsResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->ListPredictions(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  grpc::Status Live(const v1::RecordScoredTransactionsRequest& req,
                    v1::RecordScoredTransactionsResponse* resp) {
    grpc::ClientContext ctx;
    return stub_->RecordScoredTransactions(&ctx, req, resp);
  }

  // Live request: `ids.size()` rows of MakeBatch(seed), Scored() by `version`, with the alerts'
  // explanations (salt as ExplainedRows).
  static v1::RecordScoredTransactionsRequest LiveRequest(const std::vector<std::string>& ids,
                                                         int64_t version, uint64_t seed,
                                                         double extra_salt = 0) {
    v1::UploadRows rows = ExplainedRows(
        MakeBatch(static_cast<int>(ids.size()), seed, /*labelled=*/false), version);
    v1::RecordScoredTransactionsRequest req;
    *req.mutable_rows() = rows.rows();
    req.mutable_rows()->clear_line_numbers();
    *req.mutable_scores() = rows.scores();
    for (const std::string& id : ids) req.add_transaction_ids(id);
    for (v1::RowExplanation x : rows.explanations()) {
      *x.mutable_explanation() = MakeExplanation(rows.rows(), x.row(), x.row() / 100.0 + extra_salt);
      x.clear_computed_at();
      *req.add_explanations() = x;
    }
    return req;
  }
};

TEST_F(StorageExplanationTest, UploadedExplanationsRoundTripThroughTheQueueAndThePredictions) {
  // 20 rows, alerts at rows 5..9 and 15..19; row 19's explanation is not sent.
  UploadOutcome up = Upload(stub_.get(), "x.csv", {ExplainedRows(MakeBatch(20, 1, false), 3, 19)},
                            Sha(1));
  ASSERT_TRUE(up.status.ok()) << up.status.error_message();
  EXPECT_EQ(up.response.explanations_stored(), 9);
  EXPECT_EQ(Count("alert_explanations"), 9);
  const int64_t upload = up.response.upload().id();

  v1::ListReviewQueueResponse queue = Queue();
  ASSERT_EQ(queue.items_size(), 10);
  int explained = 0;
  for (const v1::ReviewItem& item : queue.items()) {
    const int row = static_cast<int>(item.line() - 2);
    if (row == 19) {
      EXPECT_FALSE(item.has_explanation());
      EXPECT_FALSE(item.has_explanation_computed_at());
      continue;
    }
    ++explained;
    ASSERT_TRUE(item.has_explanation()) << "line " << item.line();
    ExpectStored(item.explanation(), item.features(), row);
    EXPECT_EQ(item.explanation_computed_at().seconds(), 1700000000 + row);
  }
  EXPECT_EQ(explained, 9);

  v1::ListPredictionsResponse predictions = Predictions(upload);
  ASSERT_EQ(predictions.predictions_size(), 20);
  for (const v1::Prediction& p : predictions.predictions()) {
    const int row = static_cast<int>(p.line() - 2);
    EXPECT_EQ(p.has_explanation(), p.decision() && row != 19) << "line " << p.line();
    if (p.has_explanation()) ExpectStored(p.explanation(), p.features(), row);
  }
}

// Storage keeps one COPY into transactions open across batches and writes predictions and
// explanations when 131,072 scored rows wait (and at the commit). An upload past that point
// keeps every row, score and explanation from both sides of it; a bad batch after it still
// stores nothing.
TEST_F(StorageExplanationTest, AnUploadPastThePendingLimitKeepsEveryScoreAndExplanation) {
  constexpr int kBig = 8192;
  auto batches = [&](bool bad_last) {
    std::vector<v1::UploadRows> out;
    int64_t line = 2;
    out.push_back(ExplainedRows(MakeBatch(20, 1, false, line), 3));  // alerts at 5..9, 15..19
    line += 20;
    for (int k = 0; k < 16; ++k, line += kBig) {
      out.push_back(Scored(MakeBatch(kBig, 10 + k, true, line, 100.0 * k), 3));
    }
    // 131,092 rows wait here: the writer flushes, then reopens its COPY for the next batch.
    out.push_back(ExplainedRows(MakeBatch(20, 2, false, line), 3));
    line += 20;
    TransactionBatch last = MakeBatch(kBig, 30, true, line);
    if (bad_last) last.set_features(31, std::numeric_limits<double>::quiet_NaN());
    out.push_back(Scored(last, 3));
    return out;
  };
  constexpr int64_t kRows = 20 + 16 * kBig + 20 + kBig;

  UploadOutcome bad = Upload(stub_.get(), "bad.csv", batches(true), Sha(7));
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.status.error_message(), HasSubstr("not finite"));
  ExpectNothingStored();
  EXPECT_EQ(Count("alert_explanations"), 0);

  UploadOutcome up = Upload(stub_.get(), "big.csv", batches(false), Sha(8));
  ASSERT_TRUE(up.status.ok()) << up.status.error_message();
  const int64_t upload = up.response.upload().id();
  EXPECT_EQ(up.response.upload().rows(), kRows);
  EXPECT_EQ(up.response.explanations_stored(), 20);
  EXPECT_EQ(Count("transactions"), kRows);
  EXPECT_EQ(Count("predictions"), kRows);
  // Every prediction is its own row's, with the score Scored gave row i of its batch.
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM predictions p JOIN transactions t"
                        " USING (upload_id, line)"),
            std::to_string(kRows));
  EXPECT_EQ(QueryScalar(absl::StrCat(
                "SELECT count(*) FROM predictions WHERE upload_id = ", upload,
                " AND line IN (2, 21, 22, 22 + 8191, 22 + 15 * 8192, 22 + 16 * 8192 + 5,"
                " 22 + 16 * 8192 + 20 + 8191) AND decision = (score > 0.5)")),
            "7");
  EXPECT_EQ(QueryScalar(absl::StrCat("SELECT string_agg(line::text, ',' ORDER BY line) FROM"
                                     " alert_explanations WHERE upload_id = ",
                                     upload, " AND line > 21")),
            "131099,131100,131101,131102,131103,131109,131110,131111,131112,131113");
  // The explanations of both explained batches (pages by line) answer with their rows' values.
  int explained = 0;
  for (const int64_t offset : {int64_t{0}, int64_t{20} + 16 * kBig}) {
    v1::ListPredictionsRequest req;
    req.set_upload_id(upload);
    req.set_page_size(20);
    req.set_offset(offset);
    v1::ListPredictionsResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ListPredictions(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.predictions_size(), 20);
    for (const v1::Prediction& p : resp.predictions()) {
      const int row = static_cast<int>(p.line() - 2 - offset);
      EXPECT_EQ(p.has_explanation(), p.decision()) << "line " << p.line();
      if (!p.has_explanation()) continue;
      ++explained;
      ExpectStored(p.explanation(), p.features(), row);
    }
  }
  EXPECT_EQ(explained, 20);
}

TEST_F(StorageExplanationTest, UploadsWithoutExplanationsStayValid) {
  UploadOutcome up = Upload(stub_.get(), "old.csv", {Scored(MakeBatch(20, 1, false), 3)}, Sha(1));
  ASSERT_TRUE(up.status.ok()) << up.status.error_message();
  EXPECT_EQ(up.response.explanations_stored(), 0);
  v1::ListReviewQueueResponse queue = Queue();
  ASSERT_EQ(queue.items_size(), 10);
  for (const v1::ReviewItem& item : queue.items()) EXPECT_FALSE(item.has_explanation());
}

TEST_F(StorageExplanationTest, InvalidExplanationsFailTheUploadNamingTheFieldAndStoreNothing) {
  UploadOutcome good =
      Upload(stub_.get(), "good.csv", {ExplainedRows(MakeBatch(20, 1, false), 3)}, Sha(1));
  ASSERT_TRUE(good.status.ok()) << good.status.error_message();
  const int64_t uploads = Count("uploads");
  const int64_t stored = Count("alert_explanations");
  ASSERT_EQ(stored, 10);

  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    std::string name;
    std::function<void(v1::UploadRows*)> spoil;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"row outside the batch", [](v1::UploadRows* r) { r->mutable_explanations(1)->set_row(40); },
       "explanations[1].row: 40 is not a row of the batch (0..19)"},
      {"negative row", [](v1::UploadRows* r) { r->mutable_explanations(0)->set_row(-1); },
       "explanations[0].row: -1 is not a row"},
      {"not an alert", [](v1::UploadRows* r) { r->mutable_explanations(2)->set_row(0); },
       "explanations[2].row: row 0 is not an alert"},
      {"row twice", [](v1::UploadRows* r) { r->mutable_explanations(3)->set_row(5); },
       "explanations[3].row: row 5 is explained twice (also explanations[0])"},
      {"non-finite contribution",
       [inf](v1::UploadRows* r) {
         r->mutable_explanations(4)->mutable_explanation()->mutable_top(2)->set_contribution(inf);
       },
       "explanations[4].explanation.top[2].contribution: is not finite"},
      {"NaN margin",
       [](v1::UploadRows* r) {
         r->mutable_explanations(0)->mutable_explanation()->set_margin(std::nan(""));
       },
       "explanations[0].explanation.margin: is not finite"},
      {"31 contributions",
       [](v1::UploadRows* r) {
         Explanation* e = r->mutable_explanations(1)->mutable_explanation();
         for (int j = 0; j < 26; ++j) *e->add_top() = e->top(0);
       },
       "explanations[1].explanation.top: has 31 contributions, want 1..30"},
      {"no contribution",
       [](v1::UploadRows* r) {
         r->mutable_explanations(1)->mutable_explanation()->clear_top();
       },
       "explanations[1].explanation.top: has 0 contributions"},
      {"feature index 30",
       [](v1::UploadRows* r) {
         r->mutable_explanations(2)->mutable_explanation()->mutable_top(0)->set_index(30);
       },
       "explanations[2].explanation.top[0].index: 30 is not a feature index 0..29"},
      {"feature index -1",
       [](v1::UploadRows* r) {
         r->mutable_explanations(2)->mutable_explanation()->mutable_top(1)->set_index(-1);
       },
       "explanations[2].explanation.top[1].index: -1 is not a feature index"},
      {"feature twice",
       [](v1::UploadRows* r) {
         auto* top = r->mutable_explanations(2)->mutable_explanation()->mutable_top(1);
         top->set_index(14);
       },
       "explanations[2].explanation.top[1].index: feature V14 is listed twice"},
      {"another row's value",
       [](v1::UploadRows* r) {
         auto* top = r->mutable_explanations(3)->mutable_explanation()->mutable_top(0);
         top->set_value(top->value() + 1e-9);
       },
       "explanations[3].explanation.top[0].value:"},
      {"sum misses the margin",
       [](v1::UploadRows* r) {
         Explanation* e = r->mutable_explanations(3)->mutable_explanation();
         e->set_margin(e->margin() + 0.5);
       },
       "explanations[3].explanation.margin:"},
      {"missing explanation",
       [](v1::UploadRows* r) { r->mutable_explanations(3)->clear_explanation(); },
       "explanations[3].explanation: missing"},
      {"computed_at before 1970",
       [](v1::UploadRows* r) { r->mutable_explanations(3)->mutable_computed_at()->set_seconds(-5); },
       "explanations[3].computed_at:"},
      {"explanations without scores", [](v1::UploadRows* r) { r->clear_scores(); },
       "explanations: given for rows without scores"},
  };
  int sha = 10;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    // A clean first batch, then the spoilt one: the whole upload must go.
    v1::UploadRows spoilt = ExplainedRows(MakeBatch(20, 2, false, 22), 3);
    c.spoil(&spoilt);
    UploadOutcome out = Upload(stub_.get(), "bad.csv",
                               {ExplainedRows(MakeBatch(20, 3, false), 3), spoilt}, Sha(++sha));
    EXPECT_EQ(out.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(out.status.error_message(), HasSubstr(c.message));
    EXPECT_EQ(Count("uploads"), uploads);
    EXPECT_EQ(Count("alert_explanations"), stored);
  }
  // The earlier upload's explanations are intact.
  v1::ListReviewQueueResponse queue = Queue(good.response.upload().id());
  ASSERT_EQ(queue.items_size(), 10);
  for (const v1::ReviewItem& item : queue.items()) {
    ASSERT_TRUE(item.has_explanation());
    ExpectStored(item.explanation(), item.features(), static_cast<int>(item.line() - 2));
  }
}

TEST_F(StorageExplanationTest, ReUploadThatAddsScoresAddsTheirExplanations) {
  UploadOutcome first = Upload(stub_.get(), "a.csv", {Rows(MakeBatch(20, 1, false))}, Sha(1));
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  UploadOutcome again =
      Upload(stub_.get(), "a.csv", {ExplainedRows(MakeBatch(20, 1, false), 3)}, Sha(1));
  ASSERT_TRUE(again.status.ok()) << again.status.error_message();
  EXPECT_EQ(again.response.duplicate_of(), first.response.upload().id());
  EXPECT_EQ(again.response.predictions_added(), 20);
  EXPECT_EQ(again.response.explanations_stored(), 10);
  EXPECT_EQ(Count("alert_explanations"), 10);
  EXPECT_EQ(QueryScalar(absl::StrCat("SELECT count(*) FROM alert_explanations WHERE upload_id = ",
                                     first.response.upload().id())),
            "10");
  v1::ListReviewQueueResponse queue = Queue();
  ASSERT_EQ(queue.items_size(), 10);
  for (const v1::ReviewItem& item : queue.items()) EXPECT_TRUE(item.has_explanation());
}

TEST_F(StorageExplanationTest, LiveScoringStoresExplanationsOncePerTransactionAndVersion) {
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(absl::StrCat("tx-", i));
  v1::RecordScoredTransactionsResponse resp;
  grpc::Status s = Live(LiveRequest(ids, 3, 7), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.explanations_stored(), 5);  // rows 5..9 are alerts
  // Re-scored by the same version with other numbers: the first explanation stays.
  s = Live(LiveRequest(ids, 3, 7, /*extra_salt=*/0.5), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.explanations_stored(), 0);
  // By another version: its own explanations.
  s = Live(LiveRequest(ids, 4, 7), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.explanations_stored(), 5);
  EXPECT_EQ(Count("alert_explanations"), 10);

  v1::ListReviewQueueResponse queue = Queue();
  ASSERT_EQ(queue.items_size(), 5);  // one item per row (versions 3 and 4 tie; newest wins)
  for (const v1::ReviewItem& item : queue.items()) {
    ASSERT_TRUE(item.has_explanation()) << item.transaction_id();
    const int row = std::stoi(item.transaction_id().substr(3));
    ExpectStored(item.explanation(), item.features(), row);  // salt of the first call
    EXPECT_GT(item.explanation_computed_at().seconds(), 1700000000);  // defaults to scored_at
  }

  // A bad explanation: nothing stored, the stored ones stay.
  std::vector<std::string> more = {"tx-new-0", "tx-new-1", "tx-new-2", "tx-new-3", "tx-new-4",
                                   "tx-new-5", "tx-new-6"};
  v1::RecordScoredTransactionsRequest bad = LiveRequest(more, 3, 9);
  bad.mutable_explanations(1)->mutable_explanation()->mutable_top(4)->set_index(31);
  s = Live(bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("explanations[1].explanation.top[4].index: 31 is not a feature index"));
  EXPECT_EQ(QueryScalar("SELECT count(*) FROM transactions WHERE transaction_id LIKE 'tx-new%'"),
            "0");
  EXPECT_EQ(Count("alert_explanations"), 10);
}

TEST_F(StorageExplanationTest, StoredExplanationsCannotBeUpdated) {
  ASSERT_TRUE(Upload(stub_.get(), "x.csv", {ExplainedRows(MakeBatch(20, 1, false), 3)}, Sha(1))
                  .status.ok());
  EXPECT_ANY_THROW(Exec("UPDATE alert_explanations SET bias = 0"));
  EXPECT_ANY_THROW(Exec("TRUNCATE alert_explanations"));
  EXPECT_EQ(Count("alert_explanations"), 10);
}

}  // namespace
}  // namespace fraud::storage::testing
