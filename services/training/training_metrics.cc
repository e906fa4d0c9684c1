#include "services/training/training_metrics.h"

#include "services/common/core/metrics.h"

namespace fraud::training::metrics {
namespace {

prometheus::Family<prometheus::Counter>& Runs() {
  static auto& f = fraud::metrics::Counter("fraud_training_runs_total",
                                           "Training runs finished, by final status");
  return f;
}
prometheus::Family<prometheus::Histogram>& RunDuration() {
  static auto& f = fraud::metrics::Histogram("fraud_training_run_duration_seconds",
                                             "Wall time of finished training runs");
  return f;
}
prometheus::Family<prometheus::Counter>& Candidates() {
  static auto& f = fraud::metrics::Counter("fraud_training_candidates_total",
                                           "Candidate models trained, by family and result");
  return f;
}
prometheus::Family<prometheus::Counter>& Promotions() {
  static auto& f = fraud::metrics::Counter("fraud_training_promotions_total",
                                           "Promotion decisions and their outcome");
  return f;
}
prometheus::Family<prometheus::Gauge>& Queue() {
  static auto& f = fraud::metrics::Gauge("fraud_training_queue_depth",
                                         "Training runs queued behind the running one");
  return f;
}
prometheus::Family<prometheus::Gauge>& Running() {
  static auto& f =
      fraud::metrics::Gauge("fraud_training_running", "1 while a training run executes");
  return f;
}

const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const auto* b =
      new prometheus::Histogram::BucketBoundaries{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600};
  return *b;
}

}  // namespace

void CountRun(const std::string& status, double seconds) {
  Runs().Add({{"status", status}}).Increment();
  RunDuration().Add({{"status", status}}, DurationBuckets()).Observe(seconds);
}

void CountCandidate(const std::string& family, bool ok) {
  Candidates().Add({{"family", family}, {"result", ok ? "ok" : "failed"}}).Increment();
}

void CountPromotion(const std::string& result) {
  Promotions().Add({{"result", result}}).Increment();
}

void SetQueueDepth(int depth) { Queue().Add({}).Set(depth); }
void SetRunning(bool running) { Running().Add({}).Set(running ? 1 : 0); }

}  // namespace fraud::training::metrics
