// Reads the Prometheus text exposition format (0.0.4) and condenses it into the few numbers the
// monitoring page shows.
//
// SummarizeMetrics keeps samples whose name starts with one of `prefixes` ("fraud_" by default)
// and, summed over every label set:
//   - counters and gauges under their own name ("fraud_ingest_rows_total"),
//   - per value of a `result`, `code` or `status` label as name{label="value"}
//     ("fraud_inference_model_reloads_total{result=\"failed\"}"),
//   - histograms as <name>_sum, <name>_count and, from the buckets, <name>_p50 and <name>_p99
//     (linear interpolation inside the bucket, as PromQL's histogram_quantile does).
// Thread-safety: plain functions.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace fraud::gateway {

struct PromSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

// Parses every sample line; comments and blank lines are skipped. InvalidArgument names the first
// malformed line.
absl::StatusOr<std::vector<PromSample>> ParsePrometheusText(const std::string& text);

std::map<std::string, double> SummarizeMetrics(const std::vector<PromSample>& samples,
                                               const std::vector<std::string>& prefixes = {
                                                   "fraud_"});

}  // namespace fraud::gateway
