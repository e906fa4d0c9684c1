#include "services/common/model/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/common/core/status_macros.h"
#include "services/common/eval/drift.h"
#include "services/common/eval/metrics.h"
#include "services/common/model/artifact.h"
#include "services/common/model/family_impl.h"

namespace fraud::model {
namespace {

using internal::PreparedSplit;

constexpr size_t kSmokeRows = 16;
constexpr size_t kSmokePositives = 4;
// Scores are recomputed on load with the same code; the slack only absorbs BLAS differences
// between machines, far below what a wrong weight or preprocessing would cause.
constexpr double kSmokeTolerance = 1e-4;
constexpr int kDriftBins = 10;

absl::Status ValidateDataset(const Dataset& d, const char* what) {
  if (d.rows() == 0) return absl::InvalidArgumentError(absl::StrCat(what, " set has no rows"));
  if (d.features.size() != d.rows() * kNumFeatures) {
    return absl::InvalidArgumentError(absl::StrCat(what, " set has ", d.features.size(),
                                                   " feature values for ", d.rows(), " labels"));
  }
  if (!d.weights.empty() && d.weights.size() != d.rows()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " set has ", d.weights.size(), " weights for ", d.rows(), " rows"));
  }
  for (size_t r = 0; r < d.rows(); ++r) {
    if (d.labels[r] != 0 && d.labels[r] != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " row ", r, ": label ", d.labels[r], " is not 0 or 1"));
    }
    if (!d.weights.empty() && !(std::isfinite(d.weights[r]) && d.weights[r] >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " row ", r, ": weight must be finite and >= 0"));
    }
    for (size_t c = 0; c < kNumFeatures; ++c) {
      if (!std::isfinite(d.features[r * kNumFeatures + c])) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, " row ", r, ": feature ", FeatureNames()[c], " is not a finite number"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PreparedSplit> Prepare(const Dataset& d, const Preprocessor& pre, const char* what) {
  PreparedSplit s;
  s.rows = d.rows();
  s.x.resize(s.rows * kNumFeatures);
  FRAUD_RETURN_IF_ERROR(pre.Apply(d.features.data(), s.rows, s.x.data()));
  s.labels = d.labels;
  s.weights = d.weights;
  s.y.resize(s.rows);
  if (!d.weights.empty()) s.w.resize(s.rows);
  for (size_t r = 0; r < s.rows; ++r) {
    s.y[r] = static_cast<float>(d.labels[r]);
    const double w = d.weights.empty() ? 1.0 : d.weights[r];
    if (!d.weights.empty()) s.w[r] = static_cast<float>(w);
    (d.labels[r] == 1 ? s.positives : s.negatives) += w;
  }
  if (s.positives <= 0 || s.negatives <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " set needs both fraud and normal rows (has ", s.positives,
                     " fraud and ", s.negatives, " normal, weighted)"));
  }
  return s;
}

common::v1::SmokeBatch MakeSmokeBatch(const Dataset& validation) {
  // A few frauds first (the interesting end of the score range), then normal rows.
  std::vector<size_t> picked;
  for (size_t r = 0; r < validation.rows() && picked.size() < kSmokePositives; ++r) {
    if (validation.labels[r] == 1) picked.push_back(r);
  }
  for (size_t r = 0; r < validation.rows() && picked.size() < kSmokeRows; ++r) {
    if (validation.labels[r] == 0) picked.push_back(r);
  }
  common::v1::SmokeBatch smoke;
  common::v1::TransactionBatch* rows = smoke.mutable_rows();
  rows->set_num_rows(static_cast<uint32_t>(picked.size()));
  for (size_t r : picked) {
    for (size_t c = 0; c < kNumFeatures; ++c) {
      rows->add_features(validation.features[r * kNumFeatures + c]);
    }
    rows->add_labels(validation.labels[r]);
  }
  smoke.set_tolerance(kSmokeTolerance);
  return smoke;
}

void AddLineage(const Dataset& train, const Dataset& validation, common::v1::DataLineage* l) {
  double tmin = train.features[kTimeColumn];
  double tmax = tmin;
  int64_t train_frauds = 0;
  int64_t val_frauds = 0;
  for (const Dataset* d : {&train, &validation}) {
    for (size_t r = 0; r < d->rows(); ++r) {
      const double t = d->features[r * kNumFeatures + kTimeColumn];
      tmin = std::min(tmin, t);
      tmax = std::max(tmax, t);
      if (d->labels[r] == 1) ++(d == &train ? train_frauds : val_frauds);
    }
  }
  l->set_time_min(tmin);
  l->set_time_max(tmax);
  l->set_train_rows(static_cast<int64_t>(train.rows()));
  l->set_train_frauds(train_frauds);
  l->set_validation_rows(static_cast<int64_t>(validation.rows()));
  l->set_validation_frauds(val_frauds);
}

std::string FormatDouble(double v) { return absl::StrCat(v); }

absl::StatusOr<TrainedCandidate> TrainUnsafe(const CandidateSpec& spec, const Dataset& train,
                                             const Dataset& validation,
                                             const TrainCallbacks& callbacks) {
  const auto started = std::chrono::steady_clock::now();
  if (spec.family == common::v1::MODEL_FAMILY_UNSPECIFIED) {
    return absl::InvalidArgumentError("candidate has no model family");
  }
  const Family* family = FindFamily(spec.family);
  if (family == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported model family ", static_cast<int>(spec.family)));
  }
  if (spec.threads < 1) return absl::InvalidArgumentError("threads must be >= 1");
  FRAUD_RETURN_IF_ERROR(ValidateDataset(train, "training"));
  FRAUD_RETURN_IF_ERROR(ValidateDataset(validation, "validation"));
  if (internal::Cancelled(callbacks)) return absl::CancelledError("training cancelled");

  internal::Params params(spec.params);
  const bool time_of_day = params.Bool("time_of_day", true);
  const bool log_amount = params.Bool("log_amount", true);
  const int seed = params.Int("seed", 42);

  const Preprocessor pre =
      Preprocessor::Fit(train.features.data(), train.rows(), log_amount, time_of_day);
  FRAUD_ASSIGN_OR_RETURN(PreparedSplit train_split, Prepare(train, pre, "training"));
  FRAUD_ASSIGN_OR_RETURN(PreparedSplit val_split, Prepare(validation, pre, "validation"));

  internal::TrainContext ctx;
  ctx.family = spec.family;
  ctx.threads = spec.threads;
  ctx.seed = static_cast<uint64_t>(seed);
  ctx.train = &train_split;
  ctx.validation = &val_split;
  ctx.callbacks = &callbacks;
  ctx.manifest.set_family(spec.family);
  for (const std::string& name : FeatureNames()) ctx.manifest.add_feature_names(name);
  *ctx.manifest.mutable_preprocessing() = pre.ToProto();
  ctx.preprocessor = pre;

  absl::StatusOr<internal::FamilyResult> result = family->train(ctx, params);
  FRAUD_RETURN_IF_ERROR(result.status());
  // The family has trained: free the float copies before the metrics allocate.
  train_split = PreparedSplit();
  val_split = PreparedSplit();

  TrainedCandidate out;
  out.name = spec.Name();
  out.runtime = std::move(result->runtime);
  out.curve = std::move(result->curve);
  out.best_epoch = result->best_epoch;

  // Validation figures through the public scoring path, exactly as inference will score.
  std::vector<float> scores(validation.rows());
  FRAUD_RETURN_IF_ERROR(
      out.runtime->Score(validation.features.data(), validation.rows(), scores.data()));
  FRAUD_ASSIGN_OR_RETURN(double threshold,
                         eval::SelectThresholdMaxF1(scores, validation.labels, validation.weights));
  eval::MetricsOptions options;
  options.threshold = threshold;
  FRAUD_ASSIGN_OR_RETURN(
      ClassificationMetrics metrics,
      eval::ComputeClassificationMetrics(scores, validation.labels, options, validation.weights));

  FRAUD_ASSIGN_OR_RETURN(std::vector<eval::BudgetPoint> budgets,
                         eval::ThresholdsForAlertBudgets(scores, validation.labels,
                                                         kAlertBudgets, validation.weights));

  ModelManifest& m = internal::RuntimeAccess::MutableManifest(*out.runtime);
  m.set_threshold(threshold);
  for (const eval::BudgetPoint& b : budgets) {
    common::v1::BudgetThreshold* t = m.add_budget_thresholds();
    t->set_alert_fraction(b.fraction);
    t->set_threshold(b.threshold);
    t->set_precision(b.precision);
    t->set_recall(b.recall);
    t->set_alerts(std::llround(b.alerts));
  }
  m.mutable_params()->clear();
  for (const auto& [k, v] : params.resolved()) (*m.mutable_params())[k] = v;
  (*m.mutable_params())["best_epoch"] = absl::StrCat(out.best_epoch);
  AddLineage(train, validation, m.mutable_lineage());
  *m.mutable_validation_metrics() = std::move(metrics);
  *m.mutable_smoke() = MakeSmokeBatch(validation);
  std::vector<float> smoke_scores(m.smoke().rows().num_rows());
  FRAUD_RETURN_IF_ERROR(out.runtime->Score(m.smoke().rows().features().data(), smoke_scores.size(),
                                           smoke_scores.data()));
  for (float s : smoke_scores) m.mutable_smoke()->add_expected_scores(s);
  FRAUD_ASSIGN_OR_RETURN(std::vector<common::v1::FeatureReference> refs,
                         eval::BuildFeatureReferences(train.features.data(), train.rows(),
                                                      FeatureNames(), kDriftBins));
  for (auto& r : refs) *m.add_reference() = std::move(r);

  out.train_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return out;
}

}  // namespace

namespace internal {

const std::string* Params::Find(const std::string& key) {
  auto it = raw_.find(key);
  return it == raw_.end() ? nullptr : &it->second;
}

void Params::Fail(const std::string& key, const std::string& value, const char* want) {
  if (status_.ok()) {
    status_ =
        absl::InvalidArgumentError(absl::StrCat("parameter ", key, "='", value, "' is not ", want));
  }
}

double Params::Double(const std::string& key, double def) {
  double v = def;
  if (const std::string* s = Find(key)) {
    if (!absl::SimpleAtod(*s, &v) || !std::isfinite(v)) Fail(key, *s, "a number");
  }
  resolved_[key] = FormatDouble(v);
  return v;
}

int Params::Int(const std::string& key, int def) {
  int v = def;
  if (const std::string* s = Find(key)) {
    if (!absl::SimpleAtoi(*s, &v)) Fail(key, *s, "an integer");
  }
  resolved_[key] = absl::StrCat(v);
  return v;
}

bool Params::Bool(const std::string& key, bool def) {
  bool v = def;
  if (const std::string* s = Find(key)) {
    if (!absl::SimpleAtob(*s, &v)) Fail(key, *s, "a boolean");
  }
  resolved_[key] = v ? "1" : "0";
  return v;
}

std::string Params::String(const std::string& key, const std::string& def) {
  const std::string* s = Find(key);
  std::string v = s != nullptr ? *s : def;
  resolved_[key] = v;
  return v;
}

std::vector<int> Params::IntList(const std::string& key, const std::string& def) {
  const std::string* s = Find(key);
  const std::string text = s != nullptr ? *s : def;
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 1) {
      Fail(key, text, "a comma-separated list of positive integers");
      return {};
    }
    out.push_back(v);
  }
  resolved_[key] = absl::StrJoin(out, ",");
  return out;
}

absl::Status Params::Finish() const {
  if (!status_.ok()) return status_;
  for (const auto& [k, v] : raw_) {
    if (resolved_.count(k) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("unknown parameter '", k, "'"));
    }
  }
  return absl::OkStatus();
}

SplitStats EvaluateProbabilities(const std::vector<float>& probs, const PreparedSplit& split) {
  SplitStats stats;
  double loss = 0;
  double total = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    const double p = std::clamp(static_cast<double>(probs[i]), 1e-7, 1.0 - 1e-7);
    const double w = split.weights.empty() ? 1.0 : split.weights[i];
    loss -= w * (split.labels[i] == 1 ? std::log(p) : std::log(1.0 - p));
    total += w;
  }
  stats.loss = total > 0 ? loss / total : 0;
  absl::StatusOr<double> ap = eval::AveragePrecision(probs, split.labels, split.weights);
  stats.auprc = ap.ok() ? *ap : 0.0;
  return stats;
}

absl::StatusOr<double> ResolvePositiveWeight(const std::string& spec, const PreparedSplit& train) {
  const double ratio = train.negatives / train.positives;
  if (spec == "balanced") return ratio;
  if (spec == "sqrt") return std::sqrt(ratio);
  double v = 0;
  if (!absl::SimpleAtod(spec, &v) || !std::isfinite(v) || v <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "positive-class weight '", spec, "' is not a positive number, 'balanced' or 'sqrt'"));
  }
  return v;
}

bool Cancelled(const TrainCallbacks& callbacks) {
  return callbacks.cancel != nullptr && callbacks.cancel->load(std::memory_order_relaxed);
}

}  // namespace internal

std::string CandidateSpec::Name() const {
  std::string name = FamilyName(family);
  for (const auto& [k, v] : params) absl::StrAppend(&name, " ", k, "=", v);
  return name;
}

ModelManifest TrainedCandidate::ManifestForVersion(int64_t version) const {
  ModelManifest m = runtime->manifest();
  m.set_version(version);
  return m;
}

absl::StatusOr<TrainedCandidate> TrainCandidate(const CandidateSpec& spec, const Dataset& train,
                                                const Dataset& validation,
                                                const TrainCallbacks& callbacks) {
  try {
    return TrainUnsafe(spec, train, validation, callbacks);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("training ", spec.Name(), ": ", e.what()));
  }
}

std::vector<CandidateSpec> DefaultGrid(ModelFamily family) {
  std::vector<CandidateSpec> out;
  const Family* f = FindFamily(family);
  if (f == nullptr) return out;
  for (const std::map<std::string, std::string>& params : f->default_grid) {
    CandidateSpec spec;
    spec.family = family;
    spec.params = params;
    out.push_back(std::move(spec));
  }
  return out;
}

std::vector<CandidateSpec> DefaultCandidates() {
  std::vector<CandidateSpec> out;
  for (const Family& f : Families()) {
    for (CandidateSpec& spec : DefaultGrid(f.id)) out.push_back(std::move(spec));
  }
  return out;
}

}  // namespace fraud::model
