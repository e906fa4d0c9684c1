#include "services/inference/micro_batcher.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "services/common/core/metrics.h"

namespace fraud::inference {
namespace {

struct BatchMetrics {
  BatchMetrics()
      : rows(metrics::Histogram("fraud_inference_batch_rows",
                                "Rows per model Score call (merged batches included)")
                 .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128,
                                                                  256, 1024, 4096, 16384,
                                                                  65536})),
        requests(metrics::Histogram("fraud_inference_batch_requests",
                                    "Caller requests merged into one model Score call")
                     .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 3, 4, 6, 8, 12, 16,
                                                                      32, 64})) {}
  prometheus::Histogram& rows;
  prometheus::Histogram& requests;
};

BatchMetrics& Metrics() {
  static auto* m = new BatchMetrics();
  return *m;
}

absl::Status NoModel() { return absl::UnavailableError("no model loaded yet"); }

}  // namespace

struct MicroBatcher::Request {
  const double* features;
  size_t rows;
  float* out;
  // Set by the leader that scored this request (under mu_ for the flags).
  absl::Status status;
  std::shared_ptr<const LoadedModel> model;
  bool done = false;
  // Set when leadership is handed to this request.
  bool lead = false;
};

absl::StatusOr<std::shared_ptr<const LoadedModel>> ScoreDirect(const ModelHolder& holder,
                                                               const double* features,
                                                               size_t rows, float* out) {
  std::shared_ptr<const LoadedModel> model = holder.Get();
  if (model == nullptr) return NoModel();
  if (rows > 0) {
    absl::Status s = model->model->Score(features, rows, out);
    if (!s.ok()) return s;
    Metrics().rows.Observe(static_cast<double>(rows));
    Metrics().requests.Observe(1);
  }
  return model;
}

MicroBatcher::MicroBatcher(BatcherOptions options, const ModelHolder* holder)
    : options_(options), holder_(holder) {
  Metrics();
}

BatcherStats MicroBatcher::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool MicroBatcher::BatchReady() const {
  return queue_.size() >= target_requests_ ||
         queued_rows_ >= static_cast<size_t>(options_.max_batch_rows);
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> MicroBatcher::Score(const double* features,
                                                                       size_t rows, float* out) {
  if (!options_.enabled || rows == 0 || rows >= static_cast<size_t>(options_.max_batch_rows)) {
    return ScoreDirect(*holder_, features, rows, out);
  }
  Request me;
  me.features = features;
  me.rows = rows;
  me.out = out;

  Batch batch;
  size_t batch_rows = 0;
  {
    absl::MutexLock lock(&mu_);
    queue_.push_back(&me);
    queued_rows_ += rows;
    bool fresh_leader = false;
    if (!leader_active_) {
      leader_active_ = true;
      fresh_leader = true;
    } else {
      mu_.Await(absl::Condition(
          +[](Request* r) { return r->done || r->lead; }, &me));
      if (me.done) {
        if (!me.status.ok()) return me.status;
        return std::move(me.model);
      }
    }
    // Leader: this request is at the head of the queue. A leader that starts from an idle queue
    // waits (bounded) for as many callers as the previous batch had; a leader handed over from a
    // running batch scores at once, since its batch queued up while the previous one scored.
    if (fresh_leader && target_requests_ > 1) {
      const absl::Duration budget =
          std::min(options_.max_delay, score_time_ * static_cast<int64_t>(target_requests_ - 1));
      if (budget > absl::ZeroDuration()) {
        ++stats_.leader_waits;
        const absl::Time wait_start = absl::Now();
        if (!mu_.AwaitWithTimeout(absl::Condition(this, &MicroBatcher::BatchReady), budget)) {
          ++stats_.wait_timeouts;
        }
        stats_.max_wait = std::max(stats_.max_wait, absl::Now() - wait_start);
      }
    }
    while (!queue_.empty()) {
      Request* r = queue_.front();
      if (!batch.empty() && batch_rows + r->rows > static_cast<size_t>(options_.max_batch_rows)) {
        break;
      }
      batch.push_back(r);
      batch_rows += r->rows;
      queued_rows_ -= r->rows;
      queue_.pop_front();
    }
  }

  const absl::Time start = absl::Now();
  RunBatch(batch, batch_rows);
  const absl::Duration took = absl::Now() - start;

  {
    absl::MutexLock lock(&mu_);
    // Exponential moving average over roughly the last 8 batches.
    score_time_ = score_time_ == absl::ZeroDuration() ? took : (score_time_ * 7 + took) / 8;
    for (Request* r : batch) r->done = true;
    ++stats_.batches;
    stats_.requests += static_cast<int64_t>(batch.size());
    stats_.rows += static_cast<int64_t>(batch_rows);
    if (batch.size() > 1) ++stats_.merged_batches;
    stats_.max_batch_requests =
        std::max(stats_.max_batch_requests, static_cast<int64_t>(batch.size()));
    target_requests_ = batch.size();
    if (!queue_.empty()) {
      queue_.front()->lead = true;
    } else {
      leader_active_ = false;
    }
  }
  if (!me.status.ok()) return me.status;
  return std::move(me.model);
}

void MicroBatcher::RunBatch(absl::Span<Request* const> batch, size_t rows) {
  std::shared_ptr<const LoadedModel> model = holder_->Get();
  absl::Status status;
  if (model == nullptr) {
    status = NoModel();
  } else if (batch.size() == 1) {
    status = model->model->Score(batch[0]->features, rows, batch[0]->out);
  } else {
    // Reused per thread: gRPC threads are long-lived, so steady state allocates nothing.
    thread_local std::vector<double> features;
    thread_local std::vector<float> scores;
    features.resize(rows * kNumFeatures);
    scores.resize(rows);
    size_t offset = 0;
    for (const Request* r : batch) {
      std::memcpy(features.data() + offset * kNumFeatures, r->features,
                  r->rows * kNumFeatures * sizeof(double));
      offset += r->rows;
    }
    status = model->model->Score(features.data(), rows, scores.data());
    if (status.ok()) {
      offset = 0;
      for (Request* r : batch) {
        std::memcpy(r->out, scores.data() + offset, r->rows * sizeof(float));
        offset += r->rows;
      }
    }
  }
  if (status.ok()) {
    Metrics().rows.Observe(static_cast<double>(rows));
    Metrics().requests.Observe(static_cast<double>(batch.size()));
  }
  for (Request* r : batch) {
    r->status = status;
    if (status.ok()) r->model = model;
  }
}

}  // namespace fraud::inference
