// libFuzzer target: the model manifest parser and validator (services/common/model ReadManifest and
// LoadModel's checks), through the file API the services use.
//
// Input layout: byte 0 = mode, the rest = manifest.textproto, optionally followed by "\n#--\n" and
// the bytes of model.json. The artifact directory also holds fixed weights.pt / model.json files.
// Mode bit 0 set: the harness rewrites the manifest's file checksums to match the files (as a
// consistent but hostile artifact would), so XGBoost's model loading and the smoke check are
// reached with fuzzer-made model bytes; LibTorch files are never fed fuzz bytes (third-party
// pickle code, and out of our threat model: artifacts come from our own training service).
// Whatever the bytes, the loader must return a status (no crash, no exception escaping) and a
// model it returns must score its smoke rows.
#include <google/protobuf/text_format.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fraud/common/v1/types.pb.h"
#include "services/common/core/sha256.h"
#include "services/common/model/artifact.h"
#include "services/common/model/model_runtime.h"

namespace {

namespace fs = std::filesystem;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "manifest_fuzzer invariant violated: %s\n", what);
    std::abort();
  }
}

void Write(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

const fs::path& Dir() {
  static const fs::path* dir = [] {
    char tmpl[] = "/tmp/fraud-manifest-fuzz.XXXXXX";
    Check(::mkdtemp(tmpl) != nullptr, "mkdtemp");
    return new fs::path(tmpl);
  }();
  return *dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string xgb = "{\"learner\": {}}";
  if (const size_t sep = text.find("\n#--\n"); sep != std::string::npos) {
    xgb = text.substr(sep + 5);
    text.resize(sep);
  }
  const fs::path dir = Dir();
  const std::string weights = "not a torch file";
  Write(dir / "weights.pt", weights);
  Write(dir / "model.json", xgb);

  if (mode & 1) {
    fraud::common::v1::ModelManifest m;
    if (google::protobuf::TextFormat::ParseFromString(text, &m)) {
      for (auto& f : *m.mutable_files()) {
        if (f.name() == "model.json") {
          f.set_sha256(fraud::Sha256Hex(xgb));
          f.set_size_bytes(static_cast<int64_t>(xgb.size()));
        } else if (f.name() == "weights.pt") {
          f.set_sha256(fraud::Sha256Hex(weights));
          f.set_size_bytes(static_cast<int64_t>(weights.size()));
        }
      }
      // Only xgboost-family artifacts get consistent checksums (see the header comment).
      if (m.family() != fraud::common::v1::MODEL_FAMILY_XGBOOST &&
          m.family() != fraud::common::v1::MODEL_FAMILY_RANDOM_FOREST) {
        m.clear_files();
      }
      text.clear();
      google::protobuf::TextFormat::PrintToString(m, &text);
    }
  }
  Write(dir / fraud::model::kManifestFileName, text);

  absl::StatusOr<fraud::common::v1::ModelManifest> manifest =
      fraud::model::ReadManifest(dir.string());
  if (!manifest.ok()) {
    Check(manifest.status().code() == absl::StatusCode::kInvalidArgument, "ReadManifest code");
  }
  absl::StatusOr<std::unique_ptr<fraud::model::ModelRuntime>> model =
      fraud::model::LoadModel(dir.string());
  if (model.ok()) {
    Check(manifest.ok(), "a loaded model has a parseable manifest");
    const auto& smoke = (*model)->manifest().smoke();
    std::vector<float> out(smoke.rows().num_rows());
    Check((*model)->Score(smoke.rows().features().data(), out.size(), out.data()).ok(),
          "a loaded model scores its smoke rows");
    for (float s : out) Check(s >= 0 && s <= 1, "scores in [0, 1]");
  }
  return 0;
}
