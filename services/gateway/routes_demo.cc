// The demo area: a synthetic CSV in the dataset's format, generated while it streams.
#include <memory>

#include "absl/strings/str_cat.h"
#include "services/common/csv/synthetic_generator.h"
#include "services/gateway/gateway_internal.h"

namespace fraud::gateway {

namespace {

void DemoSample(Gateway& gw, Call& call) {
  csv::GeneratorOptions g;
  g.rows = 1000;
  g.seed = 1;
  g.fraud_rate = 0.00172;
  if (!QueryInt(call, "rows", gw.options().max_demo_rows, &g.rows) ||
      !QueryInt(call, "seed", kMaxInt64, &g.seed)) {
    return;
  }
  if (std::string v = Param(call.req, "fraud_rate"); !v.empty()) {
    absl::StatusOr<double> r = ParseDouble("fraud_rate", v, 0, 1);
    if (!r.ok()) return ReplyError(call, r.status());
    g.fraud_rate = *r;
  }
  if (std::string v = Param(call.req, "labels"); !v.empty()) {
    absl::StatusOr<bool> b = ParseBool("labels", v);
    if (!b.ok()) return ReplyError(call, b.status());
    g.with_labels = *b;
  }
  struct State {
    explicit State(const csv::GeneratorOptions& o) : options(o), gen(o) {}
    csv::GeneratorOptions options;
    csv::SyntheticGenerator gen;
    bool header_sent = false;
    std::string buffer;
  };
  auto state = std::make_shared<State>(g);
  call.res.status = 200;
  call.res.set_header("Content-Disposition", absl::StrCat("attachment; filename=\"synthetic-",
                                                          g.rows, "-seed", g.seed, ".csv\""));
  call.res.set_header("Cache-Control", "no-store");
  call.res.set_chunked_content_provider("text/csv; charset=utf-8", [state](size_t, DataSink& sink) {
    std::string& out = state->buffer;
    out.clear();
    if (!state->header_sent) {
      out = csv::SyntheticCsvHeader(state->options);
      state->header_sent = true;
    }
    double features[csv::kNumFeatures];
    int32_t label = 0;
    bool more = true;
    while (out.size() < 64 * 1024 && (more = state->gen.Next(features, &label))) {
      csv::AppendCsvRow(features, label, state->options.with_labels, state->options.quote, &out);
    }
    if (!out.empty() && !sink.write(out.data(), out.size())) return false;
    if (!more) sink.done();
    return true;
  });
}

}  // namespace

std::vector<Route> internal::DemoRoutes() {
  return {
      {.spec = {.method = "GET",
                .path = "/api/v1/demo/sample.csv",
                .operation_id = "demoSample",
                .summary = "A synthetic CSV in the dataset's format (streamed)",
                .tag = "demo",
                .response_schema = "Text",
                .response_content_type = "text/csv",
                .query = {{.name = "rows",
                           .type = "integer",
                           .description = "Data rows (default 1000, at most --max_demo_rows)"},
                          {.name = "seed",
                           .type = "integer",
                           .description = "Generator seed (default 1)"},
                          {.name = "fraud_rate",
                           .type = "number",
                           .description = "Fraction of frauds (default 0.00172)"},
                          {.name = "labels",
                           .type = "boolean",
                           .description = "Write the Class column (default true)"}}},
       .handler = DemoSample},
  };
}

}  // namespace fraud::gateway
