// Incremental SHA-256 (OpenSSL EVP). Not thread-safe; one object per stream of bytes.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace fraud {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view data);
  // Lowercase hex digest; the object must not be updated afterwards.
  std::string HexDigest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Sha256Hex(std::string_view data);
// Hashes a file by streaming it; NotFound / PermissionDenied / Internal on I/O errors.
absl::StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace fraud
