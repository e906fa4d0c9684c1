// Training progress as Server-Sent Events, relayed from the WatchRun server stream.
#include "services/gateway/gateway_internal.h"

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

}  // namespace

void GatewayServer::Impl::RunEvents(Call& call) {
  if (!Require(call, training_.get(), "training")) return;
  // Look the run up first so an unknown id is a JSON 404, not an empty event stream.
  trainingpb::GetRunRequest request;
  request.set_run_id(call.ids[0]);
  grpc::ClientContext ctx;
  Prepare(call, &ctx, false);
  trainingpb::GetRunResponse response;
  const grpc::Status s = training_->GetRun(&ctx, request, &response);
  if (!s.ok()) return ReplyError(call, Backend("training", "GetRun", s));
  call.res.status = 200;
  call.res.set_header("Cache-Control", "no-cache");
  call.res.set_header("X-Accel-Buffering", "no");
  const int64_t run_id = call.ids[0];
  const std::string request_id = call.request_id;
  call.res.set_chunked_content_provider("text/event-stream",
                                        [this, run_id, request_id](size_t, DataSink& sink) {
                                          return StreamRunEvents(run_id, request_id, sink);
                                        });
}

bool GatewayServer::Impl::StreamRunEvents(int64_t run_id, const std::string& request_id,
                                          DataSink& sink) {
  CounterGuard stream_guard(&streams_);
  Metrics().event_streams.Increment();
  struct Shared {
    absl::Mutex mu;
    std::deque<std::string> runs ABSL_GUARDED_BY(mu);
    bool done ABSL_GUARDED_BY(mu) = false;
    grpc::Status status ABSL_GUARDED_BY(mu);
  } shared;
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, options_.watch_timeout);
  ctx.AddMetadata("x-request-id", request_id);
  ScopedCall registered(&calls_, &ctx);
  std::thread reader([&] {
    trainingpb::WatchRunRequest request;
    request.set_run_id(run_id);
    auto stream = training_->WatchRun(&ctx, request);
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
  absl::Time next_heartbeat = absl::Now() + options_.sse_heartbeat;
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
      next_heartbeat = absl::Now() + options_.sse_heartbeat;
    }
    if (!ok) break;
    if (done) {
      const std::string event =
          status.ok()
              ? SseEvent("end", last)
              : SseEvent("error",
                         ErrorBodyJson(ToHttpError(Backend("training", "WatchRun", status))));
      ok = sink.write(event.data(), event.size());
      finished = true;
    } else if (stopping_.load()) {
      finished = true;
    } else if (absl::Now() >= next_heartbeat) {
      ok = sink.write(": keep-alive\n\n", 14);
      next_heartbeat = absl::Now() + options_.sse_heartbeat;
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

}  // namespace fraud::gateway
