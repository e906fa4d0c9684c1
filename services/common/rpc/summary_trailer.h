// The UploadSummary of a failed upload travels back as binary trailing metadata, so a client (the
// gateway, fraudctl) can show every detail of a rejected file next to the INVALID_ARGUMENT status:
//
//   server:  AttachSummaryTrailer(ctx, summary);  return grpc::Status(INVALID_ARGUMENT, ...);
//   client:  std::optional<UploadSummary> s = SummaryFromTrailers(client_ctx);
//
// The serialized summary is kept under kMaxSummaryTrailerBytes (gRPC's default metadata limit is
// 8 KiB, and "-bin" values are base64-encoded on the wire): errors beyond what fits are dropped
// (errors_truncated is then set) and long reasons are shortened.
// Thread-safety: plain functions; the contexts follow gRPC's own rules.
#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>

#include <optional>
#include <string>

#include "fraud/ingest/v1/ingest.pb.h"

namespace fraud::rpc {

inline constexpr char kSummaryTrailer[] = "fraud-upload-summary-bin";
inline constexpr size_t kMaxSummaryTrailerBytes = 4096;

// Returns the summary serialized and trimmed to at most kMaxSummaryTrailerBytes.
std::string SerializeSummaryForTrailer(ingest::v1::UploadSummary summary);
void AttachSummaryTrailer(grpc::ServerContext* ctx, const ingest::v1::UploadSummary& summary);
// The summary sent by the server in the trailers, or nullopt when there is none (or it does not
// parse). Call after the RPC finished.
std::optional<ingest::v1::UploadSummary> SummaryFromTrailers(const grpc::ClientContext& ctx);

}  // namespace fraud::rpc
