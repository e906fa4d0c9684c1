// UploadSession with an in-memory scorer and sink: validation modes, what reaches the scorer and
// the sink, and every figure of the summary checked against an independent computation.
#include "services/ingest/upload_session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "services/common/core/sha256.h"
#include "services/common/core/status_macros.h"
#include "services/common/csv/synthetic_generator.h"
#include "services/common/eval/drift.h"
#include "services/ingest/ingest_service.h"
#include "services/common/rpc/summary_trailer.h"
#include "tests/testing/reference_metrics.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/synthetic_csv.h"

namespace fraud::ingest {
namespace {

using ::fraud::testing::IsOk;
using ::fraud::testing::NaiveAveragePrecision;
using ::fraud::testing::NaiveRocAuc;
using ::fraud::testing::StatusIs;
using ingest::v1::UploadSummary;
using ::testing::HasSubstr;

constexpr int kF = csv::kNumFeatures;

// A deterministic "model": a logistic function of the features most tied to fraud.
float FakeScore(const double* f) {
  const double z = -0.8 * f[14] - 0.5 * f[12] - 0.4 * f[10] + 0.3 * f[4] - 4.0;
  // Coarse rounding creates ties, which the metrics must group like scikit-learn does.
  return static_cast<float>(std::round(1000.0 / (1.0 + std::exp(-z))) / 1000.0);
}

class FakeScorer : public Scorer {
 public:
  absl::Status model_status = absl::OkStatus();
  int64_t version = 7;
  double threshold = 0.5;
  std::vector<common::v1::FeatureReference> reference;
  std::vector<common::v1::BudgetThreshold> budgets;
  // Score() calls (1-based) that fail, and with what.
  std::map<int, absl::Status> fail_call;

  // Everything the scorer received.
  int calls = 0;
  std::vector<double> received_features;
  std::vector<int64_t> received_lines;
  std::map<int64_t, float> score_of_line;
  // Explain(): how it answers (explain_version 0 = version) and what it was asked.
  absl::Status explain_status = absl::OkStatus();
  int64_t explain_version = 0;
  int explain_calls = 0;
  size_t explained_rows = 0;

  absl::StatusOr<ExplainedRows> Explain(absl::Span<const double> features, int top_k) override {
    ++explain_calls;
    EXPECT_EQ(top_k, 5);
    if (!explain_status.ok()) return explain_status;
    ExplainedRows out;
    out.model_version = explain_version != 0 ? explain_version : version;
    for (size_t i = 0; i * kF < features.size(); ++i) {
      EXPECT_GE(FakeScore(features.data() + i * kF), static_cast<float>(threshold));
      common::v1::Explanation e;
      e.set_margin(1.0);
      out.explanations.push_back(e);
    }
    explained_rows += out.explanations.size();
    return out;
  }

  absl::StatusOr<common::v1::ModelManifest> ServingModel() override {
    if (!model_status.ok()) return model_status;
    common::v1::ModelManifest m;
    m.set_version(version);
    m.set_threshold(threshold);
    for (const auto& r : reference) *m.add_reference() = r;
    for (const auto& b : budgets) *m.add_budget_thresholds() = b;
    return m;
  }

  absl::StatusOr<common::v1::ScoreBatch> Score(absl::Span<const double> features,
                                               absl::Span<const int64_t> lines) override {
    ++calls;
    if (auto it = fail_call.find(calls); it != fail_call.end()) return it->second;
    EXPECT_EQ(features.size(), lines.size() * kF);
    received_features.insert(received_features.end(), features.begin(), features.end());
    received_lines.insert(received_lines.end(), lines.begin(), lines.end());
    common::v1::ScoreBatch out;
    out.set_model_version(version);
    out.set_threshold(threshold);
    for (size_t i = 0; i < lines.size(); ++i) {
      const float s = FakeScore(features.data() + i * kF);
      out.add_scores(s);
      out.add_decisions(s >= static_cast<float>(threshold));
      score_of_line[lines[i]] = s;
    }
    return out;
  }
};

class FakeSink : public UploadSink {
 public:
  absl::Status begin_status = absl::OkStatus();
  absl::Status append_status = absl::OkStatus();
  absl::Status end_rows_status = absl::OkStatus();
  int fail_append_call = 0;  // 1-based; 0 = never
  int64_t duplicate_of = 0;

  bool begun = false;
  bool rows_ended = false;
  bool committed = false;
  int aborts = 0;
  int appends = 0;
  std::string file_name;
  storage::v1::UploadMode mode = storage::v1::UPLOAD_MODE_UNSPECIFIED;
  std::vector<double> features;
  std::vector<int32_t> labels;
  std::vector<int64_t> lines;
  std::vector<float> scores;
  int unscored_batches = 0;
  // Lines whose explanation came with their batch.
  std::vector<int64_t> explained_lines;
  storage::v1::UploadCommit commit;

  absl::Status Begin(const std::string& name, storage::v1::UploadMode m) override {
    if (!begin_status.ok()) return begin_status;
    begun = true;
    file_name = name;
    mode = m;
    return absl::OkStatus();
  }
  absl::Status Append(const csv::RowBatch& rows, const common::v1::ScoreBatch* s,
                      const RowExplanations& x) override {
    EXPECT_TRUE(begun);
    EXPECT_FALSE(rows_ended) << "rows after rows_end";
    for (const storage::v1::RowExplanation& e : x) {
      explained_lines.push_back(rows.line_numbers[static_cast<size_t>(e.row())]);
      EXPECT_TRUE(s != nullptr && s->decisions(e.row())) << "explained a non-alert";
    }
    EXPECT_FALSE(committed);
    ++appends;
    if (fail_append_call == appends) return append_status;
    features.insert(features.end(), rows.features.begin(), rows.features.end());
    labels.insert(labels.end(), rows.labels.begin(), rows.labels.end());
    lines.insert(lines.end(), rows.line_numbers.begin(), rows.line_numbers.end());
    if (s == nullptr) {
      ++unscored_batches;
    } else {
      EXPECT_EQ(static_cast<size_t>(s->scores_size()), rows.num_rows());
      scores.insert(scores.end(), s->scores().begin(), s->scores().end());
    }
    return absl::OkStatus();
  }
  absl::Status EndRows() override {
    EXPECT_TRUE(begun);
    EXPECT_FALSE(rows_ended);
    rows_ended = true;
    return end_rows_status;
  }
  absl::StatusOr<storage::v1::StoreUploadResponse> Commit(
      const storage::v1::UploadCommit& c) override {
    EXPECT_TRUE(begun);
    EXPECT_TRUE(rows_ended) << "commit without rows_end";
    EXPECT_EQ(aborts, 0);
    committed = true;
    commit = c;
    storage::v1::StoreUploadResponse r;
    if (duplicate_of != 0) {
      r.set_duplicate_of(duplicate_of);
      r.mutable_upload()->set_id(duplicate_of);
    } else {
      r.mutable_upload()->set_id(42);
    }
    return r;
  }
  void Abort() override { ++aborts; }
  // What the database would hold after the upload.
  size_t stored_rows() const { return committed && aborts == 0 ? lines.size() : 0; }
};

// The shared generator with this file's defaults (seed 3, 5 % fraud).
std::string SyntheticCsv(int64_t rows, uint64_t seed = 3, bool labels = true,
                         double fraud_rate = 0.05) {
  return ::fraud::testing::SyntheticCsv(rows, seed, labels, fraud_rate);
}

// Labels of the synthetic rows, straight from the generator (independent of any CSV parsing).
std::vector<int32_t> SyntheticLabels(int64_t rows, uint64_t seed = 3, double fraud_rate = 0.05) {
  csv::GeneratorOptions o;
  o.rows = rows;
  o.seed = seed;
  o.fraud_rate = fraud_rate;
  csv::SyntheticGenerator gen(o);
  std::vector<int32_t> labels;
  double f[kF];
  int32_t y = 0;
  while (gen.Next(f, &y)) labels.push_back(y);
  return labels;
}

// Replaces data line `line` (1-based, header = 1) of `csv_text` with `replacement`.
std::string ReplaceLine(const std::string& csv_text, int64_t line, const std::string& replacement) {
  std::string out;
  int64_t current = 1;
  size_t pos = 0;
  while (pos < csv_text.size()) {
    size_t nl = csv_text.find('\n', pos);
    if (nl == std::string::npos) nl = csv_text.size();
    out += current == line ? replacement : csv_text.substr(pos, nl - pos);
    out += '\n';
    pos = nl + 1;
    ++current;
  }
  return out;
}

UploadSessionOptions Options(storage::v1::UploadMode mode = storage::v1::UPLOAD_MODE_STRICT) {
  UploadSessionOptions o;
  o.file_name = "part1.csv";
  o.mode = mode;
  o.batch_rows = 500;
  return o;
}

// Runs a whole upload, feeding `chunk` bytes at a time.
absl::StatusOr<UploadSummary> RunUpload(UploadSession& session, const std::string& data,
                                        size_t chunk = 64 * 1024) {
  FRAUD_RETURN_IF_ERROR(session.Start());
  for (size_t pos = 0; pos < data.size(); pos += chunk) {
    FRAUD_RETURN_IF_ERROR(session.Feed(std::string_view(data).substr(pos, chunk)));
  }
  return session.Finish();
}

TEST(UploadSessionTest, StrictModeFailsOnTheFirstBadRowAndStoresNothing) {
  const std::string data = ReplaceLine(SyntheticCsv(2000), 1501,
                                       "10,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,"
                                       "22,23,24,25,26,27,28,abc,0");
  FakeScorer scorer;
  FakeSink sink;
  UploadSession session(Options(), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, data, 4096);
  EXPECT_THAT(summary, StatusIs(absl::StatusCode::kInvalidArgument,
                                HasSubstr("line 1501, column Amount (30): not a number: 'abc'")));
  EXPECT_EQ(session.failure(), UploadFailure::kInvalid);
  // Earlier batches reached the sink, but the upload was abandoned, never committed.
  EXPECT_GT(sink.appends, 0);
  EXPECT_EQ(sink.aborts, 1);
  EXPECT_FALSE(sink.committed);
  EXPECT_EQ(sink.stored_rows(), 0u);
  const UploadSummary partial = session.PartialSummary();
  ASSERT_EQ(partial.errors_size(), 1);
  EXPECT_EQ(partial.errors(0).line(), 1501);
  EXPECT_EQ(partial.errors(0).column(), "Amount");
  EXPECT_EQ(partial.errors(0).column_index(), 30);
  EXPECT_EQ(partial.rows_rejected(), 1);
  EXPECT_EQ(partial.mode(), storage::v1::UPLOAD_MODE_STRICT);
  // Every later call repeats the failure.
  EXPECT_THAT(session.Feed("1,2\n"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(UploadSessionTest, LenientModeStoresTheGoodRowsAndListsTheBadOnes) {
  std::string data = SyntheticCsv(1200);
  data = ReplaceLine(data, 10, "1,2,3");
  data = ReplaceLine(data, 700,
                     "5,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,"
                     "22,23,24,25,26,27,28,-3,0");
  data = ReplaceLine(data, 1201,
                     "5,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,"
                     "22,23,24,25,26,27,28,3,2");
  FakeScorer scorer;
  FakeSink sink;
  UploadSession session(Options(storage::v1::UPLOAD_MODE_LENIENT), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, data, 1000);
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(summary->rows_total(), 1200);
  EXPECT_EQ(summary->rows_accepted(), 1197);
  EXPECT_EQ(summary->rows_rejected(), 3);
  ASSERT_EQ(summary->errors_size(), 3);
  EXPECT_EQ(summary->errors(0).line(), 10);
  EXPECT_EQ(summary->errors(1).line(), 700);
  EXPECT_EQ(summary->errors(1).column(), "Amount");
  EXPECT_EQ(summary->errors(2).line(), 1201);
  EXPECT_EQ(summary->errors(2).column(), "Class");
  EXPECT_TRUE(sink.committed);
  EXPECT_EQ(sink.aborts, 0);
  EXPECT_EQ(sink.stored_rows(), 1197u);
  EXPECT_EQ(sink.mode, storage::v1::UPLOAD_MODE_LENIENT);
  EXPECT_EQ(sink.commit.rows_rejected(), 3);
  for (int64_t bad : {10, 700, 1201}) {
    EXPECT_EQ(std::count(sink.lines.begin(), sink.lines.end(), bad), 0) << bad;
  }
  EXPECT_EQ(summary->upload_id(), 42);
  EXPECT_EQ(summary->report().rows(), 1197);
}

TEST(UploadSessionTest, LabelsNeverReachTheScorer) {
  // Class first, so a label leaking into the features would shift every value.
  std::string data = "Class,Time";
  for (int i = 1; i <= 28; ++i) data += ",V" + std::to_string(i);
  data += ",Amount\n";
  const int rows = 50;
  for (int r = 0; r < rows; ++r) {
    data += std::to_string(r % 2) + "," + std::to_string(100 + r);
    for (int i = 1; i <= 28; ++i) data += "," + std::to_string(i) + ".5";
    data += "," + std::to_string(r) + ".25\n";
  }
  FakeScorer scorer;
  FakeSink sink;
  UploadSessionOptions o = Options();
  o.batch_rows = 16;
  UploadSession session(o, &scorer, &sink);
  ASSERT_THAT(RunUpload(session, data, 100), IsOk());
  ASSERT_EQ(scorer.received_features.size(), static_cast<size_t>(rows * kF));
  for (int r = 0; r < rows; ++r) {
    const double* f = scorer.received_features.data() + r * kF;
    EXPECT_EQ(f[0], 100 + r);
    for (int i = 1; i <= 28; ++i) EXPECT_EQ(f[i], i + 0.5);
    EXPECT_EQ(f[29], r + 0.25);
  }
  // The sink, unlike the scorer, does get the labels.
  ASSERT_EQ(sink.labels.size(), static_cast<size_t>(rows));
  EXPECT_EQ(sink.labels[1], 1);
}

TEST(UploadSessionTest, TopSuspiciousRowsAreTheHighestScoresHighestFirst) {
  const std::string data = SyntheticCsv(3000);
  FakeScorer scorer;
  FakeSink sink;
  UploadSessionOptions o = Options();
  o.top_k = 20;
  UploadSession session(o, &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, data);
  ASSERT_THAT(summary, IsOk());
  std::vector<std::pair<float, int64_t>> all;
  for (const auto& [line, score] : scorer.score_of_line) all.push_back({score, line});
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  const std::vector<int32_t> labels = SyntheticLabels(3000);
  ASSERT_EQ(summary->top_suspicious_size(), 20);
  for (int i = 0; i < 20; ++i) {
    const auto& row = summary->top_suspicious(i);
    EXPECT_EQ(row.score(), all[i].first) << i;
    EXPECT_EQ(row.line(), all[i].second) << i;
    EXPECT_EQ(row.label(), labels[row.line() - 2]) << i;
    const size_t at = static_cast<size_t>(row.line() - 2);
    EXPECT_EQ(row.time(), sink.features[at * kF]);
    EXPECT_EQ(row.amount(), sink.features[at * kF + 29]);
  }
}

TEST(UploadSessionTest, MetricsEqualAnIndependentComputationFromTheScores) {
  const int64_t n = 2500;
  const std::string data = SyntheticCsv(n);
  FakeScorer scorer;
  scorer.threshold = 0.3;
  FakeSink sink;
  UploadSession session(Options(), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, data);
  ASSERT_THAT(summary, IsOk());
  const std::vector<int32_t> y = SyntheticLabels(n);
  std::vector<float> s;
  for (int64_t line = 2; line < n + 2; ++line) s.push_back(scorer.score_of_line.at(line));
  int64_t tp = 0, fp = 0, tn = 0, fn = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool flagged = s[i] >= 0.3f;
    tp += flagged && y[i] == 1;
    fp += flagged && y[i] == 0;
    tn += !flagged && y[i] == 0;
    fn += !flagged && y[i] == 1;
  }
  const auto& m = summary->metrics();
  EXPECT_TRUE(summary->scored());
  EXPECT_EQ(summary->model_version(), 7);
  EXPECT_EQ(m.rows(), n);
  EXPECT_EQ(m.positives(), tp + fn);
  EXPECT_FALSE(m.single_class());
  EXPECT_NEAR(m.auprc(), NaiveAveragePrecision(s, y), 1e-12);
  EXPECT_NEAR(m.roc_auc(), NaiveRocAuc(s, y), 1e-12);
  EXPECT_DOUBLE_EQ(m.threshold(), 0.3);
  EXPECT_EQ(m.confusion().true_positives(), tp);
  EXPECT_EQ(m.confusion().false_positives(), fp);
  EXPECT_EQ(m.confusion().true_negatives(), tn);
  EXPECT_EQ(m.confusion().false_negatives(), fn);
  EXPECT_NEAR(m.precision(), static_cast<double>(tp) / (tp + fp), 1e-12);
  EXPECT_NEAR(m.recall(), static_cast<double>(tp) / (tp + fn), 1e-12);
  EXPECT_NEAR(m.accuracy(), static_cast<double>(tp + tn) / n, 1e-12);
  EXPECT_EQ(summary->predicted_frauds(), tp + fp);
  EXPECT_GT(m.auprc_ci_high(), m.auprc_ci_low());
  EXPECT_GT(m.pr_curve_size(), 1);
}

TEST(UploadSessionTest, ExplainsExactlyTheAlertsOnceForEachBatchWithAlerts) {
  const int64_t n = 2500;  // 5 batches of 500
  FakeScorer scorer;
  scorer.threshold = 0.3;
  FakeSink sink;
  UploadSession session(Options(), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, SyntheticCsv(n));
  ASSERT_THAT(summary, IsOk());
  std::vector<int64_t> alerts;
  for (const auto& [line, score] : scorer.score_of_line) {
    if (score >= 0.3f) alerts.push_back(line);
  }
  ASSERT_FALSE(alerts.empty());
  EXPECT_EQ(sink.explained_lines, alerts);  // every alert, in line order, nothing else
  EXPECT_EQ(scorer.explained_rows, alerts.size());
  EXPECT_LE(scorer.explain_calls, 5);
  EXPECT_EQ(summary->alerts_explained(), summary->predicted_frauds());
  EXPECT_EQ(summary->explanation_message(), "");
}

TEST(UploadSessionTest, StoresAlertsWithoutReasonsWhenExplainingFails) {
  FakeScorer scorer;
  scorer.threshold = 0.3;
  scorer.explain_status = absl::UnavailableError("inference restarting");
  FakeSink sink;
  UploadSession session(Options(), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, SyntheticCsv(1200));
  ASSERT_THAT(summary, IsOk());
  EXPECT_TRUE(sink.committed);
  EXPECT_GT(summary->predicted_frauds(), 0);
  EXPECT_EQ(summary->alerts_explained(), 0);
  EXPECT_TRUE(sink.explained_lines.empty());
  EXPECT_THAT(summary->explanation_message(), HasSubstr("inference restarting"));
}

TEST(UploadSessionTest, DropsReasonsExplainedByAnotherModelVersion) {
  // A reload between scoring and explaining: the reasons would belong to another version.
  FakeScorer scorer;
  scorer.threshold = 0.3;
  scorer.explain_version = 8;
  FakeSink sink;
  UploadSession session(Options(), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, SyntheticCsv(1200));
  ASSERT_THAT(summary, IsOk());
  EXPECT_TRUE(sink.explained_lines.empty());
  EXPECT_EQ(summary->alerts_explained(), 0);
  EXPECT_THAT(summary->explanation_message(), HasSubstr("model 8 explained"));
}

TEST(UploadSessionTest, ExplainsNothingWhenTurnedOff) {
  FakeScorer scorer;
  scorer.threshold = 0.3;
  FakeSink sink;
  UploadSessionOptions o = Options();
  o.explain_top_k = 0;
  UploadSession session(o, &scorer, &sink);
  ASSERT_THAT(RunUpload(session, SyntheticCsv(1200)), IsOk());
  EXPECT_EQ(scorer.explain_calls, 0);
  EXPECT_TRUE(sink.explained_lines.empty());
}

common::v1::BudgetThreshold Budget(double fraction, double threshold, double precision,
                                   double recall) {
  common::v1::BudgetThreshold b;
  b.set_alert_fraction(fraction);
  b.set_threshold(threshold);
  b.set_precision(precision);
  b.set_recall(recall);
  return b;
}

TEST(UploadSessionTest, BudgetThresholdsOfTheModelAreCountedOnTheUpload) {
  const int64_t n = 2500;
  FakeScorer scorer;
  scorer.budgets = {Budget(0.001, 0.9, 0.8, 0.2), Budget(0.01, 0.2, 0.6, 0.5)};
  FakeSink sink;
  UploadSession session(Options(), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, SyntheticCsv(n));
  ASSERT_THAT(summary, IsOk());
  const std::vector<int32_t> y = SyntheticLabels(n);
  ASSERT_EQ(summary->budgets_size(), 2);
  int64_t frauds = 0;
  for (int32_t label : y) frauds += label == 1;
  for (int b = 0; b < 2; ++b) {
    const ingest::v1::BudgetOutcome& out = summary->budgets(b);
    const common::v1::BudgetThreshold& in = scorer.budgets[b];
    int64_t alerts = 0, true_alerts = 0;
    for (int64_t line = 2; line < n + 2; ++line) {
      if (scorer.score_of_line.at(line) >= in.threshold()) {
        ++alerts;
        true_alerts += y[line - 2] == 1;
      }
    }
    EXPECT_DOUBLE_EQ(out.alert_fraction(), in.alert_fraction());
    EXPECT_DOUBLE_EQ(out.threshold(), in.threshold());
    EXPECT_DOUBLE_EQ(out.validation_precision(), in.precision());
    EXPECT_DOUBLE_EQ(out.validation_recall(), in.recall());
    EXPECT_EQ(out.alerts(), alerts) << b;
    EXPECT_DOUBLE_EQ(out.alert_rate(), static_cast<double>(alerts) / n);
    EXPECT_TRUE(out.labelled());
    EXPECT_EQ(out.true_alerts(), true_alerts);
    EXPECT_DOUBLE_EQ(out.recall(), static_cast<double>(true_alerts) / frauds);
    if (alerts > 0) {
      EXPECT_DOUBLE_EQ(out.precision(), static_cast<double>(true_alerts) / alerts);
    }
  }
  // The lower threshold flags more rows; the test data has some above each.
  EXPECT_GT(summary->budgets(1).alerts(), summary->budgets(0).alerts());
  EXPECT_GT(summary->budgets(1).true_alerts(), 0);
}

TEST(UploadSessionTest, BudgetsOfAnUnlabelledUploadCountAlertsOnly) {
  FakeScorer scorer;
  scorer.budgets = {Budget(0.01, 0.2, 0.6, 0.5)};
  UploadSession session(Options(), &scorer, nullptr);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, SyntheticCsv(800, 3, false));
  ASSERT_THAT(summary, IsOk());
  ASSERT_EQ(summary->budgets_size(), 1);
  EXPECT_FALSE(summary->budgets(0).labelled());
  EXPECT_GT(summary->budgets(0).alerts(), 0);
  EXPECT_EQ(summary->budgets(0).true_alerts(), 0);
}

TEST(UploadSessionTest, NoBudgetsWithoutThemInTheManifestOrWithoutScoring) {
  FakeScorer scorer;
  UploadSession session(Options(), &scorer, nullptr);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, SyntheticCsv(300));
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(summary->budgets_size(), 0);
  FakeScorer none;
  none.budgets = {Budget(0.01, 0.2, 0.6, 0.5)};
  none.model_status = absl::NotFoundError("no model");
  UploadSession unscored(Options(), &none, nullptr);
  summary = RunUpload(unscored, SyntheticCsv(300));
  ASSERT_THAT(summary, IsOk());
  EXPECT_FALSE(summary->scored());
  EXPECT_EQ(summary->budgets_size(), 0);
}

TEST(UploadSessionTest, HistogramCountsSumToTheRowsSplitByLabel) {
  const int64_t n = 1800;
  FakeScorer scorer;
  FakeSink sink;
  UploadSession session(Options(), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, SyntheticCsv(n));
  ASSERT_THAT(summary, IsOk());
  ASSERT_EQ(summary->score_histogram_size(), 20);
  int64_t normal = 0, fraud = 0, unlabelled = 0;
  for (const auto& bin : summary->score_histogram()) {
    normal += bin.count_normal();
    fraud += bin.count_fraud();
    unlabelled += bin.count_unlabelled();
  }
  EXPECT_EQ(normal + fraud, n);
  EXPECT_EQ(fraud, summary->report().frauds());
  EXPECT_EQ(unlabelled, 0);
  EXPECT_DOUBLE_EQ(summary->score_histogram(19).upper(), 1.0);

  FakeScorer scorer2;
  FakeSink sink2;
  UploadSession unlabelled_session(Options(), &scorer2, &sink2);
  absl::StatusOr<UploadSummary> u = RunUpload(unlabelled_session, SyntheticCsv(n, 3, false));
  ASSERT_THAT(u, IsOk());
  int64_t total = 0;
  for (const auto& bin : u->score_histogram()) {
    EXPECT_EQ(bin.count_normal() + bin.count_fraud(), 0);
    total += bin.count_unlabelled();
  }
  EXPECT_EQ(total, n);
  // Without labels there are no metrics, but scores and the top list are there.
  EXPECT_FALSE(u->has_metrics());
  EXPECT_TRUE(u->scored());
  EXPECT_EQ(u->top_suspicious(0).label(), -1);
  EXPECT_EQ(u->report().labelled_rows(), 0);
}

TEST(UploadSessionTest, DataReportDescribesClassRatioTimeOrderAndAmounts) {
  std::string data = "Time";
  for (int i = 1; i <= 28; ++i) data += ",V" + std::to_string(i);
  data += ",Amount,Class\n";
  const std::vector<double> times = {10, 20, 15, 30, 30, 5};
  const std::vector<double> amounts = {1.5, 200, 0, 3.25, 10, 7};
  const std::vector<int> classes = {0, 1, 0, 0, 1, 0};
  for (size_t r = 0; r < times.size(); ++r) {
    std::ostringstream row;
    row << times[r];
    for (int i = 1; i <= 28; ++i) row << ",0.1";
    row << "," << amounts[r] << "," << classes[r] << "\n";
    data += row.str();
  }
  FakeScorer scorer;
  FakeSink sink;
  UploadSessionOptions o = Options();
  o.batch_rows = 4;
  UploadSession session(o, &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, data, 13);
  ASSERT_THAT(summary, IsOk());
  const auto& r = summary->report();
  EXPECT_EQ(r.rows(), 6);
  EXPECT_EQ(r.labelled_rows(), 6);
  EXPECT_EQ(r.frauds(), 2);
  EXPECT_DOUBLE_EQ(r.fraud_rate(), 2.0 / 6);
  EXPECT_EQ(r.time_min(), 5);
  EXPECT_EQ(r.time_max(), 30);
  EXPECT_FALSE(r.time_monotonic());
  EXPECT_EQ(r.time_decreases(), 2);  // 20 -> 15 and 30 -> 5 (30 -> 30 is not a decrease)
  EXPECT_DOUBLE_EQ(r.amount_mean(), (1.5 + 200 + 0 + 3.25 + 10 + 7) / 6);
  EXPECT_EQ(r.amount_max(), 200);
  EXPECT_EQ(r.drift_size(), 0);  // the model has no reference

  // One class only: the metrics say so instead of inventing an AUPRC.
  std::string normal_only = ReplaceLine(ReplaceLine(data, 3, ""), 6, "");
  FakeScorer scorer2;
  FakeSink sink2;
  UploadSession session2(o, &scorer2, &sink2);
  absl::StatusOr<UploadSummary> s2 = RunUpload(session2, normal_only);
  ASSERT_THAT(s2, IsOk());
  EXPECT_TRUE(s2->metrics().single_class());
  EXPECT_EQ(s2->metrics().auprc(), 0);
  EXPECT_TRUE(s2->report().time_monotonic() == false);
}

// Rows of one synthetic period (seed 11) and the drift references built from them.
struct ReferencePeriod {
  csv::GeneratorOptions options;
  std::vector<double> features;
  std::vector<common::v1::FeatureReference> references;
};
ReferencePeriod MakeReferencePeriod(int64_t n) {
  ReferencePeriod p;
  p.options.rows = n;
  p.options.seed = 11;
  csv::SyntheticGenerator gen(p.options);
  p.features.resize(n * kF);
  int32_t y;
  for (int64_t r = 0; r < n; ++r) gen.Next(p.features.data() + r * kF, &y);
  std::vector<std::string> names(csv::kFeatureNames.begin(), csv::kFeatureNames.end());
  absl::StatusOr<std::vector<common::v1::FeatureReference>> refs =
      eval::BuildFeatureReferences(p.features.data(), n, names);
  EXPECT_THAT(refs, IsOk());
  if (refs.ok()) p.references = *std::move(refs);
  return p;
}

TEST(UploadSessionTest, DriftFlagsAShiftedFeatureAgainstTheModelReference) {
  // Reference from one synthetic period; the upload multiplies every Amount by 20.
  const int64_t n = 3000;
  ReferencePeriod period = MakeReferencePeriod(n);
  const csv::GeneratorOptions& g = period.options;
  std::vector<double>& features = period.features;

  std::string data = csv::SyntheticCsvHeader(g);
  for (int64_t r = 0; r < n; ++r) {
    double* f = features.data() + r * kF;
    f[29] = f[29] * 20 + 100;
    csv::AppendCsvRow(f, 0, true, false, &data);
  }
  FakeScorer scorer;
  scorer.reference = period.references;
  FakeSink sink;
  UploadSession session(Options(), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, data);
  ASSERT_THAT(summary, IsOk());
  // Every feature but Time (it counts seconds from the file's start: see eval/drift.h).
  ASSERT_EQ(summary->report().drift_size(), kF - 1);
  EXPECT_EQ(summary->report().drift_min_rows(), eval::kMinDriftRows);
  EXPECT_THAT(summary->report().drift_note(), HasSubstr("Time is left out"));
  for (const auto& d : summary->report().drift()) {
    EXPECT_NE(d.feature(), "Time");
    EXPECT_TRUE(d.judged()) << d.feature();
    if (d.feature() == "Amount") {
      EXPECT_TRUE(d.flagged());
      EXPECT_GE(d.psi(), 0.25);
    } else {
      EXPECT_FALSE(d.flagged()) << d.feature() << " psi " << d.psi();
    }
  }
  EXPECT_EQ(summary->report().drift_flagged(), 1);
}

TEST(UploadSessionTest, DriftOfATinyUploadIsShownButNotJudged) {
  // Five rows of the reference's own distribution used to flag every feature (PSI of n rows is
  // about 9 / n by chance alone): below kMinDriftRows nothing is flagged.
  FakeScorer scorer;
  scorer.reference = MakeReferencePeriod(3000).references;
  FakeSink sink;
  UploadSession session(Options(), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, SyntheticCsv(5));
  ASSERT_THAT(summary, IsOk());
  ASSERT_EQ(summary->report().drift_size(), kF - 1);
  double max_psi = 0;
  for (const auto& d : summary->report().drift()) {
    EXPECT_FALSE(d.judged()) << d.feature();
    EXPECT_FALSE(d.flagged()) << d.feature();
    max_psi = std::max(max_psi, d.psi());
  }
  EXPECT_GT(max_psi, 0.25);  // the figure that used to be a verdict is still shown
  EXPECT_EQ(summary->report().drift_flagged(), 0);
}

TEST(UploadSessionTest, ChunkingAtOddBoundariesGivesIdenticalResults) {
  std::string data = SyntheticCsv(1500);
  // CRLF line endings and a BOM exercise more split points.
  std::string crlf = "\xEF\xBB\xBF";
  for (char c : data) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  UploadSummary reference;
  std::vector<int64_t> reference_lines;
  for (size_t chunk : {crlf.size(), size_t{1}, size_t{2}, size_t{7}, size_t{4093}, size_t{65536}}) {
    FakeScorer scorer;
    FakeSink sink;
    UploadSession session(Options(), &scorer, &sink);
    absl::StatusOr<UploadSummary> summary = RunUpload(session, crlf, chunk);
    ASSERT_THAT(summary, IsOk()) << chunk;
    summary->clear_elapsed_seconds();
    summary->clear_stages();  // wall-clock times, like elapsed_seconds
    EXPECT_EQ(summary->sha256(), Sha256Hex(crlf));
    EXPECT_EQ(summary->bytes(), static_cast<int64_t>(crlf.size()));
    if (chunk == crlf.size()) {
      reference = *summary;
      reference_lines = sink.lines;
      EXPECT_EQ(summary->rows_accepted(), 1500);
      continue;
    }
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*summary, reference))
        << "chunk " << chunk;
    EXPECT_EQ(sink.lines, reference_lines) << chunk;
  }
}

TEST(UploadSessionTest, UploadsLargerThanTheLimitFailWithResourceExhausted) {
  const std::string data = SyntheticCsv(200);
  UploadSessionOptions o = Options();
  o.max_upload_bytes = 10 * 1024;
  ASSERT_GT(data.size(), 10u * 1024);
  FakeScorer scorer;
  FakeSink sink;
  UploadSession session(o, &scorer, &sink);
  EXPECT_THAT(
      RunUpload(session, data, 1000),
      StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("upload exceeds the 10 KiB limit")));
  EXPECT_EQ(session.failure(), UploadFailure::kTooLarge);
  EXPECT_EQ(sink.stored_rows(), 0u);
  EXPECT_EQ(sink.aborts, 1);
  // The rejected chunk was never parsed.
  EXPECT_LE(session.counters().bytes, 10 * 1024);

  // Exactly at the limit is fine.
  UploadSessionOptions exact = Options();
  exact.max_upload_bytes = static_cast<int64_t>(data.size());
  FakeScorer scorer2;
  FakeSink sink2;
  UploadSession ok_session(exact, &scorer2, &sink2);
  EXPECT_THAT(RunUpload(ok_session, data, 999), IsOk());
  EXPECT_EQ(FormatByteLimit(int64_t{2} << 30), "2 GiB");
  EXPECT_EQ(FormatByteLimit(1000), "1000 bytes");
  EXPECT_EQ(FormatByteLimit(3 << 20), "3 MiB");
}

TEST(UploadSessionTest, NoModelServingStoresTheRowsUnscored) {
  FakeScorer scorer;
  scorer.model_status = absl::NotFoundError("no model loaded yet");
  FakeSink sink;
  UploadSession session(Options(), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, SyntheticCsv(1200));
  ASSERT_THAT(summary, IsOk());
  EXPECT_FALSE(summary->scored());
  EXPECT_EQ(summary->scoring_message(), kNoModelMessage);
  EXPECT_FALSE(summary->has_metrics());
  EXPECT_EQ(summary->top_suspicious_size(), 0);
  EXPECT_EQ(scorer.calls, 0);
  EXPECT_EQ(sink.stored_rows(), 1200u);
  EXPECT_EQ(sink.unscored_batches, sink.appends);
  EXPECT_TRUE(sink.scores.empty());
  EXPECT_EQ(summary->report().rows(), 1200);

  FakeScorer down;
  down.model_status = absl::UnavailableError("connection refused");
  FakeSink sink2;
  UploadSession session2(Options(), &down, &sink2);
  absl::StatusOr<UploadSummary> s2 = RunUpload(session2, SyntheticCsv(100));
  ASSERT_THAT(s2, IsOk());
  EXPECT_FALSE(s2->scored());
  EXPECT_THAT(s2->scoring_message(), HasSubstr("connection refused"));
  EXPECT_EQ(sink2.stored_rows(), 100u);
}

TEST(UploadSessionTest, ScoringThatFailsOnTheFirstBatchFallsBackToUnscored) {
  FakeScorer scorer;
  scorer.fail_call[1] = absl::UnavailableError("inference restarting");
  FakeSink sink;
  UploadSession session(Options(), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, SyntheticCsv(1200));
  ASSERT_THAT(summary, IsOk());
  EXPECT_FALSE(summary->scored());
  EXPECT_THAT(summary->scoring_message(), HasSubstr("inference restarting"));
  // The second batch was already being scored (pipelining); nothing after it was.
  EXPECT_EQ(scorer.calls, 2);
  EXPECT_TRUE(sink.scores.empty());
  EXPECT_EQ(sink.stored_rows(), 1200u);
}

TEST(UploadSessionTest, ScoringRunsOneBatchAheadOfStorage) {
  // Scoring batch N starts before batch N-1 is stored, so inference and storage work at once.
  class CountingSink : public FakeSink {
   public:
    explicit CountingSink(const FakeScorer* scorer) : scorer_(scorer) {}
    absl::Status Append(const csv::RowBatch& rows, const common::v1::ScoreBatch* s,
                        const RowExplanations& x) override {
      calls_at_append.push_back(scorer_->calls);
      return FakeSink::Append(rows, s, x);
    }
    std::vector<int> calls_at_append;

   private:
    const FakeScorer* scorer_;
  };
  FakeScorer scorer;
  CountingSink sink(&scorer);
  UploadSession session(Options(), &scorer, &sink);  // 500-row batches
  absl::StatusOr<UploadSummary> summary = RunUpload(session, SyntheticCsv(2100), 3000);
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(sink.calls_at_append, (std::vector<int>{2, 3, 4, 5, 5}));
  // Rows still arrive in file order, each with its own scores.
  ASSERT_EQ(sink.lines.size(), 2100u);
  for (size_t i = 0; i < sink.lines.size(); ++i) {
    ASSERT_EQ(sink.lines[i], static_cast<int64_t>(i) + 2);
    ASSERT_EQ(sink.scores[i], scorer.score_of_line.at(sink.lines[i]));
  }
}

TEST(UploadSessionTest, ScoringThatFailsMidUploadStoresNothing) {
  FakeScorer scorer;
  scorer.fail_call[2] = absl::UnavailableError("inference crashed");
  FakeSink sink;
  UploadSession session(Options(), &scorer, &sink);
  EXPECT_THAT(RunUpload(session, SyntheticCsv(1200)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("inference crashed")));
  EXPECT_EQ(session.failure(), UploadFailure::kScoring);
  EXPECT_EQ(sink.stored_rows(), 0u);
  EXPECT_EQ(sink.aborts, 1);
}

TEST(UploadSessionTest, StorageFailuresAbortTheUploadWithTheirStatus) {
  FakeScorer scorer;
  FakeSink sink;
  sink.begin_status = absl::UnavailableError("storage service unavailable: refused");
  UploadSession session(Options(), &scorer, &sink);
  EXPECT_THAT(session.Start(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(session.failure(), UploadFailure::kStorage);
  EXPECT_THAT(session.Feed("Time\n"), StatusIs(absl::StatusCode::kUnavailable));

  FakeSink sink2;
  sink2.fail_append_call = 2;
  sink2.append_status = absl::UnavailableError("storage service unavailable: reset");
  UploadSession session2(Options(), &scorer, &sink2);
  EXPECT_THAT(RunUpload(session2, SyntheticCsv(1200)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("reset")));
  EXPECT_EQ(session2.failure(), UploadFailure::kStorage);
  EXPECT_EQ(sink2.aborts, 1);
  EXPECT_FALSE(sink2.committed);

  // Every row went down, then rows_end failed: nothing is committed.
  FakeSink sink3;
  sink3.end_rows_status = absl::UnavailableError("storage service unavailable: gone at the end");
  UploadSession session3(Options(), &scorer, &sink3);
  EXPECT_THAT(RunUpload(session3, SyntheticCsv(1200)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("gone at the end")));
  EXPECT_EQ(session3.failure(), UploadFailure::kStorage);
  EXPECT_EQ(sink3.lines.size(), 1200u);
  EXPECT_TRUE(sink3.rows_ended);
  EXPECT_EQ(sink3.aborts, 1);
  EXPECT_FALSE(sink3.committed);
}

TEST(UploadSessionTest, DuplicateUploadReportsTheEarlierUpload) {
  FakeScorer scorer;
  FakeSink sink;
  sink.duplicate_of = 9;
  UploadSession session(Options(), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, SyntheticCsv(300));
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(summary->duplicate_of(), 9);
  EXPECT_EQ(summary->upload_id(), 9);
}

TEST(UploadSessionTest, CommitCarriesHashCountsAndTheSummaryAsJson) {
  const std::string data = SyntheticCsv(700);
  FakeScorer scorer;
  FakeSink sink;
  UploadSession session(Options(storage::v1::UPLOAD_MODE_LENIENT), &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, data);
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(sink.commit.sha256(), Sha256Hex(data));
  EXPECT_EQ(sink.commit.bytes(), static_cast<int64_t>(data.size()));
  EXPECT_EQ(sink.commit.rows_rejected(), 0);
  UploadSummary from_json;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(sink.commit.summary_json(), &from_json).ok());
  EXPECT_EQ(from_json.rows_accepted(), 700);
  EXPECT_EQ(from_json.sha256(), summary->sha256());
  EXPECT_DOUBLE_EQ(from_json.metrics().auprc(), summary->metrics().auprc());
  EXPECT_EQ(from_json.top_suspicious_size(), 20);
  EXPECT_EQ(from_json.mode(), storage::v1::UPLOAD_MODE_LENIENT);
  EXPECT_LT(sink.commit.summary_json().size(), 64u * 1024);
}

TEST(UploadSessionTest, ValidationOnlySessionNeedsNoScorerOrSink) {
  UploadSession session(Options(), nullptr, nullptr);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, SyntheticCsv(900));
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(summary->rows_accepted(), 900);
  EXPECT_EQ(summary->upload_id(), 0);
  EXPECT_FALSE(summary->scored());
  EXPECT_EQ(summary->report().rows(), 900);
}

TEST(UploadSessionTest, AbortBeforeFinishAbandonsTheSinkOnce) {
  FakeScorer scorer;
  FakeSink sink;
  {
    UploadSession session(Options(), &scorer, &sink);
    ASSERT_THAT(session.Start(), IsOk());
    const std::string data = SyntheticCsv(1200);
    ASSERT_THAT(session.Feed(std::string_view(data).substr(0, data.size() / 2)), IsOk());
    session.Abort();
    session.Abort();
    EXPECT_EQ(session.failure(), UploadFailure::kCancelled);
    EXPECT_THAT(session.Finish(), StatusIs(absl::StatusCode::kCancelled));
  }
  EXPECT_EQ(sink.aborts, 1);
  EXPECT_FALSE(sink.committed);

  // A session destroyed without Finish() aborts too.
  FakeSink sink2;
  {
    UploadSession session(Options(), &scorer, &sink2);
    ASSERT_THAT(session.Start(), IsOk());
  }
  EXPECT_EQ(sink2.aborts, 1);
}

TEST(UploadSessionTest, LenientUploadWithNoGoodRowFails) {
  std::string data = "Time";
  for (int i = 1; i <= 28; ++i) data += ",V" + std::to_string(i);
  data += ",Amount\n1,2\n3,4\n";
  FakeScorer scorer;
  FakeSink sink;
  UploadSession session(Options(storage::v1::UPLOAD_MODE_LENIENT), &scorer, &sink);
  EXPECT_THAT(RunUpload(session, data),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no valid rows: all 2 data rows were rejected")));
  EXPECT_EQ(sink.stored_rows(), 0u);
  EXPECT_EQ(session.PartialSummary().errors_size(), 2);
}

TEST(UploadSessionTest, LenientErrorListIsCappedAtMaxErrors) {
  std::string data = SyntheticCsv(300);
  for (int line = 2; line < 302; line += 2) data = ReplaceLine(data, line, "x");
  UploadSessionOptions o = Options(storage::v1::UPLOAD_MODE_LENIENT);
  o.max_errors = 5;
  FakeScorer scorer;
  FakeSink sink;
  UploadSession session(o, &scorer, &sink);
  absl::StatusOr<UploadSummary> summary = RunUpload(session, data);
  ASSERT_THAT(summary, IsOk());
  EXPECT_EQ(summary->rows_rejected(), 150);
  EXPECT_EQ(summary->errors_size(), 5);
  EXPECT_TRUE(summary->errors_truncated());
}

TEST(SummaryTrailerTest, LargeSummariesAreTrimmedToFitTheMetadataLimit) {
  UploadSummary summary;
  summary.set_rows_rejected(5000);
  for (int i = 0; i < 1000; ++i) {
    auto* e = summary.add_errors();
    e->set_line(i + 2);
    e->set_column("Amount");
    e->set_reason("not a number: 'some long text that keeps going and going'");
  }
  const std::string bytes = rpc::SerializeSummaryForTrailer(summary);
  EXPECT_LE(bytes.size(), rpc::kMaxSummaryTrailerBytes);
  UploadSummary back;
  ASSERT_TRUE(back.ParseFromString(bytes));
  EXPECT_GT(back.errors_size(), 10);
  EXPECT_LT(back.errors_size(), 1000);
  EXPECT_TRUE(back.errors_truncated());
  EXPECT_EQ(back.errors(0).line(), 2);
  EXPECT_EQ(back.rows_rejected(), 5000);

  UploadSummary one;
  one.add_errors()->set_reason(std::string(20000, 'x'));
  EXPECT_LE(rpc::SerializeSummaryForTrailer(one).size(), rpc::kMaxSummaryTrailerBytes);
}

TEST(SanitizeFileNameTest, ControlCharactersAreReplacedAndLongNamesCutAtACharacter) {
  EXPECT_EQ(*SanitizeFileName("part1.csv"), "part1.csv");
  EXPECT_EQ(*SanitizeFileName("a\nb\tc\x7f.csv"), "a_b_c_.csv");
  // 200 two-byte characters: the cut at 255 bytes must not split one.
  std::string long_name;
  for (int i = 0; i < 200; ++i) long_name += "\xC3\xA9";
  absl::StatusOr<std::string> cut = SanitizeFileName(long_name);
  ASSERT_THAT(cut, IsOk());
  EXPECT_EQ(cut->size(), 254u);
  EXPECT_THAT(SanitizeFileName("bad\xC3(.csv"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not valid UTF-8")));
}

}  // namespace
}  // namespace fraud::ingest
