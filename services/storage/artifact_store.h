// Model artifacts in PostgreSQL (tables of migration 0002): the database side of
// PutModelArtifact and GetModelArtifact, independent of gRPC.
//
// ArtifactWriter is one PutModelArtifact stream: Begin validates the header (the rules of
// rpc::ValidateArtifactHeader), opens a transaction and inserts the artifact and file rows (still
// invisible); Append checks each chunk against the header (file order, size) and inserts it;
// Commit checks that every file arrived whole with its sha256, then commits. Anything else —
// Rollback(), an error, destruction without Commit — rolls back: an artifact is all-or-nothing.
// Errors: InvalidArgument for protocol and data errors (chunk before begin, a file index going
// back, an oversized chunk, more bytes than announced, a size or sha256 mismatch at the end),
// AlreadyExists when the version has an artifact, the pg_errors mapping for database failures.
// After any error the writer is rolled back and later calls return FailedPrecondition.
//
// Memory: one chunk (at most 1 MiB) at a time, on both paths.
// Thread-safety: an ArtifactWriter belongs to one stream; ReadArtifact is thread-safe.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/common/core/sha256.h"
#include "services/storage/pg_pool.h"

namespace fraud::storage {

class ArtifactWriter {
 public:
  // `pool` must outlive the writer; `deadline` bounds waiting for a pooled connection.
  ArtifactWriter(PgPool* pool, absl::Time deadline) : pool_(pool), deadline_(deadline) {}
  ~ArtifactWriter() { Rollback(); }
  ArtifactWriter(const ArtifactWriter&) = delete;
  ArtifactWriter& operator=(const ArtifactWriter&) = delete;

  absl::Status Begin(const fraud::storage::v1::ArtifactHeader& header);
  absl::Status Append(const fraud::storage::v1::ArtifactChunk& chunk);
  absl::StatusOr<fraud::storage::v1::PutModelArtifactResponse> Commit();
  // Discards everything written so far. Idempotent.
  void Rollback();

 private:
  absl::Status Fail(absl::Status s);
  // Runs `fn` on the open transaction, mapping database exceptions (the writer fails on any).
  absl::Status Exec(const std::function<void(pqxx::work&)>& fn);
  // Closes files up to `index` - 1 (each must be complete and match its sha256) and makes
  // `index` the file being received.
  absl::Status AdvanceTo(int index);
  absl::Status FinishCurrentFile();

  PgPool* pool_;
  absl::Time deadline_;
  // Declared before txn_ so the transaction is destroyed (rolled back) before the lease returns.
  std::optional<PgPool::Lease> lease_;
  std::unique_ptr<pqxx::work> txn_;
  bool finished_ = false;
  fraud::storage::v1::ArtifactHeader header_;
  int current_ = -1;
  int32_t chunk_no_ = 0;
  int64_t received_ = 0;
  int64_t total_bytes_ = 0;
  std::optional<Sha256> sha_;
};

// Streams version's artifact through `emit`: one header, then the chunks in file order, each read
// from the database by its own statement, so memory holds one chunk. `emit` returns false when the
// consumer went away (Cancelled is returned). NotFound when the version has no artifact or is not
// registered (the artifact of a version whose registration failed is never served);
// InvalidArgument for version <= 0.
absl::Status ReadArtifact(PgPool& pool, int64_t version,
                          const std::function<bool(fraud::storage::v1::GetModelArtifactResponse&)>& emit);

}  // namespace fraud::storage
