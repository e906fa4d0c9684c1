// Runs training jobs one at a time on a worker thread, with a bounded queue, cancellation and
// live progress for watchers. Every state change is stored in storage (UpdateRun); progress-only
// changes (epochs) at most once per `persist_interval`.
//
//   RunManager manager(storage, executor, {.max_queued = 4});
//   FRAUD_RETURN_IF_ERROR(manager.Start());
//   absl::StatusOr<TrainingRun> run = manager.Submit(request, params);   // QUEUED
//   manager.Watch(run->id(), emit, is_cancelled);                        // until terminal
//
// Statuses: a submitted run is QUEUED, then RUNNING, then SUCCEEDED / FAILED / CANCELLED (the
// executor's OK / error / Cancelled). A second Submit while a run is active is queued ("queued
// behind run N (position k)"); when `max_queued` runs already wait, Submit is RESOURCE_EXHAUSTED.
//
// Thread-safety: every public method is thread-safe. Stop() (also run by the destructor) cancels
// the running run, cancels queued ones and joins the worker.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fraud/training/v1/training.pb.h"
#include "services/common/core/clock.h"
#include "services/training/clients.h"
#include "services/training/pipeline.h"

namespace fraud::training {

// Executes one run; see ExecuteRun in pipeline.h for the contract.
using RunExecutor = std::function<absl::Status(const training::v1::StartRunRequest& request,
                                               int64_t run_id, RunSink& sink,
                                               const std::atomic<bool>& cancel)>;

struct RunManagerOptions {
  // Runs that may wait behind the running one.
  int max_queued = 4;
  // Progress-only updates are stored at most this often.
  absl::Duration persist_interval = absl::Seconds(1);
  // Finished runs kept in memory so late watchers still see their final state.
  int keep_finished = 16;
};

bool IsTerminal(storage_pb::RunStatus status);
// "queued", "running", "succeeded", "failed", "cancelled".
std::string RunStatusName(storage_pb::RunStatus status);

class RunManager {
 public:
  // `storage` is not owned and must outlive this object.
  RunManager(StorageApi* storage, RunExecutor executor, RunManagerOptions options = {},
             const Clock* clock = &RealClock::Get());
  ~RunManager();
  RunManager(const RunManager&) = delete;
  RunManager& operator=(const RunManager&) = delete;

  // Marks runs a previous process left QUEUED/RUNNING as FAILED ("interrupted") and starts the
  // worker. Storage errors while recovering are logged, not returned. FailedPrecondition when
  // already started.
  absl::Status Start();
  // Cancels the running run and the queued ones, then joins the worker. Idempotent.
  void Stop();

  // Creates the run record (QUEUED, with `params` and `request.trigger()`) and queues it.
  // ResourceExhausted when max_queued runs already wait; Unavailable after Stop(); storage errors.
  absl::StatusOr<storage_pb::TrainingRun> Submit(const training::v1::StartRunRequest& request,
                                                 const std::map<std::string, std::string>& params);

  // The live record of an active or recently finished run, else storage's. NotFound when unknown.
  absl::StatusOr<storage_pb::TrainingRun> Get(int64_t run_id);
  // Storage's page with the live state of active runs overlaid.
  absl::StatusOr<storage_pb::ListRunsResponse> List(int32_t page_size, int64_t before_id);

  // Cancels a queued run at once (CANCELLED) or asks the running one to stop (it ends CANCELLED
  // when it notices, before registering a version; the returned record is still RUNNING).
  // FailedPrecondition when the run already finished; NotFound when unknown.
  absl::StatusOr<storage_pb::TrainingRun> Cancel(int64_t run_id);

  // Calls `emit` with the run's current record, then after every change, until the run is
  // terminal (OK), `emit` returns false (OK), or `cancelled` returns true (Cancelled; polled every
  // 200 ms). NotFound when the run is unknown.
  absl::Status Watch(int64_t run_id,
                     const std::function<bool(const storage_pb::TrainingRun&)>& emit,
                     const std::function<bool()>& cancelled);

  // Blocks until the run is terminal and returns its final record. DeadlineExceeded on timeout.
  absl::StatusOr<storage_pb::TrainingRun> WaitFor(int64_t run_id, absl::Duration timeout);

  // True while a run is queued or running.
  bool Busy() const;

 private:
  struct Active {
    storage_pb::TrainingRun run;
    training::v1::StartRunRequest request;
    uint64_t seq = 0;
    std::atomic<bool> cancel{false};
    absl::Time last_persist = absl::InfinitePast();
  };
  class Sink;

  void WorkerLoop();
  void Execute(const std::shared_ptr<Active>& active);
  // Applies a change to an active run under the lock; returns the record to persist (or nullopt).
  std::optional<storage_pb::TrainingRun> Apply(
      Active& active, const std::function<void(storage_pb::TrainingRun&)>& mutate, bool persist);
  void Persist(const storage_pb::TrainingRun& run);
  std::shared_ptr<Active> FindLocked(int64_t run_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RetireLocked(const std::shared_ptr<Active>& active) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateQueueMessagesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecoverInterrupted();
  bool IsStopping() const;

  StorageApi* const storage_;
  const RunExecutor executor_;
  const RunManagerOptions options_;
  const Clock* const clock_;

  absl::Mutex submit_mu_;
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  std::deque<std::shared_ptr<Active>> queue_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Active> running_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Active>> finished_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

}  // namespace fraud::training
