// Dynamic batching of small scoring requests: concurrent calls are merged into one
// ScoringModel::Score call, and each caller gets back exactly its own rows' scores and the model
// snapshot that produced them.
//
// How (no extra threads, only the calling gRPC threads, STYLE.md §7):
//   - A caller enqueues its rows. If no batch is running it becomes the leader, otherwise it
//     sleeps until its rows are scored or leadership is handed to it.
//   - The leader takes queued requests (in arrival order, up to max_batch_rows rows), takes one
//     model snapshot from the ModelHolder, scores them in one call, copies each caller's slice
//     back, then hands leadership to the oldest still-queued request. Requests that arrive while
//     a batch is scoring therefore form the next batch with no added delay ("natural" batching).
//   - A new leader that starts from an idle queue may wait for more callers, but only for as many
//     as the previous batch held (an adaptive target: a lone sequential client never waits), and
//     only as long as the Score calls it could save would take: the wait is capped by
//     (target - 1) x the recent Score call time, and by max_delay. Waiting longer than the work
//     saved would only add latency and put the clients in lockstep.
//
// When it pays: a Score call has a fixed cost (LibTorch dispatch and allocation, XGBoost's
// DMatrix) that dominates small requests, and one call for N rows costs little more than one for
// one row. With the small models of this project a one-row Score takes ~10 us against ~100 us of
// gRPC work per call, so the wait stays in the tens of microseconds and merging mostly happens
// naturally under load; larger models get longer waits (up to max_delay) and larger savings.
// LibTorch runs with one intra-op thread; the gRPC threads provide the parallelism.
//
// Thread-safety: Score may be called from any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/inference/loaded_model.h"
#include "services/inference/model_holder.h"

namespace fraud::inference {

struct BatcherOptions {
  // False: every call scores on its own (Score() calls the model directly).
  bool enabled = true;
  // Largest merged batch, in rows. Requests at least this large are scored alone.
  int max_batch_rows = 256;
  // Longest time a leader waits for more callers before scoring (0 = never wait; merging
  // still happens for callers that queue up behind a running batch). The actual wait is also
  // capped by the Score time it could save (see above).
  absl::Duration max_delay = absl::Microseconds(200);
};

struct BatcherStats {
  // Score calls made on behalf of callers, and caller requests served by them.
  int64_t batches = 0;
  int64_t requests = 0;
  int64_t rows = 0;
  // Batches that held more than one request.
  int64_t merged_batches = 0;
  int64_t max_batch_requests = 0;
  // Fresh leaders that waited for company, and how many of those waits ran out of time.
  int64_t leader_waits = 0;
  int64_t wait_timeouts = 0;
  // Longest such wait.
  absl::Duration max_wait;
};

class MicroBatcher {
 public:
  // `holder` is not owned and must outlive this object.
  MicroBatcher(BatcherOptions options, const ModelHolder* holder);
  MicroBatcher(const MicroBatcher&) = delete;
  MicroBatcher& operator=(const MicroBatcher&) = delete;

  // Scores `rows` rows (kNumFeatures doubles each) into out[0..rows) with the serving model,
  // possibly together with concurrent callers, and returns the model that scored them.
  // Unavailable when no model is loaded; the model's error when scoring fails (every caller of
  // that batch gets it). `features` and `out` must stay valid until the call returns.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Score(const double* features, size_t rows,
                                                           float* out);

  BatcherStats stats() const ABSL_LOCKS_EXCLUDED(mu_);
  const BatcherOptions& options() const { return options_; }

 private:
  struct Request;
  // The requests of one Score call: inline up to 16, so a lone caller's batch allocates nothing.
  using Batch = absl::InlinedVector<Request*, 16>;
  bool BatchReady() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Scores `batch` with one model snapshot and fills every request's result (mu_ not held).
  void RunBatch(absl::Span<Request* const> batch, size_t rows);

  const BatcherOptions options_;
  const ModelHolder* const holder_;

  mutable absl::Mutex mu_;
  std::deque<Request*> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_rows_ ABSL_GUARDED_BY(mu_) = 0;
  bool leader_active_ ABSL_GUARDED_BY(mu_) = false;
  // Requests in the last batch: how many callers a fresh leader waits for.
  size_t target_requests_ ABSL_GUARDED_BY(mu_) = 1;
  // Moving average of the duration of one Score call made by the batcher.
  absl::Duration score_time_ ABSL_GUARDED_BY(mu_);
  BatcherStats stats_ ABSL_GUARDED_BY(mu_);
};

// Scores without batching: one model snapshot, one Score call. Unavailable when no model.
absl::StatusOr<std::shared_ptr<const LoadedModel>> ScoreDirect(const ModelHolder& holder,
                                                               const double* features,
                                                               size_t rows, float* out);

}  // namespace fraud::inference
