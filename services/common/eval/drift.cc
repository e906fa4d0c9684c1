#include "services/common/eval/drift.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace fraud::eval {
namespace {

// The bin of x among `search`: the column's edges padded with +inf to 2^k - 1 entries, `top` =
// 2^(k-1). Bins are right-closed: x <= e0 is bin 0, so the bin is the number of edges below x
// (what lower_bound returns; NaN is below none, and no finite x is above the padding). A
// branchless binary search: k steps of a conditional add, no mispredictions. Ingest bins every
// value of every upload (29 columns per row); a linear count over ~10 edges per value, column by
// column, was 15% of ingest's CPU in an upload (perf, 1,139,228 rows); this way, row by row, is
// 1.8-3.7x faster in a microbenchmark over the same number of values.
size_t BinOf(const double* search, size_t top, double x) {
  size_t below = 0;
  for (size_t step = top; step > 0; step >>= 1) below += search[below + step - 1] < x ? step : 0;
  return below;
}

}  // namespace

absl::StatusOr<std::vector<FeatureReference>> BuildFeatureReferences(
    const double* features, size_t rows, const std::vector<std::string>& names, int bins) {
  if (rows == 0) return absl::InvalidArgumentError("no rows to build a drift reference from");
  if (names.empty()) return absl::InvalidArgumentError("no columns to build a drift reference");
  if (bins < 2) return absl::InvalidArgumentError("a drift reference needs at least 2 bins");
  const size_t cols = names.size();
  std::vector<FeatureReference> refs(cols);
  std::vector<double> column(rows);
  for (size_t c = 0; c < cols; ++c) {
    for (size_t r = 0; r < rows; ++r) column[r] = features[r * cols + c];
    std::sort(column.begin(), column.end());
    std::vector<double> edges;
    for (int q = 1; q < bins; ++q) {
      const size_t idx = static_cast<size_t>(
          std::floor(static_cast<double>(q) / bins * static_cast<double>(rows - 1)));
      const double e = column[idx];
      if (edges.empty() || e > edges.back()) edges.push_back(e);
    }
    std::vector<int64_t> counts(edges.size() + 1, 0);
    // The column is sorted, so bin counts are differences of upper bounds.
    size_t prev = 0;
    for (size_t b = 0; b < edges.size(); ++b) {
      const size_t upto = static_cast<size_t>(
          std::upper_bound(column.begin(), column.end(), edges[b]) - column.begin());
      counts[b] = static_cast<int64_t>(upto - prev);
      prev = upto;
    }
    counts.back() = static_cast<int64_t>(rows - prev);
    FeatureReference& ref = refs[c];
    ref.set_feature(names[c]);
    for (double e : edges) ref.add_edges(e);
    for (int64_t n : counts) {
      ref.add_fractions(static_cast<double>(n) / static_cast<double>(rows));
    }
  }
  return refs;
}

absl::StatusOr<DriftAccumulator> DriftAccumulator::Create(
    const google::protobuf::RepeatedPtrField<FeatureReference>& references,
    const std::vector<std::string>& columns, double psi_flag, int64_t min_rows) {
  DriftAccumulator acc;
  acc.stride_ = columns.size();
  acc.psi_flag_ = psi_flag;
  acc.min_rows_ = min_rows;
  for (const FeatureReference& ref : references) {
    if (ref.feature() == kDriftExcludedFeature) continue;
    auto it = std::find(columns.begin(), columns.end(), ref.feature());
    if (it == columns.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("drift reference names unknown feature '", ref.feature(), "'"));
    }
    if (ref.fractions_size() != ref.edges_size() + 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("drift reference for ", ref.feature(), " has ", ref.edges_size(),
                       " edges but ", ref.fractions_size(), " fractions (want edges + 1)"));
    }
    for (int i = 1; i < ref.edges_size(); ++i) {
      if (!(ref.edges(i) > ref.edges(i - 1))) {
        return absl::InvalidArgumentError(
            absl::StrCat("drift reference for ", ref.feature(), " has unsorted edges"));
      }
    }
    Column col;
    col.feature = ref.feature();
    col.index = static_cast<size_t>(it - columns.begin());
    size_t slots = 1;  // 2^k - 1 >= edges
    while (slots < static_cast<size_t>(ref.edges_size())) slots = slots * 2 + 1;
    col.search.assign(ref.edges().begin(), ref.edges().end());
    col.search.resize(slots, std::numeric_limits<double>::infinity());
    col.top = (slots + 1) / 2;
    col.expected.assign(ref.fractions().begin(), ref.fractions().end());
    col.counts.assign(col.expected.size(), 0);
    acc.columns_.push_back(std::move(col));
  }
  return acc;
}

void DriftAccumulator::Add(const double* features, size_t rows) {
  for (size_t r = 0; r < rows; ++r) {
    const double* row = features + r * stride_;
    for (Column& col : columns_) ++col.counts[BinOf(col.search.data(), col.top, row[col.index])];
  }
  rows_ += static_cast<int64_t>(rows);
}

std::vector<FeatureDrift> DriftAccumulator::Result() const {
  std::vector<FeatureDrift> out;
  out.reserve(columns_.size());
  for (const Column& col : columns_) {
    FeatureDrift d = CompareBins(col.expected, col.counts, psi_flag_);
    d.feature = col.feature;
    d.judged = rows_ >= min_rows_;
    d.flagged = d.flagged && d.judged;
    out.push_back(std::move(d));
  }
  return out;
}

FeatureDrift CompareBins(const std::vector<double>& expected, const std::vector<int64_t>& counts,
                         double psi_flag) {
  FeatureDrift d;
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  if (total == 0 || expected.size() != counts.size()) return d;
  double cum_e = 0;
  double cum_a = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double a_raw = static_cast<double>(counts[i]) / static_cast<double>(total);
    cum_e += expected[i];
    cum_a += a_raw;
    d.ks = std::max(d.ks, std::fabs(cum_a - cum_e));
    const double a = std::max(a_raw, kPsiFloor);
    const double e = std::max(expected[i], kPsiFloor);
    d.psi += (a - e) * std::log(a / e);
  }
  d.judged = true;
  d.flagged = d.psi >= psi_flag;
  return d;
}

}  // namespace fraud::eval
