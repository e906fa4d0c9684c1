#include "services/training/evaluation.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/core/status_macros.h"
#include "services/common/eval/metrics.h"
#include "services/common/model/artifact.h"

namespace fraud::training {

absl::StatusOr<std::vector<double>> ClassRatioWeights(absl::Span<const int32_t> labels,
                                                      double rate) {
  if (!(rate > 0 && rate < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("fraud rate must be in (0, 1), got ", rate));
  }
  int64_t frauds = 0;
  for (int32_t y : labels) frauds += y == 1;
  const int64_t normals = static_cast<int64_t>(labels.size()) - frauds;
  if (frauds == 0 || normals == 0) {
    return absl::FailedPreconditionError(
        "re-weighting to a class ratio needs both frauds and normal rows");
  }
  const double w_normal =
      static_cast<double>(frauds) * (1 - rate) / (rate * static_cast<double>(normals));
  std::vector<double> weights(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) weights[i] = labels[i] == 1 ? 1.0 : w_normal;
  return weights;
}

absl::StatusOr<Measurement> MeasureScores(absl::Span<const float> scores,
                                          absl::Span<const int32_t> labels, double threshold,
                                          const MeasureOptions& options) {
  eval::MetricsOptions mo;
  mo.threshold = threshold;
  mo.bootstrap_resamples = std::max(0, options.bootstrap_resamples);
  mo.seed = options.seed;
  Measurement out;
  FRAUD_ASSIGN_OR_RETURN(out.metrics, eval::ComputeClassificationMetrics(scores, labels, mo));
  if (options.weight_to_rate > 0 && !out.metrics.single_class()) {
    FRAUD_ASSIGN_OR_RETURN(std::vector<double> weights,
                           ClassRatioWeights(labels, options.weight_to_rate));
    FRAUD_ASSIGN_OR_RETURN(out.weighted,
                           eval::ComputeClassificationMetrics(scores, labels, mo, weights));
  }
  return out;
}

absl::StatusOr<Measurement> Measure(const model::ModelRuntime& model, const Dataset& data,
                                    const MeasureOptions& options) {
  if (data.empty()) return absl::InvalidArgumentError("no rows to evaluate on");
  FRAUD_ASSIGN_OR_RETURN(std::vector<float> scores, ScoreRows(model, data));
  return MeasureScores(scores, data.labels, model.threshold(), options);
}

absl::StatusOr<std::vector<float>> ScoreRows(const model::ModelRuntime& model, const Dataset& data) {
  std::vector<float> scores(data.rows());
  FRAUD_RETURN_IF_ERROR(model.Score(data.features.data(), data.rows(), scores.data()));
  return scores;
}

absl::StatusOr<std::string> LocalArtifactDir(StorageApi& storage, const std::string& model_dir,
                                             const storage_pb::ModelVersion& model) {
  absl::StatusOr<std::string> dir = storage.FetchModelArtifact(model.version(), model_dir);
  if (absl::IsNotFound(dir.status()) && !model.artifact_uri().empty()) {
    std::error_code ec;
    if (std::filesystem::is_directory(model.artifact_uri(), ec)) return model.artifact_uri();
  }
  return dir;
}

absl::StatusOr<Dataset> LoadEvaluationRows(StorageApi& storage,
                                           const training::v1::EvaluateRequest& request) {
  storage_pb::ScanTransactionsRequest scan;
  scan.mutable_upload_ids()->CopyFrom(request.upload_ids());
  scan.set_time_min(request.time_min());
  scan.set_time_max(request.time_max());
  scan.set_labelled_only(true);
  Dataset rows;
  FRAUD_RETURN_IF_ERROR(storage.ScanTransactions(
      scan, [&](const common::v1::TransactionBatch& batch) { return rows.AppendBatch(batch); }));
  if (rows.empty()) {
    return absl::FailedPreconditionError("no labelled rows match the evaluation filters");
  }
  return rows;
}

absl::StatusOr<training::v1::EvaluateResponse> EvaluateVersions(
    StorageApi& storage, const std::string& model_dir,
    const training::v1::EvaluateRequest& request, const Dataset& rows) {
  std::vector<storage_pb::ModelVersion> models;
  if (request.versions().empty()) {
    FRAUD_ASSIGN_OR_RETURN(models, storage.ListModels());
  } else {
    std::set<int64_t> wanted(request.versions().begin(), request.versions().end());
    for (int64_t v : wanted) {
      FRAUD_ASSIGN_OR_RETURN(storage_pb::ModelVersion m, storage.GetModel(v));
      models.push_back(std::move(m));
    }
  }
  std::sort(models.begin(), models.end(),
            [](const auto& a, const auto& b) { return a.version() < b.version(); });
  MeasureOptions options;
  options.bootstrap_resamples =
      request.bootstrap_resamples() == 0 ? 200 : std::max(0, request.bootstrap_resamples());
  options.weight_to_rate = request.weight_to_rate();
  training::v1::EvaluateResponse response;
  response.set_rows(static_cast<int64_t>(rows.rows()));
  response.set_frauds(rows.frauds());
  for (const storage_pb::ModelVersion& m : models) {
    training::v1::VersionEvaluation* e = response.add_evaluations();
    e->set_version(m.version());
    e->set_family(m.family());
    absl::StatusOr<std::string> dir = LocalArtifactDir(storage, model_dir, m);
    absl::StatusOr<std::unique_ptr<model::ModelRuntime>> runtime =
        dir.ok() ? model::LoadModel(*dir)
                 : absl::StatusOr<std::unique_ptr<model::ModelRuntime>>(dir.status());
    if (!runtime.ok()) {
      e->set_error(absl::StrCat("loading v", m.version(), ": ", runtime.status().message()));
      continue;
    }
    absl::StatusOr<Measurement> measured = Measure(**runtime, rows, options);
    if (!measured.ok()) {
      e->set_error(absl::StrCat("scoring v", m.version(), ": ", measured.status().message()));
      continue;
    }
    *e->mutable_metrics() = std::move(measured->metrics);
    if (measured->weighted.has_value()) *e->mutable_weighted_metrics() = std::move(*measured->weighted);
  }
  return response;
}

}  // namespace fraud::training
