#include "services/training/auto_trigger.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/common/core/log.h"
#include "services/common/core/status_macros.h"

namespace fraud::training {

AutoDecision DecideAutoTrain(int64_t new_labelled_rows, int64_t min_new_rows, bool busy) {
  AutoDecision d;
  if (busy) {
    d.reason = "a run is active";
    return d;
  }
  if (new_labelled_rows < min_new_rows) {
    d.reason = absl::StrCat(new_labelled_rows, " new labelled rows (< ", min_new_rows, ")");
    return d;
  }
  d.start = true;
  d.reason = absl::StrCat(new_labelled_rows, " new labelled rows (>= ", min_new_rows, ")");
  return d;
}

int64_t LastTrainedUploadId(const std::vector<storage_pb::TrainingRun>& newest_first) {
  for (const storage_pb::TrainingRun& run : newest_first) {
    auto it = run.params().find("data.max_upload_id");
    int64_t id = 0;
    if (it != run.params().end() && absl::SimpleAtoi(it->second, &id)) return id;
    if (run.lineage().upload_ids_size() > 0) {
      return *std::max_element(run.lineage().upload_ids().begin(),
                               run.lineage().upload_ids().end());
    }
  }
  return 0;
}

int64_t LastTrainedLabelledRows(const std::vector<storage_pb::TrainingRun>& newest_first) {
  for (const storage_pb::TrainingRun& run : newest_first) {
    if (run.params().count("data.max_upload_id") == 0 && run.lineage().upload_ids_size() == 0) {
      continue;  // never read its data (queued, or failed before)
    }
    auto it = run.params().find("data.labelled_rows");
    int64_t rows = 0;
    if (it != run.params().end() && absl::SimpleAtoi(it->second, &rows)) return rows;
    return -1;
  }
  return -1;
}

AutoTrigger::AutoTrigger(StorageApi* storage, BusyFn busy, SubmitFn submit,
                         AutoTriggerOptions options, const Clock* clock)
    : storage_(storage),
      busy_(std::move(busy)),
      submit_(std::move(submit)),
      options_(std::move(options)),
      clock_(clock) {}

AutoTrigger::~AutoTrigger() { Stop(); }

absl::StatusOr<int64_t> AutoTrigger::CheckOnce() {
  if (busy_()) {
    last_reason_ = "a run is active";
    return 0;
  }
  FRAUD_ASSIGN_OR_RETURN(storage_pb::ListRunsResponse runs, storage_->ListRuns(20, 0));
  const std::vector<storage_pb::TrainingRun> newest_first(runs.runs().begin(), runs.runs().end());
  const int64_t seen = LastTrainedLabelledRows(newest_first);
  int64_t new_rows = 0;
  std::string since;
  if (seen >= 0) {
    FRAUD_ASSIGN_OR_RETURN(storage_pb::GetDataStatsResponse stats, storage_->GetDataStats(0));
    new_rows = std::max<int64_t>(0, stats.labelled_rows() - seen);
    since = absl::StrCat("since the last run's data (", seen, " labelled rows, now ",
                         stats.labelled_rows(), ")");
  } else {
    const int64_t after = LastTrainedUploadId(newest_first);
    FRAUD_ASSIGN_OR_RETURN(storage_pb::GetDataStatsResponse stats, storage_->GetDataStats(after));
    new_rows = stats.labelled_rows();
    since = absl::StrCat("after upload ", after);
  }
  const AutoDecision d = DecideAutoTrain(new_rows, options_.min_new_rows, busy_());
  last_reason_ = absl::StrCat(d.reason, " ", since);
  if (!d.start) return 0;
  training::v1::StartRunRequest request;
  request.set_trigger("auto");
  request.set_description(absl::StrCat("auto: ", new_rows, " new labelled rows ", since));
  for (const auto& [k, v] : options_.params) (*request.mutable_params())[k] = v;
  FRAUD_ASSIGN_OR_RETURN(storage_pb::TrainingRun run, submit_(request));
  FRAUD_LOG(INFO) << "auto training started" << Kv("run_id", run.id())
                  << Kv("new_labelled_rows", new_rows) << Kv("since", since);
  return run.id();
}

int64_t AutoTrigger::MaybeCheck() {
  const absl::Time now = clock_->Now();
  if (now < next_check_) return 0;
  next_check_ = now + options_.check_interval;
  absl::StatusOr<int64_t> started = CheckOnce();
  if (!started.ok()) {
    FRAUD_LOG(WARNING) << "auto-training check failed" << Kv("error", started.status().message());
    return 0;
  }
  return *started;
}

void AutoTrigger::Start() {
  if (thread_.joinable()) return;
  {
    absl::MutexLock lock(&mu_);
    stop_ = false;
  }
  thread_ = std::thread([this] {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        const bool stopping = mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Seconds(1));
        if (stopping) return;
      }
      MaybeCheck();
    }
  });
}

void AutoTrigger::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace fraud::training
