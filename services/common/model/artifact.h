// Model artifacts on disk: an immutable directory `<root>/<version>/` holding manifest.textproto
// (a fraud.common.v1.ModelManifest in protobuf text format) and the weight files it lists with
// their sha256 (each family's files: "weights.pt" for logreg/mlp, "model.json" for
// xgboost/random_forest; see families.h). FamilyName/ParseFamily come with families.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fraud/common/v1/types.pb.h"
#include "services/common/core/file_util.h"
#include "services/common/model/families.h"
#include "services/common/model/model_runtime.h"

namespace fraud::model {

inline constexpr char kManifestFileName[] = "manifest.textproto";
inline constexpr char kTorchWeightsFileName[] = "weights.pt";
inline constexpr char kXgboostModelFileName[] = "model.json";

// "<root>/<version>" (services/common/core/file_util.h).
using ::fraud::ArtifactDir;

// Writes `model` as version manifest.version() under `root` (created when missing) and returns
// the final directory. The manifest's `files` are recomputed from what is written, created_at is
// set to now when unset; everything else is stored as given. Steps: write into
// `<root>/.tmp-<version>-<random>/`, fsync every file and the directory, load it back exactly as
// LoadModel() would (checksums, architecture from the params, the manifest's preprocessing, smoke
// batch), then rename it to `<root>/<version>` with RENAME_NOREPLACE and fsync root, so a reader
// sees either no directory or a complete, loadable one. Status: InvalidArgument when version <= 0,
// the family differs from the model's, or the manifest is malformed; FailedPrecondition when the
// model (or the artifact loaded back) does not reproduce the manifest's smoke scores, for example
// because the manifest's preprocessing was edited; AlreadyExists when the version directory exists
// (even empty); Internal / PermissionDenied / ResourceExhausted on I/O errors. The temporary
// directory is removed on every failure. Thread-safe; concurrent writers of one version: exactly
// one succeeds.
absl::StatusOr<std::string> WriteArtifact(const std::string& root, const ModelManifest& manifest,
                                          const ModelRuntime& model);

// Parses `<dir>/manifest.textproto` without checking files: NotFound when absent,
// InvalidArgument when it does not parse.
absl::StatusOr<ModelManifest> ReadManifest(const std::string& dir);

// Removes leftover `<root>/.tmp-*` directories of writers that crashed. Call only when no writer
// is running (for example at start-up). OK when root does not exist.
absl::Status RemoveTemporaryDirs(const std::string& root);

}  // namespace fraud::model
