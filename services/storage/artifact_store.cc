#include "services/storage/artifact_store.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/common/core/status_macros.h"
#include "services/common/rpc/artifact_transfer.h"
#include "services/storage/pg_errors.h"
#include "services/storage/pg_util.h"
#include "services/storage/storage_metrics.h"

namespace fraud::storage {
namespace {

namespace v1 = ::fraud::storage::v1;

// ON CONFLICT waits for a concurrent writer of the same version and then finds its row.
constexpr char kInsertArtifact[] =
    "INSERT INTO model_artifacts (version, files, total_bytes) VALUES ($1, $2, $3)"
    " ON CONFLICT (version) DO NOTHING RETURNING version";
constexpr char kInsertFile[] =
    "INSERT INTO model_artifact_files (version, file_index, name, size_bytes, sha256)"
    " VALUES ($1, $2, $3, $4, $5)";
constexpr char kInsertChunk[] =
    "INSERT INTO model_artifact_chunks (version, file_index, chunk_no, data) VALUES ($1, $2, $3, $4)";
// Only registered versions: the artifact of a version whose registration failed stays invisible.
constexpr char kSelectFiles[] =
    "SELECT f.name, f.size_bytes, f.sha256 FROM model_artifact_files f"
    " JOIN model_versions v ON v.version = f.version WHERE f.version = $1 ORDER BY f.file_index";
constexpr char kSelectChunkKeys[] =
    "SELECT file_index, chunk_no FROM model_artifact_chunks WHERE version = $1"
    " ORDER BY file_index, chunk_no";
constexpr char kSelectChunk[] =
    "SELECT data FROM model_artifact_chunks WHERE version = $1 AND file_index = $2 AND chunk_no = $3";

}  // namespace

absl::Status ArtifactWriter::Fail(absl::Status s) {
  Rollback();
  return s;
}

void ArtifactWriter::Rollback() {
  finished_ = true;
  AbortStreamTransaction(txn_, lease_);
}

absl::Status ArtifactWriter::Exec(const std::function<void(pqxx::work&)>& fn) {
  absl::Status status;
  try {
    fn(*txn_);
    return absl::OkStatus();
  } catch (const std::exception& e) {
    status = StatusFromException(e);
  }
  Metrics().DbError(status);
  if (IsConnectionLoss(status)) lease_->Discard();
  return Fail(status);
}

absl::Status ArtifactWriter::Begin(const v1::ArtifactHeader& header) {
  if (finished_) return absl::FailedPreconditionError("artifact stream already ended");
  if (txn_ != nullptr) return Fail(absl::InvalidArgumentError("second begin in one stream"));
  if (absl::Status s = rpc::ValidateArtifactHeader(header); !s.ok()) return Fail(s);
  header_ = header;
  for (const auto& f : header_.files()) total_bytes_ += f.size_bytes();
  absl::StatusOr<PgPool::Lease> lease = pool_->Acquire(deadline_);
  if (!lease.ok()) return Fail(lease.status());
  lease_.emplace(*std::move(lease));
  try {
    txn_ = std::make_unique<pqxx::work>(lease_->conn());
  } catch (const std::exception& e) {
    absl::Status s = StatusFromException(e);
    Metrics().DbError(s);
    if (IsConnectionLoss(s)) lease_->Discard();
    return Fail(s);
  }
  bool exists = false;
  FRAUD_RETURN_IF_ERROR(Exec([&](pqxx::work& txn) {
    exists = txn.exec_params(kInsertArtifact, header_.version(), header_.files_size(),
                             total_bytes_)
                 .empty();
    if (exists) return;
    for (int i = 0; i < header_.files_size(); ++i) {
      const auto& f = header_.files(i);
      txn.exec_params(kInsertFile, header_.version(), i, f.name(), f.size_bytes(), f.sha256());
    }
  }));
  if (exists) {
    return Fail(absl::AlreadyExistsError(absl::StrCat(
        "model version ", header_.version(), " already has an artifact in the registry")));
  }
  return absl::OkStatus();
}

absl::Status ArtifactWriter::FinishCurrentFile() {
  if (current_ < 0) return absl::OkStatus();
  const auto& f = header_.files(current_);
  if (received_ != f.size_bytes()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        f.name(), ": received ", received_, " bytes, the header announced ", f.size_bytes(),
        "; nothing stored")));
  }
  if (const std::string sha = sha_->HexDigest(); sha != f.sha256()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(f.name(), ": the bytes have sha256 ", sha,
                                                        ", the header says ", f.sha256(),
                                                        "; nothing stored")));
  }
  return absl::OkStatus();
}

absl::Status ArtifactWriter::AdvanceTo(int index) {
  while (current_ < index) {
    FRAUD_RETURN_IF_ERROR(FinishCurrentFile());
    ++current_;
    chunk_no_ = 0;
    received_ = 0;
    sha_.emplace();
  }
  return absl::OkStatus();
}

absl::Status ArtifactWriter::Append(const v1::ArtifactChunk& chunk) {
  if (finished_) return absl::FailedPreconditionError("artifact stream already ended");
  if (txn_ == nullptr) return Fail(absl::InvalidArgumentError("chunk before begin"));
  if (chunk.file_index() < current_ || chunk.file_index() >= header_.files_size()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("chunk for file index ", chunk.file_index(), ": files must arrive in the ",
                     "header's order, indices 0..", header_.files_size() - 1)));
  }
  if (chunk.data().empty() ||
      static_cast<int64_t>(chunk.data().size()) > rpc::kArtifactChunkBytes) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk of ", chunk.data().size(), " bytes; chunks hold 1 to ", rpc::kArtifactChunkBytes)));
  }
  FRAUD_RETURN_IF_ERROR(AdvanceTo(chunk.file_index()));
  const auto& f = header_.files(current_);
  received_ += static_cast<int64_t>(chunk.data().size());
  if (received_ > f.size_bytes()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        f.name(), ": more than the ", f.size_bytes(), " bytes the header announced")));
  }
  sha_->Update(chunk.data());
  const int32_t chunk_no = chunk_no_++;
  return Exec([&](pqxx::work& txn) {
    txn.exec_params(kInsertChunk, header_.version(), current_, chunk_no,
                    pqxx::binarystring(chunk.data().data(), chunk.data().size()));
  });
}

absl::StatusOr<v1::PutModelArtifactResponse> ArtifactWriter::Commit() {
  if (finished_) return absl::FailedPreconditionError("artifact stream already ended");
  if (txn_ == nullptr) return Fail(absl::InvalidArgumentError("commit before begin"));
  FRAUD_RETURN_IF_ERROR(AdvanceTo(header_.files_size() - 1));
  FRAUD_RETURN_IF_ERROR(FinishCurrentFile());
  FRAUD_RETURN_IF_ERROR(Exec([](pqxx::work& txn) { txn.commit(); }));
  finished_ = true;
  txn_.reset();
  lease_.reset();
  v1::PutModelArtifactResponse response;
  response.set_version(header_.version());
  response.set_files(header_.files_size());
  response.set_total_bytes(total_bytes_);
  return response;
}

absl::Status ReadArtifact(PgPool& pool, int64_t version,
                          const std::function<bool(v1::GetModelArtifactResponse&)>& emit) {
  if (version <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("version must be positive, got ", version));
  }
  bool emitted = false;
  return Transact(pool, [&](pqxx::work& txn) -> absl::Status {
    // Transact retries once on a fresh connection; the consumer cannot take the header twice.
    if (emitted) return absl::UnavailableError("database connection lost while streaming");
    v1::GetModelArtifactResponse msg;
    v1::ArtifactHeader* header = msg.mutable_header();
    header->set_version(version);
    for (const pqxx::row& row : txn.exec_params(kSelectFiles, version)) {
      common::v1::ArtifactFile* f = header->add_files();
      f->set_name(row[0].as<std::string>());
      f->set_size_bytes(row[1].as<int64_t>());
      f->set_sha256(row[2].as<std::string>());
    }
    if (header->files().empty()) {
      return absl::NotFoundError(absl::StrCat(
          "model version ", version, " is not registered or has no artifact in the registry"));
    }
    std::vector<std::pair<int32_t, int32_t>> keys;
    for (const pqxx::row& row : txn.exec_params(kSelectChunkKeys, version)) {
      keys.emplace_back(row[0].as<int32_t>(), row[1].as<int32_t>());
    }
    emitted = true;
    if (!emit(msg)) return absl::CancelledError("artifact stream cancelled by the client");
    for (const auto& [file_index, chunk_no] : keys) {
      pqxx::row row = txn.exec_params1(kSelectChunk, version, file_index, chunk_no);
      msg.Clear();
      v1::ArtifactChunk* chunk = msg.mutable_chunk();
      chunk->set_file_index(file_index);
      const pqxx::binarystring data(row[0]);
      chunk->set_data(data.get(), data.size());
      if (!emit(msg)) return absl::CancelledError("artifact stream cancelled by the client");
    }
    return absl::OkStatus();
  });
}

}  // namespace fraud::storage
