#include "services/inference/model_reloader.h"

#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "services/common/core/file_util.h"
#include "services/common/core/log.h"
#include "services/common/core/metrics.h"
#include "services/common/core/status_macros.h"

namespace fraud::inference {
namespace {

struct ReloadMetrics {
  ReloadMetrics()
      : reloads(metrics::Counter("fraud_inference_model_reloads_total",
                                 "Model loads attempted, by result (ok, failed)")),
        ok(reloads.Add({{"result", "ok"}})),
        failed(reloads.Add({{"result", "failed"}})),
        version(metrics::Gauge("fraud_inference_model_version",
                               "Model version currently serving (0 = none)")
                    .Add({})) {}
  prometheus::Family<prometheus::Counter>& reloads;
  prometheus::Counter& ok;
  prometheus::Counter& failed;
  prometheus::Gauge& version;
};

ReloadMetrics& Metrics() {
  static auto* m = new ReloadMetrics();
  return *m;
}

int64_t VersionOf(const std::shared_ptr<const LoadedModel>& m) { return m ? m->version : 0; }

}  // namespace

ModelReloader::ModelReloader(std::string model_dir, ModelLoader loader, ModelHolder* holder,
                             ChampionSource* champion, ArtifactSource* artifacts,
                             const Clock* clock, OperatingPointSource* operating_points)
    : model_dir_(std::move(model_dir)),
      loader_(std::move(loader)),
      holder_(holder),
      champion_(champion),
      artifacts_(artifacts),
      clock_(clock),
      operating_points_(operating_points) {
  Metrics();  // registers the families so /metrics shows them from the start
}

std::string ModelReloader::ArtifactPath(int64_t version) const {
  return ArtifactDir(model_dir_, version);
}

absl::StatusOr<ReloadResult> ModelReloader::Reload(int64_t version) {
  if (version < 0) {
    return absl::InvalidArgumentError(absl::StrCat("model version must be >= 0, got ", version));
  }
  if (version == 0) {
    if (champion_ == nullptr) {
      return absl::FailedPreconditionError(
          "version 0 means the registry's champion, but no registry is configured");
    }
    absl::StatusOr<int64_t> champion = champion_->ChampionVersion();
    if (!champion.ok()) {
      CountResult(champion.status(), 0);
      return champion.status();
    }
    if (*champion == 0) {
      absl::Status s = absl::NotFoundError("the registry has no champion model yet");
      CountResult(s, 0);
      return s;
    }
    version = *champion;
  }
  absl::MutexLock lock(&load_mu_);
  return LoadAndSwap(version);
}

absl::StatusOr<bool> ModelReloader::ReloadIfNotServing(int64_t version) {
  if (version <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("model version must be > 0, got ", version));
  }
  absl::MutexLock lock(&load_mu_);
  // Checked under load_mu_ so two concurrent callers do not load the same version twice.
  if (VersionOf(holder_->Get()) == version) return false;
  FRAUD_ASSIGN_OR_RETURN(ReloadResult result, LoadAndSwap(version));
  (void)result;
  return true;
}

absl::StatusOr<ReloadResult> ModelReloader::LoadAndSwap(int64_t version) {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::shared_ptr<const LoadedModel>> loaded = LoadVersion(version);
  if (!loaded.ok()) {
    CountResult(loaded.status(), version);
    return loaded.status();
  }
  ReloadResult result;
  result.version = version;
  result.load_time = absl::FromChrono(std::chrono::steady_clock::now() - start);
  result.threshold = (*loaded)->threshold;
  std::shared_ptr<const LoadedModel> previous = holder_->Swap(*std::move(loaded));
  result.previous_version = VersionOf(previous);
  // Success is logged by the caller (the Reload handler, the watcher or main), which knows why.
  CountResult(absl::OkStatus(), version);
  return result;
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelReloader::LoadVersion(int64_t version) {
  const std::string path = ArtifactPath(version);
  // Messages go back to the caller of Reload: they name the version, the file and the defect,
  // never the server's directory layout (the path is logged with the failure instead).
  const std::string context = absl::StrCat("loading model version ", version);
  struct stat st;
  bool fetched = false;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    if (artifacts_ == nullptr) {
      return absl::NotFoundError(
          absl::StrCat(context, ": no artifact of that version in the model directory"));
    }
    const absl::Status s = artifacts_->Fetch(version, model_dir_);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat(context, ": ", s.message()));
    fetched = true;
    FRAUD_LOG(INFO) << "model artifact fetched from the registry" << Kv("model_version", version)
                    << Kv("artifact_path", path);
  }
  absl::StatusOr<std::shared_ptr<const LoadedModel>> loaded = VerifyAndWrap(version, path, context);
  if (!loaded.ok() && fetched) {
    // Not kept in the cache: the next attempt fetches it again.
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  return loaded;
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelReloader::VerifyAndWrap(
    int64_t version, const std::string& path, const std::string& context) {
  absl::StatusOr<std::unique_ptr<ScoringModel>> model = loader_(path);
  if (!model.ok()) {
    const absl::Status& s = model.status();
    // LoadModel's own context ("loading model <dir>: ") says nothing the version does not.
    std::string message =
        absl::StrReplaceAll(s.message(), {{absl::StrCat("loading model ", path, ": "), ""}});
    message = absl::StrReplaceAll(message, {{absl::StrCat(path, "/"), ""}});
    message = absl::StrReplaceAll(message, {{path, "the artifact directory"}});
    return absl::Status(s.code(), absl::StrCat(context, ": ", message));
  }
  if (*model == nullptr)
    return absl::InternalError(absl::StrCat(context, ": loader returned null"));
  const common::v1::ModelManifest& manifest = (*model)->manifest();
  if (manifest.version() != version) {
    return absl::FailedPreconditionError(absl::StrCat(context, ": manifest says version ",
                                                      manifest.version(), ", expected ", version));
  }
  if (!std::isfinite(manifest.threshold()) || manifest.threshold() < 0 ||
      manifest.threshold() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(context, ": manifest threshold ", manifest.threshold(), " not in [0, 1]"));
  }
  auto loaded = std::make_shared<LoadedModel>();
  loaded->version = version;
  loaded->artifact_path = path;
  loaded->loaded_at = clock_->Now();
  loaded->threshold = manifest.threshold();
  loaded->threshold_source = ThresholdSource::kManifest;
  if (operating_points_ != nullptr) {
    absl::StatusOr<std::optional<double>> op = operating_points_->OperatingThreshold(version);
    if (!op.ok()) {
      // Serving at the manifest's threshold beats not serving: the next reload asks again.
      FRAUD_LOG(WARNING) << "operating point unavailable; serving at the manifest's threshold"
                         << Kv("model_version", version) << Kv("threshold", manifest.threshold())
                         << Kv("error", op.status().ToString());
    } else if (op->has_value() && std::isfinite(**op) && **op >= 0 && **op <= 1) {
      loaded->threshold = **op;
      loaded->threshold_source = ThresholdSource::kOperatingPoint;
      FRAUD_LOG(INFO) << "serving at the operating point's threshold"
                      << Kv("model_version", version) << Kv("threshold", **op)
                      << Kv("manifest_threshold", manifest.threshold());
    } else if (op->has_value()) {
      FRAUD_LOG(WARNING) << "operating point threshold not in [0, 1]; serving at the manifest's"
                         << Kv("model_version", version) << Kv("threshold", **op);
    }
  }
  loaded->model = *std::move(model);
  return std::shared_ptr<const LoadedModel>(std::move(loaded));
}

void ModelReloader::CountResult(const absl::Status& s, int64_t version) {
  ReloadMetrics& m = Metrics();
  if (s.ok()) {
    m.ok.Increment();
    m.version.Set(static_cast<double>(version));
    return;
  }
  m.failed.Increment();
  FRAUD_LOG(WARNING) << "model reload failed; the serving model is kept"
                     << Kv("model_version", version)
                     << Kv("serving_version", VersionOf(holder_->Get()))
                     << Kv("artifact_path", version > 0 ? ArtifactPath(version) : model_dir_)
                     << Kv("error", s.ToString());
}

}  // namespace fraud::inference
