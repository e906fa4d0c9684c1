// Rolling-origin backtest: how a run chooses among its candidate configurations (the practice of
// Le Borgne et al.'s card-fraud handbook). The training pool is time-ordered; its newest rows (the
// validation window) are cut into up to K equal blocks. Fold k trains a configuration on every
// row before block k except the block-length slice just before it, which early-stops it and sets
// its threshold, and then scores block k. A configuration's key is its mean block AUPRC, ties
// broken by the better worst block; a preferred family's best configuration wins unless another
// is better by more than a margin (ChooseByBacktest); the winner is then refit on every pool row
// but the newest block (with refit_on_newest, on that block too), which early-stops it
// (pipeline.cc). Nothing is chosen on the comparison set.
//
//   pool (time order) ........................................|  validation window  |
//   fold 1:  fit ------------------------------------| stop  | block1 |
//   fold 2:  fit --------------------------------------------| stop=1 | block2 |
//   fold 3:  fit -----------------------------------------------------| stop=2 | block3 |
//   refit:   fit ---------------------------------------------------------------| stop=3 |
//
// Each block and each stop slice must hold at least `min_block_frauds` frauds and a normal row;
// with too few frauds the window is cut into fewer blocks, and with none qualifying the run
// falls back to selecting on the whole validation window (the plan is empty).
//
// Cost: a fold whose fit rows exceed `max_fold_rows` keeps every fraud and a deterministic sample
// of the normal rows, weighted back by 1 / rate, so the K folds of a configuration cost about
// one fit on the full pool; the refit uses every row.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "services/common/model/trainer.h"

namespace fraud::training {

struct BacktestOptions {
  // K, the most blocks (0 = no backtest: select on the validation window).
  int blocks = 3;
  int64_t min_block_frauds = 10;
  // Fit rows of a fold beyond which normal rows are sampled (0 = never).
  size_t max_fold_rows = 80000;
  uint64_t seed = 1;
  // Selection prefers the candidates of preferred families (model::Family::preferred): the best
  // of them wins unless another candidate's mean block AUPRC is higher by more than this.
  double preference_margin = 0;
  // Whether the winner's refit also trains on the newest block (which still early-stops it and
  // sets its threshold); see pipeline.cc. Off by default: early stopping and the threshold then
  // see training rows (bench/README.md, quality, variant E).
  bool refit_on_newest = false;
  // How the promotion gate reads the backtest's paired comparison with the champion
  // (promotion.h): false (default) = promote when the mean difference >= margin ("better");
  // true = promote unless the whole 95% interval lies below -margin ("not_worse": the challenger
  // trained on more and newer rows, so weak evidence keeps the newer model).
  bool gate_not_worse = false;
};

// Rows [begin, end) of the time-ordered pool.
struct RowRange {
  size_t begin = 0;
  size_t end = 0;
  size_t size() const { return end - begin; }
};

struct BacktestFold {
  RowRange fit;    // [0, stop.begin)
  RowRange stop;   // early stopping and threshold
  RowRange block;  // scored
};

// The folds over a pool with these labels (time order) whose validation window starts at
// `window_begin`, oldest block first; empty when no block qualifies or options.blocks == 0.
std::vector<BacktestFold> PlanBacktest(absl::Span<const int32_t> labels, size_t window_begin,
                                       const BacktestOptions& options);

struct FoldData {
  model::Dataset fit;
  model::Dataset stop;
  model::Dataset block;
  // Kept fraction of the fit's normal rows (1 = all).
  double normal_sample_rate = 1;
};

// Copies the fold's rows out of `pool` (sampling the fit's normal rows as described above).
FoldData MakeFoldData(const model::Dataset& pool, const BacktestFold& fold,
                      const BacktestOptions& options);

// Rows [range.begin, range.end) of `data`, weights included.
model::Dataset SliceRows(const model::Dataset& data, RowRange range);

struct BacktestScore {
  double mean = 0;
  double worst = 0;
};
// Mean and minimum of the block AUPRCs (0, 0 when empty).
BacktestScore Summarize(absl::Span<const double> block_auprcs);
// True when `a` ranks above `b`: a higher mean, or an equal mean (within 1e-9) and a higher worst
// block.
bool RanksAbove(const BacktestScore& a, const BacktestScore& b);

// One backtested candidate, for the choice below.
struct ScoredCandidate {
  BacktestScore score;
  bool preferred = false;
};
// Index of the run's choice: the best preferred candidate (RanksAbove) unless the best of all
// has a mean block AUPRC higher than its mean + `preference_margin`; then the best of all. With
// no preferred candidate, the best of all. -1 when `candidates` is empty.
int ChooseByBacktest(absl::Span<const ScoredCandidate> candidates, double preference_margin);

}  // namespace fraud::training
