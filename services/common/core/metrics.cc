#include "services/common/core/metrics.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "prometheus/text_serializer.h"

namespace fraud::metrics {

prometheus::Registry& Registry() {
  static auto* registry = new prometheus::Registry();  // never destroyed: used until exit
  return *registry;
}

prometheus::Family<prometheus::Counter>& Counter(const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(Registry());
}
prometheus::Family<prometheus::Gauge>& Gauge(const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(Registry());
}
prometheus::Family<prometheus::Histogram>& Histogram(const std::string& name,
                                                      const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(Registry());
}

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
      50e-3, 100e-3, 250e-3, 500e-3, 1.0,  2.5,    5.0,  10.0,  30.0};
  return *buckets;
}

const prometheus::Histogram::BucketBoundaries& ScoreBuckets() {
  static const auto* buckets = [] {
    auto* b = new prometheus::Histogram::BucketBoundaries();
    for (int i = 1; i < 20; ++i) b->push_back(i * 0.05);
    return b;
  }();
  return *buckets;
}

std::string RenderText() {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, Registry().Collect());
  return out.str();
}

struct HttpEndpoint::Impl {
  httplib::Server server;
};

HttpEndpoint::HttpEndpoint() : impl_(std::make_unique<Impl>()) {}
HttpEndpoint::~HttpEndpoint() { Stop(); }

absl::Status HttpEndpoint::Start(const std::string& host, int port, ReadyFn ready) {
  if (thread_.joinable()) return absl::FailedPreconditionError("metrics endpoint already started");
  impl_->server.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(RenderText(), "text/plain; version=0.0.4; charset=utf-8");
  });
  impl_->server.Get("/healthz", [ready](const httplib::Request&, httplib::Response& res) {
    const bool ok = !ready || ready();
    res.status = ok ? 200 : 503;
    res.set_content(ok ? "ok\n" : "not ready\n", "text/plain");
  });
  int bound = port == 0 ? impl_->server.bind_to_any_port(host)
                        : (impl_->server.bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    return absl::UnavailableError(absl::StrCat("cannot bind metrics port ", host, ":", port));
  }
  port_ = bound;
  thread_ = std::thread([this] { impl_->server.listen_after_bind(); });
  return absl::OkStatus();
}

void HttpEndpoint::Stop() {
  if (!thread_.joinable()) return;
  impl_->server.stop();
  thread_.join();
}

}  // namespace fraud::metrics
