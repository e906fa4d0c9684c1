// The ensemble family: trained, written, loaded and scored like any other family; its scores are
// the average of its members' scores; a damaged member refuses the whole artifact.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_split.h"
#include "google/protobuf/text_format.h"
#include "services/common/core/sha256.h"
#include "services/common/model/artifact.h"
#include "services/common/model/families.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/model/test_models.h"

namespace fraud::model {
namespace {

namespace fs = std::filesystem;
using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::HasSubstr;
// The shared fixtures of the model tests (tests/unit/model/test_models.h).
namespace mt = ::fraud::model::testing;

constexpr ModelFamily kEnsemble = common::v1::MODEL_FAMILY_ENSEMBLE;

std::vector<float> ScoreAll(const ModelRuntime& model, const Dataset& d) {
  std::vector<float> out(d.rows());
  EXPECT_THAT(model.Score(d.features.data(), d.rows(), out.data()), IsOk());
  return out;
}

CandidateSpec EnsembleSpec(const std::string& members, const std::string& combine) {
  CandidateSpec spec = mt::TinySpec(kEnsemble);
  spec.params["members"] = members;
  spec.params["combine"] = combine;
  return spec;
}

// A trained ensemble written as version 1 under a fresh root; returns its directory.
std::string WriteEnsemble(const TrainedCandidate& c) {
  absl::StatusOr<std::string> dir = WriteArtifact(mt::MakeTempDir(), c.ManifestForVersion(1), *c.runtime);
  EXPECT_THAT(dir, IsOk());
  return dir.ok() ? *dir : "";
}

// Replaces `name` in the artifact and makes the manifest's checksum agree, so that only the
// member's own checks can refuse it.
void ReplaceWithConsistentChecksum(const std::string& dir, const std::string& name,
                                   const std::string& bytes) {
  mt::WriteFile((fs::path(dir) / name).string(), bytes);
  ModelManifest m = *ReadManifest(dir);
  for (auto& f : *m.mutable_files()) {
    if (f.name() == name) {
      f.set_sha256(Sha256Hex(bytes));
      f.set_size_bytes(static_cast<int64_t>(bytes.size()));
    }
  }
  std::string text;
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(m, &text));
  mt::WriteFile((fs::path(dir) / kManifestFileName).string(), text);
}

TEST(EnsembleTest, PicksTheBestTwoFamiliesAndRecordsEveryMemberInTheCurve) {
  const TrainedCandidate& c = mt::TinyModel(kEnsemble);
  const auto& params = c.manifest().params();
  const std::vector<std::string> members = absl::StrSplit(params.at("members"), ',');
  ASSERT_EQ(members.size(), 2u);
  EXPECT_NE(members[0], members[1]);
  for (const std::string& m : members) EXPECT_THAT(ParseFamily(m), IsOk()) << m;
  EXPECT_THAT(params.at("combine"), ::testing::AnyOf("mean", "rank"));
  // members=auto trains one configuration of each of the other families, one curve point each,
  // and keeps the two with the best validation AUPRC (the curve is in table order).
  size_t others = 0;
  for (const Family& f : Families()) others += f.combines_families ? 0 : 1;
  ASSERT_EQ(c.curve.size(), others);
  std::vector<double> auprcs;
  for (const EpochProgress& p : c.curve) auprcs.push_back(p.validation_auprc);
  std::sort(auprcs.rbegin(), auprcs.rend());
  size_t i = 0;
  for (const Family& f : Families()) {
    if (f.combines_families) continue;
    if (std::find(members.begin(), members.end(), f.name) != members.end()) {
      EXPECT_GE(c.curve[i].validation_auprc, auprcs[1]) << f.name;
    }
    ++i;
  }
}

TEST(EnsembleTest, WritesFlatMemberFilesEachListedWithItsChecksum) {
  const std::string dir = WriteEnsemble(mt::TinyModel(kEnsemble));
  const ModelManifest m = *ReadManifest(dir);
  std::set<std::string> listed;
  for (const auto& f : m.files()) {
    EXPECT_EQ(f.name().find('/'), std::string::npos) << f.name();
    EXPECT_EQ(f.sha256(), *Sha256File((fs::path(dir) / f.name()).string())) << f.name();
    listed.insert(f.name());
  }
  EXPECT_EQ(listed.count("member0.manifest.textproto"), 1u);
  EXPECT_EQ(listed.count("member1.manifest.textproto"), 1u);
  for (const auto& e : fs::directory_iterator(dir)) {
    ASSERT_TRUE(e.is_regular_file()) << e.path();
    const std::string name = e.path().filename().string();
    if (name != kManifestFileName) {
      EXPECT_EQ(listed.count(name), 1u) << name;
    }
  }
}

TEST(EnsembleTest, SaveThenLoadScoresIdenticallyForBothCombinations) {
  for (const char* combine : {"mean", "rank"}) {
    SCOPED_TRACE(combine);
    absl::StatusOr<TrainedCandidate> c =
        TrainCandidate(EnsembleSpec("xgboost,logreg", combine), mt::TinyTrain(), mt::TinyValidation());
    ASSERT_THAT(c, IsOk());
    EXPECT_EQ(c->manifest().params().at("members"), "xgboost,logreg");
    EXPECT_EQ(c->manifest().params().at("combine"), combine);
    EXPECT_GT(c->validation_metrics().auprc(), 0.8);
    const std::string dir = WriteEnsemble(*c);
    absl::StatusOr<std::unique_ptr<ModelRuntime>> loaded = LoadModel(dir);
    ASSERT_THAT(loaded, IsOk());
    EXPECT_EQ((*loaded)->family(), kEnsemble);
    const std::vector<float> before = ScoreAll(*c->runtime, mt::TinyTest());
    const std::vector<float> after = ScoreAll(**loaded, mt::TinyTest());
    for (size_t r = 0; r < before.size(); ++r) ASSERT_EQ(before[r], after[r]) << "row " << r;
    EXPECT_EQ(fs::exists(fs::path(dir) / "member0.rank_reference.bin"),
              std::string(combine) == "rank");
  }
}

TEST(EnsembleTest, MeanScoresAreTheAverageOfItsMembersScores) {
  // Members train exactly as stand-alone candidates with the family's first default
  // configuration (capped epochs) on the same rows, so the stand-alone models are the members.
  absl::StatusOr<TrainedCandidate> ensemble =
      TrainCandidate(EnsembleSpec("mlp,xgboost", "mean"), mt::TinyTrain(), mt::TinyValidation());
  ASSERT_THAT(ensemble, IsOk());
  std::vector<std::vector<float>> member_scores;
  for (ModelFamily f : {common::v1::MODEL_FAMILY_MLP, common::v1::MODEL_FAMILY_XGBOOST}) {
    CandidateSpec spec = DefaultGrid(f).front();
    spec.threads = mt::TinySpec(kEnsemble).threads;
    spec.params[FindFamily(f)->epoch_param] = "5";
    absl::StatusOr<TrainedCandidate> member = TrainCandidate(spec, mt::TinyTrain(), mt::TinyValidation());
    ASSERT_THAT(member, IsOk());
    member_scores.push_back(ScoreAll(*member->runtime, mt::TinyTest()));
  }
  const std::vector<float> scores = ScoreAll(*ensemble->runtime, mt::TinyTest());
  for (size_t r = 0; r < scores.size(); ++r) {
    ASSERT_NEAR(scores[r], (member_scores[0][r] + member_scores[1][r]) / 2, 1e-6) << "row " << r;
  }
}

TEST(EnsembleTest, RankScoresFollowEachMembersOrder) {
  absl::StatusOr<TrainedCandidate> c =
      TrainCandidate(EnsembleSpec("logreg,xgboost", "rank"), mt::TinyTrain(), mt::TinyValidation());
  ASSERT_THAT(c, IsOk());
  for (float s : ScoreAll(*c->runtime, mt::TinyTest())) {
    EXPECT_GE(s, 0.0f);
    EXPECT_LE(s, 1.0f);
  }
}

TEST(EnsembleTest, RefusesACorruptedMemberFileAsDataLoss) {
  const std::string dir = WriteEnsemble(mt::TinyModel(kEnsemble));
  const ModelManifest m = *ReadManifest(dir);
  for (const auto& f : m.files()) {
    if (f.name().rfind("member1.", 0) != 0 || f.name() == "member1.manifest.textproto") continue;
    const std::string path = (fs::path(dir) / f.name()).string();
    const std::string good = mt::ReadFile(path);
    std::string bad = good;
    bad[bad.size() / 2] ^= 0x01;
    mt::WriteFile(path, bad);
    EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("sha256")))
        << f.name();
    mt::WriteFile(path, good);
  }
  EXPECT_THAT(LoadModel(dir), IsOk());
}

TEST(EnsembleTest, RefusesAStructurallyBrokenXgboostMemberWithAConsistentChecksum) {
  // The XGBoost JSON check applies to a member exactly as to a stand-alone model.
  absl::StatusOr<TrainedCandidate> c =
      TrainCandidate(EnsembleSpec("logreg,xgboost", "mean"), mt::TinyTrain(), mt::TinyValidation());
  ASSERT_THAT(c, IsOk());
  const std::string dir = WriteEnsemble(*c);
  nlohmann::json model = nlohmann::json::parse(mt::ReadFile((fs::path(dir) / "member1.model.json")));
  auto& tree = model["learner"]["gradient_booster"]["model"]["trees"][0];
  tree["left_children"][0] = 100000;
  ReplaceWithConsistentChecksum(dir, "member1.model.json", model.dump());
  EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kDataLoss,
                                       HasSubstr("ensemble member 1 (xgboost)")));
}

TEST(EnsembleTest, RefusesMemberManifestsThatDisagreeWithTheEnsemble) {
  absl::StatusOr<TrainedCandidate> c =
      TrainCandidate(EnsembleSpec("logreg,mlp", "mean"), mt::TinyTrain(), mt::TinyValidation());
  ASSERT_THAT(c, IsOk());
  const std::string dir = WriteEnsemble(*c);
  // A member manifest of another family than params.members names.
  ReplaceWithConsistentChecksum(dir, "member0.manifest.textproto", "family: MODEL_FAMILY_MLP\n");
  EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("member0")));
  // A member manifest whose params do not fit the weights (the MLP's architecture check).
  ReplaceWithConsistentChecksum(dir, "member0.manifest.textproto", "family: MODEL_FAMILY_LOGREG\n");
  ReplaceWithConsistentChecksum(dir, "member1.manifest.textproto",
                                "family: MODEL_FAMILY_MLP\nparams { key: \"hidden\" value: \"8\" }\n");
  EXPECT_THAT(LoadModel(dir), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("architecture")));
}

TEST(EnsembleTest, RepeatedMembersTrainEachWithItsOwnSeed) {
  // "mlp,mlp": a bag of two MLPs; the second trains with another seed, so the ensemble is not
  // the first MLP alone, and the artifact loads and scores identically.
  absl::StatusOr<TrainedCandidate> bag =
      TrainCandidate(EnsembleSpec("mlp,mlp", "mean"), mt::TinyTrain(), mt::TinyValidation());
  ASSERT_THAT(bag, IsOk());
  EXPECT_EQ(bag->manifest().params().at("members"), "mlp,mlp");
  CandidateSpec first = DefaultGrid(common::v1::MODEL_FAMILY_MLP).front();
  first.threads = mt::TinySpec(kEnsemble).threads;
  first.params["epochs"] = "5";
  absl::StatusOr<TrainedCandidate> alone = TrainCandidate(first, mt::TinyTrain(), mt::TinyValidation());
  ASSERT_THAT(alone, IsOk());
  const std::vector<float> scores = ScoreAll(*bag->runtime, mt::TinyTest());
  const std::vector<float> first_scores = ScoreAll(*alone->runtime, mt::TinyTest());
  double largest_gap = 0;
  for (size_t r = 0; r < scores.size(); ++r) {
    largest_gap = std::max(largest_gap, static_cast<double>(std::abs(scores[r] - first_scores[r])));
  }
  EXPECT_GT(largest_gap, 1e-4);
  absl::StatusOr<std::unique_ptr<ModelRuntime>> loaded = LoadModel(WriteEnsemble(*bag));
  ASSERT_THAT(loaded, IsOk());
  const std::vector<float> after = ScoreAll(**loaded, mt::TinyTest());
  for (size_t r = 0; r < scores.size(); ++r) ASSERT_EQ(scores[r], after[r]) << "row " << r;
  EXPECT_THAT(TrainCandidate(EnsembleSpec("logreg,logreg,logreg,logreg,logreg,logreg,logreg,logreg,"
                                          "logreg", "mean"),
                             mt::TinyTrain(), mt::TinyValidation()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than 8")));
}

TEST(EnsembleTest, RefusesNestedOrUnknownMembers) {
  EXPECT_THAT(TrainCandidate(EnsembleSpec("ensemble,logreg", "mean"), mt::TinyTrain(), mt::TinyValidation()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cannot contain")));
  EXPECT_THAT(TrainCandidate(EnsembleSpec("logreg", "mean"), mt::TinyTrain(), mt::TinyValidation()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("fewer than two")));
  EXPECT_THAT(TrainCandidate(EnsembleSpec("logreg,svm", "mean"), mt::TinyTrain(), mt::TinyValidation()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("svm")));
  EXPECT_THAT(TrainCandidate(EnsembleSpec("logreg,mlp", "median"), mt::TinyTrain(), mt::TinyValidation()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("combine")));
}

}  // namespace
}  // namespace fraud::model
