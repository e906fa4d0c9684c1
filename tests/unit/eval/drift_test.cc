#include "services/common/eval/drift.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "tests/testing/status_matchers.h"

namespace fraud::eval {
namespace {

using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::ElementsAre;

// Two columns: "a" = 1..100, "b" = 7 (constant), row-major.
std::vector<double> TrainingRows() {
  std::vector<double> rows;
  for (int i = 1; i <= 100; ++i) {
    rows.push_back(i);
    rows.push_back(7.0);
  }
  return rows;
}

const std::vector<std::string> kColumns = {"a", "b"};

google::protobuf::RepeatedPtrField<FeatureReference> ToRepeated(
    const std::vector<FeatureReference>& refs) {
  google::protobuf::RepeatedPtrField<FeatureReference> out;
  for (const auto& r : refs) *out.Add() = r;
  return out;
}

TEST(FeatureReferenceTest, UsesQuantileEdgesAndTrainingShares) {
  const std::vector<double> rows = TrainingRows();
  absl::StatusOr<std::vector<FeatureReference>> refs =
      BuildFeatureReferences(rows.data(), 100, kColumns, 10);
  ASSERT_THAT(refs, IsOk());
  ASSERT_EQ(refs->size(), 2u);
  // Quantile q/10 of 1..100 is the value at sorted index floor(q/10 * 99): 10, 20, ..., 90.
  const FeatureReference& a = (*refs)[0];
  EXPECT_EQ(a.feature(), "a");
  EXPECT_THAT(a.edges(), ElementsAre(10, 20, 30, 40, 50, 60, 70, 80, 90));
  ASSERT_EQ(a.fractions_size(), 10);
  for (double f : a.fractions()) EXPECT_DOUBLE_EQ(f, 0.1);
  // A constant column collapses to one edge with everything in the first bin.
  const FeatureReference& b = (*refs)[1];
  EXPECT_THAT(b.edges(), ElementsAre(7));
  EXPECT_THAT(b.fractions(), ElementsAre(1.0, 0.0));
}

TEST(FeatureReferenceTest, RejectsEmptyInput) {
  EXPECT_THAT(BuildFeatureReferences(nullptr, 0, kColumns),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const std::vector<double> rows = TrainingRows();
  EXPECT_THAT(BuildFeatureReferences(rows.data(), 100, kColumns, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(DriftAccumulatorTest, ReportsNoDriftForTheTrainingDistribution) {
  const std::vector<double> rows = TrainingRows();
  auto refs = BuildFeatureReferences(rows.data(), 100, kColumns, 10);
  ASSERT_THAT(refs, IsOk());
  absl::StatusOr<DriftAccumulator> acc = DriftAccumulator::Create(ToRepeated(*refs), kColumns);
  ASSERT_THAT(acc, IsOk());
  acc->Add(rows.data(), 100);
  const std::vector<FeatureDrift> drift = acc->Result();
  ASSERT_EQ(drift.size(), 2u);
  for (const FeatureDrift& d : drift) {
    EXPECT_NEAR(d.psi, 0.0, 1e-12) << d.feature;
    EXPECT_NEAR(d.ks, 0.0, 1e-12) << d.feature;
    EXPECT_FALSE(d.flagged);
  }
}

TEST(DriftAccumulatorTest, MatchesHandComputedPsiForACollapsedFeature) {
  const std::vector<double> rows = TrainingRows();
  auto refs = BuildFeatureReferences(rows.data(), 100, kColumns, 10);
  ASSERT_THAT(refs, IsOk());
  absl::StatusOr<DriftAccumulator> acc =
      DriftAccumulator::Create(ToRepeated(*refs), kColumns, kDefaultPsiFlag, /*min_rows=*/1);
  ASSERT_THAT(acc, IsOk());
  // Every uploaded row has a = 5 (bin 0), b = 7 (bin 0, as in training).
  std::vector<double> upload;
  for (int i = 0; i < 50; ++i) {
    upload.push_back(5.0);
    upload.push_back(7.0);
  }
  acc->Add(upload.data(), 50);
  const std::vector<FeatureDrift> drift = acc->Result();
  // Feature a: upload shares [1, 0 x 9] (zeros floored at 1e-4) against 0.1 each:
  //   PSI = (1 - 0.1) ln(1 / 0.1) + 9 (1e-4 - 0.1) ln(1e-4 / 0.1)
  //       = 0.9 * 2.302585 + 9 * 0.0999 * 6.907755 = 2.072327 + 6.210763 = 8.283089.
  //   KS = max |cum upload - cum training| = |1 - 0.1| = 0.9.
  const double expected_psi = 0.9 * std::log(10.0) + 9 * (1e-4 - 0.1) * std::log(1e-4 / 0.1);
  EXPECT_NEAR(drift[0].psi, expected_psi, 1e-9);
  EXPECT_NEAR(drift[0].psi, 8.2831, 1e-4);
  EXPECT_NEAR(drift[0].ks, 0.9, 1e-12);
  EXPECT_TRUE(drift[0].flagged);
  EXPECT_NEAR(drift[1].psi, 0.0, 1e-12);
  EXPECT_FALSE(drift[1].flagged);
}

TEST(DriftAccumulatorTest, StreamingBatchesEqualOneBatch) {
  const std::vector<double> rows = TrainingRows();
  auto refs = BuildFeatureReferences(rows.data(), 100, kColumns, 10);
  ASSERT_THAT(refs, IsOk());
  std::vector<double> upload;
  for (int i = 0; i < 1000; ++i) {
    upload.push_back((i * 37) % 150);  // shifted to the right of the training range
    upload.push_back(i % 3 == 0 ? 8.0 : 7.0);
  }
  auto whole = DriftAccumulator::Create(ToRepeated(*refs), kColumns);
  auto pieces = DriftAccumulator::Create(ToRepeated(*refs), kColumns);
  ASSERT_THAT(whole, IsOk());
  ASSERT_THAT(pieces, IsOk());
  whole->Add(upload.data(), 1000);
  for (size_t start = 0; start < 1000; start += 7) {
    const size_t n = std::min<size_t>(7, 1000 - start);
    pieces->Add(upload.data() + start * 2, n);
  }
  EXPECT_EQ(pieces->rows(), 1000);
  const auto a = whole->Result();
  const auto b = pieces->Result();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_DOUBLE_EQ(a[i].psi, b[i].psi);
    EXPECT_DOUBLE_EQ(a[i].ks, b[i].ks);
    EXPECT_GT(a[i].psi, 0.1);
  }
}

TEST(DriftAccumulatorTest, ReportsZeroWithoutRows) {
  const std::vector<double> rows = TrainingRows();
  auto refs = BuildFeatureReferences(rows.data(), 100, kColumns, 10);
  auto acc = DriftAccumulator::Create(ToRepeated(*refs), kColumns);
  ASSERT_THAT(acc, IsOk());
  for (const FeatureDrift& d : acc->Result()) {
    EXPECT_EQ(d.psi, 0);
    EXPECT_EQ(d.ks, 0);
  }
}

TEST(DriftAccumulatorTest, RejectsMalformedReferences) {
  google::protobuf::RepeatedPtrField<FeatureReference> refs;
  FeatureReference* r = refs.Add();
  r->set_feature("zzz");
  r->add_edges(1);
  r->add_fractions(0.5);
  r->add_fractions(0.5);
  EXPECT_THAT(DriftAccumulator::Create(refs, kColumns),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("zzz")));
  r->set_feature("a");
  r->add_fractions(0.1);
  EXPECT_THAT(DriftAccumulator::Create(refs, kColumns),
              StatusIs(absl::StatusCode::kInvalidArgument));
  r->clear_fractions();
  r->add_fractions(0.5);
  r->add_fractions(0.5);
  r->add_fractions(0.0);
  r->add_edges(0.5);  // not ascending
  EXPECT_THAT(DriftAccumulator::Create(refs, kColumns),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("unsorted")));
}

// Bins are right-closed: a value equal to an edge counts in the bin below it, one just above in
// the next, and NaN in the first (as std::lower_bound placed them). Each single-value upload puts
// every row in one bin, and with shares 0.5 / 0.3 / 0.2 each bin gives its own PSI.
TEST(DriftAccumulatorTest, ValuesOnAnEdgeCountInTheBinBelowIt) {
  const double shares[3] = {0.5, 0.3, 0.2};
  FeatureReference ref;
  ref.set_feature("a");
  ref.add_edges(0.0);
  ref.add_edges(1.0);
  for (double f : shares) ref.add_fractions(f);
  google::protobuf::RepeatedPtrField<FeatureReference> refs;
  *refs.Add() = ref;
  // Every row in bin k: PSI = sum over bins of (upload - training) ln(upload / training), empty
  // upload bins floored at 1e-4.
  auto psi_of_bin = [&shares](int k) {
    double psi = 0;
    for (int j = 0; j < 3; ++j) {
      const double u = j == k ? 1.0 : 1e-4;
      psi += (u - shares[j]) * std::log(u / shares[j]);
    }
    return psi;
  };
  const struct {
    double x;
    int bin;
  } cases[] = {{-5, 0},  {0.0, 0},      {-0.0, 0},     {1e-300, 1},
               {1.0, 1}, {std::nextafter(1.0, 2.0), 2}, {INFINITY, 2},
               {-INFINITY, 0}, {NAN, 0}};
  for (const auto& c : cases) {
    absl::StatusOr<DriftAccumulator> acc =
        DriftAccumulator::Create(refs, {"a"}, kDefaultPsiFlag, /*min_rows=*/1);
    ASSERT_THAT(acc, IsOk());
    const std::vector<double> rows(4, c.x);
    acc->Add(rows.data(), rows.size());
    EXPECT_NEAR(acc->Result()[0].psi, psi_of_bin(c.bin), 1e-9) << "x = " << c.x;
  }
}

// Unequal expected shares 1 : 2 : ... : bins, so that counts in the wrong bins change PSI.
std::vector<double> Shares(size_t bins) {
  std::vector<double> f;
  for (size_t i = 1; i <= bins; ++i) f.push_back(2.0 * i / (bins * (bins + 1.0)));
  return f;
}

// Every number of edges the binary search pads differently (0 edges, exactly 2^k - 1, one more),
// several columns per row in a shuffled order, values on the edges, between them, beyond both
// ends, +-inf and NaN: the accumulator's figures equal CompareBins over counts made by
// std::lower_bound (the definition of the bin), exactly.
TEST(DriftAccumulatorTest, BinsEqualLowerBoundForEveryEdgeCount) {
  std::mt19937_64 rng(23);
  std::uniform_real_distribution<double> uniform(-3.0, 3.0);
  for (int n : {0, 1, 2, 3, 4, 6, 7, 8, 9, 14, 15, 16, 17, 31, 40}) {
    const std::vector<std::string> columns = {"x", "a", "y", "b"};  // refs for a and b only
    google::protobuf::RepeatedPtrField<FeatureReference> refs;
    std::vector<std::vector<double>> edges(2);
    for (int c = 0; c < 2; ++c) {
      std::vector<double>& e = edges[c];
      for (int i = 0; i < n; ++i) e.push_back(uniform(rng));
      if (c == 1 && n >= 2) {
        e[0] = -INFINITY;
        e[1] = INFINITY;
      }
      std::sort(e.begin(), e.end());
      e.erase(std::unique(e.begin(), e.end()), e.end());
      FeatureReference* ref = refs.Add();
      ref->set_feature(c == 0 ? "b" : "a");  // reference order differs from column order
      for (double v : e) ref->add_edges(v);
      for (double f : Shares(e.size() + 1)) ref->add_fractions(f);
    }
    std::vector<double> candidates = {NAN, INFINITY, -INFINITY, 0.0, -0.0, 1e308, -1e308};
    for (const auto& e : edges) {
      for (double v : e) {
        candidates.push_back(v);
        candidates.push_back(std::nextafter(v, INFINITY));
        candidates.push_back(std::nextafter(v, -INFINITY));
      }
    }
    std::vector<double> rows;
    std::vector<std::vector<int64_t>> want = {std::vector<int64_t>(edges[0].size() + 1),
                                              std::vector<int64_t>(edges[1].size() + 1)};
    const int kRows = 3000;
    for (int r = 0; r < kRows; ++r) {
      double v[2];
      for (double& x : v) {
        x = (r % 3 == 0) ? candidates[rng() % candidates.size()] : 4 * uniform(rng);
      }
      rows.insert(rows.end(), {uniform(rng), v[1], uniform(rng), v[0]});  // b = v[0], a = v[1]
      for (int c = 0; c < 2; ++c) {
        want[c][std::lower_bound(edges[c].begin(), edges[c].end(), v[c]) - edges[c].begin()]++;
      }
    }
    absl::StatusOr<DriftAccumulator> acc =
        DriftAccumulator::Create(refs, columns, kDefaultPsiFlag, /*min_rows=*/1);
    ASSERT_THAT(acc, IsOk()) << n << " edges";
    acc->Add(rows.data(), kRows / 2);
    acc->Add(rows.data() + kRows / 2 * columns.size(), kRows - kRows / 2);
    const std::vector<FeatureDrift> got = acc->Result();
    ASSERT_EQ(got.size(), 2u);
    for (int c = 0; c < 2; ++c) {
      const FeatureDrift d = CompareBins(Shares(edges[c].size() + 1), want[c], kDefaultPsiFlag);
      EXPECT_EQ(got[c].psi, d.psi) << n << " edges, column " << c;
      EXPECT_EQ(got[c].ks, d.ks) << n << " edges, column " << c;
    }
  }
}

}  // namespace
}  // namespace fraud::eval

namespace fraud::eval {
namespace {

TEST(DriftAccumulatorTest, BelowTheMinimumRowsFiguresAreShownButNothingIsJudged) {
  const std::vector<double> rows = TrainingRows();
  auto refs = BuildFeatureReferences(rows.data(), 100, kColumns, 10);
  ASSERT_THAT(refs, IsOk());
  absl::StatusOr<DriftAccumulator> acc = DriftAccumulator::Create(ToRepeated(*refs), kColumns);
  ASSERT_THAT(acc, IsOk());
  EXPECT_EQ(acc->min_rows(), kMinDriftRows);
  std::vector<double> upload;
  for (int i = 0; i < 50; ++i) {
    upload.push_back(5.0);
    upload.push_back(7.0);
  }
  acc->Add(upload.data(), 50);  // the collapsed feature of the test above: PSI 8.28
  for (const FeatureDrift& d : acc->Result()) {
    EXPECT_FALSE(d.judged) << d.feature;
    EXPECT_FALSE(d.flagged) << d.feature;
  }
  EXPECT_NEAR(acc->Result()[0].psi, 8.2831, 1e-4);
  // From kMinDriftRows rows on, the same shift is a verdict.
  for (int64_t added = 50; added < kMinDriftRows; added += 50) acc->Add(upload.data(), 50);
  EXPECT_TRUE(acc->Result()[0].judged);
  EXPECT_TRUE(acc->Result()[0].flagged);
}

TEST(DriftAccumulatorTest, LeavesTimeOut) {
  const std::vector<std::string> columns = {"Time", "b"};
  const std::vector<double> rows = TrainingRows();
  auto refs = BuildFeatureReferences(rows.data(), 100, columns, 10);
  ASSERT_THAT(refs, IsOk());
  absl::StatusOr<DriftAccumulator> acc = DriftAccumulator::Create(ToRepeated(*refs), columns);
  ASSERT_THAT(acc, IsOk());
  acc->Add(rows.data(), 100);
  const std::vector<FeatureDrift> drift = acc->Result();
  ASSERT_EQ(drift.size(), 1u);
  EXPECT_EQ(drift[0].feature, "b");
}

}  // namespace
}  // namespace fraud::eval

