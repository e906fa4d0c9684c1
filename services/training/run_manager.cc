#include "services/training/run_manager.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/core/log.h"
#include "services/common/core/status_macros.h"
#include "services/common/rpc/grpc_status.h"
#include "services/training/training_metrics.h"

namespace fraud::training {
namespace {

using ::google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

double Seconds(const google::protobuf::Timestamp& from, const google::protobuf::Timestamp& to) {
  return static_cast<double>(TimeUtil::TimestampToNanoseconds(to) -
                             TimeUtil::TimestampToNanoseconds(from)) /
         1e9;
}

}  // namespace

bool IsTerminal(storage_pb::RunStatus status) {
  return status == storage_pb::RUN_STATUS_SUCCEEDED || status == storage_pb::RUN_STATUS_FAILED ||
         status == storage_pb::RUN_STATUS_CANCELLED;
}

std::string RunStatusName(storage_pb::RunStatus status) {
  switch (status) {
    case storage_pb::RUN_STATUS_QUEUED:
      return "queued";
    case storage_pb::RUN_STATUS_RUNNING:
      return "running";
    case storage_pb::RUN_STATUS_SUCCEEDED:
      return "succeeded";
    case storage_pb::RUN_STATUS_FAILED:
      return "failed";
    case storage_pb::RUN_STATUS_CANCELLED:
      return "cancelled";
    default:
      return "unspecified";
  }
}

class RunManager::Sink final : public RunSink {
 public:
  Sink(RunManager* manager, std::shared_ptr<Active> active)
      : manager_(manager), active_(std::move(active)) {}
  void Update(const std::function<void(storage_pb::TrainingRun&)>& mutate, bool persist) override {
    std::optional<storage_pb::TrainingRun> to_store = manager_->Apply(*active_, mutate, persist);
    if (to_store.has_value()) manager_->Persist(*to_store);
  }

 private:
  RunManager* manager_;
  std::shared_ptr<Active> active_;
};

RunManager::RunManager(StorageApi* storage, RunExecutor executor, RunManagerOptions options,
                       const Clock* clock)
    : storage_(storage), executor_(std::move(executor)), options_(options), clock_(clock) {}

RunManager::~RunManager() { Stop(); }

absl::Status RunManager::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("run manager already started");
    started_ = true;
  }
  RecoverInterrupted();
  worker_ = std::thread([this] { WorkerLoop(); });
  return absl::OkStatus();
}

void RunManager::RecoverInterrupted() {
  int64_t before = 0;
  for (int page = 0; page < 10; ++page) {
    absl::StatusOr<storage_pb::ListRunsResponse> runs = storage_->ListRuns(100, before);
    if (!runs.ok()) {
      FRAUD_LOG(WARNING) << "cannot check for interrupted runs"
                         << Kv("error", runs.status().message());
      return;
    }
    for (storage_pb::TrainingRun run : runs->runs()) {
      if (IsTerminal(run.status())) continue;
      run.set_status(storage_pb::RUN_STATUS_FAILED);
      run.set_message("interrupted: the training service stopped before the run finished");
      run.mutable_progress()->set_phase("failed");
      run.mutable_progress()->set_message(run.message());
      *run.mutable_finished_at() = ToProto(clock_->Now());
      FRAUD_LOG(WARNING) << "marking interrupted run failed" << Kv("run_id", run.id());
      Persist(run);
    }
    if (runs->next_before_id() == 0) return;
    before = runs->next_before_id();
  }
}

void RunManager::Stop() {
  std::vector<std::shared_ptr<Active>> dropped;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (running_) running_->cancel.store(true);
    for (auto& a : queue_) dropped.push_back(a);
    queue_.clear();
    for (auto& a : dropped) {
      a->run.set_status(storage_pb::RUN_STATUS_CANCELLED);
      a->run.set_message("cancelled: the training service is shutting down");
      a->run.mutable_progress()->set_phase("cancelled");
      *a->run.mutable_finished_at() = ToProto(clock_->Now());
      ++a->seq;
      RetireLocked(a);
    }
    metrics::SetQueueDepth(0);
    changed_.SignalAll();
  }
  for (auto& a : dropped) Persist(a->run);
  if (worker_.joinable()) worker_.join();
}

absl::StatusOr<storage_pb::TrainingRun> RunManager::Submit(
    const training::v1::StartRunRequest& request,
    const std::map<std::string, std::string>& params) {
  absl::MutexLock submit_lock(&submit_mu_);
  int64_t ahead = 0;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || !started_) {
      return absl::UnavailableError("the training service is not accepting runs");
    }
    if (static_cast<int>(queue_.size()) >= options_.max_queued) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "training queue is full: run ", running_ ? running_->run.id() : 0, " is running and ",
          queue_.size(), " run(s) are queued (limit ", options_.max_queued,
          "); try again when one finishes"));
    }
    ahead = (running_ ? 1 : 0) + static_cast<int64_t>(queue_.size());
  }
  storage_pb::TrainingRun run;
  run.set_status(storage_pb::RUN_STATUS_QUEUED);
  run.set_trigger(request.trigger().empty() ? "manual" : request.trigger());
  for (const auto& [k, v] : params) (*run.mutable_params())[k] = v;
  *run.mutable_created_at() = ToProto(clock_->Now());
  run.mutable_progress()->set_phase("queued");
  run.mutable_progress()->set_message(ahead == 0 ? "starting" : "queued");
  FRAUD_ASSIGN_OR_RETURN(storage_pb::TrainingRun created, storage_->CreateRun(run));
  auto active = std::make_shared<Active>();
  active->run = created;
  active->request = request;
  storage_pb::TrainingRun snapshot;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("the training service is shutting down");
    queue_.push_back(active);
    UpdateQueueMessagesLocked();
    metrics::SetQueueDepth(static_cast<int>(queue_.size()));
    snapshot = active->run;
    changed_.SignalAll();
  }
  FRAUD_LOG(INFO) << "run submitted" << Kv("run_id", snapshot.id())
                  << Kv("trigger", snapshot.trigger()) << Kv("ahead", ahead);
  return snapshot;
}

void RunManager::UpdateQueueMessagesLocked() {
  const int64_t running_id = running_ ? running_->run.id() : 0;
  for (size_t i = 0; i < queue_.size(); ++i) {
    Active& a = *queue_[i];
    std::string message;
    if (running_id != 0) {
      message = absl::StrCat("queued behind run ", running_id, " (position ", i + 1, " of ",
                             queue_.size(), " waiting)");
    } else if (i > 0) {
      message = absl::StrCat("queued behind run ", queue_[0]->run.id(), " (position ", i + 1,
                             " of ", queue_.size(), " waiting)");
    } else {
      message = "starting";
    }
    if (a.run.progress().message() != message) {
      a.run.mutable_progress()->set_message(message);
      ++a.seq;
    }
  }
}

void RunManager::WorkerLoop() {
  while (true) {
    std::shared_ptr<Active> next;
    {
      absl::MutexLock lock(&mu_);
      while (!stopping_ && queue_.empty()) changed_.Wait(&mu_);
      if (stopping_) return;
      next = queue_.front();
      queue_.pop_front();
      running_ = next;
      next->run.set_status(storage_pb::RUN_STATUS_RUNNING);
      *next->run.mutable_started_at() = ToProto(clock_->Now());
      next->run.mutable_progress()->set_phase("starting");
      next->run.mutable_progress()->set_message("starting");
      ++next->seq;
      UpdateQueueMessagesLocked();
      metrics::SetQueueDepth(static_cast<int>(queue_.size()));
      metrics::SetRunning(true);
      changed_.SignalAll();
    }
    Execute(next);
    metrics::SetRunning(false);
  }
}

void RunManager::Execute(const std::shared_ptr<Active>& active) {
  Persist(active->run);
  FRAUD_LOG(INFO) << "run started" << Kv("run_id", active->run.id());
  Sink sink(this, active);
  absl::Status status;
  if (active->cancel.load()) {
    status = absl::CancelledError("run cancelled");
  } else {
    status = executor_(active->request, active->run.id(), sink, active->cancel);
  }
  // The final record reaches storage before watchers see the run end, so whoever reacts to the
  // end (a replay, a test, the UI) reads the same state from storage.
  storage_pb::TrainingRun final_run;
  {
    absl::MutexLock lock(&mu_);
    final_run = active->run;
  }
  if (status.ok()) {
    final_run.set_status(storage_pb::RUN_STATUS_SUCCEEDED);
    final_run.mutable_progress()->set_phase("done");
  } else if (status.code() == absl::StatusCode::kCancelled) {
    final_run.set_status(storage_pb::RUN_STATUS_CANCELLED);
    final_run.set_message(active->cancel.load() && IsStopping()
                              ? "cancelled: the training service is shutting down"
                              : "cancelled before a version was registered");
    final_run.mutable_progress()->set_phase("cancelled");
    final_run.mutable_progress()->set_message(final_run.message());
  } else {
    final_run.set_status(storage_pb::RUN_STATUS_FAILED);
    final_run.set_message(
        absl::StrCat("failed (", rpc::CodeName(status.code()), "): ", status.message()));
    final_run.mutable_progress()->set_phase("failed");
    final_run.mutable_progress()->set_message(final_run.message());
  }
  *final_run.mutable_finished_at() = ToProto(clock_->Now());
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<storage_pb::TrainingRun> stored = storage_->UpdateRun(final_run);
    if (stored.ok()) break;
    FRAUD_LOG(WARNING) << "storing the final run state failed" << Kv("run_id", final_run.id())
                       << Kv("error", stored.status().message());
    absl::SleepFor(absl::Milliseconds(200 * (attempt + 1)));
  }
  {
    absl::MutexLock lock(&mu_);
    active->run = final_run;
    ++active->seq;
    running_.reset();
    RetireLocked(active);
    UpdateQueueMessagesLocked();
    changed_.SignalAll();
  }
  const double seconds = Seconds(final_run.started_at(), final_run.finished_at());
  metrics::CountRun(RunStatusName(final_run.status()), seconds);
  FRAUD_LOG(INFO) << "run ended" << Kv("run_id", final_run.id())
                  << Kv("status", RunStatusName(final_run.status())) << Kv("seconds", seconds)
                  << Kv("message", final_run.message());
}

bool RunManager::IsStopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

std::optional<storage_pb::TrainingRun> RunManager::Apply(
    Active& active, const std::function<void(storage_pb::TrainingRun&)>& mutate, bool persist) {
  absl::MutexLock lock(&mu_);
  mutate(active.run);
  ++active.seq;
  changed_.SignalAll();
  const absl::Time now = clock_->Now();
  if (persist || now - active.last_persist >= options_.persist_interval) {
    active.last_persist = now;
    return active.run;
  }
  return std::nullopt;
}

void RunManager::Persist(const storage_pb::TrainingRun& run) {
  absl::StatusOr<storage_pb::TrainingRun> stored = storage_->UpdateRun(run);
  if (!stored.ok()) {
    FRAUD_LOG(WARNING) << "storing run state failed" << Kv("run_id", run.id())
                       << Kv("error", stored.status().message());
  }
}

std::shared_ptr<RunManager::Active> RunManager::FindLocked(int64_t run_id) const {
  if (running_ && running_->run.id() == run_id) return running_;
  for (const auto& a : queue_) {
    if (a->run.id() == run_id) return a;
  }
  for (const auto& a : finished_) {
    if (a->run.id() == run_id) return a;
  }
  return nullptr;
}

void RunManager::RetireLocked(const std::shared_ptr<Active>& active) {
  finished_.push_back(active);
  while (static_cast<int>(finished_.size()) > options_.keep_finished) finished_.pop_front();
}

absl::StatusOr<storage_pb::TrainingRun> RunManager::Get(int64_t run_id) {
  {
    absl::MutexLock lock(&mu_);
    if (std::shared_ptr<Active> a = FindLocked(run_id)) return a->run;
  }
  return storage_->GetRun(run_id);
}

absl::StatusOr<storage_pb::ListRunsResponse> RunManager::List(int32_t page_size,
                                                             int64_t before_id) {
  FRAUD_ASSIGN_OR_RETURN(storage_pb::ListRunsResponse page, storage_->ListRuns(page_size, before_id));
  absl::MutexLock lock(&mu_);
  for (storage_pb::TrainingRun& run : *page.mutable_runs()) {
    if (std::shared_ptr<Active> a = FindLocked(run.id())) run = a->run;
  }
  return page;
}

absl::StatusOr<storage_pb::TrainingRun> RunManager::Cancel(int64_t run_id) {
  std::shared_ptr<Active> cancelled_queued;
  storage_pb::TrainingRun snapshot;
  {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<Active> a = FindLocked(run_id);
    if (a != nullptr && IsTerminal(a->run.status())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", run_id, " already finished (", RunStatusName(a->run.status()), ")"));
    }
    if (a != nullptr && a == running_) {
      a->cancel.store(true);
      a->run.mutable_progress()->set_message("cancelling");
      ++a->seq;
      changed_.SignalAll();
      return a->run;
    }
    if (a != nullptr) {
      for (auto it = queue_.begin(); it != queue_.end(); ++it) {
        if (*it == a) {
          queue_.erase(it);
          break;
        }
      }
      a->cancel.store(true);
      a->run.set_status(storage_pb::RUN_STATUS_CANCELLED);
      a->run.set_message("cancelled while queued");
      a->run.mutable_progress()->set_phase("cancelled");
      a->run.mutable_progress()->set_message(a->run.message());
      *a->run.mutable_finished_at() = ToProto(clock_->Now());
      ++a->seq;
      RetireLocked(a);
      UpdateQueueMessagesLocked();
      metrics::SetQueueDepth(static_cast<int>(queue_.size()));
      changed_.SignalAll();
      cancelled_queued = a;
      snapshot = a->run;
    }
  }
  if (cancelled_queued != nullptr) {
    metrics::CountRun("cancelled", 0);
    Persist(snapshot);
    return snapshot;
  }
  FRAUD_ASSIGN_OR_RETURN(storage_pb::TrainingRun stored, storage_->GetRun(run_id));
  if (IsTerminal(stored.status())) {
    return absl::FailedPreconditionError(absl::StrCat("run ", run_id, " already finished (",
                                                      RunStatusName(stored.status()), ")"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("run ", run_id, " is not active in this training service"));
}

absl::Status RunManager::Watch(int64_t run_id,
                               const std::function<bool(const storage_pb::TrainingRun&)>& emit,
                               const std::function<bool()>& cancelled) {
  std::shared_ptr<Active> active;
  {
    absl::MutexLock lock(&mu_);
    active = FindLocked(run_id);
  }
  if (active == nullptr) {
    FRAUD_ASSIGN_OR_RETURN(storage_pb::TrainingRun stored, storage_->GetRun(run_id));
    emit(stored);
    return absl::OkStatus();
  }
  bool first = true;
  uint64_t seen = 0;
  while (true) {
    storage_pb::TrainingRun snapshot;
    {
      absl::MutexLock lock(&mu_);
      while (!first && active->seq == seen) {
        if (cancelled && cancelled()) return absl::CancelledError("watcher went away");
        changed_.WaitWithTimeout(&mu_, absl::Milliseconds(200));
      }
      first = false;
      seen = active->seq;
      snapshot = active->run;
    }
    if (!emit(snapshot)) return absl::OkStatus();
    if (IsTerminal(snapshot.status())) return absl::OkStatus();
  }
}

absl::StatusOr<storage_pb::TrainingRun> RunManager::WaitFor(int64_t run_id,
                                                            absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::shared_ptr<Active> active;
  {
    absl::MutexLock lock(&mu_);
    active = FindLocked(run_id);
    if (active == nullptr) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, " is not active"));
    }
    while (!IsTerminal(active->run.status())) {
      if (changed_.WaitWithDeadline(&mu_, deadline) && !IsTerminal(active->run.status())) {
        return absl::DeadlineExceededError(absl::StrCat("run ", run_id, " did not finish in time"));
      }
    }
    return active->run;
  }
}

bool RunManager::Busy() const {
  absl::MutexLock lock(&mu_);
  return running_ != nullptr || !queue_.empty();
}

}  // namespace fraud::training
