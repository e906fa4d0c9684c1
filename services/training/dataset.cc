#include "services/training/dataset.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/core/status_macros.h"

namespace fraud::training {

int64_t Dataset::frauds() const {
  int64_t n = 0;
  for (int32_t y : labels) n += y == 1;
  return n;
}

void Dataset::Append(const double* row, int32_t label, int64_t upload_id) {
  features.insert(features.end(), row, row + kNumFeatures);
  labels.push_back(label);
  upload_ids.push_back(upload_id);
}

namespace {

// InvalidArgument unless the batch carries kNumFeatures values and a label per row.
absl::Status CheckLabelledBatch(const common::v1::TransactionBatch& batch) {
  const size_t n = batch.num_rows();
  if (static_cast<size_t>(batch.features_size()) != n * kNumFeatures) {
    return absl::InvalidArgumentError(absl::StrCat("batch of ", n, " rows carries ",
                                                   batch.features_size(), " feature values"));
  }
  if (static_cast<size_t>(batch.labels_size()) != n) {
    return absl::InvalidArgumentError("batch rows are unlabelled");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Dataset::AppendBatch(const common::v1::TransactionBatch& batch) {
  const size_t n = batch.num_rows();
  FRAUD_RETURN_IF_ERROR(CheckLabelledBatch(batch));
  const bool has_uploads = static_cast<size_t>(batch.upload_ids_size()) == n;
  features.reserve(features.size() + n * kNumFeatures);
  for (size_t i = 0; i < n; ++i) {
    Append(batch.features().data() + i * kNumFeatures, batch.labels(i),
           has_uploads ? batch.upload_ids(i) : 0);
  }
  return absl::OkStatus();
}

Dataset Dataset::Select(const std::vector<size_t>& indices) const {
  Dataset out;
  out.features.reserve(indices.size() * kNumFeatures);
  out.labels.reserve(indices.size());
  out.upload_ids.reserve(indices.size());
  for (size_t i : indices) out.Append(row(i), labels[i], upload_ids[i]);
  return out;
}

double Dataset::time_min() const {
  if (empty()) return 0;
  double t = time(0);
  for (size_t i = 1; i < rows(); ++i) t = std::min(t, time(i));
  return t;
}

double Dataset::time_max() const {
  if (empty()) return 0;
  double t = time(0);
  for (size_t i = 1; i < rows(); ++i) t = std::max(t, time(i));
  return t;
}

std::vector<int64_t> Dataset::DistinctUploads() const {
  std::set<int64_t> ids(upload_ids.begin(), upload_ids.end());
  ids.erase(0);
  return {ids.begin(), ids.end()};
}

void Dataset::Clear() {
  // clear() keeps the capacity; a run would hold the memory of a finished phase to its end.
  std::vector<double>().swap(features);
  std::vector<int32_t>().swap(labels);
  std::vector<int64_t>().swap(upload_ids);
}

void RowBlocks::Append(const double* row, int32_t label, int64_t upload_id) {
  if (rows_ % kRowsPerBlock == 0) {
    auto block = std::make_unique<Block>();
    block->features.reserve(kRowsPerBlock * kNumFeatures);
    block->labels.reserve(kRowsPerBlock);
    block->upload_ids.reserve(kRowsPerBlock);
    blocks_.push_back(std::move(block));
  }
  Block& b = *blocks_.back();
  b.features.insert(b.features.end(), row, row + kNumFeatures);
  b.labels.push_back(label);
  b.upload_ids.push_back(upload_id);
  ++b.untaken;
  ++rows_;
}

double RowBlocks::time(size_t i) const {
  return blocks_[i / kRowsPerBlock]->features[(i % kRowsPerBlock) * kNumFeatures + csv::kTimeIndex];
}

void RowBlocks::DropOldestBeyond(size_t keep) {
  for (size_t b = dropped_ / kRowsPerBlock; b + 1 < blocks_.size(); ++b) {
    const size_t in_block = blocks_[b]->labels.size();
    if (rows() - in_block < keep) return;
    blocks_[b].reset();
    dropped_ += in_block;
  }
}

std::vector<size_t> RowBlocks::TimeOrder() const {
  std::vector<size_t> order(rows());
  std::iota(order.begin(), order.end(), dropped_);
  std::vector<double> times(rows());
  for (size_t i = dropped_; i < rows_; ++i) times[i - dropped_] = time(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return times[a - dropped_] < times[b - dropped_];
  });
  return order;
}

Dataset RowBlocks::Take(const size_t* begin, const size_t* end) {
  Dataset out;
  const size_t n = static_cast<size_t>(end - begin);
  // Reserved, not touched: pages become resident only as rows are copied in, while the blocks
  // they come from are freed.
  out.features.reserve(n * kNumFeatures);
  out.labels.reserve(n);
  out.upload_ids.reserve(n);
  for (const size_t* it = begin; it != end; ++it) {
    std::unique_ptr<Block>& block = blocks_[*it / kRowsPerBlock];
    const size_t j = *it % kRowsPerBlock;
    out.Append(block->features.data() + j * kNumFeatures, block->labels[j], block->upload_ids[j]);
    if (--block->untaken == 0) block.reset();
  }
  return out;
}

bool ComparisonSpec::Contains(int64_t upload_id, double time) const {
  if (upload_ids.count(upload_id) > 0) return true;
  return time_max > time_min && time >= time_min && time < time_max;
}

RunSplitter::RunSplitter(SplitOptions options) : options_(std::move(options)) {}

absl::Status RunSplitter::Add(const common::v1::TransactionBatch& batch) {
  const size_t n = batch.num_rows();
  FRAUD_RETURN_IF_ERROR(CheckLabelledBatch(batch));
  const bool has_uploads = static_cast<size_t>(batch.upload_ids_size()) == n;
  for (size_t i = 0; i < n; ++i) {
    AddRow(batch.features().data() + i * kNumFeatures, batch.labels(i),
           has_uploads ? batch.upload_ids(i) : 0);
  }
  return absl::OkStatus();
}

void RunSplitter::AddRow(const double* row, int32_t label, int64_t upload_id) {
  ++rows_seen_;
  const double time = row[csv::kTimeIndex];
  if (options_.comparison.Contains(upload_id, time)) {
    comparison_.Append(row, label, upload_id);
    return;
  }
  if (options_.train_time_max > 0 && time >= options_.train_time_max) return;
  pool_.Append(row, label, upload_id);
  ++pool_rows_seen_;
  if (options_.max_pool_rows > 0) pool_.DropOldestBeyond(options_.max_pool_rows);
}

std::vector<size_t> TimeOrder(const Dataset& data) {
  std::vector<size_t> order(data.rows());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return data.time(a) < data.time(b); });
  return order;
}

size_t NewestCount(size_t n, double fraction) {
  size_t newest_count = static_cast<size_t>(std::llround(static_cast<double>(n) * fraction));
  if (fraction > 0 && n >= 2) newest_count = std::max<size_t>(newest_count, 1);
  if (n >= 1) newest_count = std::min(newest_count, n - 1);
  if (n == 0) newest_count = 0;
  return newest_count;
}

void SplitNewest(const Dataset& data, double fraction, Dataset* older, Dataset* newest) {
  const std::vector<size_t> order = TimeOrder(data);
  const size_t cut = order.size() - NewestCount(order.size(), fraction);
  *older = data.Select(std::vector<size_t>(order.begin(), order.begin() + cut));
  *newest = data.Select(std::vector<size_t>(order.begin() + cut, order.end()));
}

absl::StatusOr<SplitData> RunSplitter::Finish() && {
  if (!(options_.validation_fraction > 0 && options_.validation_fraction < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("validation_fraction must be in (0, 1), got ",
                                                   options_.validation_fraction));
  }
  if (!(options_.holdout_fraction >= 0 && options_.holdout_fraction < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("holdout_fraction must be in [0, 1), got ", options_.holdout_fraction));
  }
  SplitData out;
  // One time order of the pool serves both cuts: the older part of a sorted pool is sorted.
  std::vector<size_t> order = pool_.TimeOrder();
  if (options_.max_pool_rows > 0 && order.size() > options_.max_pool_rows) {
    order.erase(order.begin(), order.end() - static_cast<ptrdiff_t>(options_.max_pool_rows));
  }
  out.rows_over_limit = pool_rows_seen_ - static_cast<int64_t>(order.size());
  size_t pool_rows = order.size();
  if (options_.comparison.empty() && options_.holdout_fraction > 0) {
    pool_rows -= NewestCount(order.size(), options_.holdout_fraction);
    out.comparison_is_holdout = true;
  } else {
    const std::vector<size_t> comparison_order = comparison_.TimeOrder();
    out.comparison = comparison_.Take(comparison_order.data(),
                                      comparison_order.data() + comparison_order.size());
  }
  if (pool_rows < 2) {
    return absl::FailedPreconditionError(
        absl::StrCat("only ", pool_rows, " labelled training rows outside the comparison set (",
                     rows_seen_, " rows read); upload labelled data first"));
  }
  const size_t train_rows = pool_rows - NewestCount(pool_rows, options_.validation_fraction);
  const size_t* o = order.data();
  out.train = pool_.Take(o, o + train_rows);
  out.validation = pool_.Take(o + train_rows, o + pool_rows);
  if (out.comparison_is_holdout) out.comparison = pool_.Take(o + pool_rows, o + order.size());
  pool_ = RowBlocks();
  comparison_ = RowBlocks();
  return out;
}

}  // namespace fraud::training
