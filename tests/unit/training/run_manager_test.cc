// Run manager: one run at a time, bounded queue, cancellation, watchers and persistence.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "services/training/run_manager.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/training/fakes.h"

namespace fraud::training {
namespace {

using ::fraud::testing::StatusIs;
using ::fraud::training::testing::FakeStorage;
using ::testing::Contains;
using ::testing::HasSubstr;

// An executor whose runs block until released; records which runs executed.
class ControlledExecutor {
 public:
  RunExecutor AsExecutor() {
    return [this](const training::v1::StartRunRequest& request, int64_t run_id, RunSink& sink,
                  const std::atomic<bool>& cancel) -> absl::Status {
      {
        absl::MutexLock lock(&mu_);
        executed_.push_back(run_id);
        started_ = run_id;
      }
      sink.Update([](storage_pb::TrainingRun& run) { run.mutable_progress()->set_phase("training"); },
                  true);
      // Wait for release or cancellation.
      while (true) {
        {
          absl::MutexLock lock(&mu_);
          if (released_.count(run_id)) break;
        }
        if (cancel.load()) return absl::CancelledError("cancelled");
        absl::SleepFor(absl::Milliseconds(5));
      }
      if (request.description() == "fail") return absl::FailedPreconditionError("no frauds");
      sink.Update([](storage_pb::TrainingRun& run) { run.set_message("all good"); }, true);
      return absl::OkStatus();
    };
  }
  void Release(int64_t run_id) {
    absl::MutexLock lock(&mu_);
    released_.insert(run_id);
  }
  // Waits until `run_id` started executing.
  bool WaitStarted(int64_t run_id) {
    absl::MutexLock lock(&mu_);
    auto started = [&] { return started_ == run_id; };
    return mu_.AwaitWithTimeout(absl::Condition(&started), absl::Seconds(10));
  }
  std::vector<int64_t> executed() {
    absl::MutexLock lock(&mu_);
    return executed_;
  }

 private:
  absl::Mutex mu_;
  std::vector<int64_t> executed_;
  std::set<int64_t> released_;
  int64_t started_ = 0;
};

training::v1::StartRunRequest Request(const std::string& description = "") {
  training::v1::StartRunRequest r;
  r.set_description(description);
  return r;
}

class RunManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RunManagerOptions o;
    o.max_queued = 2;
    manager_ = std::make_unique<RunManager>(&storage_, executor_.AsExecutor(), o);
    FRAUD_ASSERT_OK(manager_->Start());
  }
  void TearDown() override { manager_->Stop(); }

  FakeStorage storage_;
  ControlledExecutor executor_;
  std::unique_ptr<RunManager> manager_;
};

TEST_F(RunManagerTest, RunSucceedsAndEveryStateChangeIsPersisted) {
  absl::StatusOr<storage_pb::TrainingRun> run = manager_->Submit(Request(), {{"families", "mlp"}});
  FRAUD_ASSERT_OK(run);
  EXPECT_EQ(run->status(), storage_pb::RUN_STATUS_QUEUED);
  EXPECT_EQ(run->trigger(), "manual");
  ASSERT_TRUE(executor_.WaitStarted(run->id()));
  executor_.Release(run->id());
  absl::StatusOr<storage_pb::TrainingRun> done = manager_->WaitFor(run->id(), absl::Seconds(10));
  FRAUD_ASSERT_OK(done);
  EXPECT_EQ(done->status(), storage_pb::RUN_STATUS_SUCCEEDED);
  EXPECT_EQ(done->message(), "all good");
  EXPECT_TRUE(done->has_started_at());
  EXPECT_TRUE(done->has_finished_at());
  // Storage saw RUNNING and then SUCCEEDED, and holds the final record.
  std::vector<storage_pb::RunStatus> statuses = storage_.status_history(run->id());
  EXPECT_THAT(statuses, Contains(storage_pb::RUN_STATUS_RUNNING));
  EXPECT_EQ(statuses.back(), storage_pb::RUN_STATUS_SUCCEEDED);
  EXPECT_EQ(storage_.stored_run(run->id()).params().at("families"), "mlp");
  EXPECT_EQ(storage_.stored_run(run->id()).message(), "all good");
}

TEST_F(RunManagerTest, SecondRunIsQueuedBehindTheRunningOne) {
  absl::StatusOr<storage_pb::TrainingRun> first = manager_->Submit(Request(), {});
  FRAUD_ASSERT_OK(first);
  ASSERT_TRUE(executor_.WaitStarted(first->id()));
  absl::StatusOr<storage_pb::TrainingRun> second = manager_->Submit(Request(), {});
  FRAUD_ASSERT_OK(second);
  EXPECT_EQ(second->status(), storage_pb::RUN_STATUS_QUEUED);
  EXPECT_THAT(second->progress().message(),
              HasSubstr("queued behind run " + std::to_string(first->id())));
  EXPECT_TRUE(manager_->Busy());
  // Only the first executes until it is released.
  EXPECT_EQ(executor_.executed(), std::vector<int64_t>{first->id()});
  executor_.Release(first->id());
  ASSERT_TRUE(executor_.WaitStarted(second->id()));
  executor_.Release(second->id());
  absl::StatusOr<storage_pb::TrainingRun> done = manager_->WaitFor(second->id(), absl::Seconds(10));
  FRAUD_ASSERT_OK(done);
  EXPECT_EQ(done->status(), storage_pb::RUN_STATUS_SUCCEEDED);
  EXPECT_EQ(executor_.executed(), (std::vector<int64_t>{first->id(), second->id()}));
}

TEST_F(RunManagerTest, FullQueueRefusesWithResourceExhausted) {
  absl::StatusOr<storage_pb::TrainingRun> first = manager_->Submit(Request(), {});
  FRAUD_ASSERT_OK(first);
  ASSERT_TRUE(executor_.WaitStarted(first->id()));
  FRAUD_ASSERT_OK(manager_->Submit(Request(), {}));
  FRAUD_ASSERT_OK(manager_->Submit(Request(), {}));
  EXPECT_THAT(manager_->Submit(Request(), {}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("queue is full")));
  executor_.Release(first->id());
}

TEST_F(RunManagerTest, CancellingAQueuedRunRemovesItBeforeItExecutes) {
  absl::StatusOr<storage_pb::TrainingRun> first = manager_->Submit(Request(), {});
  FRAUD_ASSERT_OK(first);
  ASSERT_TRUE(executor_.WaitStarted(first->id()));
  absl::StatusOr<storage_pb::TrainingRun> second = manager_->Submit(Request(), {});
  FRAUD_ASSERT_OK(second);
  absl::StatusOr<storage_pb::TrainingRun> cancelled = manager_->Cancel(second->id());
  FRAUD_ASSERT_OK(cancelled);
  EXPECT_EQ(cancelled->status(), storage_pb::RUN_STATUS_CANCELLED);
  EXPECT_EQ(storage_.stored_run(second->id()).status(), storage_pb::RUN_STATUS_CANCELLED);
  executor_.Release(first->id());
  FRAUD_ASSERT_OK(manager_->WaitFor(first->id(), absl::Seconds(10)));
  manager_->Stop();
  EXPECT_EQ(executor_.executed(), std::vector<int64_t>{first->id()});
  // A finished run cannot be cancelled again.
  EXPECT_THAT(manager_->Cancel(second->id()), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(RunManagerTest, CancellingTheRunningRunStopsItAsCancelled) {
  absl::StatusOr<storage_pb::TrainingRun> run = manager_->Submit(Request(), {});
  FRAUD_ASSERT_OK(run);
  ASSERT_TRUE(executor_.WaitStarted(run->id()));
  FRAUD_ASSERT_OK(manager_->Cancel(run->id()));
  absl::StatusOr<storage_pb::TrainingRun> done = manager_->WaitFor(run->id(), absl::Seconds(10));
  FRAUD_ASSERT_OK(done);
  EXPECT_EQ(done->status(), storage_pb::RUN_STATUS_CANCELLED);
  EXPECT_EQ(storage_.stored_run(run->id()).status(), storage_pb::RUN_STATUS_CANCELLED);
}

TEST_F(RunManagerTest, FailingRunIsFailedWithTheReason) {
  absl::StatusOr<storage_pb::TrainingRun> run = manager_->Submit(Request("fail"), {});
  FRAUD_ASSERT_OK(run);
  executor_.Release(run->id());
  absl::StatusOr<storage_pb::TrainingRun> done = manager_->WaitFor(run->id(), absl::Seconds(10));
  FRAUD_ASSERT_OK(done);
  EXPECT_EQ(done->status(), storage_pb::RUN_STATUS_FAILED);
  EXPECT_THAT(done->message(), HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(done->message(), HasSubstr("no frauds"));
  EXPECT_EQ(storage_.stored_run(run->id()).status(), storage_pb::RUN_STATUS_FAILED);
}

TEST_F(RunManagerTest, WatchStreamsChangesUntilTheRunEnds) {
  absl::StatusOr<storage_pb::TrainingRun> run = manager_->Submit(Request(), {});
  FRAUD_ASSERT_OK(run);
  std::vector<storage_pb::TrainingRun> seen;
  absl::Notification watching;
  std::thread watcher([&] {
    absl::Status s = manager_->Watch(
        run->id(),
        [&](const storage_pb::TrainingRun& r) {
          seen.push_back(r);
          if (seen.size() == 1) watching.Notify();
          return true;
        },
        [] { return false; });
    EXPECT_TRUE(s.ok()) << s;
  });
  watching.WaitForNotification();
  ASSERT_TRUE(executor_.WaitStarted(run->id()));
  executor_.Release(run->id());
  watcher.join();
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.back().status(), storage_pb::RUN_STATUS_SUCCEEDED);
  // A watcher arriving after the end gets the final state once.
  int calls = 0;
  FRAUD_ASSERT_OK(manager_->Watch(
      run->id(),
      [&](const storage_pb::TrainingRun& r) {
        ++calls;
        EXPECT_EQ(r.status(), storage_pb::RUN_STATUS_SUCCEEDED);
        return true;
      },
      [] { return false; }));
  EXPECT_EQ(calls, 1);
}

TEST_F(RunManagerTest, UnknownRunIsNotFound) {
  EXPECT_THAT(manager_->Get(999), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(manager_->Cancel(999), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(manager_->Watch(999, [](const auto&) { return true; }, [] { return false; }),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(RunManagerTest, StopCancelsQueuedRunsAndRefusesNewOnes) {
  absl::StatusOr<storage_pb::TrainingRun> first = manager_->Submit(Request(), {});
  FRAUD_ASSERT_OK(first);
  ASSERT_TRUE(executor_.WaitStarted(first->id()));
  absl::StatusOr<storage_pb::TrainingRun> second = manager_->Submit(Request(), {});
  FRAUD_ASSERT_OK(second);
  manager_->Stop();
  EXPECT_EQ(storage_.stored_run(first->id()).status(), storage_pb::RUN_STATUS_CANCELLED);
  EXPECT_EQ(storage_.stored_run(second->id()).status(), storage_pb::RUN_STATUS_CANCELLED);
  EXPECT_THAT(manager_->Submit(Request(), {}), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(RunManagerRecoveryTest, RunsLeftActiveByAPreviousProcessAreMarkedFailed) {
  FakeStorage storage;
  storage_pb::TrainingRun stale;
  stale.set_id(4);
  stale.set_status(storage_pb::RUN_STATUS_RUNNING);
  storage.PutRun(stale);
  storage_pb::TrainingRun done;
  done.set_id(3);
  done.set_status(storage_pb::RUN_STATUS_SUCCEEDED);
  storage.PutRun(done);
  ControlledExecutor executor;
  RunManager manager(&storage, executor.AsExecutor());
  FRAUD_ASSERT_OK(manager.Start());
  EXPECT_EQ(storage.stored_run(4).status(), storage_pb::RUN_STATUS_FAILED);
  EXPECT_THAT(storage.stored_run(4).message(), HasSubstr("interrupted"));
  EXPECT_EQ(storage.stored_run(3).status(), storage_pb::RUN_STATUS_SUCCEEDED);
  manager.Stop();
}

}  // namespace
}  // namespace fraud::training
