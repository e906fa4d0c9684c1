#include "services/inference/model_holder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "tests/unit/inference/fake_model.h"

namespace fraud::inference {
namespace {

using testing::FakeModelBehavior;
using testing::FakeScoringModel;

std::shared_ptr<const LoadedModel> MakeModel(int64_t version) {
  auto m = std::make_shared<LoadedModel>();
  m->version = version;
  m->model = std::make_unique<FakeScoringModel>(version, 0.5,
                                                std::make_shared<FakeModelBehavior>());
  return m;
}

TEST(ModelHolderTest, HoldsNothingBeforeTheFirstSwap) {
  ModelHolder holder;
  EXPECT_EQ(holder.Get(), nullptr);
}

TEST(ModelHolderTest, SwapPublishesTheNewModelAndReturnsThePreviousOne) {
  ModelHolder holder;
  EXPECT_EQ(holder.Swap(MakeModel(1)), nullptr);
  std::shared_ptr<const LoadedModel> previous = holder.Swap(MakeModel(2));
  ASSERT_NE(previous, nullptr);
  EXPECT_EQ(previous->version, 1);
  EXPECT_EQ(holder.Get()->version, 2);
}

TEST(ModelHolderTest, ASnapshotTakenBeforeASwapStaysAliveAndUnchanged) {
  ModelHolder holder;
  holder.Swap(MakeModel(1));
  std::shared_ptr<const LoadedModel> in_flight = holder.Get();
  std::weak_ptr<const LoadedModel> watch = in_flight;
  holder.Swap(MakeModel(2));
  ASSERT_FALSE(watch.expired());
  EXPECT_EQ(in_flight->version, 1);
  float score = 0;
  const std::vector<double> row = testing::RandomRows(1, 7);
  ASSERT_TRUE(in_flight->model->Score(row.data(), 1, &score).ok());
  EXPECT_FLOAT_EQ(score, testing::FakeScore(row.data(), 1));
  in_flight.reset();
  EXPECT_TRUE(watch.expired()) << "the old model must be freed once its last request is done";
}

TEST(ModelHolderTest, ListenerSeesTheCurrentStateAtOnceAndEverySwapInOrder) {
  ModelHolder holder;
  std::vector<int64_t> seen;
  holder.SetListener(
      [&seen](const LoadedModel* m) { seen.push_back(m == nullptr ? 0 : m->version); });
  holder.Swap(MakeModel(3));
  holder.Swap(MakeModel(4));
  holder.Swap(nullptr);
  EXPECT_THAT(seen, ::testing::ElementsAre(0, 3, 4, 0));
}

}  // namespace
}  // namespace fraud::inference
