// The model-family table: a row for every enum value, unique names that round-trip, complete rows,
// and the defaults derived from it.
#include "services/common/model/families.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "services/common/model/trainer.h"
#include "tests/testing/status_matchers.h"

namespace fraud::model {
namespace {

using ::fraud::testing::StatusIs;
using ::testing::HasSubstr;

TEST(FamilyTableTest, EveryEnumValueExceptUnspecifiedHasARow) {
  const google::protobuf::EnumDescriptor* d = common::v1::ModelFamily_descriptor();
  size_t values = 0;
  for (int i = 0; i < d->value_count(); ++i) {
    const auto family = static_cast<ModelFamily>(d->value(i)->number());
    if (family == common::v1::MODEL_FAMILY_UNSPECIFIED) {
      EXPECT_EQ(FindFamily(family), nullptr);
      continue;
    }
    ++values;
    const Family* row = FindFamily(family);
    ASSERT_NE(row, nullptr) << d->value(i)->name();
    EXPECT_EQ(row->id, family);
  }
  EXPECT_EQ(Families().size(), values);
}

TEST(FamilyTableTest, NamesAreUniqueAndRoundTripWithTheEnum) {
  std::set<std::string> names;
  std::set<std::string> display_names;
  for (const Family& f : Families()) {
    EXPECT_TRUE(names.insert(f.name).second) << f.name;
    EXPECT_TRUE(display_names.insert(f.display_name).second) << f.display_name;
    EXPECT_EQ(FamilyName(f.id), f.name);
    EXPECT_EQ(*ParseFamily(f.name), f.id);
    EXPECT_EQ(*ParseFamily(absl::AsciiStrToUpper(f.name)), f.id);
    // Clients that do not link this library (fraudctl, the web UI) derive the name this way.
    EXPECT_EQ(f.name, absl::AsciiStrToLower(absl::StripPrefix(common::v1::ModelFamily_Name(f.id),
                                                              "MODEL_FAMILY_")));
  }
  ASSERT_EQ(FamilyNames().size(), Families().size());
  for (size_t i = 0; i < Families().size(); ++i) EXPECT_EQ(FamilyNames()[i], Families()[i].name);
  EXPECT_EQ(FamilyName(common::v1::MODEL_FAMILY_UNSPECIFIED), "unspecified");
  EXPECT_THAT(ParseFamily("unspecified"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(FamilyTableTest, RefusesUnknownNamesListingTheKnownOnes) {
  absl::StatusOr<ModelFamily> f = ParseFamily("svm");
  ASSERT_THAT(f, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'svm'")));
  for (const std::string& name : FamilyNames()) {
    EXPECT_THAT(f.status().message(), HasSubstr(name));
  }
}

TEST(FamilyTableTest, EveryRowIsComplete) {
  for (const Family& f : Families()) {
    SCOPED_TRACE(f.name);
    EXPECT_STRNE(f.display_name, "");
    EXPECT_STRNE(f.required_file, "");
    EXPECT_FALSE(f.default_grid.empty());
    // Compared as bools: the trainer's result type is incomplete outside the library.
    EXPECT_TRUE(f.train != nullptr);
    EXPECT_TRUE(f.load != nullptr);
    EXPECT_GE(f.epoch_default, 0);
  }
}

TEST(FamilyTableTest, DefaultCandidatesFollowTheTable) {
  std::vector<CandidateSpec> expected;
  for (const Family& f : Families()) {
    ASSERT_EQ(DefaultGrid(f.id).size(), f.default_grid.size());
    for (const CandidateSpec& s : DefaultGrid(f.id)) expected.push_back(s);
  }
  const std::vector<CandidateSpec> all = DefaultCandidates();
  ASSERT_EQ(all.size(), expected.size());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].Name(), expected[i].Name());
  EXPECT_TRUE(DefaultGrid(common::v1::MODEL_FAMILY_UNSPECIFIED).empty());
}

TEST(FamilyTableTest, CapsEpochsAtMaxEpochsWithoutRaisingTheDefault) {
  const Family& mlp = *FindFamily(common::v1::MODEL_FAMILY_MLP);
  std::map<std::string, std::string> params;
  CapEpochs(mlp, 3, &params);
  EXPECT_EQ(params.at("epochs"), "3");
  params.clear();
  CapEpochs(mlp, 1000, &params);  // the library default (15), never more
  EXPECT_EQ(params.at("epochs"), "15");
  params = {{"epochs", "2"}};
  CapEpochs(mlp, 5, &params);
  EXPECT_EQ(params.at("epochs"), "2");
  params.clear();
  CapEpochs(mlp, 0, &params);
  EXPECT_TRUE(params.empty());
  // A family without an epoch-like parameter is left alone.
  CapEpochs(*FindFamily(common::v1::MODEL_FAMILY_RANDOM_FOREST), 3, &params);
  EXPECT_TRUE(params.empty());
  // A default of 0 means "no cap unless set": the cap itself is the value.
  CapEpochs(*FindFamily(common::v1::MODEL_FAMILY_ENSEMBLE), 4, &params);
  EXPECT_EQ(params.at("max_member_epochs"), "4");
}

}  // namespace
}  // namespace fraud::model
