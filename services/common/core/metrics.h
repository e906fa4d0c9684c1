// Prometheus metrics (prometheus-cpp) and the small HTTP endpoint every service serves them on.
//
// Metric names follow fraud_<service>_<thing>_<unit>. The registry is process-wide, as in every
// Prometheus client library: families are created once (thread-safe) and labelled children are
// cached by prometheus-cpp, so hot paths hold on to the Counter&/Histogram& they get back.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace fraud::metrics {

// The process-wide registry.
prometheus::Registry& Registry();

prometheus::Family<prometheus::Counter>& Counter(const std::string& name, const std::string& help);
prometheus::Family<prometheus::Gauge>& Gauge(const std::string& name, const std::string& help);
prometheus::Family<prometheus::Histogram>& Histogram(const std::string& name,
                                                      const std::string& help);

// Latency buckets in seconds, 50 µs .. 30 s, roughly x2.5 apart.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets();
// Buckets for scores in [0, 1], 0.05 apart.
const prometheus::Histogram::BucketBoundaries& ScoreBuckets();

// Renders every metric of the registry in the Prometheus text exposition format (version 0.0.4).
std::string RenderText();

// Serves GET /metrics (text format) and GET /healthz on its own port, on one background thread.
// /healthz answers 200 "ok" when `ready` returns true (or no callback was given), 503 otherwise.
// Thread-safe; Stop() is idempotent and is called by the destructor.
class HttpEndpoint {
 public:
  using ReadyFn = std::function<bool()>;
  HttpEndpoint();
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // Binds host:port (port 0 picks a free one) and starts serving. FailedPrecondition when already
  // started, Unavailable when the port cannot be bound.
  absl::Status Start(const std::string& host, int port, ReadyFn ready = nullptr);
  int port() const { return port_; }
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace fraud::metrics
