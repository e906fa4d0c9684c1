#include "services/common/rpc/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>

#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/str_format.h"
#include "services/common/rpc/auth.h"

namespace fraud::rpc {
namespace {

// Adds the service token to the initial metadata of every call. Call credentials would be the
// usual tool, but gRPC refuses them on plaintext channels, and inside a private network the
// services talk plaintext unless TLS is configured.
class ServiceTokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit ServiceTokenInterceptor(const std::string* token) : token_(token) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({kServiceTokenHeader, *token_});
    }
    methods->Proceed();
  }

 private:
  const std::string* token_;
};

class ServiceTokenInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit ServiceTokenInterceptorFactory(std::string token) : token_(std::move(token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new ServiceTokenInterceptor(&token_);
  }

 private:
  std::string token_;
};

}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const ChannelOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  // Reconnect quickly after a peer restarts (default backoff grows to 120 s). Not
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also uses it as the connection-attempt timeout (20 s by
  // default); at 100 ms a busy peer that took longer to send its HTTP/2 SETTINGS failed calls with
  // "connection attempt timed out before receiving SETTINGS frame".
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.tls_ca_file.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    std::ifstream in(options.tls_ca_file);
    std::stringstream pem;
    pem << in.rdbuf();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem.str();
    creds = grpc::SslCredentials(ssl);
  }
  if (options.service_token.empty()) {
    return grpc::CreateCustomChannel(options.target, creds, args);
  }
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<ServiceTokenInterceptorFactory>(options.service_token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(options.target, creds, args,
                                                                 std::move(interceptors));
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout) {
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
}

std::string NewRequestId() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("%016x", rng());
}

std::string RequestId(const grpc::ServerContext* ctx) {
  if (ctx == nullptr) return "";
  const auto& md = ctx->client_metadata();
  auto it = md.find("x-request-id");
  if (it == md.end()) return "";
  return std::string(it->second.data(), std::min<size_t>(it->second.size(), 64));
}

void PropagateRequestId(const grpc::ServerContext* in, grpc::ClientContext* out) {
  std::string id = RequestId(in);
  out->AddMetadata("x-request-id", id.empty() ? NewRequestId() : id);
}

}  // namespace fraud::rpc
