#include "clients/cli/cli_rpc.h"

#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"

namespace fraud::cli {
namespace {

const char* EnvName(Service service) {
  switch (service) {
    case Service::kIngest:
      return "FRAUD_INGEST_TARGET";
    case Service::kStorage:
      return "FRAUD_STORAGE_TARGET";
    case Service::kInference:
      return "FRAUD_INFERENCE_TARGET";
    case Service::kTraining:
      return "FRAUD_TRAINING_TARGET";
  }
  return "";
}

int DefaultPort(Service service) {
  switch (service) {
    case Service::kIngest:
      return 50051;
    case Service::kStorage:
      return 50052;
    case Service::kInference:
      return 50053;
    case Service::kTraining:
      return 50054;
  }
  return 0;
}

}  // namespace

const char* ServiceName(Service service) {
  switch (service) {
    case Service::kIngest:
      return "ingest";
    case Service::kStorage:
      return "storage";
    case Service::kInference:
      return "inference";
    case Service::kTraining:
      return "training";
  }
  return "";
}

std::string DefaultTarget(Service service) {
  const char* env = std::getenv(EnvName(service));
  if (env != nullptr && *env != '\0') return env;
  return absl::StrCat("127.0.0.1:", DefaultPort(service));
}

void ConnectionFlags::Register(FlagSet* flags, Service service) {
  target = DefaultTarget(service);
  const char* ca = std::getenv("FRAUD_TLS_CA");
  if (ca != nullptr) tls_ca = ca;
  flags->String(
      "target", &target,
      absl::StrCat(ServiceName(service), " service host:port (env ", EnvName(service), ")"));
  flags->String("tls-ca", &tls_ca, "PEM CA file: connect with TLS (env FRAUD_TLS_CA)");
  flags->Double("timeout", &timeout_seconds, "deadline of the call, seconds");
}

std::shared_ptr<grpc::Channel> ConnectionFlags::Channel() const {
  return rpc::MakeChannel({target, tls_ca});
}

std::unique_ptr<grpc::ClientContext> ConnectionFlags::Context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  rpc::SetDeadline(ctx.get(), absl::Seconds(timeout_seconds > 0 ? timeout_seconds : 30));
  ctx->AddMetadata("x-request-id", rpc::NewRequestId());
  return ctx;
}

void RegisterServiceTokenFlag(FlagSet* flags, std::string* token, const std::string& help) {
  if (const char* env = std::getenv("FRAUD_SERVICE_TOKEN"); env != nullptr) *token = env;
  flags->String("service-token", token, help);
}

std::string DescribeRpcError(const grpc::Status& status, const std::string& target) {
  const absl::Status s = rpc::FromGrpcStatus(status);
  return absl::StrCat(rpc::CodeName(s.code()), ": ", s.message(), " (target ", target, ")");
}

bool IsTerminal(const std::ostream& os) {
  return &os == &std::cerr && ::isatty(STDERR_FILENO) == 1;
}

}  // namespace fraud::cli
