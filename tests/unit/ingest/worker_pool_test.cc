// WorkerPool: at most max_workers jobs at once, refusal beyond that, slots freed when jobs end,
// and the destructor waits for running jobs.
#include "services/ingest/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace fraud::ingest {
namespace {

TEST(WorkerPoolTest, RunsUpToMaxJobsAtOnceAndRefusesTheNext) {
  WorkerPool pool(3);
  absl::Notification release;
  std::atomic<int> running{0};
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(pool.TrySubmit([&] {
      ++running;
      release.WaitForNotification();
    }));
  }
  for (int i = 0; i < 500 && running.load() < 3; ++i) absl::SleepFor(absl::Milliseconds(2));
  EXPECT_EQ(running.load(), 3) << "every admitted job runs at once, none waits for another";
  EXPECT_FALSE(pool.TrySubmit([] {}));
  EXPECT_EQ(pool.active(), 3);
  release.Notify();
  for (int i = 0; i < 500 && pool.active() > 0; ++i) absl::SleepFor(absl::Milliseconds(2));
  EXPECT_EQ(pool.active(), 0);
  absl::Notification ran;
  ASSERT_TRUE(pool.TrySubmit([&] { ran.Notify(); }));
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST(WorkerPoolTest, DestructorWaitsForRunningAndQueuedJobs) {
  std::atomic<int> done{0};
  {
    WorkerPool pool(4);
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(pool.TrySubmit([&] {
        absl::SleepFor(absl::Milliseconds(50));
        ++done;
      }));
    }
  }
  EXPECT_EQ(done.load(), 4);
}

TEST(WorkerPoolTest, ManySequentialJobsReuseThreads) {
  WorkerPool pool(2);
  std::atomic<int> done{0};
  for (int i = 0; i < 200; ++i) {
    while (!pool.TrySubmit([&] { ++done; })) absl::SleepFor(absl::Microseconds(100));
  }
  for (int i = 0; i < 1000 && done.load() < 200; ++i) absl::SleepFor(absl::Milliseconds(2));
  EXPECT_EQ(done.load(), 200);
}

TEST(WorkerPoolTest, AZeroLimitIsTakenAsOne) {
  WorkerPool pool(0);
  EXPECT_EQ(pool.max_workers(), 1);
  absl::Notification ran;
  ASSERT_TRUE(pool.TrySubmit([&] { ran.Notify(); }));
  EXPECT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

}  // namespace
}  // namespace fraud::ingest
