// The monitoring area: health checks of every service (/healthz, /api/v1/health) and the
// monitoring page (metrics scraped from every service's /metrics endpoint, the champion, recent
// uploads).
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <future>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"
#include "services/gateway/gateway_internal.h"
#include "services/gateway/prometheus_text.h"

namespace fraud::gateway {

namespace {

namespace healthpb = ::grpc::health::v1;

// ---- health ------------------------------------------------------------------------------------

std::string CheckHealth(const Gateway& gw, const std::shared_ptr<grpc::ChannelInterface>& channel) {
  if (channel == nullptr) return "NOT_CONFIGURED";
  auto stub = healthpb::Health::NewStub(channel);
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, gw.options().probe_timeout);
  healthpb::HealthCheckRequest request;
  healthpb::HealthCheckResponse response;
  const grpc::Status s = stub->Check(&ctx, request, &response);
  if (!s.ok()) return rpc::CodeName(static_cast<absl::StatusCode>(s.error_code()));
  return healthpb::HealthCheckResponse::ServingStatus_Name(response.status());
}

json HealthDocument(const Gateway& gw, bool* all_serving) {
  const Backends& backends = gw.backends();
  const std::vector<std::pair<const char*, std::shared_ptr<grpc::ChannelInterface>>> services = {
      {"ingest", backends.ingest},
      {"storage", backends.storage},
      {"inference", backends.inference},
      {"training", backends.training}};
  std::vector<std::future<std::string>> checks;
  for (const auto& [name, channel] : services) {
    checks.push_back(
        std::async(std::launch::async, [&gw, ch = channel] { return CheckHealth(gw, ch); }));
  }
  json doc = {{"services", json::object()}};
  *all_serving = true;
  for (size_t i = 0; i < services.size(); ++i) {
    const std::string state = checks[i].get();
    doc["services"][services[i].first] = state;
    if (state != "SERVING") *all_serving = false;
  }
  doc["status"] = *all_serving ? "ok" : "degraded";
  return doc;
}

void Healthz(Gateway& gw, Call& call) {
  bool ok = false;
  json doc = HealthDocument(gw, &ok);
  ReplyJson(call, doc.dump());
}

void Health(Gateway& gw, Call& call) {
  bool ok = false;
  json doc = HealthDocument(gw, &ok);
  ReplyJson(call, doc.dump(), ok ? 200 : 503);
}

// ---- the monitoring page -----------------------------------------------------------------------

json ScrapeService(const Gateway& gw, const std::string& name,
                   const std::shared_ptr<grpc::ChannelInterface>& channel,
                   const std::string& metrics_target) {
  const std::string health = CheckHealth(gw, channel);
  json out = {{"name", name},
              {"healthy", health == "SERVING"},
              {"status", health},
              {"metrics", json::object()}};
  if (metrics_target.empty()) return out;
  int port = 0;
  const std::string host = HostPort(metrics_target, &port);
  if (host.empty()) {
    out["metricsError"] = "bad metrics target " + metrics_target;
    return out;
  }
  httplib::Client client(host, port);
  const int64_t ms = absl::ToInt64Milliseconds(gw.options().probe_timeout);
  client.set_connection_timeout(ms / 1000, (ms % 1000) * 1000);
  client.set_read_timeout(ms / 1000, (ms % 1000) * 1000);
  httplib::Result r = client.Get("/metrics");
  if (!r || r->status != 200) {
    out["metricsError"] =
        r ? absl::StrCat("HTTP ", r->status)
          : absl::StrCat("cannot reach ", metrics_target, ": ", httplib::to_string(r.error()));
    return out;
  }
  absl::StatusOr<std::vector<PromSample>> samples = ParsePrometheusText(r->body);
  if (!samples.ok()) {
    out["metricsError"] = std::string(samples.status().message());
    return out;
  }
  for (const auto& [k, v] : SummarizeMetrics(*samples)) {
    if (std::isfinite(v)) out["metrics"][k] = v;
  }
  return out;
}

void Monitoring(Gateway& gw, Call& call) {
  const GatewayOptions& options = gw.options();
  const Backends& backends = gw.backends();
  struct Svc {
    const char* name;
    std::shared_ptr<grpc::ChannelInterface> channel;
    std::string metrics;
  };
  const std::vector<Svc> services = {{"ingest", backends.ingest, options.ingest_metrics},
                                     {"storage", backends.storage, options.storage_metrics},
                                     {"inference", backends.inference, options.inference_metrics},
                                     {"training", backends.training, options.training_metrics}};
  std::vector<std::future<json>> scrapes;
  for (const Svc& s : services) {
    scrapes.push_back(std::async(
        std::launch::async, [&gw, s] { return ScrapeService(gw, s.name, s.channel, s.metrics); }));
  }
  json doc = {{"services", json::array()}, {"uploads", json::array()}};
  {
    json self = {
        {"name", "gateway"}, {"healthy", true}, {"status", "SERVING"}, {"metrics", json::object()}};
    absl::StatusOr<std::vector<PromSample>> own = ParsePrometheusText(metrics::RenderText());
    if (own.ok()) {
      for (const auto& [k, v] : SummarizeMetrics(*own, {"fraud_gateway_"})) {
        if (std::isfinite(v)) self["metrics"][k] = v;
      }
    }
    doc["services"].push_back(std::move(self));
  }
  if (gw.storage() != nullptr) {
    grpc::ClientContext ctx;
    gw.Prepare(call, &ctx, options.probe_timeout);
    storagepb::GetChampionResponse champion;
    if (gw.storage()->GetChampion(&ctx, storagepb::GetChampionRequest(), &champion).ok() &&
        champion.has_model()) {
      doc["champion"] = json::parse(ToJson(champion.model()));
      if (champion.has_since()) {
        doc["championSince"] = json::parse(ToJson(champion)).value("since", "");
      }
    }
    grpc::ClientContext list_ctx;
    gw.Prepare(call, &list_ctx, options.probe_timeout);
    storagepb::ListUploadsRequest list;
    list.set_page_size(50);
    storagepb::ListUploadsResponse uploads;
    if (gw.storage()->ListUploads(&list_ctx, list, &uploads).ok()) {
      for (const storagepb::Upload& u : uploads.uploads()) {
        ingestpb::UploadSummary summary;
        google::protobuf::util::JsonParseOptions lenient;
        lenient.ignore_unknown_fields = true;
        const bool parsed =
            !u.summary_json().empty() &&
            google::protobuf::util::JsonStringToMessage(u.summary_json(), &summary, lenient).ok();
        json row = json::parse(ToJson(u));
        json out = {{"id", std::to_string(u.id())},
                    {"fileName", u.file_name()},
                    {"rows", std::to_string(u.rows())},
                    {"frauds", std::to_string(u.frauds())},
                    {"labelledRows", std::to_string(u.labelled_rows())},
                    {"modelVersion", std::to_string(u.model_version())},
                    {"time", row.value("receivedAt", "")}};
        if (parsed && summary.scored()) {
          out["predictedFrauds"] = std::to_string(summary.predicted_frauds());
        }
        doc["uploads"].push_back(std::move(out));
      }
    }
  }
  for (auto& f : scrapes) doc["services"].push_back(f.get());
  ReplyJson(call, doc.dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace

std::vector<Route> internal::MonitoringRoutes() {
  return {
      {.spec = {.method = "GET",
                .path = "/healthz",
                .operation_id = "healthz",
                .summary = "Liveness and the health of every service (always 200)",
                .tag = "health",
                .response_schema = "HealthResponse"},
       .handler = Healthz},
      {.spec = {.method = "GET",
                .path = "/api/v1/health",
                .operation_id = "getHealth",
                .summary =
                    "Health of every service: 200 when all serve, 503 (same body) when degraded",
                .tag = "health",
                .response_schema = "HealthResponse"},
       .handler = Health},
      {.spec = {.method = "GET",
                .path = "/api/v1/monitoring",
                .operation_id = "getMonitoring",
                .summary = "Health and key metrics of every service, the champion, recent uploads",
                .tag = "monitoring",
                .response_schema = "MonitoringResponse"},
       .handler = Monitoring},
  };
}

}  // namespace fraud::gateway
