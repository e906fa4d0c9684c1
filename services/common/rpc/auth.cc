#include "services/common/rpc/auth.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fraud::rpc {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  }
  return diff == 0;
}

absl::Status CheckAuthorizationHeader(std::string_view header, std::string_view expected_token) {
  if (expected_token.empty()) return absl::OkStatus();
  constexpr std::string_view kPrefix = "Bearer ";
  if (header.empty()) {
    return absl::UnauthenticatedError("this operation requires 'Authorization: Bearer <token>'");
  }
  if (!absl::StartsWithIgnoreCase(absl::string_view(header.data(), header.size()), "Bearer ") ||
      !ConstantTimeEquals(header.substr(kPrefix.size()), expected_token)) {
    return absl::UnauthenticatedError("invalid bearer token");
  }
  return absl::OkStatus();
}

absl::Status CheckBearerToken(const grpc::ServerContext& ctx, std::string_view expected_token) {
  if (expected_token.empty()) return absl::OkStatus();
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  std::string_view header;
  if (it != md.end()) header = std::string_view(it->second.data(), it->second.size());
  return CheckAuthorizationHeader(header, expected_token);
}

absl::Status CheckServiceToken(const grpc::ServerContext& ctx, std::string_view expected_token) {
  if (expected_token.empty()) return absl::OkStatus();
  const auto& md = ctx.client_metadata();
  auto it = md.find(kServiceTokenHeader);
  if (it == md.end()) {
    return absl::UnauthenticatedError(
        absl::StrCat("this write needs the deployment's service token in '", kServiceTokenHeader,
                     "' metadata (services send it when started with --service_token)"));
  }
  if (!ConstantTimeEquals(std::string_view(it->second.data(), it->second.size()), expected_token)) {
    return absl::UnauthenticatedError("invalid service token");
  }
  return absl::OkStatus();
}

void AddBearerToken(grpc::ClientContext* ctx, std::string_view token) {
  if (token.empty()) return;
  ctx->AddMetadata("authorization", "Bearer " + std::string(token));
}

}  // namespace fraud::rpc
