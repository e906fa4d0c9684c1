// Feature drift of uploaded rows against the rows a model was trained on.
//
// BuildFeatureReferences() summarises each training column as quantile bin edges and the share of
// training rows per bin (fraud.common.v1.FeatureReference, stored in the model manifest).
// DriftAccumulator then counts the rows of an upload, batch by batch in O(bins) memory, into the
// same bins and reports per feature:
//   PSI = sum_i (a_i - e_i) * ln(a_i / e_i)   (a = upload share, e = training share, both floored
//                                              at kPsiFloor so empty bins stay finite)
//   KS  = max_i |A_i - E_i|                   (A, E cumulative shares: KS estimated on the bins)
// and flags a feature when PSI >= the flag threshold (0.25 by the usual rule of thumb).
//
// Two guards keep the verdicts meaningful:
// - Below kMinDriftRows rows an upload gets figures but no verdict (judged = false, never
//   flagged): with 10 bins, PSI of n rows drawn from the reference itself is about 9 / n by
//   chance alone (0.9 at 10 rows, 0.045 at 200), so a 5-row upload flagged every feature.
// - Time is left out (kDriftExcludedFeature): it counts seconds from each file's first row, so
//   its distribution says where a file starts, not what its transactions look like; every
//   upload of a later period was "large" drift.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fraud/common/v1/types.pb.h"

namespace fraud::eval {

using ::fraud::common::v1::FeatureReference;

inline constexpr int kDefaultDriftBins = 10;
inline constexpr double kPsiFloor = 1e-4;
inline constexpr double kDefaultPsiFlag = 0.25;
// Fewest rows for a drift verdict.
inline constexpr int64_t kMinDriftRows = 200;
// The column drift never reports, and why (shown in the upload's data report).
inline constexpr char kDriftExcludedFeature[] = "Time";
inline constexpr char kDriftNote[] =
    "Time is left out of drift: it counts seconds from each file's first row, so it shifts with "
    "every later upload whatever the data";

// One reference per column of `features` (row-major, names.size() values per row, `rows` rows),
// in column order. Edges are the empirical quantiles at 1/bins, ..., (bins-1)/bins, with
// duplicates removed (a constant column gets one edge). Bins are (-inf, e0], (e0, e1], ...,
// (e_last, +inf). InvalidArgument when rows == 0, names is empty or bins < 2.
absl::StatusOr<std::vector<FeatureReference>> BuildFeatureReferences(
    const double* features, size_t rows, const std::vector<std::string>& names,
    int bins = kDefaultDriftBins);

// Drift of one feature.
struct FeatureDrift {
  std::string feature;
  double psi = 0;
  double ks = 0;
  // False when fewer than the accumulator's min_rows were added: figures only, no verdict.
  bool judged = false;
  bool flagged = false;
};

// Streaming drift of rows against references. Not thread-safe; one per upload.
class DriftAccumulator {
 public:
  // `columns` names the columns of the rows passed to Add() (for example Time, V1..V28, Amount);
  // each reference is matched to its column by name; the reference of kDriftExcludedFeature is
  // skipped. InvalidArgument when a reference names no column, its edges are not ascending, or
  // fractions.size() != edges.size() + 1.
  static absl::StatusOr<DriftAccumulator> Create(
      const google::protobuf::RepeatedPtrField<FeatureReference>& references,
      const std::vector<std::string>& columns, double psi_flag = kDefaultPsiFlag,
      int64_t min_rows = kMinDriftRows);

  // Counts `rows` rows (row-major, columns.size() values per row).
  void Add(const double* features, size_t rows);

  int64_t rows() const { return rows_; }
  int64_t min_rows() const { return min_rows_; }
  // One result per reference (but the excluded one), in reference order. With no rows added every
  // figure is 0; with fewer than min_rows() rows nothing is judged or flagged.
  std::vector<FeatureDrift> Result() const;

 private:
  struct Column {
    std::string feature;
    size_t index = 0;
    std::vector<double> search;  // the edges padded with +inf to 2^k - 1 entries
    size_t top = 0;              // 2^(k-1): the first step of the binary search
    std::vector<double> expected;
    std::vector<int64_t> counts;
  };
  DriftAccumulator() = default;

  std::vector<Column> columns_;
  size_t stride_ = 0;
  double psi_flag_ = kDefaultPsiFlag;
  int64_t min_rows_ = kMinDriftRows;
  int64_t rows_ = 0;
};

// PSI and KS of observed bin counts against expected fractions (same number of bins).
FeatureDrift CompareBins(const std::vector<double>& expected, const std::vector<int64_t>& counts,
                         double psi_flag = kDefaultPsiFlag);

}  // namespace fraud::eval
