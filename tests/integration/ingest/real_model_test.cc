// Upload scored by a real tiny model: an XGBoost model trained in-process by services/common/model,
// written as an artifact version and loaded by the inference service's production loader
// (checksums, smoke batch) exactly as fraud-inference does.
#include <filesystem>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "services/common/model/artifact.h"
#include "services/common/model/model_runtime.h"
#include "services/common/model/trainer.h"
#include "services/inference/model_reloader.h"
#include "services/inference/runtime_loader.h"
#include "tests/integration/ingest/ingest_harness.h"

namespace fraud::ingest::it {
namespace {

model::Dataset SyntheticDataset(int64_t rows, uint64_t seed) {
  csv::GeneratorOptions o;
  o.rows = rows;
  o.seed = seed;
  o.fraud_rate = 0.05;
  csv::SyntheticGenerator gen(o);
  model::Dataset d;
  d.features.resize(static_cast<size_t>(rows) * kF);
  d.labels.resize(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) gen.Next(d.features.data() + i * kF, &d.labels[i]);
  return d;
}

class RealModelTest : public IngestServiceTest {
 protected:
  void TearDown() override {
    IngestServiceTest::TearDown();
    if (!root_.empty()) std::filesystem::remove_all(root_);
  }
  std::string root_;
};

TEST_F(RealModelTest, StoredScoresAreTheModelsOwnScoresAndTheSummaryUsesItsThreshold) {
  model::CandidateSpec spec;
  spec.family = common::v1::MODEL_FAMILY_XGBOOST;
  spec.threads = 1;
  spec.params = {{"rounds", "20"}, {"max_depth", "3"}, {"eta", "0.3"}};
  absl::StatusOr<model::TrainedCandidate> trained =
      model::TrainCandidate(spec, SyntheticDataset(3000, 21), SyntheticDataset(1000, 22));
  ASSERT_THAT(trained, IsOk());
  root_ = ::testing::TempDir() + "/" + schema() + "_models";
  std::filesystem::create_directories(root_);
  absl::StatusOr<std::string> dir =
      model::WriteArtifact(root_, trained->ManifestForVersion(5), *trained->runtime);
  ASSERT_THAT(dir, IsOk());
  inference::ModelReloader reloader(root_, inference::RuntimeModelLoader(), &holder_, nullptr);
  ASSERT_THAT(reloader.Reload(5), IsOk());
  const double threshold = trained->manifest().threshold();

  UploadResult r = Upload(SyntheticCsv(4000, 40));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  const UploadSummary& s = r.summary;
  EXPECT_TRUE(s.scored());
  EXPECT_EQ(s.model_version(), 5);
  EXPECT_DOUBLE_EQ(s.metrics().threshold(), threshold);
  EXPECT_GT(s.metrics().auprc(), 0.3);
  EXPECT_EQ(s.report().drift_size(), trained->manifest().reference_size() - 1);  // not Time

  // Score the stored rows directly with the artifact and compare with the stored predictions.
  absl::StatusOr<std::unique_ptr<model::ModelRuntime>> runtime = model::LoadModel(*dir);
  ASSERT_THAT(runtime, IsOk());
  std::vector<double> features;
  std::vector<float> stored;
  std::vector<bool> decisions;
  {
    pqxx::connection c(conninfo());
    pqxx::work w(c);
    // unpack_v (migration 0010) gives the stored bytes back as float8[].
    for (const auto& row : w.exec("SELECT t.time, array_to_string(unpack_v(t.v), ','), t.amount, "
                                  "p.score, p.decision, p.model_version FROM transactions t JOIN "
                                  "predictions p USING (upload_id, line) ORDER BY line")) {
      features.push_back(row[0].as<double>());
      for (absl::string_view v : absl::StrSplit(row[1].c_str(), ',')) {
        features.push_back(std::stod(std::string(v)));
      }
      features.push_back(row[2].as<double>());
      stored.push_back(row[3].as<float>());
      decisions.push_back(row[4].as<bool>());
      EXPECT_EQ(row[5].as<int64_t>(), 5);
    }
  }
  ASSERT_EQ(stored.size(), 4000u);
  std::vector<float> direct(stored.size());
  ASSERT_THAT((*runtime)->Score(features.data(), direct.size(), direct.data()), IsOk());
  int64_t flagged = 0;
  for (size_t i = 0; i < direct.size(); ++i) {
    EXPECT_NEAR(stored[i], direct[i], 1e-6) << "row " << i;
    EXPECT_EQ(decisions[i], stored[i] >= static_cast<float>(threshold)) << "row " << i;
    flagged += decisions[i];
  }
  EXPECT_EQ(s.predicted_frauds(), flagged);
}

}  // namespace
}  // namespace fraud::ingest::it
