// In-memory labelled rows for training, and the time-ordered split of a run.
//
// Rows arrive from storage's ScanTransactions in batches; RunSplitter files each row into the
// comparison set (the fixed held-out set: never trained on, never used for tuning) or the training
// pool as it streams, so only compact row-major arrays are held (285k rows x 30 doubles ~ 68 MB).
// Finish() then cuts the pool by Time: the newest `validation_fraction` of it is the validation
// window (early stopping, grid choice, threshold), the rest is the training set.
//
// Memory: the splitter holds rows in fixed-size blocks (RowBlocks), so loading never copies what
// it already holds (a doubling vector briefly holds up to 3x the rows while it grows), and
// Finish() frees each block as soon as all its rows are copied into the parts. Storage scans in
// Time order, so the peak while splitting stays near 1x the rows, not 2x.
//
// When the request names no comparison set, the newest `holdout_fraction` of all rows (by Time)
// is held out as the comparison set instead, before the validation window is cut.
//
// Thread-safety: none (value types and a single-threaded builder).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <vector>

#include "absl/status/statusor.h"
#include "fraud/common/v1/types.pb.h"
#include "services/common/csv/transaction_row.h"

namespace fraud::training {

inline constexpr int kNumFeatures = csv::kNumFeatures;

// Labelled rows, row-major (kNumFeatures doubles per row, Time first).
struct Dataset {
  std::vector<double> features;
  std::vector<int32_t> labels;
  std::vector<int64_t> upload_ids;

  size_t rows() const { return labels.size(); }
  bool empty() const { return labels.empty(); }
  const double* row(size_t i) const { return features.data() + i * kNumFeatures; }
  double time(size_t i) const { return features[i * kNumFeatures + csv::kTimeIndex]; }
  int64_t frauds() const;
  void Append(const double* row, int32_t label, int64_t upload_id);
  // Appends every row of `batch` (labels required; upload ids optional, 0 when absent).
  // InvalidArgument when the batch is malformed or unlabelled.
  absl::Status AppendBatch(const common::v1::TransactionBatch& batch);
  // The rows at `indices`, in that order.
  Dataset Select(const std::vector<size_t>& indices) const;
  // Time range of the rows (0, 0 when empty).
  double time_min() const;
  double time_max() const;
  // Distinct upload ids of the rows, ascending (0 = unknown is left out).
  std::vector<int64_t> DistinctUploads() const;
  // Empties the dataset and releases its memory.
  void Clear();
};

// Which rows form the fixed comparison set.
struct ComparisonSpec {
  std::set<int64_t> upload_ids;
  // time_min <= Time < time_max; active when time_max > time_min.
  double time_min = 0;
  double time_max = 0;
  bool empty() const { return upload_ids.empty() && !(time_max > time_min); }
  bool Contains(int64_t upload_id, double time) const;
};

struct SplitOptions {
  ComparisonSpec comparison;
  // Newest fraction of the training pool used as the validation window, in (0, 1).
  double validation_fraction = 0.2;
  // When `comparison` is empty: newest fraction of all rows held out as the comparison set
  // ([0, 1); 0 = no comparison set).
  double holdout_fraction = 0.1;
  // Rows with Time >= train_time_max never enter the training pool (0 = no limit).
  double train_time_max = 0;
  // At most this many rows form the training pool (validation window and holdout included): the
  // newest by Time; older rows are dropped while the scan streams, so memory stays bounded by
  // this number however many rows storage holds (0 = no limit). Relies on storage scanning in
  // Time order (ScanTransactions' contract); rows arriving out of order are still cut exactly
  // by Time among those held.
  size_t max_pool_rows = 0;
};

// The three disjoint parts of a run's data. Each part is sorted by Time (stable).
struct SplitData {
  Dataset train;
  Dataset validation;
  Dataset comparison;
  // True when the comparison set was held out by holdout_fraction (not named by the request).
  bool comparison_is_holdout = false;
  // Older rows left out of the pool by SplitOptions::max_pool_rows.
  int64_t rows_over_limit = 0;
};

// Labelled rows in blocks of kRowsPerBlock; see the memory note at the top.
class RowBlocks {
 public:
  static constexpr size_t kRowsPerBlock = 4096;

  void Append(const double* row, int32_t label, int64_t upload_id);
  // Rows held (appended and not dropped).
  size_t rows() const { return rows_ - dropped_; }
  double time(size_t i) const;
  // Frees the oldest blocks while at least `keep` rows remain without them.
  void DropOldestBeyond(size_t keep);
  // Indices of the rows held, sorted by Time, stable.
  std::vector<size_t> TimeOrder() const;
  // Copies the rows at indices [begin, end) into a Dataset, in that order. Each row may be taken
  // once over all calls: a block is freed when its last row has been taken.
  Dataset Take(const size_t* begin, const size_t* end);

 private:
  struct Block {
    std::vector<double> features;
    std::vector<int32_t> labels;
    std::vector<int64_t> upload_ids;
    size_t untaken = 0;
  };
  std::vector<std::unique_ptr<Block>> blocks_;  // dropped blocks are null
  size_t rows_ = 0;                              // appended, dropped ones included
  size_t dropped_ = 0;                           // rows of the dropped (oldest) blocks
};

class RunSplitter {
 public:
  explicit RunSplitter(SplitOptions options);

  // Files every row of the batch. InvalidArgument for malformed or unlabelled batches.
  absl::Status Add(const common::v1::TransactionBatch& batch);
  // Files one row (used by tests and in-process callers).
  void AddRow(const double* row, int32_t label, int64_t upload_id);

  int64_t rows_seen() const { return rows_seen_; }

  // Cuts the validation window (and the holdout, when configured). InvalidArgument for bad
  // fractions; FailedPrecondition when the training pool is too small to split (fewer than 2 rows).
  absl::StatusOr<SplitData> Finish() &&;

 private:
  SplitOptions options_;
  RowBlocks pool_;
  RowBlocks comparison_;
  int64_t rows_seen_ = 0;
  int64_t pool_rows_seen_ = 0;
};

// How many of `rows` rows form the newest `fraction`: round(rows * fraction), at least 1 when
// fraction > 0 and rows >= 2, at most rows - 1.
size_t NewestCount(size_t rows, double fraction);

// Indices of `data` sorted by Time, stable (rows with equal Time keep their order).
std::vector<size_t> TimeOrder(const Dataset& data);

// Cuts `data` (any order) into the older part and the newest `fraction` of its rows by Time:
// newest_count = round(rows * fraction), at least 1 when fraction > 0 and rows >= 2, and at most
// rows - 1. Both parts come out sorted by Time.
void SplitNewest(const Dataset& data, double fraction, Dataset* older, Dataset* newest);

}  // namespace fraud::training
