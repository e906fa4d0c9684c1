// Loads model versions beside the serving one and swaps them in once verified (Triton's EXPLICIT
// model-control semantics): version N lives in <model_dir>/<N>/, which is a cache of the
// registry: a version missing there is fetched from the ArtifactSource first (when one is given);
// the loader verifies every file's sha256 and replays the manifest's smoke batch; only then does
// the ModelHolder pointer change. A fetched version that fails to load is removed from the cache,
// so the next attempt fetches it again.
// The decision threshold is the version's operating point when an OperatingPointSource is given
// and it has one (asked on every load, so a Reload of the serving version applies a changed
// operating point); otherwise, or when the source cannot answer (logged as a warning), the
// manifest's threshold.
// A failed load leaves the serving model untouched, and is logged and counted
// (fraud_inference_model_reloads_total{result="failed"}).
//
// Thread-safety: all methods may be called from any thread; loads are serialized (one at a time),
// scoring is never blocked by a load.
#pragma once

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/common/core/clock.h"
#include "services/inference/champion_source.h"
#include "services/inference/loaded_model.h"
#include "services/inference/model_holder.h"

namespace fraud::inference {

struct ReloadResult {
  // Version served before the reload (0 = none).
  int64_t previous_version = 0;
  int64_t version = 0;
  // Time spent loading, verifying and smoke-testing.
  absl::Duration load_time;
  // The decision threshold the loaded version serves with (operating point or manifest).
  double threshold = 0;
};

class ModelReloader {
 public:
  // `holder` (required), `champion` (may be null: version 0 is then FailedPrecondition),
  // `artifacts` (may be null: only versions already in model_dir load) and `operating_points`
  // (may be null: the manifest's threshold always applies) are not owned and must outlive this
  // object.
  ModelReloader(std::string model_dir, ModelLoader loader, ModelHolder* holder,
                ChampionSource* champion, ArtifactSource* artifacts = nullptr,
                const Clock* clock = &RealClock::Get(),
                OperatingPointSource* operating_points = nullptr);
  ModelReloader(const ModelReloader&) = delete;
  ModelReloader& operator=(const ModelReloader&) = delete;

  // Loads `version` (0 = ask the champion source) and swaps it in. Always reloads, even when the
  // version already serves. Errors (the serving model is kept in every case):
  //   InvalidArgument   version < 0
  //   NotFound          no champion yet, or the version is neither in <model_dir> nor (with an
  //                     artifact source) in the registry
  //   Unavailable       the champion or artifact source cannot be reached
  //   DataLoss          the fetched artifact does not match the registry's checksums
  //   FailedPrecondition / DataLoss / NotFound from the loader (bad manifest, checksum mismatch,
  //                     smoke test failed, missing file), or a manifest whose version differs
  // Messages name the version and artifact path.
  absl::StatusOr<ReloadResult> Reload(int64_t version);

  // Loads `version` (> 0) unless it is already serving. Returns true when a new model was
  // swapped in, false when `version` already served. Errors as Reload.
  absl::StatusOr<bool> ReloadIfNotServing(int64_t version);

  // <model_dir>/<version>.
  std::string ArtifactPath(int64_t version) const;
  const std::string& model_dir() const { return model_dir_; }

 private:
  absl::StatusOr<ReloadResult> LoadAndSwap(int64_t version) ABSL_EXCLUSIVE_LOCKS_REQUIRED(load_mu_);
  // Fetches the version when the cache lacks it, then VerifyAndWrap.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> LoadVersion(int64_t version);
  // Loads <path> and checks the manifest's version and threshold.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> VerifyAndWrap(int64_t version,
                                                                   const std::string& path,
                                                                   const std::string& context);
  void CountResult(const absl::Status& s, int64_t version);

  const std::string model_dir_;
  const ModelLoader loader_;
  ModelHolder* const holder_;
  ChampionSource* const champion_;
  ArtifactSource* const artifacts_;
  const Clock* const clock_;
  OperatingPointSource* const operating_points_;
  absl::Mutex load_mu_;
};

}  // namespace fraud::inference
