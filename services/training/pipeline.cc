#include "services/training/pipeline.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/core/log.h"
#include "services/common/core/process_memory.h"
#include "services/common/core/sha256.h"
#include "services/common/core/status_macros.h"
#include "services/common/core/transaction_layout.h"
#include "services/common/eval/metrics.h"
#include "services/common/model/artifact.h"
#include "services/common/model/families.h"
#include "services/common/rpc/artifact_transfer.h"
#include "services/training/backtest.h"
#include "services/training/dataset.h"
#include "services/training/evaluation.h"
#include "services/training/promotion.h"
#include "services/training/training_metrics.h"

namespace fraud::training {
namespace {

using ::fraud::common::v1::ClassificationMetrics;
using ::google::protobuf::util::TimeUtil;

std::string FamilyName(ModelFamily f) { return model::FamilyName(f); }

void SetProgress(storage_pb::TrainingRun& run, const std::string& phase,
                 const std::string& message) {
  storage_pb::RunProgress* p = run.mutable_progress();
  p->set_phase(phase);
  p->set_message(message);
  p->set_epoch(0);
  p->set_loss(0);
  p->set_metric(0);
}

// Moves rows into the layout the model library trains on.
model::Dataset ToModelDataset(Dataset&& data) {
  model::Dataset out;
  out.features = std::move(data.features);
  out.labels = std::move(data.labels);
  data.Clear();
  return out;
}

// Fills the PR curve when the library left it out (it is what the UI plots per candidate).
void EnsurePrCurve(const model::TrainedCandidate& c, const model::Dataset& validation,
                   ClassificationMetrics* metrics) {
  if (metrics->pr_curve_size() > 0 || metrics->single_class()) return;
  std::vector<float> scores(validation.rows());
  if (!c.runtime->Score(validation.features.data(), validation.rows(), scores.data()).ok()) return;
  absl::StatusOr<std::vector<eval::PrPoint>> curve =
      eval::PrecisionRecallCurve(scores, validation.labels);
  if (!curve.ok()) return;
  for (const eval::PrPoint& p : *curve) {
    common::v1::PrPoint* out = metrics->add_pr_curve();
    out->set_recall(p.recall);
    out->set_precision(p.precision);
    out->set_threshold(p.threshold);
  }
}

std::string Describe(const Dataset& d) {
  return absl::StrCat(d.rows(), " rows / ", d.frauds(), " frauds");
}


struct RunContext;

// The champion's model, loaded at most once per run: the backtest gate (newer blocks) and the
// comparison set both score it. Keyed by version, so a champion replaced between the two phases is
// loaded afresh; a failed load is not kept (the next phase tries again, as it did before).
class ChampionModel {
 public:
  // The model of `champion`, from this instance's cache of the registry (fetched when missing).
  // The pointer stays valid until a Get for another version or Release.
  absl::StatusOr<const model::ModelRuntime*> Get(const RunContext& ctx,
                                                 const storage_pb::ModelVersion& champion);
  // Frees the model (once the comparison is done: publishing does not need it).
  void Release() { runtime_.reset(); }

 private:
  int64_t version_ = -1;
  std::unique_ptr<model::ModelRuntime> runtime_;
};

// What every phase of one run shares.
struct RunContext {
  const training::v1::StartRunRequest& request;
  int64_t run_id;
  const PipelineOptions& options;
  const PipelineDeps& deps;
  RunSink& sink;
  const std::atomic<bool>& cancel;
  ChampionModel& champion;
  RunSettings settings;

  absl::Status CheckCancel() const {
    return cancel.load() ? absl::CancelledError("run cancelled") : absl::OkStatus();
  }
  void Progress(const std::string& phase, const std::string& message) const {
    sink.Update([&](storage_pb::TrainingRun& run) { SetProgress(run, phase, message); }, true);
  }
};

// ---- loading ----

struct LoadedData {
  model::Dataset train;
  model::Dataset validation;
  Dataset comparison;
  common::v1::DataLineage lineage;
};

// Streams the labelled rows of the run through the RunSplitter.
absl::StatusOr<SplitData> ScanAndSplit(const RunContext& ctx, int64_t* rows_read) {
  const training::v1::StartRunRequest& request = ctx.request;
  SplitOptions split_options;
  split_options.comparison.upload_ids.insert(request.comparison_upload_ids().begin(),
                                             request.comparison_upload_ids().end());
  split_options.comparison.time_min = request.comparison_time_min();
  split_options.comparison.time_max = request.comparison_time_max();
  split_options.validation_fraction = ctx.settings.validation_fraction;
  split_options.holdout_fraction = ctx.settings.holdout_fraction;
  split_options.train_time_max = request.train_time_max();
  split_options.max_pool_rows =
      static_cast<size_t>(std::max<int64_t>(0, ctx.options.max_train_rows));
  RunSplitter splitter(split_options);

  storage_pb::ScanTransactionsRequest scan;
  scan.set_labelled_only(true);
  scan.set_batch_rows(ctx.options.scan_batch_rows);
  if (!request.train_upload_ids().empty()) {
    std::set<int64_t> ids(request.train_upload_ids().begin(), request.train_upload_ids().end());
    ids.insert(request.comparison_upload_ids().begin(), request.comparison_upload_ids().end());
    for (int64_t id : ids) scan.add_upload_ids(id);
  }
  int64_t next_report = 50000;
  FRAUD_RETURN_IF_ERROR(ctx.deps.storage->ScanTransactions(
      scan, [&](const common::v1::TransactionBatch& batch) -> absl::Status {
        FRAUD_RETURN_IF_ERROR(ctx.CheckCancel());
        FRAUD_RETURN_IF_ERROR(splitter.Add(batch));
        if (splitter.rows_seen() >= next_report) {
          next_report += 50000;
          const int64_t seen = splitter.rows_seen();
          ctx.sink.Update([&](storage_pb::TrainingRun& run) {
            run.mutable_progress()->set_message(absl::StrCat("read ", seen, " rows"));
          }, false);
        }
        return absl::OkStatus();
      }));
  FRAUD_RETURN_IF_ERROR(ctx.CheckCancel());
  *rows_read = splitter.rows_seen();
  return std::move(splitter).Finish();
}

// FailedPrecondition naming the part when training or validation lacks one class.
absl::Status CheckBothClasses(const SplitData& split, double validation_fraction) {
  auto one_class = [](const Dataset& d) {
    return d.frauds() == 0 || d.frauds() == static_cast<int64_t>(d.rows());
  };
  if (one_class(split.train)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the training rows (", Describe(split.train),
        ") need both frauds and normal rows; upload more labelled data"));
  }
  if (one_class(split.validation)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the validation window (newest ", validation_fraction * 100, "% of the training rows: ",
        Describe(split.validation),
        ") needs both frauds and normal rows; upload more labelled data or raise "
        "validation_fraction"));
  }
  return absl::OkStatus();
}

common::v1::DataLineage LineageOf(const RunContext& ctx, const SplitData& split) {
  common::v1::DataLineage lineage;
  std::set<int64_t> uploads;
  for (int64_t id : split.train.DistinctUploads()) uploads.insert(id);
  for (int64_t id : split.validation.DistinctUploads()) uploads.insert(id);
  for (int64_t id : uploads) lineage.add_upload_ids(id);
  lineage.set_time_min(std::min(split.train.time_min(), split.validation.time_min()));
  lineage.set_time_max(std::max(split.train.time_max(), split.validation.time_max()));
  lineage.set_train_rows(static_cast<int64_t>(split.train.rows()));
  lineage.set_train_frauds(split.train.frauds());
  lineage.set_validation_rows(static_cast<int64_t>(split.validation.rows()));
  lineage.set_validation_frauds(split.validation.frauds());
  const std::string& trigger = ctx.request.trigger();
  lineage.set_description(!ctx.request.description().empty()
                              ? ctx.request.description()
                              : absl::StrCat(trigger.empty() ? "manual" : trigger, " run ",
                                             ctx.run_id));
  return lineage;
}

absl::StatusOr<LoadedData> LoadData(const RunContext& ctx) {
  ctx.sink.Update([&](storage_pb::TrainingRun& run) {
    SetProgress(run, "loading", "reading labelled rows from storage");
    run.mutable_progress()->set_candidates_total(
        static_cast<int32_t>(ctx.settings.candidates.size()));
  }, true);
  FRAUD_ASSIGN_OR_RETURN(storage_pb::GetDataStatsResponse stats, ctx.deps.storage->GetDataStats(0));
  // Recorded first, so that even a run that fails on this data keeps the auto trigger from
  // retrying the same rows (see auto_trigger.h).
  ctx.sink.Update([&](storage_pb::TrainingRun& run) {
    (*run.mutable_params())["data.max_upload_id"] = absl::StrCat(stats.max_upload_id());
    (*run.mutable_params())["data.labelled_rows"] = absl::StrCat(stats.labelled_rows());
  }, true);

  int64_t rows_read = 0;
  FRAUD_ASSIGN_OR_RETURN(SplitData split, ScanAndSplit(ctx, &rows_read));
  ReleaseFreeMemory();  // the scan's message buffers
  FRAUD_RETURN_IF_ERROR(CheckBothClasses(split, ctx.settings.validation_fraction));

  LoadedData out;
  out.lineage = LineageOf(ctx, split);
  const std::string split_message = absl::StrCat(
      "read ", rows_read, " labelled rows: train ", Describe(split.train), ", validation ",
      Describe(split.validation), ", comparison ", Describe(split.comparison),
      split.comparison_is_holdout ? " (newest rows held out)" : "",
      split.rows_over_limit > 0
          ? absl::StrCat("; the oldest ", split.rows_over_limit, " rows left out (at most ",
                         ctx.options.max_train_rows, " training rows: --max_train_rows)")
          : "");
  FRAUD_LOG(INFO) << "run data loaded" << Kv("run_id", ctx.run_id)
                  << Kv("train_rows", split.train.rows())
                  << Kv("validation_rows", split.validation.rows())
                  << Kv("comparison_rows", split.comparison.rows());
  ctx.sink.Update([&](storage_pb::TrainingRun& run) {
    *run.mutable_lineage() = out.lineage;
    (*run.mutable_params())["data.comparison_rows"] = absl::StrCat(split.comparison.rows());
    (*run.mutable_params())["data.comparison_frauds"] = absl::StrCat(split.comparison.frauds());
    if (split.rows_over_limit > 0) {
      (*run.mutable_params())["data.rows_over_limit"] = absl::StrCat(split.rows_over_limit);
    }
    SetProgress(run, "training", split_message);
  }, true);

  out.train = ToModelDataset(std::move(split.train));
  out.validation = ToModelDataset(std::move(split.validation));
  out.comparison = std::move(split.comparison);
  return out;
}

// ---- training ----

struct Selection {
  model::TrainedCandidate best;
  // Its entry in the run's candidates.
  int index = -1;
  // The backtest's comparison with the champion on newer blocks (promotion.h), when there was one.
  std::optional<BacktestEvidence> evidence;
  // Candidates (or backtest folds) that failed (other than on bad params), one message each.
  std::vector<std::string> failures;
};

void AppendCurve(const model::EpochProgress& p, storage_pb::Candidate* c) {
  storage_pb::EpochPoint* e = c->add_curve();
  e->set_epoch(p.epoch);
  e->set_train_loss(p.train_loss);
  e->set_validation_loss(p.validation_loss);
  e->set_validation_auprc(p.validation_auprc);
}

// Adds a candidate entry to the run (the refit of entry `refit_of` when >= 0); returns its index.
int AddCandidate(const RunContext& ctx, const model::CandidateSpec& spec, const std::string& name,
                 int refit_of = -1) {
  int index = 0;
  ctx.sink.Update([&](storage_pb::TrainingRun& run) {
    index = run.candidates_size();
    storage_pb::Candidate* c = run.add_candidates();
    c->set_name(name);
    c->set_family(spec.family);
    for (const auto& [k, v] : spec.params) (*c->mutable_params())[k] = v;
    if (refit_of >= 0) {
      c->set_is_refit(true);
      c->set_refit_of(refit_of);
    }
    SetProgress(run, "training", absl::StrCat("training ", name));
    run.mutable_progress()->set_candidate(name);
    run.mutable_progress()->set_candidates_done(index);
  }, true);
  return index;
}

const CandidateTrainer& TrainerOf(const RunContext& ctx) {
  static const CandidateTrainer kDefault = CandidateTrainer(model::TrainCandidate);
  return ctx.deps.trainer ? ctx.deps.trainer : kDefault;
}

// A status that ends the run rather than one candidate: cancellation and bad parameters.
bool EndsRun(const absl::Status& s, const RunContext& ctx) {
  return s.code() == absl::StatusCode::kCancelled || ctx.cancel.load() ||
         s.code() == absl::StatusCode::kInvalidArgument;
}

// Trains `spec` into the candidate entry `index` and records it (params, live curve, validation
// metrics, seconds, peak RSS). A failed candidate is recorded and returned as its status.
absl::StatusOr<model::TrainedCandidate> TrainAndRecord(const RunContext& ctx,
                                                       const model::CandidateSpec& spec, int index,
                                                       const model::Dataset& train,
                                                       const model::Dataset& validation) {
  const std::string name = spec.Name();
  ReleaseFreeMemory();  // the previous candidate's buffers
  ResetPeakRss();
  model::TrainCallbacks callbacks;
  callbacks.cancel = &ctx.cancel;
  callbacks.on_epoch = [&](const model::EpochProgress& p) {
    ctx.sink.Update([&](storage_pb::TrainingRun& run) {
      AppendCurve(p, run.mutable_candidates(index));
      run.mutable_progress()->set_epoch(p.epoch);
      run.mutable_progress()->set_loss(p.train_loss);
      run.mutable_progress()->set_metric(p.validation_auprc);
    }, false);
  };
  const auto started = std::chrono::steady_clock::now();
  absl::StatusOr<model::TrainedCandidate> trained =
      TrainerOf(ctx)(spec, train, validation, callbacks);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const int64_t peak_rss = PeakRssBytes();
  metrics::CountCandidate(FamilyName(spec.family), trained.ok());
  if (!trained.ok()) {
    if (trained.status().code() == absl::StatusCode::kCancelled || ctx.cancel.load()) {
      return absl::CancelledError("run cancelled");
    }
    ctx.sink.Update([&](storage_pb::TrainingRun& run) {
      storage_pb::Candidate* c = run.mutable_candidates(index);
      (*c->mutable_params())["error"] = std::string(trained.status().message());
      c->set_train_seconds(seconds);
      c->set_peak_rss_bytes(peak_rss);
    }, true);
    return Annotate(trained.status(), absl::StrCat("candidate ", name));
  }
  ClassificationMetrics vm = trained->validation_metrics();
  EnsurePrCurve(*trained, validation, &vm);
  ctx.sink.Update([&](storage_pb::TrainingRun& run) {
    storage_pb::Candidate* c = run.mutable_candidates(index);
    if (!c->is_refit()) c->set_name(trained->name.empty() ? name : trained->name);
    c->mutable_params()->clear();
    for (const auto& [k, v] : trained->manifest().params()) (*c->mutable_params())[k] = v;
    *c->mutable_validation_metrics() = vm;
    if (c->curve_size() == 0) {
      for (const model::EpochProgress& p : trained->curve) AppendCurve(p, c);
    }
    c->set_train_seconds(trained->train_seconds > 0 ? trained->train_seconds : seconds);
    c->set_peak_rss_bytes(peak_rss);
    run.mutable_progress()->set_candidates_done(index + 1);
    run.mutable_progress()->set_message(
        absl::StrCat(c->name(), ": validation AUPRC ", FormatAuprc(vm)));
  }, true);
  return trained;
}

// Validation AUPRC, -1 when the validation rows held one class only.
double ValidationAuprc(const model::TrainedCandidate& c) {
  return c.validation_metrics().single_class() ? -1 : c.validation_metrics().auprc();
}

// Candidates that failed without ending the run: logged, kept for the run's closing message.
struct CandidateFailures {
  std::vector<std::string> messages;
  absl::Status first;

  void Record(const RunContext& ctx, const absl::Status& s) {
    FRAUD_LOG(WARNING) << "candidate failed" << Kv("run_id", ctx.run_id)
                       << Kv("error", s.message());
    if (first.ok()) first = s;
    messages.push_back(std::string(s.message()));
  }
  // The run's error when no candidate trained.
  absl::Status NoneTrained() const {
    return first.ok() ? absl::FailedPreconditionError("no candidate was trained") : first;
  }
};

// Without a backtest: trains every candidate on the training rows, one at a time, keeping the
// best by validation-window AUPRC.
absl::StatusOr<Selection> SelectOnValidationWindow(const RunContext& ctx,
                                                   const model::Dataset& train,
                                                   const model::Dataset& validation) {
  std::optional<Selection> selection;
  CandidateFailures failures;
  for (const model::CandidateSpec& spec : ctx.settings.candidates) {
    FRAUD_RETURN_IF_ERROR(ctx.CheckCancel());
    const int index = AddCandidate(ctx, spec, spec.Name());
    absl::StatusOr<model::TrainedCandidate> trained =
        TrainAndRecord(ctx, spec, index, train, validation);
    if (!trained.ok()) {
      if (EndsRun(trained.status(), ctx)) return trained.status();
      failures.Record(ctx, trained.status());
      continue;
    }
    if (!selection.has_value() || ValidationAuprc(*trained) > ValidationAuprc(selection->best)) {
      selection = Selection{std::move(*trained), index, {}};
    }
  }
  if (!selection.has_value()) return failures.NoneTrained();
  selection->failures = std::move(failures.messages);
  return std::move(*selection);
}

// The scored block of one fold, as recorded in the run.
storage_pb::BacktestBlock BlockRecord(const FoldData& fold) {
  storage_pb::BacktestBlock b;
  const size_t rows = fold.block.rows();
  b.set_rows(static_cast<int64_t>(rows));
  b.set_frauds(std::count(fold.block.labels.begin(), fold.block.labels.end(), 1));
  if (rows > 0) {
    b.set_time_min(fold.block.features[layout::kTimeIndex]);
    b.set_time_max(fold.block.features[(rows - 1) * layout::kNumFeatures + layout::kTimeIndex]);
  }
  b.set_train_rows(static_cast<int64_t>(fold.fit.rows()));
  b.set_normal_sample_rate(fold.normal_sample_rate);
  return b;
}

struct FoldResult {
  storage_pb::BacktestBlock block;
  // Set for a fold that trained; its metrics on the block at its own threshold, and its scores
  // of the block's rows.
  std::optional<model::TrainedCandidate> trained;
  ClassificationMetrics block_metrics;
  std::vector<float> block_scores;
};

// Trains `spec` on one fold and scores its block. Errors that end the run are returned; a
// failed fold is a result with block.error set.
absl::StatusOr<FoldResult> RunFold(const RunContext& ctx, const model::CandidateSpec& spec,
                                   const model::Dataset& pool, const BacktestFold& fold) {
  const FoldData data = MakeFoldData(pool, fold, ctx.settings.backtest);
  FoldResult out;
  out.block = BlockRecord(data);
  model::TrainCallbacks callbacks;
  callbacks.cancel = &ctx.cancel;
  absl::StatusOr<model::TrainedCandidate> trained =
      TrainerOf(ctx)(spec, data.fit, data.stop, callbacks);
  if (!trained.ok()) {
    if (EndsRun(trained.status(), ctx)) {
      return ctx.cancel.load() ? absl::CancelledError("run cancelled") : trained.status();
    }
    out.block.set_error(std::string(trained.status().message()));
    return out;
  }
  std::vector<float> scores(data.block.rows());
  absl::Status scored = trained->runtime->Score(data.block.features.data(), data.block.rows(),
                                                scores.data());
  eval::MetricsOptions mo;
  mo.threshold = trained->runtime->threshold();
  mo.bootstrap_resamples = 0;
  absl::StatusOr<ClassificationMetrics> m =
      scored.ok() ? eval::ComputeClassificationMetrics(scores, data.block.labels, mo)
                  : absl::StatusOr<ClassificationMetrics>(scored);
  if (!m.ok()) {
    out.block.set_error(std::string(m.status().message()));
    return out;
  }
  out.block.set_auprc(m->auprc());
  out.block_metrics = std::move(*m);
  out.trained = std::move(*trained);
  out.block_scores = std::move(scores);
  return out;
}

// Backtests candidate `i`: one fold per block, each recorded as it finishes. Returns its score
// and fills block_scores[k] with fold k's scores of its block (empty when the fold failed); an
// error when every fold failed (recorded in the entry) or one that ends the run.
absl::StatusOr<BacktestScore> BacktestCandidate(const RunContext& ctx, size_t i,
                                                const model::Dataset& pool,
                                                const std::vector<BacktestFold>& folds,
                                                int* index_out,
                                                std::vector<std::vector<float>>* block_scores) {
  const model::CandidateSpec& spec = ctx.settings.candidates[i];
  const std::string name = spec.Name();
  const int index = AddCandidate(ctx, spec, name);
  *index_out = index;
  std::vector<double> auprcs;
  std::string last_error;
  double seconds = 0;
  int64_t peak_rss = 0;
  block_scores->assign(folds.size(), {});
  for (size_t k = 0; k < folds.size(); ++k) {
    FRAUD_RETURN_IF_ERROR(ctx.CheckCancel());
    ReleaseFreeMemory();
    ResetPeakRss();
    const auto started = std::chrono::steady_clock::now();
    FRAUD_ASSIGN_OR_RETURN(FoldResult fold, RunFold(ctx, spec, pool, folds[k]));
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    peak_rss = std::max(peak_rss, PeakRssBytes());
    if (fold.block.error().empty()) {
      auprcs.push_back(fold.block.auprc());
      (*block_scores)[k] = std::move(fold.block_scores);
    } else {
      last_error = fold.block.error();
    }
    const bool newest = k + 1 == folds.size();
    ctx.sink.Update([&](storage_pb::TrainingRun& run) {
      storage_pb::Candidate* c = run.mutable_candidates(index);
      *c->add_backtest() = fold.block;
      if (newest && fold.trained.has_value()) {
        // The newest fold stands for the configuration: its resolved params, curve and its
        // metrics on the newest block.
        c->mutable_params()->clear();
        for (const auto& [key, v] : fold.trained->manifest().params()) (*c->mutable_params())[key] = v;
        for (const model::EpochProgress& p : fold.trained->curve) AppendCurve(p, c);
        *c->mutable_validation_metrics() = fold.block_metrics;
      }
      run.mutable_progress()->set_message(absl::StrCat(
          name, ": block ", k + 1, "/", folds.size(), " ",
          fold.block.error().empty() ? absl::StrCat("AUPRC ", FormatAuprc(fold.block_metrics))
                                     : absl::StrCat("failed: ", fold.block.error())));
    }, false);
  }
  const bool trained = !auprcs.empty();
  metrics::CountCandidate(FamilyName(spec.family), trained);
  // A failed fold counts as AUPRC 0: a configuration that fails on some data is worse.
  auprcs.resize(folds.size(), 0.0);
  const BacktestScore score = Summarize(auprcs);
  ctx.sink.Update([&](storage_pb::TrainingRun& run) {
    storage_pb::Candidate* c = run.mutable_candidates(index);
    if (!trained) (*c->mutable_params())["error"] = last_error;
    c->set_backtest_mean_auprc(score.mean);
    c->set_backtest_worst_auprc(score.worst);
    c->set_train_seconds(seconds);
    c->set_peak_rss_bytes(peak_rss);
    run.mutable_progress()->set_candidates_done(index + 1);
  }, true);
  if (!trained) {
    return absl::InternalError(absl::StrCat("candidate ", name, ": every backtest fold failed: ",
                                            last_error));
  }
  return score;
}

// The time-ordered pool: the training rows, then the validation window (both sorted by Time).
model::Dataset ConcatPool(model::Dataset&& train, model::Dataset&& validation) {
  model::Dataset pool = std::move(train);
  pool.features.insert(pool.features.end(), validation.features.begin(),
                       validation.features.end());
  pool.labels.insert(pool.labels.end(), validation.labels.begin(), validation.labels.end());
  validation = model::Dataset();
  return pool;
}

absl::StatusOr<const model::ModelRuntime*> ChampionModel::Get(
    const RunContext& ctx, const storage_pb::ModelVersion& champion) {
  if (runtime_ == nullptr || version_ != champion.version()) {
    runtime_.reset();
    FRAUD_ASSIGN_OR_RETURN(std::string dir,
                           LocalArtifactDir(*ctx.deps.storage, ctx.options.model_dir, champion));
    FRAUD_ASSIGN_OR_RETURN(runtime_, model::LoadModel(dir));
    version_ = champion.version();
  }
  return runtime_.get();
}

// The selected configuration's fold models against the champion on the backtest blocks newer than
// every row the champion was trained on (promotion.h): rows neither model saw. Empty when there
// is no champion, no such block, or the champion cannot be loaded or scored (the gate then
// compares on the comparison set).
std::optional<BacktestEvidence> CompareOnNewerBlocks(
    const RunContext& ctx, const model::Dataset& pool, const std::vector<BacktestFold>& folds,
    const std::vector<std::vector<float>>& fold_scores) {
  absl::StatusOr<std::optional<storage_pb::ModelVersion>> champion =
      ctx.deps.storage->GetChampion();
  if (!champion.ok() || !champion->has_value()) return std::nullopt;
  const storage_pb::ModelVersion& c = **champion;
  if (!c.manifest().has_lineage()) return std::nullopt;
  const double trained_until = c.manifest().lineage().time_max();
  std::vector<size_t> newer;
  for (size_t k = 0; k < folds.size(); ++k) {
    const RowRange& block = folds[k].block;
    const double block_start = pool.features[block.begin * layout::kNumFeatures + layout::kTimeIndex];
    if (fold_scores[k].size() == block.size() && block_start > trained_until) newer.push_back(k);
  }
  if (newer.empty()) return std::nullopt;
  ctx.Progress("evaluating", absl::StrCat("scoring champion v", c.version(), " on ", newer.size(),
                                          " backtest block(s) newer than its training rows"));
  absl::StatusOr<const model::ModelRuntime*> loaded = ctx.champion.Get(ctx, c);
  if (!loaded.ok()) {
    FRAUD_LOG(WARNING) << "champion not loadable for the backtest gate" << Kv("run_id", ctx.run_id)
                       << Kv("version", c.version()) << Kv("error", loaded.status().ToString());
    return std::nullopt;
  }
  BacktestEvidence e;
  e.champion_version = c.version();
  e.blocks = static_cast<int>(newer.size());
  std::vector<std::vector<float>> champion_scores(newer.size());
  std::vector<eval::PairedBlock> blocks;
  for (size_t i = 0; i < newer.size(); ++i) {
    const RowRange& range = folds[newer[i]].block;
    champion_scores[i].resize(range.size());
    absl::Status scored = (*loaded)->Score(&pool.features[range.begin * layout::kNumFeatures],
                                           range.size(), champion_scores[i].data());
    const absl::Span<const int32_t> labels(&pool.labels[range.begin], range.size());
    const absl::Span<const double> weights =
        pool.weights.empty() ? absl::Span<const double>()
                             : absl::Span<const double>(&pool.weights[range.begin], range.size());
    absl::StatusOr<double> ap_challenger =
        eval::AveragePrecision(fold_scores[newer[i]], labels, weights);
    absl::StatusOr<double> ap_champion =
        scored.ok() ? eval::AveragePrecision(champion_scores[i], labels, weights)
                    : absl::StatusOr<double>(scored);
    if (!ap_challenger.ok() || !ap_champion.ok()) return std::nullopt;
    e.challenger_mean_auprc += *ap_challenger / static_cast<double>(newer.size());
    e.champion_mean_auprc += *ap_champion / static_cast<double>(newer.size());
    blocks.push_back({fold_scores[newer[i]], champion_scores[i], labels, weights});
  }
  absl::StatusOr<eval::PairedDifference> d = eval::PairedBootstrapMeanAveragePrecision(
      blocks, std::max(1, ctx.options.comparison_bootstrap), /*seed=*/1);
  if (!d.ok()) return std::nullopt;
  e.difference = *d;
  return e;
}

// Backtests every candidate, then refits the chosen configuration on the pool (see below), the
// newest block early-stopping it. Consumes `pool`.
absl::StatusOr<Selection> SelectByBacktest(const RunContext& ctx, model::Dataset pool,
                                           const std::vector<BacktestFold>& folds) {
  CandidateFailures failures;
  // The candidates that trained: their scores, run entries, specs and block scores.
  std::vector<ScoredCandidate> scored;
  std::vector<int> indexes;
  std::vector<size_t> specs;
  std::vector<std::vector<std::vector<float>>> block_scores;
  for (size_t i = 0; i < ctx.settings.candidates.size(); ++i) {
    FRAUD_RETURN_IF_ERROR(ctx.CheckCancel());
    int index = -1;
    std::vector<std::vector<float>> scores;
    absl::StatusOr<BacktestScore> score = BacktestCandidate(ctx, i, pool, folds, &index, &scores);
    if (!score.ok()) {
      if (EndsRun(score.status(), ctx)) return score.status();
      failures.Record(ctx, score.status());
      continue;
    }
    const model::Family* family = model::FindFamily(ctx.settings.candidates[i].family);
    scored.push_back({*score, family != nullptr && family->preferred});
    indexes.push_back(index);
    specs.push_back(i);
    block_scores.push_back(std::move(scores));
  }
  const int chosen = ChooseByBacktest(scored, ctx.settings.backtest.preference_margin);
  if (chosen < 0) return failures.NoneTrained();
  const size_t c = static_cast<size_t>(chosen);
  const int best_index = indexes[c];
  const size_t best_spec = specs[c];
  const BacktestScore best_score = scored[c].score;
  FRAUD_RETURN_IF_ERROR(ctx.CheckCancel());
  std::optional<BacktestEvidence> evidence =
      CompareOnNewerBlocks(ctx, pool, folds, block_scores[c]);
  block_scores = {};
  // The refit: the newest block early-stops it and sets its threshold. Unless refit_on_newest,
  // the pool shrinks in place to the rows before it; with it, the refit also trains on the newest
  // block (the rows closest to what it will score), so early stopping and the threshold see
  // training rows: the epochs run to their cap and the refit's validation figures are optimistic
  // (the backtest's blocks are the honest ones).
  const RowRange newest = folds.back().block;
  model::Dataset stop = SliceRows(pool, newest);
  if (!ctx.settings.backtest.refit_on_newest) {
    pool.features.resize(newest.begin * layout::kNumFeatures);
    pool.labels.resize(newest.begin);
  }
  const model::CandidateSpec& spec = ctx.settings.candidates[best_spec];
  const int index = AddCandidate(
      ctx, spec,
      absl::StrCat(spec.Name(), " (refit; backtest AUPRC mean ", absl::StrFormat("%.4f", best_score.mean),
                   ")"),
      best_index);
  FRAUD_ASSIGN_OR_RETURN(model::TrainedCandidate trained,
                         TrainAndRecord(ctx, spec, index, pool, stop));
  return Selection{std::move(trained), index, std::move(evidence), std::move(failures.messages)};
}

// Chooses the run's model: by the rolling-origin backtest when the data allow one (backtest.h),
// else on the validation window. Consumes the training rows.
absl::StatusOr<Selection> TrainCandidates(const RunContext& ctx, LoadedData& data) {
  std::vector<int32_t> labels = data.train.labels;
  labels.insert(labels.end(), data.validation.labels.begin(), data.validation.labels.end());
  const std::vector<BacktestFold> folds =
      PlanBacktest(labels, data.train.rows(), ctx.settings.backtest);
  labels = {};
  const std::string selection =
      folds.empty()
          ? (ctx.settings.backtest.blocks == 0
                 ? std::string("validation window (backtest off)")
                 : absl::StrCat("validation window (too few frauds for a backtest block of >= ",
                                ctx.settings.backtest.min_block_frauds, ")"))
          : absl::StrCat("backtest over ", folds.size(), " block(s)");
  ctx.sink.Update([&](storage_pb::TrainingRun& run) {
    (*run.mutable_params())["selection"] = selection;
    run.mutable_progress()->set_candidates_total(
        static_cast<int32_t>(ctx.settings.candidates.size() + (folds.empty() ? 0 : 1)));
  }, true);
  if (folds.empty()) {
    absl::StatusOr<Selection> s = SelectOnValidationWindow(ctx, data.train, data.validation);
    data.train = model::Dataset();
    return s;
  }
  return SelectByBacktest(ctx, ConcatPool(std::move(data.train), std::move(data.validation)),
                          folds);
}

// ---- evaluating ----

struct ScoredRows {
  std::vector<float> scores;
  double threshold = 0;
};

// The champion's scores on the comparison rows and its threshold (the model the backtest gate
// already loaded when it scored the same version).
absl::StatusOr<ScoredRows> ScoreChampion(const RunContext& ctx,
                                         const storage_pb::ModelVersion& champion,
                                         const Dataset& comparison) {
  if (comparison.empty()) return absl::FailedPreconditionError("no comparison set");
  FRAUD_ASSIGN_OR_RETURN(const model::ModelRuntime* loaded, ctx.champion.Get(ctx, champion));
  ScoredRows out;
  FRAUD_ASSIGN_OR_RETURN(out.scores, ScoreRows(*loaded, comparison));
  out.threshold = loaded->threshold();
  return out;
}

storage_pb::PairedComparison ToProto(const eval::PairedDifference& d) {
  storage_pb::PairedComparison p;
  p.set_difference(d.difference);
  p.set_ci_low(d.low);
  p.set_ci_high(d.high);
  p.set_share_better(d.share_a_better);
  p.set_resamples(d.resamples);
  return p;
}

// Scores the selected candidate and the current champion on the comparison rows: each one's
// metrics, and their paired AUPRC difference (the same bootstrap draws for both).
absl::StatusOr<GateInput> CompareWithChampion(const RunContext& ctx, const Selection& selection,
                                              const Dataset& comparison) {
  const model::TrainedCandidate& best = selection.best;
  ctx.sink.Update([&](storage_pb::TrainingRun& run) {
    run.mutable_candidates(selection.index)->set_selected(true);
    SetProgress(run, "evaluating",
                absl::StrCat("selected ", best.name, " (validation AUPRC ",
                             FormatAuprc(best.validation_metrics()),
                             "); scoring challenger and champion on the comparison set"));
  }, true);
  GateInput gate;
  gate.margin = ctx.settings.promotion_margin;
  gate.not_worse = ctx.settings.backtest.gate_not_worse;
  MeasureOptions measure;
  measure.bootstrap_resamples = ctx.options.comparison_bootstrap;
  std::vector<float> challenger_scores;
  if (!comparison.empty()) {
    FRAUD_ASSIGN_OR_RETURN(challenger_scores, ScoreRows(*best.runtime, comparison));
    FRAUD_ASSIGN_OR_RETURN(Measurement m, MeasureScores(challenger_scores, comparison.labels,
                                                        best.runtime->threshold(), measure));
    gate.challenger = std::move(m.metrics);
  }
  FRAUD_ASSIGN_OR_RETURN(std::optional<storage_pb::ModelVersion> champion,
                         ctx.deps.storage->GetChampion());
  if (champion.has_value()) {
    gate.champion_version = champion->version();
    absl::StatusOr<ScoredRows> scored = ScoreChampion(ctx, *champion, comparison);
    absl::StatusOr<Measurement> m =
        scored.ok() ? MeasureScores(scored->scores, comparison.labels, scored->threshold, measure)
                    : absl::StatusOr<Measurement>(scored.status());
    if (m.ok()) {
      gate.champion = std::move(m->metrics);
      absl::StatusOr<eval::PairedDifference> d = eval::PairedBootstrapAveragePrecision(
          challenger_scores, scored->scores, comparison.labels,
          std::max(1, ctx.options.comparison_bootstrap), /*seed=*/1);
      if (d.ok()) gate.difference = *d;
    } else {
      gate.champion_error = std::string(m.status().message());
    }
  }
  if (selection.evidence.has_value() &&
      selection.evidence->champion_version == gate.champion_version) {
    gate.backtest = selection.evidence;
  }
  ctx.sink.Update([&](storage_pb::TrainingRun& run) {
    if (gate.backtest.has_value()) {
      const BacktestEvidence& b = *gate.backtest;
      storage_pb::BacktestGate* g = run.mutable_backtest_gate();
      g->set_champion_version(b.champion_version);
      g->set_blocks(b.blocks);
      g->set_challenger_mean_auprc(b.challenger_mean_auprc);
      g->set_champion_mean_auprc(b.champion_mean_auprc);
      *g->mutable_difference() = ToProto(b.difference);
    }
    if (gate.challenger.has_value()) *run.mutable_challenger_comparison() = *gate.challenger;
    if (gate.champion.has_value()) *run.mutable_champion_comparison() = *gate.champion;
    if (gate.difference.has_value()) *run.mutable_comparison_difference() = ToProto(*gate.difference);
    run.set_champion_version_before(gate.champion_version);
  }, true);
  return gate;
}

// ---- publishing ----

common::v1::ModelManifest ManifestOf(const RunContext& ctx, const model::TrainedCandidate& best,
                                     int64_t version, const common::v1::DataLineage& lineage,
                                     const GateInput& gate) {
  common::v1::ModelManifest manifest = best.ManifestForVersion(version);
  common::v1::DataLineage* l = manifest.mutable_lineage();
  l->clear_upload_ids();
  for (int64_t id : lineage.upload_ids()) l->add_upload_ids(id);
  l->set_description(lineage.description());
  if (gate.challenger.has_value()) *manifest.mutable_comparison_metrics() = *gate.challenger;
  manifest.set_run_id(ctx.run_id);
  *manifest.mutable_created_at() = TimeUtil::GetCurrentTime();
  return manifest;
}

// Stores the written artifact in the registry and registers the version.
absl::Status StoreAndRegister(const RunContext& ctx, int64_t version,
                              const std::string& artifact_dir) {
  StorageApi& storage = *ctx.deps.storage;
  FRAUD_ASSIGN_OR_RETURN(common::v1::ModelManifest written, model::ReadManifest(artifact_dir));
  FRAUD_ASSIGN_OR_RETURN(
      std::string manifest_sha,
      Sha256File((std::filesystem::path(artifact_dir) / model::kManifestFileName).string()));
  // The registry holds the artifact before the version is registered, so every registered
  // version can be fetched by an inference instance that never saw this disk.
  std::vector<std::string> files = {model::kManifestFileName};
  for (const common::v1::ArtifactFile& f : written.files()) files.push_back(f.name());
  if (absl::Status s = storage.PutModelArtifact(version, artifact_dir, files); !s.ok()) {
    return Annotate(s, absl::StrCat("storing the artifact of v", version));
  }
  storage_pb::ModelVersion registered;
  registered.set_version(version);
  registered.set_family(written.family());
  *registered.mutable_manifest() = written;
  registered.set_artifact_uri(rpc::RegistryArtifactUri(version));
  registered.set_artifact_sha256(manifest_sha);
  registered.set_run_id(ctx.run_id);
  absl::StatusOr<storage_pb::ModelVersion> reg = storage.RegisterModel(registered);
  if (!reg.ok()) return Annotate(reg.status(), absl::StrCat("registering v", version));
  return absl::OkStatus();
}

// Writes, stores and registers the selected candidate as a new version; on any failure (or a
// cancel before the registration) its artifact directory is removed.
absl::StatusOr<int64_t> Publish(const RunContext& ctx, const model::TrainedCandidate& best,
                                const common::v1::DataLineage& lineage, const GateInput& gate) {
  ctx.Progress("publishing", "writing and registering the new version");
  FRAUD_ASSIGN_OR_RETURN(int64_t version, ctx.deps.storage->AllocateModelVersion());
  const common::v1::ModelManifest manifest = ManifestOf(ctx, best, version, lineage, gate);
  FRAUD_RETURN_IF_ERROR(ctx.CheckCancel());
  FRAUD_ASSIGN_OR_RETURN(std::string artifact_dir,
                         model::WriteArtifact(ctx.options.model_dir, manifest, *best.runtime));
  absl::Status stored = ctx.CheckCancel();
  if (stored.ok()) stored = StoreAndRegister(ctx, version, artifact_dir);
  if (!stored.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(artifact_dir, ec);
    return stored;
  }
  FRAUD_LOG(INFO) << "version registered" << Kv("run_id", ctx.run_id) << Kv("version", version)
                  << Kv("family", FamilyName(manifest.family())) << Kv("dir", artifact_dir);
  ctx.sink.Update([&](storage_pb::TrainingRun& run) {
    run.set_model_version(version);
    run.mutable_progress()->set_message(absl::StrCat("registered v", version));
  }, true);
  return version;
}

// ---- gate ----

// Promotes `version` when the gate says so (and the request allows it); returns the run's
// closing message and whether it was promoted.
std::pair<std::string, bool> ApplyGate(const RunContext& ctx, int64_t version,
                                       const GateInput& gate) {
  const GateDecision decision = DecideGate(gate);
  if (ctx.request.no_promote()) {
    metrics::CountPromotion("skipped");
    return {absl::StrCat("registered v", version, "; not promoted (no_promote); gate would have ",
                         decision.promote ? "promoted" : "kept the champion", ": ",
                         decision.reason),
            false};
  }
  if (!decision.promote) {
    metrics::CountPromotion("rejected");
    return {absl::StrCat("registered v", version, "; ", decision.reason), false};
  }
  PromotionRequest pr;
  pr.version = version;
  pr.expected_champion = gate.champion_version;
  pr.reason = absl::StrCat("run ", ctx.run_id, ": ", decision.reason);
  pr.actor = ctx.options.actor;
  absl::StatusOr<PromotionResult> result = PromoteVersion(*ctx.deps.storage, ctx.deps.inference, pr);
  if (!result.ok()) {
    const bool conflict = result.status().code() == absl::StatusCode::kAborted;
    metrics::CountPromotion(conflict ? "conflict" : "failed");
    return {absl::StrCat("registered v", version, "; ", decision.reason, "; but not promoted: ",
                         result.status().message()),
            false};
  }
  metrics::CountPromotion(result->rolled_back ? "rolled_back" : "promoted");
  return {absl::StrCat("registered v", version, "; ", decision.reason, "; ", result->message),
          result->promoted};
}

void Finish(const RunContext& ctx, int64_t version, const std::string& gate_message,
            bool promoted, const std::vector<std::string>& failures) {
  std::string message = gate_message;
  if (!failures.empty()) {
    message += absl::StrCat(" (", failures.size(), " candidate(s) failed: ",
                            absl::StrJoin(failures, "; "), ")");
  }
  FRAUD_LOG(INFO) << "run finished" << Kv("run_id", ctx.run_id) << Kv("version", version)
                  << Kv("promoted", promoted) << Kv("message", message);
  ctx.sink.Update([&](storage_pb::TrainingRun& run) {
    run.set_promoted(promoted);
    run.set_message(message);
    SetProgress(run, "done", message);
    run.mutable_progress()->set_candidates_done(run.progress().candidates_total());
  }, true);
}

}  // namespace

absl::Status ExecuteRun(const training::v1::StartRunRequest& request, int64_t run_id,
                        const PipelineOptions& options, const PipelineDeps& deps, RunSink& sink,
                        const std::atomic<bool>& cancel) {
  FRAUD_ASSIGN_OR_RETURN(RunSettings settings, ResolveRun(request, options));
  ChampionModel champion;
  const RunContext ctx{request, run_id, options, deps, sink, cancel, champion, std::move(settings)};

  FRAUD_ASSIGN_OR_RETURN(LoadedData data, LoadData(ctx));
  FRAUD_ASSIGN_OR_RETURN(Selection selection, TrainCandidates(ctx, data));
  ReleaseFreeMemory();
  FRAUD_RETURN_IF_ERROR(ctx.CheckCancel());

  FRAUD_ASSIGN_OR_RETURN(GateInput gate, CompareWithChampion(ctx, selection, data.comparison));
  data.comparison.Clear();
  champion.Release();
  FRAUD_RETURN_IF_ERROR(ctx.CheckCancel());

  FRAUD_ASSIGN_OR_RETURN(int64_t version, Publish(ctx, selection.best, data.lineage, gate));
  const auto [message, promoted] = ApplyGate(ctx, version, gate);
  Finish(ctx, version, message, promoted, selection.failures);
  return absl::OkStatus();
}

}  // namespace fraud::training
