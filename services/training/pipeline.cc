#include "services/training/pipeline.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/core/log.h"
#include "services/common/core/sha256.h"
#include "services/common/core/status_macros.h"
#include "services/common/eval/metrics.h"
#include "services/common/model/artifact.h"
#include "services/common/rpc/artifact_transfer.h"
#include "services/training/dataset.h"
#include "services/training/evaluation.h"
#include "services/training/promotion.h"
#include "services/training/training_metrics.h"

namespace fraud::training {
namespace {

using ::fraud::common::v1::ClassificationMetrics;
using ::google::protobuf::util::TimeUtil;

std::vector<ModelFamily> AllFamilies() {
  std::vector<ModelFamily> out;
  for (const model::Family& f : model::Families()) out.push_back(f.id);
  return out;
}

absl::StatusOr<int> PositiveInt(const std::string& key, const std::string& value) {
  int v = 0;
  if (!absl::SimpleAtoi(value, &v) || v <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter ", key, "='", value, "' is not a positive integer"));
  }
  return v;
}

absl::StatusOr<double> Fraction(const std::string& key, const std::string& value, bool allow_zero) {
  double v = 0;
  if (!absl::SimpleAtod(value, &v) || !(allow_zero ? v >= 0 : v > 0) || !(v < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("parameter ", key, "='", value,
                                                   "' is not a fraction in ",
                                                   allow_zero ? "[0, 1)" : "(0, 1)"));
  }
  return v;
}

const std::string* FindParam(const training::v1::StartRunRequest& request, const std::string& key) {
  auto it = request.params().find(key);
  return it == request.params().end() ? nullptr : &it->second;
}

absl::StatusOr<double> ValidationFraction(const training::v1::StartRunRequest& request,
                                          const PipelineOptions& options) {
  if (request.validation_fraction() != 0) {
    return Fraction("validation_fraction", absl::StrCat(request.validation_fraction()), false);
  }
  if (const std::string* v = FindParam(request, "validation_fraction")) {
    return Fraction("validation_fraction", *v, false);
  }
  return options.validation_fraction;
}

absl::StatusOr<double> HoldoutFraction(const training::v1::StartRunRequest& request,
                                       const PipelineOptions& options) {
  if (const std::string* v = FindParam(request, "holdout_fraction")) {
    return Fraction("holdout_fraction", *v, true);
  }
  return options.holdout_fraction;
}

double PromotionMargin(const training::v1::StartRunRequest& request,
                       const PipelineOptions& options) {
  return request.promotion_margin() != 0 ? request.promotion_margin() : options.promotion_margin;
}

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

}  // namespace

int64_t PeakRssBytes() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmHWM:") {
      int64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0;
}

void ReleaseFreeMemory() { malloc_trim(0); }

bool ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

absl::StatusOr<std::vector<ModelFamily>> ParseFamilies(const std::vector<std::string>& names) {
  std::vector<ModelFamily> out;
  std::set<int> seen;
  for (const std::string& raw : names) {
    for (absl::string_view piece : absl::StrSplit(raw, ',', absl::SkipWhitespace())) {
      const std::string name(absl::StripAsciiWhitespace(piece));
      if (name == "all") {
        for (ModelFamily f : AllFamilies()) {
          if (seen.insert(f).second) out.push_back(f);
        }
        continue;
      }
      FRAUD_ASSIGN_OR_RETURN(ModelFamily f, model::ParseFamily(name));
      if (seen.insert(f).second) out.push_back(f);
    }
  }
  return out;
}

absl::StatusOr<std::vector<model::CandidateSpec>> BuildCandidates(
    const training::v1::StartRunRequest& request, const PipelineOptions& options) {
  std::vector<ModelFamily> families;
  if (!request.families().empty()) {
    FRAUD_ASSIGN_OR_RETURN(families, ParseFamilies(std::vector<std::string>(
                                         request.families().begin(), request.families().end())));
  }
  if (families.empty()) families = options.families;
  if (families.empty()) families = AllFamilies();

  bool small_grid = false;
  int max_epochs = options.max_epochs;
  int threads = options.threads;
  std::map<ModelFamily, std::map<std::string, std::string>> overrides;
  for (const auto& [key, value] : request.params()) {
    if (key == "grid") {
      if (value != "default" && value != "small") {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter grid='", value, "' is not 'default' or 'small'"));
      }
      small_grid = value == "small";
    } else if (key == "max_epochs") {
      FRAUD_ASSIGN_OR_RETURN(max_epochs, PositiveInt(key, value));
    } else if (key == "threads") {
      FRAUD_ASSIGN_OR_RETURN(threads, PositiveInt(key, value));
    } else if (key == "validation_fraction" || key == "holdout_fraction") {
      // Run-level settings, validated by ResolveRunParams.
    } else {
      const size_t dot = key.find('.');
      if (dot == std::string::npos || dot + 1 == key.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unknown parameter '", key,
            "' (expected grid, max_epochs, threads, validation_fraction, holdout_fraction or "
            "<family>.<param>, for example mlp.epochs)"));
      }
      absl::StatusOr<ModelFamily> f = model::ParseFamily(key.substr(0, dot));
      if (!f.ok() || *f == common::v1::MODEL_FAMILY_UNSPECIFIED) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter '", key, "' names no model family"));
      }
      overrides[*f][key.substr(dot + 1)] = value;
    }
  }

  std::vector<model::CandidateSpec> out;
  for (ModelFamily family : families) {
    std::vector<model::CandidateSpec> grid = model::DefaultGrid(family);
    if (small_grid && grid.size() > 1) grid.resize(1);
    for (model::CandidateSpec& spec : grid) {
      spec.threads = threads;
      if (const model::Family* row = model::FindFamily(family)) {
        model::CapEpochs(*row, max_epochs, &spec.params);
      }
      for (const auto& [k, v] : overrides[family]) spec.params[k] = v;
      out.push_back(std::move(spec));
    }
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> ResolveRunParams(
    const training::v1::StartRunRequest& request, const PipelineOptions& options) {
  FRAUD_ASSIGN_OR_RETURN(std::vector<model::CandidateSpec> specs,
                         BuildCandidates(request, options));
  FRAUD_ASSIGN_OR_RETURN(double validation_fraction, ValidationFraction(request, options));
  FRAUD_ASSIGN_OR_RETURN(double holdout_fraction, HoldoutFraction(request, options));
  if (request.comparison_time_max() < request.comparison_time_min()) {
    return absl::InvalidArgumentError("comparison_time_max is below comparison_time_min");
  }
  std::map<std::string, std::string> out(request.params().begin(), request.params().end());
  std::vector<std::string> families;
  for (const model::CandidateSpec& s : specs) {
    const std::string name = FamilyName(s.family);
    if (std::find(families.begin(), families.end(), name) == families.end()) {
      families.push_back(name);
    }
  }
  out["families"] = absl::StrJoin(families, ",");
  out["candidates"] = absl::StrCat(specs.size());
  out["validation_fraction"] = absl::StrCat(validation_fraction);
  out["promotion_margin"] = absl::StrCat(PromotionMargin(request, options));
  if (request.no_promote()) out["no_promote"] = "true";
  const bool named_comparison = !request.comparison_upload_ids().empty() ||
                                request.comparison_time_max() > request.comparison_time_min();
  if (!request.comparison_upload_ids().empty()) {
    out["comparison_upload_ids"] = absl::StrJoin(request.comparison_upload_ids(), ",");
  }
  if (request.comparison_time_max() > request.comparison_time_min()) {
    out["comparison_time"] =
        absl::StrCat(request.comparison_time_min(), "..", request.comparison_time_max());
  }
  if (!named_comparison) out["holdout_fraction"] = absl::StrCat(holdout_fraction);
  if (!request.train_upload_ids().empty()) {
    out["train_upload_ids"] = absl::StrJoin(request.train_upload_ids(), ",");
  }
  if (request.train_time_max() > 0) out["train_time_max"] = absl::StrCat(request.train_time_max());
  if (!request.description().empty()) out["description"] = request.description();
  return out;
}

absl::Status ExecuteRun(const training::v1::StartRunRequest& request, int64_t run_id,
                        const PipelineOptions& options, const PipelineDeps& deps, RunSink& sink,
                        const std::atomic<bool>& cancel) {
  StorageApi& storage = *deps.storage;
  const CandidateTrainer trainer = deps.trainer ? deps.trainer : CandidateTrainer(model::TrainCandidate);
  auto check_cancel = [&]() -> absl::Status {
    return cancel.load() ? absl::CancelledError("run cancelled") : absl::OkStatus();
  };
  FRAUD_ASSIGN_OR_RETURN(std::vector<model::CandidateSpec> specs, BuildCandidates(request, options));
  FRAUD_ASSIGN_OR_RETURN(double validation_fraction, ValidationFraction(request, options));
  FRAUD_ASSIGN_OR_RETURN(double holdout_fraction, HoldoutFraction(request, options));
  const double margin = PromotionMargin(request, options);

  // ---- loading ----
  sink.Update([&](storage_pb::TrainingRun& run) {
    SetProgress(run, "loading", "reading labelled rows from storage");
    run.mutable_progress()->set_candidates_total(static_cast<int32_t>(specs.size()));
  }, true);
  FRAUD_ASSIGN_OR_RETURN(storage_pb::GetDataStatsResponse stats, storage.GetDataStats(0));
  // Recorded first, so that even a run that fails on this data keeps the auto trigger from
  // retrying the same rows (see auto_trigger.h).
  sink.Update([&](storage_pb::TrainingRun& run) {
    (*run.mutable_params())["data.max_upload_id"] = absl::StrCat(stats.max_upload_id());
  }, true);

  SplitOptions split_options;
  split_options.comparison.upload_ids.insert(request.comparison_upload_ids().begin(),
                                             request.comparison_upload_ids().end());
  split_options.comparison.time_min = request.comparison_time_min();
  split_options.comparison.time_max = request.comparison_time_max();
  split_options.validation_fraction = validation_fraction;
  split_options.holdout_fraction = holdout_fraction;
  split_options.train_time_max = request.train_time_max();
  split_options.max_pool_rows = static_cast<size_t>(std::max<int64_t>(0, options.max_train_rows));
  RunSplitter splitter(split_options);

  storage_pb::ScanTransactionsRequest scan;
  scan.set_labelled_only(true);
  scan.set_batch_rows(options.scan_batch_rows);
  if (!request.train_upload_ids().empty()) {
    std::set<int64_t> ids(request.train_upload_ids().begin(), request.train_upload_ids().end());
    ids.insert(request.comparison_upload_ids().begin(), request.comparison_upload_ids().end());
    for (int64_t id : ids) scan.add_upload_ids(id);
  }
  int64_t next_report = 50000;
  FRAUD_RETURN_IF_ERROR(storage.ScanTransactions(
      scan, [&](const common::v1::TransactionBatch& batch) -> absl::Status {
        FRAUD_RETURN_IF_ERROR(check_cancel());
        FRAUD_RETURN_IF_ERROR(splitter.Add(batch));
        if (splitter.rows_seen() >= next_report) {
          next_report += 50000;
          const int64_t seen = splitter.rows_seen();
          sink.Update([&](storage_pb::TrainingRun& run) {
            run.mutable_progress()->set_message(absl::StrCat("read ", seen, " rows"));
          }, false);
        }
        return absl::OkStatus();
      }));
  FRAUD_RETURN_IF_ERROR(check_cancel());
  const int64_t rows_read = splitter.rows_seen();
  FRAUD_ASSIGN_OR_RETURN(SplitData split, std::move(splitter).Finish());
  ReleaseFreeMemory();  // the scan's message buffers
  if (split.train.frauds() == 0 || split.train.frauds() == static_cast<int64_t>(split.train.rows())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the training rows (", Describe(split.train),
        ") need both frauds and normal rows; upload more labelled data"));
  }
  if (split.validation.frauds() == 0 ||
      split.validation.frauds() == static_cast<int64_t>(split.validation.rows())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the validation window (newest ", validation_fraction * 100, "% of the training rows: ",
        Describe(split.validation),
        ") needs both frauds and normal rows; upload more labelled data or raise "
        "validation_fraction"));
  }

  common::v1::DataLineage lineage;
  {
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
    lineage.set_description(!request.description().empty()
                                ? request.description()
                                : absl::StrCat(request.trigger().empty() ? "manual" : request.trigger(),
                                               " run ", run_id));
  }
  const std::string split_message = absl::StrCat(
      "read ", rows_read, " labelled rows: train ", Describe(split.train), ", validation ",
      Describe(split.validation), ", comparison ", Describe(split.comparison),
      split.comparison_is_holdout ? " (newest rows held out)" : "",
      split.rows_over_limit > 0
          ? absl::StrCat("; the oldest ", split.rows_over_limit, " rows left out (at most ",
                         options.max_train_rows, " training rows: --max_train_rows)")
          : "");
  FRAUD_LOG(INFO) << "run data loaded" << Kv("run_id", run_id)
                  << Kv("train_rows", split.train.rows())
                  << Kv("validation_rows", split.validation.rows())
                  << Kv("comparison_rows", split.comparison.rows());
  sink.Update([&](storage_pb::TrainingRun& run) {
    *run.mutable_lineage() = lineage;
    (*run.mutable_params())["data.comparison_rows"] = absl::StrCat(split.comparison.rows());
    (*run.mutable_params())["data.comparison_frauds"] = absl::StrCat(split.comparison.frauds());
    if (split.rows_over_limit > 0) {
      (*run.mutable_params())["data.rows_over_limit"] = absl::StrCat(split.rows_over_limit);
    }
    SetProgress(run, "training", split_message);
  }, true);

  model::Dataset train = ToModelDataset(std::move(split.train));
  model::Dataset validation = ToModelDataset(std::move(split.validation));
  Dataset comparison = std::move(split.comparison);

  // ---- training ----
  std::optional<model::TrainedCandidate> best;
  int best_index = -1;
  absl::Status first_error;
  std::vector<std::string> failures;
  for (size_t i = 0; i < specs.size(); ++i) {
    FRAUD_RETURN_IF_ERROR(check_cancel());
    const model::CandidateSpec& spec = specs[i];
    const std::string name = spec.Name();
    const int index = static_cast<int>(i);
    sink.Update([&](storage_pb::TrainingRun& run) {
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
    callbacks.cancel = &cancel;
    callbacks.on_epoch = [&](const model::EpochProgress& p) {
      sink.Update([&](storage_pb::TrainingRun& run) {
        storage_pb::Candidate* c = run.mutable_candidates(index);
        storage_pb::EpochPoint* e = c->add_curve();
        e->set_epoch(p.epoch);
        e->set_train_loss(p.train_loss);
        e->set_validation_loss(p.validation_loss);
        e->set_validation_auprc(p.validation_auprc);
        run.mutable_progress()->set_epoch(p.epoch);
        run.mutable_progress()->set_loss(p.train_loss);
        run.mutable_progress()->set_metric(p.validation_auprc);
      }, false);
    };
    const auto started = std::chrono::steady_clock::now();
    absl::StatusOr<model::TrainedCandidate> trained = trainer(spec, train, validation, callbacks);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const int64_t peak_rss = PeakRssBytes();
    if (!trained.ok()) {
      metrics::CountCandidate(FamilyName(spec.family), false);
      if (trained.status().code() == absl::StatusCode::kCancelled || cancel.load()) {
        return absl::CancelledError("run cancelled");
      }
      const absl::Status annotated =
          Annotate(trained.status(), absl::StrCat("candidate ", name));
      if (trained.status().code() == absl::StatusCode::kInvalidArgument) return annotated;
      FRAUD_LOG(WARNING) << "candidate failed" << Kv("run_id", run_id) << Kv("candidate", name)
                         << Kv("error", trained.status().message());
      if (first_error.ok()) first_error = annotated;
      failures.push_back(std::string(annotated.message()));
      sink.Update([&](storage_pb::TrainingRun& run) {
        storage_pb::Candidate* c = run.mutable_candidates(index);
        (*c->mutable_params())["error"] = std::string(trained.status().message());
        c->set_train_seconds(seconds);
        c->set_peak_rss_bytes(peak_rss);
      }, true);
      continue;
    }
    metrics::CountCandidate(FamilyName(spec.family), true);
    ClassificationMetrics vm = trained->validation_metrics();
    EnsurePrCurve(*trained, validation, &vm);
    sink.Update([&](storage_pb::TrainingRun& run) {
      storage_pb::Candidate* c = run.mutable_candidates(index);
      c->set_name(trained->name.empty() ? name : trained->name);
      c->mutable_params()->clear();
      for (const auto& [k, v] : trained->manifest().params()) (*c->mutable_params())[k] = v;
      *c->mutable_validation_metrics() = vm;
      if (c->curve_size() == 0) {
        for (const model::EpochProgress& p : trained->curve) {
          storage_pb::EpochPoint* e = c->add_curve();
          e->set_epoch(p.epoch);
          e->set_train_loss(p.train_loss);
          e->set_validation_loss(p.validation_loss);
          e->set_validation_auprc(p.validation_auprc);
        }
      }
      c->set_train_seconds(trained->train_seconds > 0 ? trained->train_seconds : seconds);
      c->set_peak_rss_bytes(peak_rss);
      run.mutable_progress()->set_candidates_done(index + 1);
      run.mutable_progress()->set_message(
          absl::StrCat(c->name(), ": validation AUPRC ", FormatAuprc(vm)));
    }, true);
    const double auprc = vm.single_class() ? -1 : vm.auprc();
    const double best_auprc =
        best.has_value() && !best->validation_metrics().single_class() ? best->validation_metrics().auprc() : -1;
    if (!best.has_value() || auprc > best_auprc) {
      best = std::move(*trained);
      best_index = index;
    }
  }
  if (!best.has_value()) {
    return first_error.ok() ? absl::FailedPreconditionError("no candidate was trained")
                            : first_error;
  }
  train = model::Dataset();
  ReleaseFreeMemory();
  FRAUD_RETURN_IF_ERROR(check_cancel());

  // ---- evaluating ----
  const std::string best_name = best->name;
  sink.Update([&](storage_pb::TrainingRun& run) {
    run.mutable_candidates(best_index)->set_selected(true);
    SetProgress(run, "evaluating",
                absl::StrCat("selected ", best_name, " (validation AUPRC ",
                             FormatAuprc(best->validation_metrics()),
                             "); scoring challenger and champion on the comparison set"));
  }, true);
  GateInput gate;
  gate.margin = margin;
  MeasureOptions measure;
  measure.bootstrap_resamples = options.comparison_bootstrap;
  if (!comparison.empty()) {
    FRAUD_ASSIGN_OR_RETURN(Measurement m, Measure(*best->runtime, comparison, measure));
    gate.challenger = std::move(m.metrics);
  }
  FRAUD_ASSIGN_OR_RETURN(std::optional<storage_pb::ModelVersion> champion, storage.GetChampion());
  if (champion.has_value()) {
    gate.champion_version = champion->version();
    if (!comparison.empty()) {
      absl::StatusOr<std::string> dir = LocalArtifactDir(storage, options.model_dir, *champion);
      absl::StatusOr<std::unique_ptr<model::ModelRuntime>> loaded =
          dir.ok() ? model::LoadModel(*dir)
                   : absl::StatusOr<std::unique_ptr<model::ModelRuntime>>(dir.status());
      absl::StatusOr<Measurement> m = loaded.ok() ? Measure(**loaded, comparison, measure)
                                                  : absl::StatusOr<Measurement>(loaded.status());
      if (m.ok()) {
        gate.champion = std::move(m->metrics);
      } else {
        gate.champion_error = std::string(m.status().message());
      }
    } else {
      gate.champion_error = "no comparison set";
    }
  }
  comparison.Clear();
  const GateDecision decision = DecideGate(gate);
  sink.Update([&](storage_pb::TrainingRun& run) {
    if (gate.challenger.has_value()) *run.mutable_challenger_comparison() = *gate.challenger;
    if (gate.champion.has_value()) *run.mutable_champion_comparison() = *gate.champion;
    run.set_champion_version_before(gate.champion_version);
  }, true);
  FRAUD_RETURN_IF_ERROR(check_cancel());

  // ---- publishing ----
  sink.Update([&](storage_pb::TrainingRun& run) {
    SetProgress(run, "publishing", "writing and registering the new version");
  }, true);
  FRAUD_ASSIGN_OR_RETURN(int64_t version, storage.AllocateModelVersion());
  common::v1::ModelManifest manifest = best->ManifestForVersion(version);
  {
    common::v1::DataLineage* l = manifest.mutable_lineage();
    l->clear_upload_ids();
    for (int64_t id : lineage.upload_ids()) l->add_upload_ids(id);
    l->set_description(lineage.description());
  }
  if (gate.challenger.has_value()) *manifest.mutable_comparison_metrics() = *gate.challenger;
  manifest.set_run_id(run_id);
  *manifest.mutable_created_at() = TimeUtil::GetCurrentTime();
  FRAUD_RETURN_IF_ERROR(check_cancel());
  FRAUD_ASSIGN_OR_RETURN(std::string artifact_dir,
                         model::WriteArtifact(options.model_dir, manifest, *best->runtime));
  auto remove_artifact = [&] {
    std::error_code ec;
    std::filesystem::remove_all(artifact_dir, ec);
  };
  if (cancel.load()) {
    remove_artifact();
    return absl::CancelledError("run cancelled");
  }
  absl::StatusOr<common::v1::ModelManifest> written = model::ReadManifest(artifact_dir);
  absl::StatusOr<std::string> manifest_sha =
      Sha256File((std::filesystem::path(artifact_dir) / model::kManifestFileName).string());
  if (!written.ok() || !manifest_sha.ok()) {
    remove_artifact();
    return !written.ok() ? written.status() : manifest_sha.status();
  }
  // The registry holds the artifact before the version is registered, so every registered
  // version can be fetched by an inference instance that never saw this disk.
  std::vector<std::string> files = {model::kManifestFileName};
  for (const common::v1::ArtifactFile& f : written->files()) files.push_back(f.name());
  if (absl::Status s = storage.PutModelArtifact(version, artifact_dir, files); !s.ok()) {
    remove_artifact();
    return Annotate(s, absl::StrCat("storing the artifact of v", version));
  }
  storage_pb::ModelVersion registered;
  registered.set_version(version);
  registered.set_family(manifest.family());
  *registered.mutable_manifest() = *written;
  registered.set_artifact_uri(rpc::RegistryArtifactUri(version));
  registered.set_artifact_sha256(*manifest_sha);
  registered.set_run_id(run_id);
  absl::StatusOr<storage_pb::ModelVersion> reg = storage.RegisterModel(registered);
  if (!reg.ok()) {
    remove_artifact();
    return Annotate(reg.status(), absl::StrCat("registering v", version));
  }
  FRAUD_LOG(INFO) << "version registered" << Kv("run_id", run_id) << Kv("version", version)
                  << Kv("family", FamilyName(manifest.family())) << Kv("dir", artifact_dir);
  sink.Update([&](storage_pb::TrainingRun& run) {
    run.set_model_version(version);
    run.mutable_progress()->set_message(absl::StrCat("registered v", version));
  }, true);

  // ---- gate ----
  std::string message;
  bool promoted = false;
  if (request.no_promote()) {
    message = absl::StrCat("registered v", version, "; not promoted (no_promote); gate would have ",
                           decision.promote ? "promoted" : "kept the champion", ": ",
                           decision.reason);
    metrics::CountPromotion("skipped");
  } else if (!decision.promote) {
    message = absl::StrCat("registered v", version, "; ", decision.reason);
    metrics::CountPromotion("rejected");
  } else {
    PromotionRequest pr;
    pr.version = version;
    pr.expected_champion = gate.champion_version;
    pr.reason = absl::StrCat("run ", run_id, ": ", decision.reason);
    pr.actor = options.actor;
    absl::StatusOr<PromotionResult> result = PromoteVersion(storage, deps.inference, pr);
    if (!result.ok()) {
      const bool conflict = result.status().code() == absl::StatusCode::kAborted;
      metrics::CountPromotion(conflict ? "conflict" : "failed");
      message = absl::StrCat("registered v", version, "; ", decision.reason, "; but not promoted: ",
                             result.status().message());
    } else {
      promoted = result->promoted;
      metrics::CountPromotion(result->rolled_back ? "rolled_back" : "promoted");
      message = absl::StrCat("registered v", version, "; ", decision.reason, "; ", result->message);
    }
  }
  if (!failures.empty()) {
    message += absl::StrCat(" (", failures.size(), " candidate(s) failed: ",
                            absl::StrJoin(failures, "; "), ")");
  }
  FRAUD_LOG(INFO) << "run finished" << Kv("run_id", run_id) << Kv("version", version)
                  << Kv("promoted", promoted) << Kv("message", message);
  sink.Update([&](storage_pb::TrainingRun& run) {
    run.set_promoted(promoted);
    run.set_message(message);
    SetProgress(run, "done", message);
    run.mutable_progress()->set_candidates_done(static_cast<int32_t>(specs.size()));
  }, true);
  return absl::OkStatus();
}

}  // namespace fraud::training
