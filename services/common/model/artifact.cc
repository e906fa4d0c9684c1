#include "services/common/model/artifact.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/core/file_util.h"
#include "services/common/core/sha256.h"
#include "services/common/core/status_macros.h"
#include "services/common/model/family_impl.h"

namespace fraud::model {
namespace {

namespace fs = std::filesystem;
using common::v1::SmokeBatch;

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("opening ", path));
  std::string bytes;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ErrnoStatus(err, absl::StrCat("reading ", path));
    }
    bytes.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return bytes;
}

// Collects TextFormat parse errors into one message instead of protobuf's stderr logging.
class CollectErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!errors_.empty()) errors_ += "; ";
    absl::StrAppend(&errors_, "line ", line + 1, ":", column + 1, ": ", message);
  }
  const std::string& errors() const { return errors_; }

 private:
  std::string errors_;
};

absl::Status ValidateSmokeBatch(const SmokeBatch& smoke) {
  const auto& rows = smoke.rows();
  if (rows.num_rows() == 0) return absl::InvalidArgumentError("manifest has no smoke batch");
  if (static_cast<size_t>(rows.features_size()) != rows.num_rows() * kNumFeatures) {
    return absl::InvalidArgumentError(absl::StrCat("smoke batch has ", rows.features_size(),
                                                   " features for ", rows.num_rows(), " rows"));
  }
  if (smoke.expected_scores_size() != static_cast<int>(rows.num_rows())) {
    return absl::InvalidArgumentError(absl::StrCat("smoke batch has ", smoke.expected_scores_size(),
                                                   " expected scores for ", rows.num_rows(),
                                                   " rows"));
  }
  if (!(std::isfinite(smoke.tolerance()) && smoke.tolerance() >= 0)) {
    return absl::InvalidArgumentError("smoke batch tolerance must be finite and >= 0");
  }
  return absl::OkStatus();
}

// Scores the smoke rows and compares with the expected scores.
absl::Status CheckSmokeBatch(const ModelRuntime& model, const SmokeBatch& smoke) {
  FRAUD_RETURN_IF_ERROR(ValidateSmokeBatch(smoke));
  const size_t rows = smoke.rows().num_rows();
  std::vector<float> scores(rows);
  FRAUD_RETURN_IF_ERROR(
      Annotate(model.Score(smoke.rows().features().data(), rows, scores.data()), "smoke batch"));
  for (size_t i = 0; i < rows; ++i) {
    const double want = smoke.expected_scores(static_cast<int>(i));
    if (!(std::fabs(scores[i] - want) <= smoke.tolerance())) {
      return absl::FailedPreconditionError(absl::StrCat("smoke batch row ", i, " scored ",
                                                        scores[i], ", manifest expects ", want,
                                                        " (tolerance ", smoke.tolerance(), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateFileName(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name == kManifestFileName ||
      absl::StrContains(name, "/") || absl::StrContains(name, std::string(1, '\0'))) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest lists invalid file name '", name, "'"));
  }
  return absl::OkStatus();
}

absl::Status ValidateManifest(const ModelManifest& m) {
  const Family* family = FindFamily(m.family());
  if (family == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest has unsupported model family ", static_cast<int>(m.family())));
  }
  const std::vector<std::string>& names = FeatureNames();
  if (m.feature_names_size() != static_cast<int>(names.size()) ||
      !std::equal(names.begin(), names.end(), m.feature_names().begin())) {
    return absl::InvalidArgumentError(
        "manifest feature_names must be Time, V1..V28, Amount in that order");
  }
  if (!(m.threshold() >= 0 && m.threshold() <= 1)) {
    return absl::InvalidArgumentError("manifest threshold is not a probability in [0, 1]");
  }
  FRAUD_RETURN_IF_ERROR(Preprocessor::FromProto(m.preprocessing()).status());
  FRAUD_RETURN_IF_ERROR(ValidateSmokeBatch(m.smoke()));
  std::set<std::string> seen;
  for (const auto& f : m.files()) {
    FRAUD_RETURN_IF_ERROR(ValidateFileName(f.name()));
    if (!seen.insert(f.name()).second) {
      return absl::InvalidArgumentError(absl::StrCat("manifest lists ", f.name(), " twice"));
    }
  }
  if (seen.count(family->required_file) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("manifest of a ", family->name,
                                                   " model must list ", family->required_file));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ModelRuntime>> LoadModelUnsafe(const std::string& dir,
                                                              const LoadOptions& options) {
  FRAUD_ASSIGN_OR_RETURN(ModelManifest manifest, ReadManifest(dir));
  FRAUD_RETURN_IF_ERROR(ValidateManifest(manifest));
  std::vector<WeightFile> files;
  for (const auto& f : manifest.files()) {
    const std::string path = (fs::path(dir) / f.name()).string();
    FRAUD_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path));
    // The hash is taken over the very bytes that are deserialized below.
    const std::string digest = Sha256Hex(bytes);
    if (digest != absl::AsciiStrToLower(f.sha256())) {
      return absl::DataLossError(absl::StrCat(f.name(), ": sha256 ", digest,
                                              " does not match the manifest's ", f.sha256()));
    }
    if (f.size_bytes() != 0 && static_cast<int64_t>(bytes.size()) != f.size_bytes()) {
      return absl::DataLossError(
          absl::StrCat(f.name(), ": ", bytes.size(), " bytes, manifest says ", f.size_bytes()));
    }
    files.push_back({f.name(), std::move(bytes)});
  }
  const SmokeBatch smoke = manifest.smoke();
  FRAUD_ASSIGN_OR_RETURN(std::unique_ptr<ModelRuntime> model,
                         internal::BuildRuntime(std::move(manifest), files, options));
  FRAUD_RETURN_IF_ERROR(CheckSmokeBatch(*model, smoke));
  return model;
}

}  // namespace


absl::StatusOr<ModelManifest> ReadManifest(const std::string& dir) {
  FRAUD_ASSIGN_OR_RETURN(std::string text,
                         ReadWholeFile((fs::path(dir) / kManifestFileName).string()));
  return internal::ParseManifestText(text, absl::StrCat("manifest in ", dir));
}

namespace internal {

absl::StatusOr<ModelManifest> ParseManifestText(const std::string& text, const std::string& what) {
  google::protobuf::TextFormat::Parser parser;
  CollectErrors errors;
  parser.RecordErrorsTo(&errors);
  ModelManifest manifest;
  if (!parser.ParseFromString(text, &manifest)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " does not parse: ", errors.errors()));
  }
  return manifest;
}

absl::StatusOr<std::unique_ptr<ModelRuntime>> BuildRuntime(ModelManifest manifest,
                                                           const std::vector<WeightFile>& files,
                                                           const LoadOptions& options) {
  const Family* family = FindFamily(manifest.family());
  if (family == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported model family ", static_cast<int>(manifest.family())));
  }
  FRAUD_ASSIGN_OR_RETURN(Preprocessor pre, Preprocessor::FromProto(manifest.preprocessing()));
  return family->load(std::move(manifest), pre, files, options);
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<ModelRuntime>> LoadModel(const std::string& dir,
                                                        const LoadOptions& options) {
  absl::StatusOr<std::unique_ptr<ModelRuntime>> model;
  try {
    model = LoadModelUnsafe(dir, options);
  } catch (const std::exception& e) {
    model = absl::InternalError(absl::StrCat("unexpected exception: ", e.what()));
  }
  if (!model.ok()) return Annotate(model.status(), absl::StrCat("loading model ", dir));
  return model;
}

absl::StatusOr<std::string> WriteArtifact(const std::string& root, const ModelManifest& manifest,
                                          const ModelRuntime& model) {
  if (manifest.version() <= 0) {
    return absl::InvalidArgumentError("manifest version must be > 0 to be written");
  }
  if (manifest.family() != model.family()) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest family ", FamilyName(manifest.family()),
                     " differs from the model's ", FamilyName(model.family())));
  }
  FRAUD_RETURN_IF_ERROR(CheckSmokeBatch(model, manifest.smoke()));
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return ErrnoStatus(ec.value(), absl::StrCat("creating model root ", root));
  const std::string final_dir = ArtifactDir(root, manifest.version());
  if (fs::exists(final_dir, ec)) {
    return absl::AlreadyExistsError(
        absl::StrCat("model version directory ", final_dir, " already exists"));
  }
  const std::string tmp_dir =
      (fs::path(root) / absl::StrCat(".tmp-", manifest.version(), "-", RandomHexSuffix())).string();
  if (::mkdir(tmp_dir.c_str(), 0755) != 0) {
    return ErrnoStatus(errno, absl::StrCat("creating ", tmp_dir));
  }
  auto write_all = [&]() -> absl::Status {
    std::vector<WeightFile> files;
    try {
      FRAUD_ASSIGN_OR_RETURN(files, model.SerializeWeights());
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("serializing weights: ", e.what()));
    }
    ModelManifest out = manifest;
    out.clear_files();
    if (!out.has_created_at()) {
      *out.mutable_created_at() = google::protobuf::util::TimeUtil::GetCurrentTime();
    }
    for (const WeightFile& f : files) {
      FRAUD_RETURN_IF_ERROR(ValidateFileName(f.name));
      FRAUD_RETURN_IF_ERROR(WriteFileDurably((fs::path(tmp_dir) / f.name).string(), f.bytes));
      common::v1::ArtifactFile* entry = out.add_files();
      entry->set_name(f.name);
      entry->set_sha256(Sha256Hex(f.bytes));
      entry->set_size_bytes(static_cast<int64_t>(f.bytes.size()));
    }
    FRAUD_RETURN_IF_ERROR(ValidateManifest(out));
    std::string text;
    if (!google::protobuf::TextFormat::PrintToString(out, &text)) {
      return absl::InternalError("printing the manifest failed");
    }
    FRAUD_RETURN_IF_ERROR(WriteFileDurably((fs::path(tmp_dir) / kManifestFileName).string(), text));
    FRAUD_RETURN_IF_ERROR(FsyncDir(tmp_dir));
    // Load what was written exactly as a reader will (checksums, rebuilt architecture, the
    // manifest's preprocessing, smoke batch): a version that would be refused is never published.
    LoadOptions keep_threads;
    keep_threads.torch_threads = 0;
    absl::StatusOr<std::unique_ptr<ModelRuntime>> reloaded = LoadModelUnsafe(tmp_dir, keep_threads);
    if (!reloaded.ok()) return Annotate(reloaded.status(), "the written artifact does not load");
    // RENAME_NOREPLACE makes "publish unless present" one atomic step: a plain rename() would
    // silently replace an empty directory of the same name.
    if (absl::Status renamed = RenameNoReplace(tmp_dir, final_dir); !renamed.ok()) {
      if (absl::IsAlreadyExists(renamed)) {
        return absl::AlreadyExistsError(
            absl::StrCat("model version directory ", final_dir, " already exists"));
      }
      return renamed;
    }
    return FsyncDir(root);
  };
  absl::Status status = write_all();
  if (!status.ok()) {
    fs::remove_all(tmp_dir, ec);
    return Annotate(status, absl::StrCat("writing model version ", manifest.version()));
  }
  return final_dir;
}

absl::Status RemoveTemporaryDirs(const std::string& root) {
  std::error_code ec;
  if (!fs::exists(root, ec)) return absl::OkStatus();
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, ".tmp-") && entry.is_directory(ec)) {
      fs::remove_all(entry.path(), ec);
      if (ec) return ErrnoStatus(ec.value(), absl::StrCat("removing ", entry.path().string()));
    }
  }
  if (ec) return ErrnoStatus(ec.value(), absl::StrCat("listing ", root));
  return absl::OkStatus();
}

}  // namespace fraud::model
