// The training area: starting, listing, cancelling and evaluating runs (training service), and a
// run's progress as Server-Sent Events relayed from the WatchRun server stream.
#include <algorithm>
#include <deque>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/common/rpc/channel.h"
#include "services/gateway/gateway_internal.h"
#include "services/gateway/http_status.h"

namespace fraud::gateway {

namespace {

std::string SseEvent(const std::string& event, const std::string& data) {
  std::string out = absl::StrCat("event: ", event, "\n");
  for (absl::string_view line : absl::StrSplit(data, '\n')) {
    absl::StrAppend(&out, "data: ", line, "\n");
  }
  out += "\n";
  return out;
}

// ---- event streams ----------------------------------------------------------------------------

bool StreamRunEvents(Gateway& gw, int64_t run_id, const std::string& request_id, DataSink& sink) {
  const GatewayOptions& options = gw.options();
  CounterGuard stream_guard(gw.streams());
  Metrics().event_streams.Increment();
  struct Shared {
    absl::Mutex mu;
    std::deque<std::string> runs ABSL_GUARDED_BY(mu);
    bool done ABSL_GUARDED_BY(mu) = false;
    grpc::Status status ABSL_GUARDED_BY(mu);
  } shared;
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, options.watch_timeout);
  ctx.AddMetadata("x-request-id", request_id);
  ScopedCall registered(gw.calls(), &ctx);
  std::thread reader([&] {
    trainingpb::WatchRunRequest request;
    request.set_run_id(run_id);
    auto stream = gw.training()->WatchRun(&ctx, request);
    trainingpb::WatchRunResponse update;
    while (stream->Read(&update)) {
      std::string text = ToJson(update.run());
      absl::MutexLock l(&shared.mu);
      shared.runs.push_back(std::move(text));
    }
    grpc::Status st = stream->Finish();
    absl::MutexLock l(&shared.mu);
    shared.status = std::move(st);
    shared.done = true;
  });
  bool ok = sink.write("retry: 3000\n\n", 13);
  std::string last = "{}";
  absl::Time next_heartbeat = absl::Now() + options.sse_heartbeat;
  bool finished = false;
  while (ok && !finished) {
    std::deque<std::string> batch;
    bool done = false;
    grpc::Status status;
    {
      absl::MutexLock l(&shared.mu);
      auto ready = [&shared]() { return !shared.runs.empty() || shared.done; };
      shared.mu.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(250));
      batch.swap(shared.runs);
      done = shared.done;
      status = shared.status;
    }
    for (std::string& run : batch) {
      const std::string event = SseEvent("run", run);
      ok = ok && sink.write(event.data(), event.size());
      last = std::move(run);
      next_heartbeat = absl::Now() + options.sse_heartbeat;
    }
    if (!ok) break;
    if (done) {
      const std::string event =
          status.ok()
              ? SseEvent("end", last)
              : SseEvent("error",
                         ErrorBodyJson(ToHttpError(BackendStatus("training", "WatchRun", status))));
      ok = sink.write(event.data(), event.size());
      finished = true;
    } else if (gw.stopping()) {
      finished = true;
    } else if (absl::Now() >= next_heartbeat) {
      ok = sink.write(": keep-alive\n\n", 14);
      next_heartbeat = absl::Now() + options.sse_heartbeat;
    } else if (!sink.is_writable()) {
      ok = false;
    }
  }
  ctx.TryCancel();
  reader.join();
  Metrics().event_streams.Decrement();
  if (!ok) return false;
  sink.done();
  return true;
}

void RunEvents(Gateway& gw, Call& call) {
  if (!Require(call, gw.training(), "training")) return;
  // Look the run up first so an unknown id is a JSON 404, not an empty event stream.
  trainingpb::GetRunRequest request;
  request.set_run_id(call.ids[0]);
  grpc::ClientContext ctx;
  gw.Prepare(call, &ctx);
  trainingpb::GetRunResponse response;
  const grpc::Status s = gw.training()->GetRun(&ctx, request, &response);
  if (!s.ok()) return ReplyError(call, BackendStatus("training", "GetRun", s));
  call.res.status = 200;
  call.res.set_header("Cache-Control", "no-cache");
  call.res.set_header("X-Accel-Buffering", "no");
  const int64_t run_id = call.ids[0];
  const std::string request_id = call.request_id;
  Gateway* g = &gw;
  call.res.set_chunked_content_provider("text/event-stream",
                                        [g, run_id, request_id](size_t, DataSink& sink) {
                                          return StreamRunEvents(*g, run_id, request_id, sink);
                                        });
}

// ---- runs --------------------------------------------------------------------------------------

using TrainingStub = Gateway::TrainingStub;

void StartRun(Gateway& gw, Call& call) {
  if (!Require(call, gw.training(), "training")) return;
  trainingpb::StartRunRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  gw.Forward(call, gw.training(), "training", "StartRun", &TrainingStub::StartRun, request);
}

void ListRuns(Gateway& gw, Call& call) {
  if (!Require(call, gw.training(), "training")) return;
  trainingpb::ListRunsRequest request;
  if (!QueryPaging(call, &request)) return;
  gw.Forward(call, gw.training(), "training", "ListRuns", &TrainingStub::ListRuns, request);
}

void GetRun(Gateway& gw, Call& call) {
  if (!Require(call, gw.training(), "training")) return;
  trainingpb::GetRunRequest request;
  request.set_run_id(call.ids[0]);
  gw.Forward(call, gw.training(), "training", "GetRun", &TrainingStub::GetRun, request);
}

void CancelRun(Gateway& gw, Call& call) {
  if (!Require(call, gw.training(), "training")) return;
  trainingpb::CancelRunRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  if (request.run_id() != 0 && request.run_id() != call.ids[0]) {
    return ReplyError(call, absl::InvalidArgumentError("body runId differs from the path's id"));
  }
  request.set_run_id(call.ids[0]);
  gw.Forward(call, gw.training(), "training", "CancelRun", &TrainingStub::CancelRun, request);
}

void Evaluate(Gateway& gw, Call& call) {
  if (!Require(call, gw.training(), "training")) return;
  trainingpb::EvaluateRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  // Evaluation scores every version on the stored rows: it may take minutes.
  gw.Forward(call, gw.training(), "training", "Evaluate", &TrainingStub::Evaluate, request,
             std::max(gw.options().rpc_timeout, absl::Minutes(10)));
}

}  // namespace

std::vector<Route> internal::TrainingRoutes() {
  return {
      {.spec = {.method = "POST",
                .path = "/api/v1/training/runs",
                .operation_id = "startRun",
                .summary = "Start (or queue) a training run",
                .tag = "training",
                .access = Access::kAdmin,
                .body = BodyKind::kJson,
                .request_schema = "fraud.training.v1.StartRunRequest",
                .response_schema = "fraud.training.v1.StartRunResponse"},
       .handler = StartRun},
      {.spec = {.method = "GET",
                .path = "/api/v1/training/runs",
                .operation_id = "listRuns",
                .summary = "Training runs, newest first",
                .tag = "training",
                .response_schema = "fraud.training.v1.ListRunsResponse",
                .query = PagingQuery()},
       .handler = ListRuns},
      {.spec = {.method = "GET",
                .path = "/api/v1/training/runs/{id}",
                .operation_id = "getRun",
                .summary = "One training run",
                .tag = "training",
                .response_schema = "fraud.training.v1.GetRunResponse"},
       .handler = GetRun},
      {.spec = {.method = "GET",
                .path = "/api/v1/training/runs/{id}/events",
                .operation_id = "watchRun",
                .summary =
                    "Server-Sent Events: `event: run` (data: TrainingRun JSON) per update, "
                    "`event: end` when the run finished, `event: error` (data: ErrorBody) when "
                    "the watch failed; comment lines as heartbeats",
                .tag = "training",
                .response_schema = "Text",
                .response_content_type = "text/event-stream"},
       .handler = RunEvents},
      {.spec = {.method = "POST",
                .path = "/api/v1/training/runs/{id}/cancel",
                .operation_id = "cancelRun",
                .summary = "Cancel a queued or running run",
                .tag = "training",
                .access = Access::kAdmin,
                .body = BodyKind::kJson,
                .request_schema = "fraud.training.v1.CancelRunRequest",
                .response_schema = "fraud.training.v1.CancelRunResponse"},
       .handler = CancelRun},
      {.spec = {.method = "POST",
                .path = "/api/v1/training/evaluate",
                .operation_id = "evaluateModels",
                .summary =
                    "Score registered versions on stored labelled rows (read-only but expensive)",
                .tag = "training",
                .access = Access::kAdmin,
                .body = BodyKind::kJson,
                .request_schema = "fraud.training.v1.EvaluateRequest",
                .response_schema = "fraud.training.v1.EvaluateResponse"},
       .handler = Evaluate},
  };
}

}  // namespace fraud::gateway
