// The model registry as the inference service sees it: which version is the champion
// (ChampionSource), and the artifact files of a version its model directory lacks
// (ArtifactSource; the model directory is only a cache of the registry), and the operating point
// (decision threshold) an admin set for a version (OperatingPointSource).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fraud/storage/v1/storage.grpc.pb.h"

namespace fraud::inference {

// Thread-safety: implementations must be safe to call from several threads.
class ChampionSource {
 public:
  virtual ~ChampionSource() = default;
  // The champion's version number, or 0 when the registry has no champion yet. Unavailable /
  // DeadlineExceeded when the registry cannot be reached (callers retry later).
  virtual absl::StatusOr<int64_t> ChampionVersion() = 0;
};

// Asks fraud.storage.v1.StorageService/GetChampion, with a deadline on every call.
class StorageChampionSource final : public ChampionSource {
 public:
  // `stub` is not owned and must outlive this object.
  StorageChampionSource(storage::v1::StorageService::StubInterface* stub, absl::Duration timeout)
      : stub_(stub), timeout_(timeout) {}
  absl::StatusOr<int64_t> ChampionVersion() override;

 private:
  storage::v1::StorageService::StubInterface* stub_;
  absl::Duration timeout_;
};

// Thread-safety: implementations must be safe to call from several threads.
class OperatingPointSource {
 public:
  virtual ~OperatingPointSource() = default;
  // The threshold of `version`'s current operating point (set by an admin, audited in storage),
  // or nullopt when it has none (the manifest's threshold applies). Unavailable /
  // DeadlineExceeded when storage cannot be reached; NotFound for an unregistered version.
  virtual absl::StatusOr<std::optional<double>> OperatingThreshold(int64_t version) = 0;
};

// Asks fraud.storage.v1.StorageService/GetOperatingPoint, with a deadline on every call.
class StorageOperatingPointSource final : public OperatingPointSource {
 public:
  // `stub` is not owned and must outlive this object.
  StorageOperatingPointSource(storage::v1::StorageService::StubInterface* stub,
                              absl::Duration timeout)
      : stub_(stub), timeout_(timeout) {}
  absl::StatusOr<std::optional<double>> OperatingThreshold(int64_t version) override;

 private:
  storage::v1::StorageService::StubInterface* stub_;
  absl::Duration timeout_;
};

// Thread-safety: implementations must be safe to call from several threads.
class ArtifactSource {
 public:
  virtual ~ArtifactSource() = default;
  // Makes <root>/<version> a complete artifact directory, fetching it when it is missing (atomic:
  // a reader sees no directory or a whole one whose files match the registry's sha256). NotFound
  // when the registry has no artifact of that version; DataLoss when the fetched bytes do not
  // match; Unavailable / DeadlineExceeded when the registry cannot be reached.
  virtual absl::Status Fetch(int64_t version, const std::string& root) = 0;
};

// Streams fraud.storage.v1.StorageService/GetModelArtifact (rpc::FetchModelArtifact).
class StorageArtifactSource final : public ArtifactSource {
 public:
  // `stub` is not owned and must outlive this object. `timeout` bounds one whole fetch.
  StorageArtifactSource(storage::v1::StorageService::StubInterface* stub, absl::Duration timeout)
      : stub_(stub), timeout_(timeout) {}
  absl::Status Fetch(int64_t version, const std::string& root) override;

 private:
  storage::v1::StorageService::StubInterface* stub_;
  absl::Duration timeout_;
};

}  // namespace fraud::inference
