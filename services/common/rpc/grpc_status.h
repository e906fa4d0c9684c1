// The one place absl::Status and grpc::Status are converted. Both use google.rpc.Code numbering.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace fraud::rpc {

// absl -> gRPC, for every handler's return.
grpc::Status ToGrpcStatus(const absl::Status& s);
// gRPC -> absl, for every client call, so a downstream UNAVAILABLE stays kUnavailable upstream.
absl::Status FromGrpcStatus(const grpc::Status& s);
// The canonical upper-case name of a code: "INVALID_ARGUMENT".
const char* CodeName(absl::StatusCode code);

}  // namespace fraud::rpc
