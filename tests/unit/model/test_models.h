// Shared fixtures of the model tests: tiny data sets and one tiny trained model per family,
// trained once per test process.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "services/common/model/trainer.h"
#include "tests/unit/model/synthetic_data.h"

namespace fraud::model::testing {

inline const Dataset& TinyTrain() {
  static const Dataset* d = new Dataset(MakeSyntheticData(3000, 0.05, 2.0, 11));
  return *d;
}
inline const Dataset& TinyValidation() {
  static const Dataset* d = new Dataset(MakeSyntheticData(1000, 0.05, 2.0, 12));
  return *d;
}
inline const Dataset& TinyTest() {
  static const Dataset* d = new Dataset(MakeSyntheticData(500, 0.05, 2.0, 13));
  return *d;
}

// Small, fast settings per family.
inline CandidateSpec TinySpec(ModelFamily family) {
  CandidateSpec spec;
  spec.family = family;
  // One thread: OpenMP's spinning threads degrade badly when ctest runs tests in parallel.
  spec.threads = 1;
  switch (family) {
    case common::v1::MODEL_FAMILY_LOGREG:
      spec.params = {{"epochs", "5"}, {"batch_size", "256"}, {"lr", "0.05"}};
      break;
    case common::v1::MODEL_FAMILY_MLP:
      spec.params = {{"hidden", "16,8"}, {"epochs", "6"}, {"batch_size", "256"}, {"lr", "0.01"}};
      break;
    case common::v1::MODEL_FAMILY_XGBOOST:
      spec.params = {{"rounds", "30"}, {"max_depth", "3"}, {"eta", "0.3"}};
      break;
    case common::v1::MODEL_FAMILY_RANDOM_FOREST:
      spec.params = {{"trees", "10"}, {"max_depth", "4"}};
      break;
    case common::v1::MODEL_FAMILY_ENSEMBLE:
      spec.params = {{"max_member_epochs", "5"}};
      break;
    default:
      break;
  }
  return spec;
}

inline const TrainedCandidate& TinyModel(ModelFamily family) {
  static auto* cache = new std::map<ModelFamily, TrainedCandidate>();
  auto it = cache->find(family);
  if (it == cache->end()) {
    absl::StatusOr<TrainedCandidate> c =
        TrainCandidate(TinySpec(family), TinyTrain(), TinyValidation());
    if (!c.ok()) {
      ADD_FAILURE() << "training failed: " << c.status();
      std::abort();
    }
    it = cache->emplace(family, std::move(*c)).first;
  }
  return it->second;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// A fresh empty directory under the test temp dir.
inline std::string MakeTempDir() {
  std::string tmpl = ::testing::TempDir() + "fraud_model_test_XXXXXX";
  char* dir = ::mkdtemp(tmpl.data());
  if (dir == nullptr) std::abort();
  return dir;
}

// The families whose artifact is one model file (the ensemble has its own tests).
inline const ModelFamily kAllFamilies[] = {
    common::v1::MODEL_FAMILY_LOGREG, common::v1::MODEL_FAMILY_MLP, common::v1::MODEL_FAMILY_XGBOOST,
    common::v1::MODEL_FAMILY_RANDOM_FOREST};

}  // namespace fraud::model::testing
