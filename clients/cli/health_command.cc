// fraudctl health (grpc.health.v1.Health/Check on one or every service) and fraudctl rpc list
// (grpc.reflection.v1alpha: the services a server exposes).
#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "clients/cli/cli_rpc.h"
#include "clients/cli/flag_parser.h"
#include "clients/cli/rpc_commands.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "services/common/rpc/channel.h"

namespace fraud::cli {
namespace {

using grpc::health::v1::HealthCheckResponse;

// "SERVING", or the reason it is not.
struct HealthResult {
  bool serving = false;
  std::string text;
};

HealthResult Check(const std::string& target, const std::string& tls_ca, double timeout_seconds,
                   const std::string& service) {
  ConnectionFlags conn;
  conn.target = target;
  conn.tls_ca = tls_ca;
  conn.timeout_seconds = timeout_seconds;
  auto stub = grpc::health::v1::Health::NewStub(conn.Channel());
  std::unique_ptr<grpc::ClientContext> ctx = conn.Context();
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  HealthCheckResponse response;
  const grpc::Status s = stub->Check(ctx.get(), request, &response);
  if (!s.ok()) return {false, DescribeRpcError(s, target)};
  const bool serving = response.status() == HealthCheckResponse::SERVING;
  return {serving, HealthCheckResponse::ServingStatus_Name(response.status())};
}

}  // namespace

int RunHealth(const std::vector<std::string>& args, CommandIo& io) {
  bool all = false;
  std::string service;
  ConnectionFlags conn;
  FlagSet flags("health",
                "Usage: fraudctl health [--target host:port] [--service NAME]\n"
                "       fraudctl health --all\n\n"
                "Asks grpc.health.v1.Health/Check. Without --all: the service at --target\n"
                "(default ingest). With --all: ingest, storage, inference and training at their\n"
                "targets (FRAUD_<SERVICE>_TARGET or the local default ports). Exits 1 unless\n"
                "every service checked is SERVING.");
  flags.Bool("all", &all, "check every service");
  flags.String("service", &service, "health-check service name (default: the whole server)");
  conn.timeout_seconds = 5;
  conn.Register(&flags, Service::kIngest);
  absl::Status parsed = flags.Parse(args);
  if (parsed.ok() && flags.help_requested()) {
    io.out << flags.Usage();
    return kExitOk;
  }
  if (parsed.ok() && !flags.positional().empty()) {
    parsed = absl::InvalidArgumentError("health: unexpected argument '" +
                                        flags.positional().front() + "'");
  }
  if (parsed.ok() && all && flags.WasSet("target")) {
    parsed = absl::InvalidArgumentError(
        "health: --all checks every service at its own target; set FRAUD_<SERVICE>_TARGET "
        "instead of --target");
  }
  if (!parsed.ok()) {
    io.err << parsed.message() << "\n\n" << flags.Usage();
    return kExitUsage;
  }

  std::vector<std::pair<std::string, std::string>> targets;  // name, target
  if (all) {
    for (Service s :
         {Service::kIngest, Service::kStorage, Service::kInference, Service::kTraining}) {
      targets.push_back({ServiceName(s), DefaultTarget(s)});
    }
  } else {
    targets.push_back({"", conn.target});
  }
  int failed = 0;
  for (const auto& [name, target] : targets) {
    const HealthResult r = Check(target, conn.tls_ca, conn.timeout_seconds, service);
    if (!r.serving) ++failed;
    if (name.empty()) {
      io.out << target << " " << r.text << "\n";
    } else {
      io.out << absl::StrFormat("%-10s %-22s %s\n", name, target, r.text);
    }
  }
  if (failed > 0) {
    io.err << "fraudctl health: " << failed << " of " << targets.size()
           << (targets.size() == 1 ? " service is" : " services are") << " not serving\n";
    return kExitFailure;
  }
  return kExitOk;
}

int RunRpc(const std::vector<std::string>& args, CommandIo& io) {
  ConnectionFlags conn;
  FlagSet flags("rpc",
                "Usage: fraudctl rpc list [--target host:port]\n\n"
                "Lists the gRPC services a server exposes, by server reflection\n"
                "(grpc.reflection.v1alpha), like `grpcurl -plaintext host:port list`.");
  conn.timeout_seconds = 5;
  conn.Register(&flags, Service::kIngest);
  absl::Status parsed = flags.Parse(args);
  if (parsed.ok() && flags.help_requested()) {
    io.out << flags.Usage();
    return kExitOk;
  }
  if (parsed.ok() && (flags.positional().size() != 1 || flags.positional()[0] != "list")) {
    parsed = absl::InvalidArgumentError(
        flags.positional().empty()
            ? "rpc: missing subcommand (list)"
            : absl::StrCat("rpc: unknown subcommand '", flags.positional()[0], "' (known: list)"));
  }
  if (!parsed.ok()) {
    io.err << parsed.message() << "\n\n" << flags.Usage();
    return kExitUsage;
  }

  namespace refl = grpc::reflection::v1alpha;
  auto stub = refl::ServerReflection::NewStub(conn.Channel());
  std::unique_ptr<grpc::ClientContext> ctx = conn.Context();
  auto stream = stub->ServerReflectionInfo(ctx.get());
  refl::ServerReflectionRequest request;
  request.set_list_services("*");
  std::set<std::string> names;
  std::string error;
  if (stream->Write(request)) {
    stream->WritesDone();
    refl::ServerReflectionResponse response;
    while (stream->Read(&response)) {
      if (response.has_error_response()) error = response.error_response().error_message();
      for (const auto& s : response.list_services_response().service()) names.insert(s.name());
    }
  }
  const grpc::Status s = stream->Finish();
  if (!s.ok()) {
    io.err << "fraudctl rpc: " << DescribeRpcError(s, conn.target) << "\n";
    return kExitFailure;
  }
  if (!error.empty()) {
    io.err << "fraudctl rpc: reflection error: " << error << " (target " << conn.target << ")\n";
    return kExitFailure;
  }
  for (const std::string& name : names) io.out << name << "\n";
  return kExitOk;
}

}  // namespace fraud::cli
