// Health and monitoring routes: health checks of every service, metrics scraped from their
// /metrics endpoints, champion and recent uploads.
#include "services/gateway/gateway_internal.h"

namespace fraud::gateway {

// ---- health and monitoring ---------------------------------------------------------------------

std::string GatewayServer::Impl::CheckHealth(
    const std::shared_ptr<grpc::ChannelInterface>& channel) {
  if (channel == nullptr) return "NOT_CONFIGURED";
  auto stub = healthpb::Health::NewStub(channel);
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, options_.probe_timeout);
  healthpb::HealthCheckRequest request;
  healthpb::HealthCheckResponse response;
  const grpc::Status s = stub->Check(&ctx, request, &response);
  if (!s.ok()) return rpc::CodeName(static_cast<absl::StatusCode>(s.error_code()));
  return healthpb::HealthCheckResponse::ServingStatus_Name(response.status());
}

json GatewayServer::Impl::HealthDocument(bool* all_serving) {
  const std::vector<std::pair<const char*, std::shared_ptr<grpc::ChannelInterface>>> services = {
      {"ingest", backends_.ingest},
      {"storage", backends_.storage},
      {"inference", backends_.inference},
      {"training", backends_.training}};
  std::vector<std::future<std::string>> checks;
  for (const auto& [name, channel] : services) {
    checks.push_back(
        std::async(std::launch::async, [this, ch = channel] { return CheckHealth(ch); }));
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

void GatewayServer::Impl::Healthz(Call& call) {
  bool ok = false;
  json doc = HealthDocument(&ok);
  ReplyJson(call, doc.dump());
}

void GatewayServer::Impl::Health(Call& call) {
  bool ok = false;
  json doc = HealthDocument(&ok);
  ReplyJson(call, doc.dump(), ok ? 200 : 503);
}

json GatewayServer::Impl::ScrapeService(const std::string& name,
                                        const std::shared_ptr<grpc::ChannelInterface>& channel,
                                        const std::string& metrics_target) {
  const std::string health = CheckHealth(channel);
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
  const int64_t ms = absl::ToInt64Milliseconds(options_.probe_timeout);
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

void GatewayServer::Impl::Monitoring(Call& call) {
  struct Svc {
    const char* name;
    std::shared_ptr<grpc::ChannelInterface> channel;
    std::string metrics;
  };
  const std::vector<Svc> services = {{"ingest", backends_.ingest, options_.ingest_metrics},
                                     {"storage", backends_.storage, options_.storage_metrics},
                                     {"inference", backends_.inference, options_.inference_metrics},
                                     {"training", backends_.training, options_.training_metrics}};
  std::vector<std::future<json>> scrapes;
  for (const Svc& s : services) {
    scrapes.push_back(std::async(
        std::launch::async, [this, s] { return ScrapeService(s.name, s.channel, s.metrics); }));
  }
  json doc = {{"services", json::array()}, {"uploads", json::array()}};
  {
    json gw = {
        {"name", "gateway"}, {"healthy", true}, {"status", "SERVING"}, {"metrics", json::object()}};
    absl::StatusOr<std::vector<PromSample>> own = ParsePrometheusText(metrics::RenderText());
    if (own.ok()) {
      for (const auto& [k, v] : SummarizeMetrics(*own, {"fraud_gateway_"})) {
        if (std::isfinite(v)) gw["metrics"][k] = v;
      }
    }
    doc["services"].push_back(std::move(gw));
  }
  if (storage_ != nullptr) {
    grpc::ClientContext ctx;
    Prepare(call, &ctx, false, options_.probe_timeout);
    storagepb::GetChampionResponse champion;
    if (storage_->GetChampion(&ctx, storagepb::GetChampionRequest(), &champion).ok() &&
        champion.has_model()) {
      doc["champion"] = json::parse(ToJson(champion.model()));
      if (champion.has_since()) {
        doc["championSince"] = json::parse(ToJson(champion)).value("since", "");
      }
    }
    grpc::ClientContext list_ctx;
    Prepare(call, &list_ctx, false, options_.probe_timeout);
    storagepb::ListUploadsRequest list;
    list.set_page_size(50);
    storagepb::ListUploadsResponse uploads;
    if (storage_->ListUploads(&list_ctx, list, &uploads).ok()) {
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

}  // namespace fraud::gateway
