// Deterministic synthetic transactions in the exact format of the public "creditcardfraud" CSV:
//
//   "Time","V1",...,"V28","Amount","Class"
//   0,-1.3598071336738,...,-0.0210530534538215,149.62,"0"
//
// (the original Kaggle file quotes its header and its Class values; `quote` = false writes both
// bare, as the re-saved copies do). Rows come sorted by Time (integer seconds over two days,
// 0..172792, with a day/night intensity pattern); V1..V28 print with 15 significant digits and
// Amount with at most 2 decimals, as in the original.
//
// Class-conditional means and standard deviations follow the genuine sample's statistics
// (shared/data/STATS.md). Frauds differ from normal rows mainly in V14, V12, V10, V17, V4, V11,
// V3, V16 and V7, through a shared per-row "severity", so fraud features are correlated. About
// 15% of frauds are camouflaged (severity near 0), a few normal rows are fraud-like, and normal
// rows have heavy tails: a good model reaches an average precision of roughly 0.75-0.9, not 1.
//
// Determinism: the same options (seed included) give the same bytes on the same platform. The
// generator uses its own PRNG (xoshiro256**) and normal sampler (Marsaglia polar method), not
// <random>'s distributions, whose output differs between standard library versions.
//
// Memory is O(1) in the number of rows (plus a 1.4 MB time-intensity table).
// Thread-safety: none; one generator per thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "services/common/csv/transaction_row.h"

namespace fraud::csv {

struct GeneratorOptions {
  // Data rows to produce (>= 0).
  int64_t rows = 284807;
  uint64_t seed = 1;
  // Fraction of rows with Class 1, in [0, 1]; the count is exactly round(rows * fraud_rate).
  double fraud_rate = 0.00172;
  // Write the Class column.
  bool with_labels = true;
  // Write the header line (turn off to append a second period to an existing file).
  bool with_header = true;
  // Added to every Time (seconds), e.g. 172800 for "the next two days".
  int64_t time_offset = 0;
  // Quote the header names and Class values like the original file.
  bool quote = true;
};

// Number of seconds the Time column spans: rows get Time in [0, kTimeSpanSeconds].
constexpr int64_t kTimeSpanSeconds = 172792;

// Produces rows one at a time.
class SyntheticGenerator {
 public:
  explicit SyntheticGenerator(const GeneratorOptions& options);

  // Writes the next row's kNumFeatures features and its label (0/1) and returns true, or returns
  // false when all rows have been produced.
  bool Next(double* features, int32_t* label);

  int64_t rows_done() const { return done_; }
  int64_t frauds_total() const { return frauds_total_; }

 private:
  uint64_t NextU64();
  double Uniform();   // (0, 1)
  double Normal();    // standard normal
  double NextTime();  // ascending, integer seconds

  GeneratorOptions options_;
  uint64_t s_[4];
  bool have_spare_normal_ = false;
  double spare_normal_ = 0;

  int64_t done_ = 0;
  int64_t frauds_total_ = 0;
  int64_t frauds_left_ = 0;
  // Ascending uniform order statistic of the previous row.
  double order_stat_ = 0;
  // Cumulative day/night intensity per second, normalised to end at 1.
  std::vector<double> cumulative_;
  int64_t time_index_ = 0;
};

// Header line (with '\n') for the given options.
std::string SyntheticCsvHeader(const GeneratorOptions& options);

// Streams the CSV to `out`. Returns INVALID_ARGUMENT for bad options, DATA_LOSS when a write
// fails (e.g. disk full, closed pipe).
absl::Status WriteSyntheticCsv(const GeneratorOptions& options, std::ostream& out);
absl::Status WriteSyntheticCsv(const GeneratorOptions& options, std::FILE* out);

// Appends one row in the dataset's number format (no trailing newline handling beyond '\n').
void AppendCsvRow(const double* features, int32_t label, bool with_label, bool quote,
                  std::string* out);

}  // namespace fraud::csv
