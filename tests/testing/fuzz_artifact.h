// Turns a fuzz_manifest corpus input into a model artifact directory, as the fuzzer does with
// mode bit 0: byte 0 is the mode, then manifest.textproto, then "\n#--\n" and model.json. The
// manifest's file list is replaced by model.json with its real sha256 and size, so the artifact
// is consistent and reaches the model loader's structural checks.
//
//   FRAUD_ASSERT_OK(WriteArtifactFromFuzzInput(corpus_file, dir, /*version=*/907));
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace fraud::testing {

// Writes <dir>/manifest.textproto and <dir>/model.json (dir must exist). `version` > 0 replaces
// the manifest's version. NotFound when the input cannot be read; InvalidArgument when it has no
// "\n#--\n" separator or its manifest does not parse.
absl::Status WriteArtifactFromFuzzInput(const std::string& input_path, const std::string& dir,
                                        int64_t version = 0);

}  // namespace fraud::testing
