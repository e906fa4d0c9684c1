// Automatic retraining: every `check_interval`, counts the labelled rows the last run's data did
// not have and starts a run with trigger "auto" once at least `min_new_rows` arrived and no run
// is active. A run records, before it reads, how many labelled rows storage held
// ("data.labelled_rows") and the highest upload id ("data.max_upload_id"); new rows are storage's
// labelled rows now minus the former, so labels that arrive later by feedback (on old uploads and
// on rows scored live, which all sit in one old upload) count as much as new labelled uploads.
// Runs recorded before "data.labelled_rows" existed fall back to counting the labelled rows of
// uploads after "data.max_upload_id".
//
// Default threshold: 20,000 labelled rows. That is a fifth of the 100,000-row bootstrap set (the
// first model's data), about 35 frauds at the population's 0.17% fraud rate: enough new evidence
// to change a model, and few enough that one day of the original dataset's traffic (~140k rows)
// retrains several times. Uploads of a demo-sized file (a few thousand rows) never trigger it;
// `fraudctl train` does.
//
// Thread-safety: CheckOnce/MaybeCheck from one thread (the trigger's own); Start/Stop from the
// owner.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fraud/training/v1/training.pb.h"
#include "services/common/core/clock.h"
#include "services/training/clients.h"

namespace fraud::training {

inline constexpr int64_t kDefaultAutoMinNewRows = 20000;

struct AutoDecision {
  bool start = false;
  std::string reason;
};

// Pure decision: start when no run is active and `new_labelled_rows` >= min_new_rows.
AutoDecision DecideAutoTrain(int64_t new_labelled_rows, int64_t min_new_rows, bool busy);

// The upload id the newest run that recorded one saw ("data.max_upload_id"), falling back to the
// highest upload id of its lineage; 0 when no run recorded any.
int64_t LastTrainedUploadId(const std::vector<storage_pb::TrainingRun>& newest_first);
// The labelled rows storage held when the newest run that recorded its data started reading
// ("data.labelled_rows"); -1 when that run (or every run) predates the param.
int64_t LastTrainedLabelledRows(const std::vector<storage_pb::TrainingRun>& newest_first);

struct AutoTriggerOptions {
  int64_t min_new_rows = kDefaultAutoMinNewRows;
  absl::Duration check_interval = absl::Seconds(60);
  // Params of the runs it starts (for example a smaller grid).
  std::map<std::string, std::string> params;
};

class AutoTrigger {
 public:
  using BusyFn = std::function<bool()>;
  using SubmitFn =
      std::function<absl::StatusOr<storage_pb::TrainingRun>(const training::v1::StartRunRequest&)>;

  // `storage` is not owned and must outlive this object.
  AutoTrigger(StorageApi* storage, BusyFn busy, SubmitFn submit, AutoTriggerOptions options,
              const Clock* clock = &RealClock::Get());
  ~AutoTrigger();

  // One check; returns the id of the run it started, or 0.
  absl::StatusOr<int64_t> CheckOnce();
  // Runs CheckOnce when check_interval has passed since the previous check (the first call
  // checks). Errors are logged. Returns the started run id or 0.
  int64_t MaybeCheck();

  // Background thread calling MaybeCheck about once a second.
  void Start();
  void Stop();

  const std::string& last_reason() const { return last_reason_; }

 private:
  StorageApi* const storage_;
  const BusyFn busy_;
  const SubmitFn submit_;
  const AutoTriggerOptions options_;
  const Clock* const clock_;
  absl::Time next_check_ = absl::InfinitePast();
  std::string last_reason_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace fraud::training
