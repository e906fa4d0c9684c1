// IdleWatchdog: only time spent waiting for the client counts, each lease fires at most once, and
// never after it is gone.
#include "services/ingest/idle_watchdog.h"

#include <gtest/gtest.h>

#include <atomic>

#include "absl/synchronization/notification.h"

namespace fraud::ingest {
namespace {

constexpr absl::Duration kTimeout = absl::Milliseconds(200);
constexpr absl::Duration kTick = absl::Milliseconds(10);

TEST(IdleWatchdogTest, FiresOnceWhenALeaseWaitsLongerThanTheTimeout) {
  IdleWatchdog dog(kTimeout, kTick);
  std::atomic<int> calls{0};
  absl::Notification fired;
  IdleWatchdog::Lease lease = dog.Watch([&] {
    ++calls;
    fired.Notify();
  });
  const absl::Time start = absl::Now();
  lease.Waiting();
  ASSERT_TRUE(fired.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(absl::Now() - start, kTimeout);
  EXPECT_TRUE(lease.fired());
  absl::SleepFor(kTimeout * 2);  // still waiting: no second call
  EXPECT_EQ(calls.load(), 1);
}

TEST(IdleWatchdogTest, BusyTimeNeverCountsAndWaitingRestartsTheClock) {
  IdleWatchdog dog(kTimeout, kTick);
  std::atomic<int> calls{0};
  IdleWatchdog::Lease lease = dog.Watch([&] { ++calls; });
  // Busy (processing a chunk) for three timeouts.
  absl::SleepFor(kTimeout * 3);
  // Many short waits, each well under the timeout, adding up to more than it.
  for (int i = 0; i < 6; ++i) {
    lease.Waiting();
    absl::SleepFor(kTimeout / 4);
    lease.Busy();
  }
  EXPECT_EQ(calls.load(), 0);
  EXPECT_FALSE(lease.fired());
}

TEST(IdleWatchdogTest, ADestroyedLeaseNeverFires) {
  IdleWatchdog dog(kTimeout, kTick);
  std::atomic<int> calls{0};
  {
    IdleWatchdog::Lease lease = dog.Watch([&] { ++calls; });
    lease.Waiting();
  }
  absl::SleepFor(kTimeout * 2);
  EXPECT_EQ(calls.load(), 0);
}

TEST(IdleWatchdogTest, LeasesAreIndependent) {
  IdleWatchdog dog(kTimeout, kTick);
  std::atomic<int> a_calls{0};
  std::atomic<int> b_calls{0};
  IdleWatchdog::Lease a = dog.Watch([&] { ++a_calls; });
  IdleWatchdog::Lease b = dog.Watch([&] { ++b_calls; });
  a.Waiting();
  for (int i = 0; i < 10 && !a.fired(); ++i) absl::SleepFor(kTimeout);
  EXPECT_EQ(a_calls.load(), 1);
  EXPECT_EQ(b_calls.load(), 0);
  EXPECT_FALSE(b.fired());
}

TEST(IdleWatchdogTest, AZeroTimeoutNeverFires) {
  IdleWatchdog dog(absl::ZeroDuration(), kTick);
  std::atomic<int> calls{0};
  IdleWatchdog::Lease lease = dog.Watch([&] { ++calls; });
  lease.Waiting();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(calls.load(), 0);
  EXPECT_FALSE(lease.fired());
}

}  // namespace
}  // namespace fraud::ingest
