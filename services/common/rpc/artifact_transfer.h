// Model artifacts through the registry (fraud.storage.v1 PutModelArtifact / GetModelArtifact):
// the client side used by training (upload after writing a version) and by inference and training
// (fetch a version that is not in the local model directory), plus the header rules the storage
// service enforces on its side. Nothing but storage touches PostgreSQL; the model directory of
// every other service is only a cache of the registry.
//
// Memory: both directions hold one chunk (kArtifactChunkBytes) at a time, whatever the artifact's
// size. Thread-safety: the functions are thread-safe (each call has its own stream); two fetches
// of one version into one root race benignly (one rename wins, the other finds the directory).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fraud/storage/v1/storage.grpc.pb.h"

namespace fraud::rpc {

// Largest chunk a sender emits and a receiver accepts.
inline constexpr int64_t kArtifactChunkBytes = int64_t{1} << 20;
inline constexpr int kMaxArtifactFiles = 64;
inline constexpr int64_t kMaxArtifactBytes = int64_t{1} << 30;
inline constexpr int kMaxArtifactFileNameLength = 128;

// The artifact_uri a version whose artifact is in the registry is registered with:
// "registry://model_artifacts/<version>".
std::string RegistryArtifactUri(int64_t version);

// InvalidArgument naming the defect: version <= 0; no files or more than kMaxArtifactFiles; a file
// name that is empty, too long, starts with '.', or holds anything but [A-Za-z0-9._-] (so a name
// can never leave the artifact directory); a repeated name; a negative size or a total above
// kMaxArtifactBytes; a sha256 that is not 64 lowercase hex digits.
absl::Status ValidateArtifactHeader(const storage::v1::ArtifactHeader& header);

// The header describing `names` under `dir` (sizes and sha256 read from disk).
absl::StatusOr<storage::v1::ArtifactHeader> DescribeArtifactFiles(
    int64_t version, const std::string& dir, const std::vector<std::string>& names);

// Streams <dir>/<name> for every name to the registry as version `version`. Errors: those of
// DescribeArtifactFiles and ValidateArtifactHeader; the registry's status otherwise (AlreadyExists
// when the version already has an artifact, Unauthenticated without the service token,
// Unavailable/DeadlineExceeded when storage cannot be reached within `timeout`).
absl::StatusOr<storage::v1::PutModelArtifactResponse> PutModelArtifact(
    storage::v1::StorageService::StubInterface& stub, int64_t version, const std::string& dir,
    const std::vector<std::string>& names, absl::Duration timeout);

// Fetches `version` from the registry into <root>/<version> and returns that path. The files are
// written into <root>/.tmp-fetch-<version>-<random>/, each checked against the header's size and
// sha256, fsynced, and the directory is renamed into place only when all match, so a reader sees
// either no directory or a complete one; the temporary directory is removed on every failure.
// When <root>/<version> already exists it is returned as is (nothing is fetched). Errors:
// NotFound when the registry has no artifact of that version; DataLoss when the stream breaks the
// header's promises (a size or sha256 mismatch, a file missing or out of order, an invalid header
// or an oversized chunk), naming the file; Unavailable/DeadlineExceeded from the stream;
// Internal/PermissionDenied/ResourceExhausted on local I/O errors.
absl::StatusOr<std::string> FetchModelArtifact(storage::v1::StorageService::StubInterface& stub,
                                               int64_t version, const std::string& root,
                                               absl::Duration timeout);

// Removes <root>/.tmp-fetch-* directories left by fetches that were interrupted (a crash, a
// kill). Call at start-up, before any fetch of this process. OK when root does not exist.
absl::Status RemoveInterruptedFetches(const std::string& root);

}  // namespace fraud::rpc
