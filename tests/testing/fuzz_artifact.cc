#include "tests/testing/fuzz_artifact.h"

#include <google/protobuf/text_format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "fraud/common/v1/types.pb.h"
#include "services/common/core/sha256.h"

namespace fraud::testing {

absl::Status WriteArtifactFromFuzzInput(const std::string& input_path, const std::string& dir,
                                        int64_t version) {
  std::ifstream in(input_path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", input_path));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string all = ss.str().substr(1);  // byte 0 is the fuzzer's mode byte
  const size_t sep = all.find("\n#--\n");
  if (sep == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(input_path, " has no model.json part"));
  }
  const std::string model_json = all.substr(sep + 5);
  common::v1::ModelManifest manifest;
  if (!google::protobuf::TextFormat::ParseFromString(all.substr(0, sep), &manifest)) {
    return absl::InvalidArgumentError(absl::StrCat(input_path, ": the manifest does not parse"));
  }
  if (version > 0) manifest.set_version(version);
  manifest.clear_files();
  auto* f = manifest.add_files();
  f->set_name("model.json");
  f->set_sha256(Sha256Hex(model_json));
  f->set_size_bytes(static_cast<int64_t>(model_json.size()));
  std::string text;
  google::protobuf::TextFormat::PrintToString(manifest, &text);
  const std::filesystem::path root(dir);
  std::ofstream(root / "manifest.textproto", std::ios::binary | std::ios::trunc) << text;
  std::ofstream(root / "model.json", std::ios::binary | std::ios::trunc) << model_json;
  return absl::OkStatus();
}

}  // namespace fraud::testing
