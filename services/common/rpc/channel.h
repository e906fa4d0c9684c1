// Client-side gRPC glue: channels (one per downstream service, created in main and reused),
// deadlines on every call, request-id propagation.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>

#include <memory>
#include <string>

#include "absl/time/time.h"

namespace fraud::rpc {

struct ChannelOptions {
  // "host:port".
  std::string target;
  // PEM file of the CA that signed the server's certificate; empty = plaintext.
  std::string tls_ca_file;
  // Largest message accepted or sent.
  int max_message_bytes = 64 << 20;
  // The deployment's service token: when set, every call on the channel carries it as
  // kServiceTokenHeader metadata (storage requires it for writes; see auth.h).
  std::string service_token;
};

// Creates a channel; never fails (connection errors surface on calls as UNAVAILABLE).
std::shared_ptr<grpc::Channel> MakeChannel(const ChannelOptions& options);

// Sets the call's deadline to now + timeout.
void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout);

// Copies x-request-id from an incoming call to an outgoing one (or makes a new id).
void PropagateRequestId(const grpc::ServerContext* in, grpc::ClientContext* out);
// The x-request-id of an incoming call, or "" when none.
std::string RequestId(const grpc::ServerContext* ctx);
// A new random request id (16 hex chars).
std::string NewRequestId();

}  // namespace fraud::rpc
