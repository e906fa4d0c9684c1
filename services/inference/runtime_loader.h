// The production ModelLoader: services/common/model's LoadModel (manifest parse, sha256 of every
// file, architecture rebuild, smoke batch) behind the inference service's ScoringModel interface.
// Kept in its own library (inference_runtime) so the service logic and its unit tests do not link
// LibTorch/XGBoost.
#pragma once

#include "services/inference/loaded_model.h"

namespace fraud::inference {

struct RuntimeLoaderOptions {
  // LibTorch intra-op threads set when a model loads. 1 on our 2-core machines: the gRPC threads
  // already run requests in parallel, and intra-op threads would only contend with them.
  int torch_threads = 1;
};

// Returns a loader that calls fraud::model::LoadModel. Thread-safe.
ModelLoader RuntimeModelLoader(RuntimeLoaderOptions options = {});

}  // namespace fraud::inference
