// Test helper binary: serves SleepyInference on 127.0.0.1:0, prints "PORT <n>" on stdout, and
// shuts down gracefully (5 s grace) on SIGTERM, exactly as the services' main() does.
#include <cstdio>

#include "services/common/core/shutdown.h"
#include "services/common/core/status_macros.h"
#include "services/common/rpc/server_runner.h"
#include "tests/unit/rpc/test_services.h"

int main() {
  sigset_t stop = fraud::BlockStopSignals();
  fraud::testing::SleepyInference service;
  fraud::rpc::ServerOptions options;
  options.service_name = "sleepy";
  options.host = "127.0.0.1";
  fraud::rpc::ServerRunner runner(options);
  runner.Register(&service);
  FRAUD_CHECK_OK(runner.Start());
  std::printf("PORT %d\n", runner.port());
  std::fflush(stdout);
  fraud::WaitForSignal(stop);
  runner.Shutdown(absl::Seconds(5));
  return 0;
}
