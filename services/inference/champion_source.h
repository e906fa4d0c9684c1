// Where the inference service learns which model version is the registry's champion.
#pragma once

#include <cstdint>
#include <memory>

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

}  // namespace fraud::inference
