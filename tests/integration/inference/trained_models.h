// Real tiny models for the inference integration tests: trained once per family per process with
// services/common/model on the project's synthetic data, written as artifact versions with
// WriteArtifact exactly as training publishes them.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "services/common/csv/synthetic_generator.h"
#include "services/common/model/artifact.h"
#include "services/common/model/model_runtime.h"
#include "services/common/model/trainer.h"

namespace fraud::inference::testing {

inline model::Dataset SyntheticDataset(int64_t rows, uint64_t seed, double fraud_rate = 0.05) {
  csv::GeneratorOptions o;
  o.rows = rows;
  o.seed = seed;
  o.fraud_rate = fraud_rate;
  csv::SyntheticGenerator gen(o);
  model::Dataset d;
  d.features.resize(static_cast<size_t>(rows) * csv::kNumFeatures);
  d.labels.resize(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) {
    gen.Next(d.features.data() + i * csv::kNumFeatures, &d.labels[i]);
  }
  return d;
}

inline model::CandidateSpec TinySpec(common::v1::ModelFamily family) {
  model::CandidateSpec spec;
  spec.family = family;
  spec.threads = 1;
  switch (family) {
    case common::v1::MODEL_FAMILY_LOGREG:
      spec.params = {{"epochs", "4"}, {"batch_size", "256"}, {"lr", "0.05"}};
      break;
    case common::v1::MODEL_FAMILY_MLP:
      spec.params = {{"hidden", "16,8"}, {"epochs", "4"}, {"batch_size", "256"}, {"lr", "0.01"}};
      break;
    case common::v1::MODEL_FAMILY_ENSEMBLE:
      spec.params = {{"members", "mlp,xgboost"}, {"max_member_epochs", "4"}};
      break;
    default:
      spec.params = {{"rounds", "20"}, {"max_depth", "3"}, {"eta", "0.3"}};
      break;
  }
  return spec;
}

// The tiny trained model of `family` (trained on first use, then cached).
inline const model::TrainedCandidate& TinyModel(common::v1::ModelFamily family) {
  static auto* cache = new std::map<common::v1::ModelFamily, model::TrainedCandidate>();
  auto it = cache->find(family);
  if (it == cache->end()) {
    static const model::Dataset* train = new model::Dataset(SyntheticDataset(3000, 21));
    static const model::Dataset* validation = new model::Dataset(SyntheticDataset(1000, 22));
    absl::StatusOr<model::TrainedCandidate> c =
        model::TrainCandidate(TinySpec(family), *train, *validation);
    if (!c.ok()) {
      ADD_FAILURE() << "training failed: " << c.status();
      std::abort();
    }
    it = cache->emplace(family, *std::move(c)).first;
  }
  return it->second;
}

// Writes the tiny model of `family` as `version` under `root`; returns the artifact directory.
inline std::string WriteVersion(const std::string& root, int64_t version,
                                common::v1::ModelFamily family) {
  const model::TrainedCandidate& c = TinyModel(family);
  absl::StatusOr<std::string> dir =
      model::WriteArtifact(root, c.ManifestForVersion(version), *c.runtime);
  if (!dir.ok()) {
    ADD_FAILURE() << "WriteArtifact failed: " << dir.status();
    std::abort();
  }
  return *dir;
}

// Flips one byte in the middle of `path`.
inline void CorruptByte(const std::string& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << path;
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  ASSERT_GT(size, 0) << path;
  f.seekg(size / 2);
  char c;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(size / 2);
  f.write(&c, 1);
}

inline std::string MakeTempDir() {
  std::string tmpl = ::testing::TempDir() + "fraud_inference_it_XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
  return tmpl;
}

}  // namespace fraud::inference::testing
