#include "services/training/backtest.h"

#include <algorithm>
#include <cmath>

#include "services/common/core/transaction_layout.h"

namespace fraud::training {
namespace {

constexpr size_t kWidth = layout::kNumFeatures;

int64_t Frauds(absl::Span<const int32_t> labels, RowRange r) {
  int64_t n = 0;
  for (size_t i = r.begin; i < r.end; ++i) n += labels[i] == 1;
  return n;
}

// At least `min_frauds` frauds and one normal row.
bool Qualifies(absl::Span<const int32_t> labels, RowRange r, int64_t min_frauds) {
  const int64_t frauds = Frauds(labels, r);
  return r.size() > 0 && frauds >= std::max<int64_t>(1, min_frauds) &&
         frauds < static_cast<int64_t>(r.size());
}

// A uniform number in [0, 1) from a row index and a seed (splitmix64), so a fold's sample does
// not depend on anything but the data's order.
double Uniform(uint64_t row, uint64_t seed) {
  uint64_t z = row + seed * 0x9e3779b97f4a7c15ULL + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

}  // namespace

std::vector<BacktestFold> PlanBacktest(absl::Span<const int32_t> labels, size_t window_begin,
                                       const BacktestOptions& options) {
  const size_t n = labels.size();
  if (window_begin >= n) return {};
  const size_t window = n - window_begin;
  for (int k = options.blocks; k >= 1; --k) {
    const size_t length = window / static_cast<size_t>(k);
    // The blocks tile the window's newest k * length rows (a remainder of < k rows at the
    // window's start falls before the first block).
    const size_t first = n - length * static_cast<size_t>(k);
    if (length == 0 || first < length) continue;  // no room for the first block's stop slice
    std::vector<BacktestFold> folds;
    bool ok = true;
    for (int b = 0; b < k && ok; ++b) {
      BacktestFold f;
      f.block = {first + static_cast<size_t>(b) * length, first + static_cast<size_t>(b + 1) * length};
      f.stop = {f.block.begin - length, f.block.begin};
      f.fit = {0, f.stop.begin};
      ok = Qualifies(labels, f.block, options.min_block_frauds) &&
           Qualifies(labels, f.stop, options.min_block_frauds) &&
           Qualifies(labels, f.fit, 1);
      folds.push_back(f);
    }
    if (ok) return folds;
  }
  return {};
}

model::Dataset SliceRows(const model::Dataset& data, RowRange range) {
  model::Dataset out;
  out.features.assign(data.features.begin() + range.begin * kWidth,
                      data.features.begin() + range.end * kWidth);
  out.labels.assign(data.labels.begin() + range.begin, data.labels.begin() + range.end);
  if (!data.weights.empty()) {
    out.weights.assign(data.weights.begin() + range.begin, data.weights.begin() + range.end);
  }
  return out;
}

FoldData MakeFoldData(const model::Dataset& pool, const BacktestFold& fold,
                      const BacktestOptions& options) {
  FoldData out;
  out.stop = SliceRows(pool, fold.stop);
  out.block = SliceRows(pool, fold.block);
  const size_t rows = fold.fit.size();
  if (options.max_fold_rows == 0 || rows <= options.max_fold_rows) {
    out.fit = SliceRows(pool, fold.fit);
    return out;
  }
  const int64_t frauds = Frauds(pool.labels, fold.fit);
  const size_t normals = rows - static_cast<size_t>(frauds);
  const size_t budget = options.max_fold_rows > static_cast<size_t>(frauds)
                            ? options.max_fold_rows - static_cast<size_t>(frauds)
                            : 1;
  const double rate = std::min(1.0, static_cast<double>(budget) / static_cast<double>(normals));
  out.normal_sample_rate = rate;
  out.fit.features.reserve((static_cast<size_t>(frauds) + budget + 64) * kWidth);
  for (size_t i = fold.fit.begin; i < fold.fit.end; ++i) {
    const bool fraud = pool.labels[i] == 1;
    if (!fraud && Uniform(i, options.seed) >= rate) continue;
    out.fit.features.insert(out.fit.features.end(), pool.features.begin() + i * kWidth,
                            pool.features.begin() + (i + 1) * kWidth);
    out.fit.labels.push_back(pool.labels[i]);
    const double w = pool.weights.empty() ? 1.0 : pool.weights[i];
    out.fit.weights.push_back(fraud ? w : w / rate);
  }
  return out;
}

BacktestScore Summarize(absl::Span<const double> block_auprcs) {
  BacktestScore s;
  if (block_auprcs.empty()) return s;
  double sum = 0;
  s.worst = block_auprcs[0];
  for (double a : block_auprcs) {
    sum += a;
    s.worst = std::min(s.worst, a);
  }
  s.mean = sum / static_cast<double>(block_auprcs.size());
  return s;
}

bool RanksAbove(const BacktestScore& a, const BacktestScore& b) {
  if (std::fabs(a.mean - b.mean) > 1e-9) return a.mean > b.mean;
  return a.worst > b.worst;
}

int ChooseByBacktest(absl::Span<const ScoredCandidate> candidates, double preference_margin) {
  int best = -1;
  int best_preferred = -1;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const int n = static_cast<int>(i);
    if (best < 0 || RanksAbove(candidates[i].score, candidates[best].score)) best = n;
    if (candidates[i].preferred &&
        (best_preferred < 0 || RanksAbove(candidates[i].score, candidates[best_preferred].score))) {
      best_preferred = n;
    }
  }
  if (best_preferred < 0) return best;
  return candidates[best].score.mean > candidates[best_preferred].score.mean + preference_margin
             ? best
             : best_preferred;
}

}  // namespace fraud::training
