#include "services/training/pipeline.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/core/log.h"
#include "services/common/core/process_memory.h"
#include "services/common/core/sha256.h"
#include "services/common/core/status_macros.h"
#include "services/common/eval/metrics.h"
#include "services/common/model/artifact.h"
#include "services/common/model/families.h"
#include "services/common/rpc/artifact_transfer.h"
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


// What every phase of one run shares.
struct RunContext {
  const training::v1::StartRunRequest& request;
  int64_t run_id;
  const PipelineOptions& options;
  const PipelineDeps& deps;
  RunSink& sink;
  const std::atomic<bool>& cancel;
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
  int index = -1;
  // Candidates that failed (other than on bad params), one message each.
  std::vector<std::string> failures;
};

void AppendCurve(const model::EpochProgress& p, storage_pb::Candidate* c) {
  storage_pb::EpochPoint* e = c->add_curve();
  e->set_epoch(p.epoch);
  e->set_train_loss(p.train_loss);
  e->set_validation_loss(p.validation_loss);
  e->set_validation_auprc(p.validation_auprc);
}

// Trains candidate `index` and records it in the run (params, live curve, validation metrics,
// seconds, peak RSS). A failed candidate is recorded and returned as its status; a bad parameter
// (InvalidArgument) and cancellation end the run.
absl::StatusOr<model::TrainedCandidate> TrainAndRecord(const RunContext& ctx, int index,
                                                       const model::Dataset& train,
                                                       const model::Dataset& validation) {
  const model::CandidateSpec& spec = ctx.settings.candidates[static_cast<size_t>(index)];
  const std::string name = spec.Name();
  ctx.sink.Update([&](storage_pb::TrainingRun& run) {
    storage_pb::Candidate* c = run.add_candidates();
    c->set_name(name);
    c->set_family(spec.family);
    for (const auto& [k, v] : spec.params) (*c->mutable_params())[k] = v;
    SetProgress(run, "training", absl::StrCat("training ", name));
    run.mutable_progress()->set_candidate(name);
    run.mutable_progress()->set_candidates_done(index);
  }, true);
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
  const CandidateTrainer& trainer =
      ctx.deps.trainer ? ctx.deps.trainer : CandidateTrainer(model::TrainCandidate);
  const auto started = std::chrono::steady_clock::now();
  absl::StatusOr<model::TrainedCandidate> trained = trainer(spec, train, validation, callbacks);
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
    c->set_name(trained->name.empty() ? name : trained->name);
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

// Trains every candidate, one at a time, keeping the best by validation AUPRC.
absl::StatusOr<Selection> TrainCandidates(const RunContext& ctx, const model::Dataset& train,
                                          const model::Dataset& validation) {
  std::optional<Selection> selection;
  std::vector<std::string> failures;
  absl::Status first_error;
  for (size_t i = 0; i < ctx.settings.candidates.size(); ++i) {
    FRAUD_RETURN_IF_ERROR(ctx.CheckCancel());
    const int index = static_cast<int>(i);
    absl::StatusOr<model::TrainedCandidate> trained = TrainAndRecord(ctx, index, train, validation);
    if (!trained.ok()) {
      const absl::StatusCode code = trained.status().code();
      if (code == absl::StatusCode::kCancelled || code == absl::StatusCode::kInvalidArgument) {
        return trained.status();
      }
      FRAUD_LOG(WARNING) << "candidate failed" << Kv("run_id", ctx.run_id)
                         << Kv("error", trained.status().message());
      if (first_error.ok()) first_error = trained.status();
      failures.push_back(std::string(trained.status().message()));
      continue;
    }
    if (!selection.has_value() || ValidationAuprc(*trained) > ValidationAuprc(selection->best)) {
      selection = Selection{std::move(*trained), index, {}};
    }
  }
  if (!selection.has_value()) {
    return first_error.ok() ? absl::FailedPreconditionError("no candidate was trained")
                            : first_error;
  }
  selection->failures = std::move(failures);
  return std::move(*selection);
}

// ---- evaluating ----

// The champion's metrics on the comparison rows, or why it could not be scored.
void MeasureChampion(const RunContext& ctx, const storage_pb::ModelVersion& champion,
                     const Dataset& comparison, const MeasureOptions& measure, GateInput* gate) {
  absl::StatusOr<std::string> dir =
      LocalArtifactDir(*ctx.deps.storage, ctx.options.model_dir, champion);
  absl::StatusOr<std::unique_ptr<model::ModelRuntime>> loaded =
      dir.ok() ? model::LoadModel(*dir)
               : absl::StatusOr<std::unique_ptr<model::ModelRuntime>>(dir.status());
  absl::StatusOr<Measurement> m = loaded.ok() ? Measure(**loaded, comparison, measure)
                                              : absl::StatusOr<Measurement>(loaded.status());
  if (m.ok()) {
    gate->champion = std::move(m->metrics);
  } else {
    gate->champion_error = std::string(m.status().message());
  }
}

// Scores the selected candidate and the current champion on the comparison rows.
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
  MeasureOptions measure;
  measure.bootstrap_resamples = ctx.options.comparison_bootstrap;
  if (!comparison.empty()) {
    FRAUD_ASSIGN_OR_RETURN(Measurement m, Measure(*best.runtime, comparison, measure));
    gate.challenger = std::move(m.metrics);
  }
  FRAUD_ASSIGN_OR_RETURN(std::optional<storage_pb::ModelVersion> champion,
                         ctx.deps.storage->GetChampion());
  if (champion.has_value()) {
    gate.champion_version = champion->version();
    if (!comparison.empty()) {
      MeasureChampion(ctx, *champion, comparison, measure, &gate);
    } else {
      gate.champion_error = "no comparison set";
    }
  }
  ctx.sink.Update([&](storage_pb::TrainingRun& run) {
    if (gate.challenger.has_value()) *run.mutable_challenger_comparison() = *gate.challenger;
    if (gate.champion.has_value()) *run.mutable_champion_comparison() = *gate.champion;
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
    run.mutable_progress()->set_candidates_done(
        static_cast<int32_t>(ctx.settings.candidates.size()));
  }, true);
}

}  // namespace

absl::Status ExecuteRun(const training::v1::StartRunRequest& request, int64_t run_id,
                        const PipelineOptions& options, const PipelineDeps& deps, RunSink& sink,
                        const std::atomic<bool>& cancel) {
  FRAUD_ASSIGN_OR_RETURN(RunSettings settings, ResolveRun(request, options));
  const RunContext ctx{request, run_id, options, deps, sink, cancel, std::move(settings)};

  FRAUD_ASSIGN_OR_RETURN(LoadedData data, LoadData(ctx));
  FRAUD_ASSIGN_OR_RETURN(Selection selection, TrainCandidates(ctx, data.train, data.validation));
  data.train = model::Dataset();
  ReleaseFreeMemory();
  FRAUD_RETURN_IF_ERROR(ctx.CheckCancel());

  FRAUD_ASSIGN_OR_RETURN(GateInput gate, CompareWithChampion(ctx, selection, data.comparison));
  data.comparison.Clear();
  FRAUD_RETURN_IF_ERROR(ctx.CheckCancel());

  FRAUD_ASSIGN_OR_RETURN(int64_t version, Publish(ctx, selection.best, data.lineage, gate));
  const auto [message, promoted] = ApplyGate(ctx, version, gate);
  Finish(ctx, version, message, promoted, selection.failures);
  return absl::OkStatus();
}

}  // namespace fraud::training
