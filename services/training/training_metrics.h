// Prometheus metrics of the training service (process-wide registry):
//   fraud_training_runs_total{status}                 runs finished, by final status
//   fraud_training_run_duration_seconds{status}       wall time of finished runs
//   fraud_training_candidates_total{family,result}    candidates trained (ok / failed)
//   fraud_training_promotions_total{result}           promoted, rejected, rolled_back, conflict,
//                                                     failed, manual, manual_rolled_back
//   fraud_training_queue_depth                        runs waiting behind the running one
//   fraud_training_running                            1 while a run executes
// Thread-safe.
#pragma once

#include <string>

namespace fraud::training::metrics {

void CountRun(const std::string& status, double seconds);
void CountCandidate(const std::string& family, bool ok);
void CountPromotion(const std::string& result);
void SetQueueDepth(int depth);
void SetRunning(bool running);

}  // namespace fraud::training::metrics
