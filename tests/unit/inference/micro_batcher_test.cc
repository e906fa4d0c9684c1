#include "services/inference/micro_batcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/testing/status_matchers.h"
#include "tests/unit/inference/fake_model.h"

namespace fraud::inference {
namespace {

using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using testing::FakeModelBehavior;
using testing::FakeScore;
using testing::FakeScoringModel;
using testing::RandomRows;

class MicroBatcherTest : public ::testing::Test {
 protected:
  void Load(int64_t version) {
    auto m = std::make_shared<LoadedModel>();
    m->version = version;
    m->threshold = 0.5;
    m->model = std::make_unique<FakeScoringModel>(version, 0.5, behavior_);
    holder_.Swap(std::move(m));
  }
  std::shared_ptr<FakeModelBehavior> behavior_ = std::make_shared<FakeModelBehavior>();
  ModelHolder holder_;
};

// Runs `threads` callers making `calls` requests of `rows` rows each; checks every caller got its
// own scores; returns the number of failures.
int RunConcurrentCallers(MicroBatcher* batcher, int threads, int calls, size_t rows) {
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int c = 0; c < calls; ++c) {
        const std::vector<double> f = RandomRows(rows, 1000 * t + c);
        std::vector<float> out(rows, -1.0f);
        absl::StatusOr<std::shared_ptr<const LoadedModel>> m =
            batcher->Score(f.data(), rows, out.data());
        if (!m.ok()) {
          ++failures;
          continue;
        }
        for (size_t i = 0; i < rows; ++i) {
          if (out[i] != FakeScore(f.data() + i * kNumFeatures, (*m)->version)) {
            ++failures;
            break;
          }
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  return failures.load();
}

TEST_F(MicroBatcherTest, NoModelIsUnavailable) {
  MicroBatcher batcher({}, &holder_);
  const std::vector<double> f = RandomRows(1, 1);
  float out;
  EXPECT_THAT(batcher.Score(f.data(), 1, &out),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::HasSubstr("no model loaded")));
}

TEST_F(MicroBatcherTest, ALoneCallerIsScoredAtOnceWithoutWaitingForCompany) {
  Load(1);
  BatcherOptions o;
  o.max_delay = absl::Seconds(5);  // a wait would be obvious
  MicroBatcher batcher(o, &holder_);
  const std::vector<double> f = RandomRows(2, 3);
  float out[2];
  const absl::Time start = absl::Now();
  for (int i = 0; i < 20; ++i) ASSERT_THAT(batcher.Score(f.data(), 2, out), IsOk());
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_FLOAT_EQ(out[1], FakeScore(f.data() + kNumFeatures, 1));
  EXPECT_EQ(batcher.stats().batches, 20);
  EXPECT_EQ(batcher.stats().merged_batches, 0);
}

TEST_F(MicroBatcherTest, ConcurrentCallsAreMergedAndEachCallerGetsItsOwnScores) {
  Load(1);
  behavior_->score_delay_us = 300;  // calls overlap: followers queue behind a running batch
  MicroBatcher batcher({}, &holder_);
  EXPECT_EQ(RunConcurrentCallers(&batcher, 8, 50, 3), 0);
  const BatcherStats s = batcher.stats();
  EXPECT_EQ(s.requests, 8 * 50);
  EXPECT_EQ(s.rows, 8 * 50 * 3);
  EXPECT_GT(s.merged_batches, 0);
  EXPECT_GT(s.max_batch_requests, 1);
  EXPECT_LT(behavior_->score_calls.load(), 8 * 50) << "merging must save Score calls";
}

TEST_F(MicroBatcherTest, ALeaderWaitsForCompanyOnlyWhileCallersKeepComingConcurrently) {
  Load(1);
  behavior_->score_delay_us = 300;
  BatcherOptions o;
  o.max_delay = absl::Seconds(1);
  MicroBatcher batcher(o, &holder_);
  ASSERT_EQ(RunConcurrentCallers(&batcher, 6, 30, 1), 0);
  const BatcherStats busy = batcher.stats();
  ASSERT_GT(busy.max_batch_requests, 1);
  // Concurrency is gone: the first lone call may wait once (for company that does not come),
  // after which the target drops back to one caller and nobody waits any more.
  const std::vector<double> f = RandomRows(1, 4);
  float out;
  for (int i = 0; i < 20; ++i) ASSERT_THAT(batcher.Score(f.data(), 1, &out), IsOk());
  const BatcherStats lone = batcher.stats();
  EXPECT_LE(lone.leader_waits - busy.leader_waits, 1);
  EXPECT_LE(lone.wait_timeouts - busy.wait_timeouts, 1);
}

TEST_F(MicroBatcherTest, CheapModelsNeverWaitLongerThanTheScoreTimeTheyCouldSave) {
  Load(1);
  behavior_->score_delay_us = 50;  // enough for calls to overlap and merge
  BatcherOptions o;
  o.max_delay = absl::Seconds(1);  // a wait of max_delay would be obvious
  MicroBatcher batcher(o, &holder_);
  ASSERT_EQ(RunConcurrentCallers(&batcher, 6, 100, 1), 0);
  const BatcherStats s = batcher.stats();
  EXPECT_GT(s.merged_batches, 0);
  EXPECT_GT(s.leader_waits, 0);
  // The budget is (target - 1) x ~50 us; 250 ms leaves room for a loaded machine's scheduling.
  EXPECT_LT(s.max_wait, absl::Milliseconds(250))
      << "leader waits: " << s.leader_waits << ", timed out: " << s.wait_timeouts;
}

TEST_F(MicroBatcherTest, MergedBatchesNeverExceedMaxBatchRows) {
  Load(1);
  behavior_->score_delay_us = 200;
  BatcherOptions o;
  o.max_batch_rows = 16;
  MicroBatcher batcher(o, &holder_);
  EXPECT_EQ(RunConcurrentCallers(&batcher, 8, 40, 5), 0);
  EXPECT_LE(behavior_->max_rows_per_call.load(), 16);
  EXPECT_GT(batcher.stats().merged_batches, 0);
}

TEST_F(MicroBatcherTest, RequestsOfMaxBatchRowsOrMoreAreScoredAlone) {
  Load(1);
  BatcherOptions o;
  o.max_batch_rows = 8;
  MicroBatcher batcher(o, &holder_);
  const std::vector<double> f = RandomRows(8, 5);
  std::vector<float> out(8);
  ASSERT_THAT(batcher.Score(f.data(), 8, out.data()), IsOk());
  EXPECT_EQ(batcher.stats().batches, 0) << "went through the queue";
  EXPECT_EQ(behavior_->score_calls.load(), 1);
}

TEST_F(MicroBatcherTest, DisabledBatcherScoresEveryCallOnItsOwn) {
  Load(1);
  behavior_->score_delay_us = 300;
  BatcherOptions o;
  o.enabled = false;
  MicroBatcher batcher(o, &holder_);
  EXPECT_EQ(RunConcurrentCallers(&batcher, 4, 20, 2), 0);
  EXPECT_EQ(behavior_->score_calls.load(), 4 * 20);
  EXPECT_EQ(batcher.stats().batches, 0);
}

TEST_F(MicroBatcherTest, AScoringErrorReachesEveryCallerOfTheBatch) {
  Load(1);
  behavior_->fail_scoring = true;
  behavior_->score_delay_us = 200;
  MicroBatcher batcher({}, &holder_);
  std::atomic<int> internal{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 6; ++t) {
    workers.emplace_back([&, t] {
      for (int c = 0; c < 10; ++c) {
        const std::vector<double> f = RandomRows(1, t * 100 + c);
        float out;
        if (batcher.Score(f.data(), 1, &out).status().code() == absl::StatusCode::kInternal) {
          ++internal;
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(internal.load(), 60);
}

TEST_F(MicroBatcherTest, EveryBatchIsScoredByOneModelEvenWhileModelsAreSwapped) {
  Load(1);
  behavior_->score_delay_us = 50;
  MicroBatcher batcher({}, &holder_);
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    for (int64_t v = 2; !stop; v = v == 2 ? 1 : 2) {
      Load(v);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  // RunConcurrentCallers checks every row against the version the batcher says scored it.
  EXPECT_EQ(RunConcurrentCallers(&batcher, 6, 200, 2), 0);
  stop = true;
  swapper.join();
}

}  // namespace
}  // namespace fraud::inference
