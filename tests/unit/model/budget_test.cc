// The default candidate set must train on 200,000 rows within 120 s on 2 cores with a peak RSS
// of at most 1.5 GB. Prints one line per candidate (time, epochs, validation AUPRC, RSS).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "services/common/eval/metrics.h"
#include "services/common/model/artifact.h"
#include "services/common/core/process_memory.h"
#include "services/common/model/trainer.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/model/synthetic_data.h"

namespace fraud::model {
namespace {

using ::fraud::testing::IsOk;

Dataset Slice(const Dataset& d, size_t begin, size_t end) {
  Dataset out;
  out.features.assign(d.features.begin() + begin * kNumFeatures,
                      d.features.begin() + end * kNumFeatures);
  out.labels.assign(d.labels.begin() + begin, d.labels.begin() + end);
  return out;
}

TEST(TrainingBudgetTest, DefaultCandidatesTrainOn200kRowsWithinTimeAndMemory) {
  constexpr size_t kRows = 200000;
  // The real data's fraud rate (0.17%) and a moderate class separation.
  Dataset all = testing::MakeSyntheticData(kRows, 0.0017, 1.5, 5);
  // Time-ordered split: the newest 20% validate.
  const Dataset train = Slice(all, 0, kRows * 8 / 10);
  const Dataset validation = Slice(all, kRows * 8 / 10, kRows);
  all = Dataset();
  const auto start = std::chrono::steady_clock::now();
  // FRAUD_TRAIN_THREADS overrides the candidates' thread count for experiments.
  const char* threads = std::getenv("FRAUD_TRAIN_THREADS");
  for (CandidateSpec spec : DefaultCandidates()) {
    if (threads != nullptr) spec.threads = std::atoi(threads);
    absl::StatusOr<TrainedCandidate> c = TrainCandidate(spec, train, validation);
    ASSERT_THAT(c, IsOk()) << spec.Name();
    std::printf("%-60s %6.1f s  epochs %2zu (best %2d)  val AUPRC %.3f  peak RSS %5.0f MB\n",
                c->name.c_str(), c->train_seconds, c->curve.size(), c->best_epoch,
                c->validation_metrics().auprc(), PeakRssBytes() / 1e6);
    std::fflush(stdout);
  }
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("total %.1f s, peak RSS %.0f MB\n", total, PeakRssBytes() / 1e6);
  RecordProperty("total_seconds", std::to_string(total));
  RecordProperty("peak_rss_bytes", std::to_string(PeakRssBytes()));
  EXPECT_LE(total, 120.0);
  EXPECT_LE(PeakRssBytes(), int64_t{1500} * 1000 * 1000);
}

// Reads Time,V1..V28,Amount,Class rows (Class may be quoted). Test helper, not a validator.
bool ReadCreditcardCsv(const std::string& path, Dataset* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string cell;
    for (size_t c = 0; c <= kNumFeatures; ++c) {
      if (!std::getline(ss, cell, ',')) return false;
      if (!cell.empty() && cell.front() == '"') cell = cell.substr(1, cell.size() - 2);
      if (c < kNumFeatures) {
        out->features.push_back(std::stod(cell));
      } else {
        out->labels.push_back(std::stoi(cell));
      }
    }
  }
  return true;
}

TEST(RealDataTest, DefaultCandidatesOnTheTimeOrderedSample) {
  const char* path = std::getenv("FRAUD_REAL_DATA");
  if (path == nullptr) GTEST_SKIP() << "FRAUD_REAL_DATA is not set";
  Dataset all;
  ASSERT_TRUE(ReadCreditcardCsv(path, &all));
  // STATS.md: the initial 100,000 rows end near Time 67,736 s; part 4 starts near 149,681 s.
  Dataset initial;
  Dataset part4;
  for (size_t r = 0; r < all.rows(); ++r) {
    const double t = all.features[r * kNumFeatures];
    Dataset* to = t < 67736 ? &initial : (t >= 149681 ? &part4 : nullptr);
    if (to == nullptr) continue;
    to->features.insert(to->features.end(), all.features.begin() + r * kNumFeatures,
                        all.features.begin() + (r + 1) * kNumFeatures);
    to->labels.push_back(all.labels[r]);
  }
  const size_t cut = initial.rows() * 8 / 10;
  const Dataset train = Slice(initial, 0, cut);
  const Dataset validation = Slice(initial, cut, initial.rows());
  double best = 0;
  for (const CandidateSpec& spec : DefaultCandidates()) {
    absl::StatusOr<TrainedCandidate> c = TrainCandidate(spec, train, validation);
    ASSERT_THAT(c, IsOk()) << spec.Name();
    std::vector<float> scores(part4.rows());
    ASSERT_THAT(c->runtime->Score(part4.features.data(), part4.rows(), scores.data()), IsOk());
    const double p4 = *eval::AveragePrecision(scores, part4.labels);
    best = std::max(best, p4);
    std::printf("%-60s %5.1f s  val AUPRC %.3f  part-4 AUPRC %.3f\n", c->name.c_str(),
                c->train_seconds, c->validation_metrics().auprc(), p4);
    std::fflush(stdout);
  }
  EXPECT_GT(best, 0.5);
}

}  // namespace
}  // namespace fraud::model
