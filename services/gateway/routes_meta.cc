// The meta area: the OpenAPI document of these routes and the gateway's own Prometheus metrics.
#include "services/common/core/metrics.h"
#include "services/gateway/gateway_internal.h"

namespace fraud::gateway {

namespace {

void OpenApi(Gateway& gw, Call& call) {
  call.res.set_header("Cache-Control", "no-cache");
  ReplyJson(call, gw.openapi_json());
}

void MetricsText(Gateway&, Call& call) {
  call.res.status = 200;
  call.res.set_content(metrics::RenderText(), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace

std::vector<Route> internal::MetaRoutes() {
  return {
      {.spec = {.method = "GET",
                .path = "/api/v1/openapi.json",
                .operation_id = "openapi",
                .summary = "This document",
                .tag = "meta",
                .response_schema = "OpenApiDocument"},
       .handler = OpenApi},
      {.spec = {.method = "GET",
                .path = "/metrics",
                .operation_id = "metrics",
                .summary = "The gateway's Prometheus metrics (text format)",
                .tag = "meta",
                .response_schema = "Text",
                .response_content_type = "text/plain"},
       .handler = MetricsText},
  };
}

}  // namespace fraud::gateway
