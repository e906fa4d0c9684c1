// Starts a ServerRunner on 127.0.0.1:0 (or a given port, to restart a server where its clients
// expect it) with the given services for a test, and hands out a channel to it. The services must
// outlive this object.
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>
#include <vector>

#include "services/common/rpc/channel.h"
#include "services/common/rpc/server_runner.h"
#include "tests/testing/status_matchers.h"

namespace fraud::testing {

class InProcessServer {
 public:
  explicit InProcessServer(std::vector<grpc::Service*> services, std::string name = "test",
                           int max_threads = 16, int port = 0)
      : runner_([&] {
          rpc::ServerOptions o;
          o.service_name = name;
          o.host = "127.0.0.1";
          o.port = port;
          o.metrics_port = -1;
          o.max_threads = max_threads;
          return o;
        }()) {
    for (auto* s : services) runner_.Register(s);
  }
  absl::Status Start() { return runner_.Start(); }
  int port() const { return runner_.port(); }
  std::string target() const { return "127.0.0.1:" + std::to_string(port()); }
  std::shared_ptr<grpc::Channel> channel() const { return rpc::MakeChannel({target()}); }
  rpc::ServerRunner& runner() { return runner_; }
  void Shutdown(absl::Duration grace = absl::Seconds(1)) { runner_.Shutdown(grace); }

 private:
  rpc::ServerRunner runner_;
};

}  // namespace fraud::testing
