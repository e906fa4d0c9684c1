// Artifacts: write -> load round trips and every way a version directory can be broken.
#include "services/common/model/artifact.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "google/protobuf/text_format.h"
#include "services/common/core/sha256.h"
#include "services/common/model/model_runtime.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/model/test_models.h"

namespace fraud::model {
namespace {

namespace fs = std::filesystem;
using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::HasSubstr;
using testing::kAllFamilies;
using testing::MakeTempDir;
using testing::ReadFile;
using testing::TinyModel;
using testing::TinyTest;
using testing::WriteFile;

std::string WeightsName(ModelFamily f) {
  return f == common::v1::MODEL_FAMILY_LOGREG || f == common::v1::MODEL_FAMILY_MLP
             ? kTorchWeightsFileName
             : kXgboostModelFileName;
}

// Writes the tiny model of `family` as version 1 under a fresh root; returns the version dir.
std::string WriteTiny(ModelFamily family, int64_t version = 1) {
  const TrainedCandidate& c = TinyModel(family);
  absl::StatusOr<std::string> dir =
      WriteArtifact(MakeTempDir(), c.ManifestForVersion(version), *c.runtime);
  EXPECT_THAT(dir, IsOk());
  return dir.ok() ? *dir : "";
}

void RewriteManifest(const std::string& dir, const ModelManifest& m) {
  std::string text;
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(m, &text));
  WriteFile((fs::path(dir) / kManifestFileName).string(), text);
}

class ArtifactFamilyTest : public ::testing::TestWithParam<ModelFamily> {};

INSTANTIATE_TEST_SUITE_P(AllFamilies, ArtifactFamilyTest, ::testing::ValuesIn(kAllFamilies),
                         [](const ::testing::TestParamInfo<ModelFamily>& info) {
                           return FamilyName(info.param);
                         });

TEST_P(ArtifactFamilyTest, SaveThenLoadScoresIdentically) {
  const TrainedCandidate& c = TinyModel(GetParam());
  const std::string dir = WriteTiny(GetParam(), 7);
  EXPECT_EQ(fs::path(dir).filename().string(), "7");
  absl::StatusOr<std::unique_ptr<ModelRuntime>> loaded = LoadModel(dir);
  ASSERT_THAT(loaded, IsOk());
  const Dataset& d = TinyTest();
  std::vector<float> before(d.rows());
  std::vector<float> after(d.rows());
  ASSERT_THAT(c.runtime->Score(d.features.data(), d.rows(), before.data()), IsOk());
  ASSERT_THAT((*loaded)->Score(d.features.data(), d.rows(), after.data()), IsOk());
  for (size_t r = 0; r < d.rows(); ++r) ASSERT_EQ(before[r], after[r]) << "row " << r;
  // The manifest survives the text round trip and lists the weights with their checksum.
  const ModelManifest& m = (*loaded)->manifest();
  EXPECT_EQ(m.version(), 7);
  EXPECT_GT(m.created_at().seconds(), 1700000000);
  EXPECT_EQ(m.threshold(), c.manifest().threshold());
  EXPECT_EQ(m.params().at("best_epoch"), c.manifest().params().at("best_epoch"));
  ASSERT_EQ(m.files_size(), 1);
  EXPECT_EQ(m.files(0).name(), WeightsName(GetParam()));
  EXPECT_EQ(m.files(0).sha256(), *Sha256File((fs::path(dir) / m.files(0).name()).string()));
  EXPECT_EQ(m.files(0).size_bytes(),
            static_cast<int64_t>(fs::file_size(fs::path(dir) / m.files(0).name())));
}

TEST(ArtifactTest, TreeModelsKeepTheirModelJsonBytesThroughARoundTrip) {
  // The XGBoost families keep their model.json bytes, not a booster: what training produced is
  // what is written, what is loaded is what SerializeWeights gives back, and writing a loaded
  // model again reproduces the file (same checksum) and the scores.
  for (ModelFamily family :
       {common::v1::MODEL_FAMILY_XGBOOST, common::v1::MODEL_FAMILY_RANDOM_FOREST}) {
    SCOPED_TRACE(FamilyName(family));
    const TrainedCandidate& c = TinyModel(family);
    absl::StatusOr<std::vector<WeightFile>> trained = c.runtime->SerializeWeights();
    ASSERT_THAT(trained, IsOk());
    ASSERT_EQ(trained->size(), 1u);
    EXPECT_EQ((*trained)[0].name, kXgboostModelFileName);
    const std::string dir = WriteTiny(family, 3);
    const std::string on_disk = ReadFile((fs::path(dir) / kXgboostModelFileName).string());
    EXPECT_EQ(on_disk, (*trained)[0].bytes);

    absl::StatusOr<std::unique_ptr<ModelRuntime>> loaded = LoadModel(dir);
    ASSERT_THAT(loaded, IsOk());
    absl::StatusOr<std::vector<WeightFile>> kept = (*loaded)->SerializeWeights();
    ASSERT_THAT(kept, IsOk());
    ASSERT_EQ(kept->size(), 1u);
    EXPECT_EQ((*kept)[0].name, kXgboostModelFileName);
    EXPECT_TRUE((*kept)[0].bytes == on_disk) << "SerializeWeights differs from the loaded bytes";

    absl::StatusOr<std::string> again =
        WriteArtifact(MakeTempDir(), (*loaded)->manifest(), **loaded);
    ASSERT_THAT(again, IsOk());
    absl::StatusOr<std::unique_ptr<ModelRuntime>> reloaded = LoadModel(*again);
    ASSERT_THAT(reloaded, IsOk());
    EXPECT_EQ((*reloaded)->manifest().files(0).sha256(), (*loaded)->manifest().files(0).sha256());
    const Dataset& d = TinyTest();
    std::vector<float> trained_scores(d.rows());
    std::vector<float> reloaded_scores(d.rows());
    ASSERT_THAT(c.runtime->Score(d.features.data(), d.rows(), trained_scores.data()), IsOk());
    ASSERT_THAT((*reloaded)->Score(d.features.data(), d.rows(), reloaded_scores.data()), IsOk());
    EXPECT_EQ(trained_scores, reloaded_scores);
  }
}

TEST_P(ArtifactFamilyTest, RefusesACorruptedWeightFileAsDataLoss) {
  const std::string dir = WriteTiny(GetParam());
  const std::string path = (fs::path(dir) / WeightsName(GetParam())).string();
  std::string bytes = ReadFile(path);
  bytes[bytes.size() / 2] ^= 0x01;
  WriteFile(path, bytes);
  EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("sha256")));
}

TEST_P(ArtifactFamilyTest, RefusesAMissingWeightFileAsNotFound) {
  const std::string dir = WriteTiny(GetParam());
  fs::remove(fs::path(dir) / WeightsName(GetParam()));
  EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(ArtifactFamilyTest, RefusesAModelThatMissesItsSmokeScores) {
  const std::string dir = WriteTiny(GetParam());
  absl::StatusOr<ModelManifest> m = ReadManifest(dir);
  ASSERT_THAT(m, IsOk());
  // The manifest is not among the checksummed files, so a tampered expectation reaches the
  // smoke test itself.
  m->mutable_smoke()->set_expected_scores(3, m->smoke().expected_scores(3) + 0.01f);
  RewriteManifest(dir, *m);
  EXPECT_THAT(LoadModel(dir),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("smoke batch row 3")));
}

TEST_P(ArtifactFamilyTest, RefusesWeightsOfAnotherFileWithAFixedChecksumAsSmokeFailure) {
  // Swap in weights trained differently and make the checksums agree: only the smoke batch can
  // tell that these are not the weights the manifest was made with.
  CandidateSpec spec = testing::TinySpec(GetParam());
  spec.params["seed"] = "7";
  if (GetParam() == common::v1::MODEL_FAMILY_MLP) spec.params["hidden"] = "16,8";
  absl::StatusOr<TrainedCandidate> other =
      TrainCandidate(spec, testing::TinyTrain(), testing::TinyValidation());
  ASSERT_THAT(other, IsOk());
  const std::string dir = WriteTiny(GetParam());
  absl::StatusOr<std::vector<WeightFile>> files = other->runtime->SerializeWeights();
  ASSERT_THAT(files, IsOk());
  WriteFile((fs::path(dir) / (*files)[0].name).string(), (*files)[0].bytes);
  absl::StatusOr<ModelManifest> m = ReadManifest(dir);
  ASSERT_THAT(m, IsOk());
  m->mutable_files(0)->set_sha256(Sha256Hex((*files)[0].bytes));
  m->mutable_files(0)->set_size_bytes(static_cast<int64_t>((*files)[0].bytes.size()));
  RewriteManifest(dir, *m);
  EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(ArtifactTest, RefusesANonJsonXgboostModelWithAConsistentChecksumAsDataLoss) {
  // XGBoost's legacy binary reader trusts the lengths inside the bytes: these (found by
  // fuzz_manifest) asked it for a 2.4e18-byte string. They must never reach XGBoost.
  const std::string dir = WriteTiny(common::v1::MODEL_FAMILY_XGBOOST);
  for (const std::string& bytes :
       {std::string("binf\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\x21", 16), std::string("  \n"),
        std::string()}) {
    WriteFile((fs::path(dir) / kXgboostModelFileName).string(), bytes);
    absl::StatusOr<ModelManifest> m = ReadManifest(dir);
    ASSERT_THAT(m, IsOk());
    m->mutable_files(0)->set_sha256(Sha256Hex(bytes));
    m->mutable_files(0)->set_size_bytes(static_cast<int64_t>(bytes.size()));
    RewriteManifest(dir, *m);
    EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("not a JSON")));
  }
}

TEST(ArtifactTest, RefusesAMissingManifestAsNotFound) {
  EXPECT_THAT(LoadModel(MakeTempDir()), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(LoadModel("/nonexistent/dir/3"), StatusIs(absl::StatusCode::kNotFound));
}

TEST(ArtifactTest, RefusesAManifestThatDoesNotParseAsInvalidArgument) {
  const std::string dir = WriteTiny(common::v1::MODEL_FAMILY_LOGREG);
  WriteFile((fs::path(dir) / kManifestFileName).string(), "version: 1\nfamily: BANANA\n");
  EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("BANANA")));
}

TEST(ArtifactTest, RefusesInconsistentManifestsAsInvalidArgument) {
  const std::string dir = WriteTiny(common::v1::MODEL_FAMILY_MLP);
  const ModelManifest good = *ReadManifest(dir);
  auto expect_invalid = [&](ModelManifest m, const char* what) {
    RewriteManifest(dir, m);
    EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(what)));
  };
  ModelManifest m = good;
  m.set_family(common::v1::MODEL_FAMILY_UNSPECIFIED);
  expect_invalid(m, "family");
  m = good;
  m.set_feature_names(3, "V99");
  expect_invalid(m, "feature_names");
  m = good;
  m.mutable_preprocessing()->set_std(4, 0.0);
  expect_invalid(m, "std");
  m = good;
  m.mutable_files(0)->set_name("../weights.pt");
  expect_invalid(m, "invalid file name");
  m = good;
  m.clear_files();
  expect_invalid(m, "must list weights.pt");
  m = good;
  m.mutable_smoke()->clear_expected_scores();
  expect_invalid(m, "expected scores");
  m = good;
  m.mutable_params()->erase("hidden");
  expect_invalid(m, "hidden");
  // The untouched manifest still loads.
  RewriteManifest(dir, good);
  EXPECT_THAT(LoadModel(dir), IsOk());
}

TEST(ArtifactTest, RefusesWeightsThatDoNotFitTheArchitectureAsDataLoss) {
  const std::string dir = WriteTiny(common::v1::MODEL_FAMILY_MLP);
  ModelManifest m = *ReadManifest(dir);
  (*m.mutable_params())["hidden"] = "32,8";
  RewriteManifest(dir, m);
  EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("architecture")));
}

TEST(ArtifactTest, NeverOverwritesAnExistingVersion) {
  const TrainedCandidate& c = TinyModel(common::v1::MODEL_FAMILY_XGBOOST);
  const std::string root = MakeTempDir();
  ASSERT_THAT(WriteArtifact(root, c.ManifestForVersion(3), *c.runtime), IsOk());
  EXPECT_THAT(WriteArtifact(root, c.ManifestForVersion(3), *c.runtime),
              StatusIs(absl::StatusCode::kAlreadyExists));
  // Even an empty directory of that name (which rename(2) would replace) is not replaced.
  fs::create_directory(fs::path(root) / "4");
  EXPECT_THAT(WriteArtifact(root, c.ManifestForVersion(4), *c.runtime),
              StatusIs(absl::StatusCode::kAlreadyExists));
  for (const auto& e : fs::directory_iterator(root)) {
    EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << e.path();
  }
}

TEST(ArtifactTest, WritesNothingForAManifestTheModelDoesNotReproduce) {
  const TrainedCandidate& c = TinyModel(common::v1::MODEL_FAMILY_LOGREG);
  const std::string root = MakeTempDir();
  ModelManifest m = c.ManifestForVersion(5);
  m.mutable_preprocessing()->set_mean(1, m.preprocessing().mean(1) + 3.0);
  EXPECT_THAT(WriteArtifact(root, m, *c.runtime), StatusIs(absl::StatusCode::kFailedPrecondition));
  m = c.ManifestForVersion(0);
  EXPECT_THAT(WriteArtifact(root, m, *c.runtime), StatusIs(absl::StatusCode::kInvalidArgument));
  m = c.ManifestForVersion(5);
  m.set_family(common::v1::MODEL_FAMILY_MLP);
  EXPECT_THAT(WriteArtifact(root, m, *c.runtime), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(fs::is_empty(root));
}

TEST(ArtifactTest, RemovesLeftoverTemporaryDirectories) {
  const std::string root = MakeTempDir();
  fs::create_directories(fs::path(root) / ".tmp-9-abc" / "x");
  fs::create_directories(fs::path(root) / "9");
  ASSERT_THAT(RemoveTemporaryDirs(root), IsOk());
  EXPECT_FALSE(fs::exists(fs::path(root) / ".tmp-9-abc"));
  EXPECT_TRUE(fs::exists(fs::path(root) / "9"));
  EXPECT_THAT(RemoveTemporaryDirs(root + "/missing"), IsOk());
}

}  // namespace
}  // namespace fraud::model
