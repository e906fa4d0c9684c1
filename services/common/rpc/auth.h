// Bearer-token checks for admin RPCs ("authorization: Bearer <token>" metadata).
#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace fraud::rpc {

// Compares in time independent of where the strings differ (length leaks, content does not).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// OK when `expected_token` is empty (auth disabled) or the call carries the right bearer token;
// Unauthenticated otherwise. Never logs or echoes the token.
absl::Status CheckBearerToken(const grpc::ServerContext& ctx, std::string_view expected_token);
// Same check on a raw "Authorization" header value (the gateway's HTTP path).
absl::Status CheckAuthorizationHeader(std::string_view header, std::string_view expected_token);

// Adds the bearer token to an outgoing call (no-op when token is empty).
void AddBearerToken(grpc::ClientContext* ctx, std::string_view token);

// Service-to-service authentication: a per-deployment secret that the services send on every
// call (ChannelOptions::service_token) and storage requires for writes. A separate header from
// the admin bearer token, so an admin token never grants storage writes and the service token
// never grants admin RPCs.
inline constexpr char kServiceTokenHeader[] = "x-fraud-service-token";
// OK when `expected_token` is empty (not configured) or the call carries it in
// kServiceTokenHeader; Unauthenticated naming the header and flag otherwise. Never echoes it.
absl::Status CheckServiceToken(const grpc::ServerContext& ctx, std::string_view expected_token);

}  // namespace fraud::rpc
