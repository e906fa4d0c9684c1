// Shared plumbing of fraudctl's gRPC commands: default targets, channels, deadlines, and one-line
// error messages. Not thread-safe beyond what gRPC channels are.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <memory>
#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "clients/cli/flag_parser.h"

namespace fraud::cli {

enum class Service { kIngest, kStorage, kInference, kTraining };

// "ingest", "storage", ...
const char* ServiceName(Service service);
// $FRAUD_<SERVICE>_TARGET, or 127.0.0.1:<the service's default port>.
std::string DefaultTarget(Service service);

// Flags every gRPC command has: --target, --tls-ca, --timeout.
struct ConnectionFlags {
  std::string target;
  std::string tls_ca;
  double timeout_seconds = 30;

  // Registers the flags with defaults for `service`.
  void Register(FlagSet* flags, Service service);
  std::shared_ptr<grpc::Channel> Channel() const;
  // A context with the deadline (now + timeout) and a fresh x-request-id.
  std::unique_ptr<grpc::ClientContext> Context() const;
};

// Registers --service-token (storage's service token, for its write RPCs) on `flags`, defaulting
// to $FRAUD_SERVICE_TOKEN; `help` is the flag's help line.
void RegisterServiceTokenFlag(FlagSet* flags, std::string* token,
                              const std::string& help = "storage's service token");

// "UNAVAILABLE: failed to connect ... (target 127.0.0.1:50051)".
std::string DescribeRpcError(const grpc::Status& status, const std::string& target);

// True when `os` is std::cerr and stderr is a terminal (progress bars go there).
bool IsTerminal(const std::ostream& os);

}  // namespace fraud::cli
