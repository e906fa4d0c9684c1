#include "services/common/rpc/artifact_transfer.h"

#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/common/core/file_util.h"
#include "services/common/core/sha256.h"
#include "services/common/core/status_macros.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"

namespace fraud::rpc {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::fraud::storage::v1;

constexpr char kFetchPrefix[] = ".tmp-fetch-";

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

absl::Status ValidateFileName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("empty file name");
  if (name.size() > static_cast<size_t>(kMaxArtifactFileNameLength)) {
    return absl::InvalidArgumentError(absl::StrCat("file name longer than ",
                                                   kMaxArtifactFileNameLength, " characters"));
  }
  if (name[0] == '.') {
    return absl::InvalidArgumentError(absl::StrCat("file name \"", name, "\" starts with '.'"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "file name \"", absl::CEscape(name), "\" holds a character outside [A-Za-z0-9._-]"));
    }
  }
  return absl::OkStatus();
}

// Reads `path` in chunks of at most kArtifactChunkBytes.
class ChunkReader {
 public:
  explicit ChunkReader(const std::string& path) : in_(path, std::ios::binary), path_(path) {}
  absl::Status status() const {
    return in_.is_open() ? absl::OkStatus()
                         : ErrnoStatus(errno == 0 ? ENOENT : errno, absl::StrCat("opening ", path_));
  }
  // Fills *chunk with the next bytes; false at the end of the file.
  absl::StatusOr<bool> Next(std::string* chunk) {
    chunk->resize(static_cast<size_t>(kArtifactChunkBytes));
    in_.read(chunk->data(), kArtifactChunkBytes);
    if (in_.bad()) return absl::InternalError(absl::StrCat("reading ", path_));
    chunk->resize(static_cast<size_t>(in_.gcount()));
    return !chunk->empty();
  }

 private:
  std::ifstream in_;
  std::string path_;
};

// Writes a GetModelArtifact stream into `dir` (which exists and is empty), checking it against
// its header as it goes: Accept() each message, then Complete() once the call ended with OK.
class ArtifactReceiver {
 public:
  ArtifactReceiver(int64_t version, std::string dir) : version_(version), dir_(std::move(dir)) {}

  absl::Status Accept(const v1::GetModelArtifactResponse& msg) {
    if (!header_.has_value()) {
      if (!msg.has_header()) return DataLoss("the stream did not start with a header");
      if (msg.header().version() != version_) {
        return DataLoss(absl::StrCat("the header is for version ", msg.header().version()));
      }
      if (absl::Status s = ValidateArtifactHeader(msg.header()); !s.ok()) {
        return DataLoss(absl::StrCat("invalid header: ", s.message()));
      }
      header_ = msg.header();
      return absl::OkStatus();
    }
    if (!msg.has_chunk()) return DataLoss("a second header in the stream");
    const v1::ArtifactChunk& chunk = msg.chunk();
    if (chunk.file_index() < current_ || chunk.file_index() >= header_->files_size()) {
      return DataLoss(absl::StrCat("chunk for file index ", chunk.file_index(),
                                   " out of order or out of range"));
    }
    if (chunk.data().empty() || static_cast<int64_t>(chunk.data().size()) > kArtifactChunkBytes) {
      return DataLoss(absl::StrCat("chunk of ", chunk.data().size(), " bytes"));
    }
    FRAUD_RETURN_IF_ERROR(AdvanceTo(chunk.file_index()));
    const common::v1::ArtifactFile& expected = header_->files(current_);
    received_ += static_cast<int64_t>(chunk.data().size());
    if (received_ > expected.size_bytes()) {
      return DataLoss(absl::StrCat(expected.name(), ": more than the ", expected.size_bytes(),
                                   " bytes announced"));
    }
    sha_->Update(chunk.data());
    return file_->Append(chunk.data());
  }

  // Checks that every file arrived whole (files without bytes are created empty).
  absl::Status Complete() {
    if (!header_.has_value()) return DataLoss("the stream ended without a header");
    FRAUD_RETURN_IF_ERROR(AdvanceTo(header_->files_size() - 1));
    return FinishCurrent();
  }

 private:
  absl::Status DataLoss(absl::string_view what) const {
    return absl::DataLossError(
        absl::StrCat("fetching model version ", version_, " from the registry: ", what));
  }

  absl::Status FinishCurrent() {
    if (current_ < 0) return absl::OkStatus();
    const common::v1::ArtifactFile& expected = header_->files(current_);
    if (received_ != expected.size_bytes()) {
      return DataLoss(absl::StrCat(expected.name(), ": received ", received_,
                                   " bytes, expected ", expected.size_bytes()));
    }
    if (const std::string sha = sha_->HexDigest(); sha != expected.sha256()) {
      return DataLoss(absl::StrCat(expected.name(), ": sha256 ", sha,
                                   " does not match the registry's ", expected.sha256()));
    }
    return file_->Finish();
  }

  // Files are opened in order, including empty ones that get no chunk.
  absl::Status AdvanceTo(int index) {
    while (current_ < index) {
      FRAUD_RETURN_IF_ERROR(FinishCurrent());
      ++current_;
      file_.reset();
      FRAUD_ASSIGN_OR_RETURN(
          DurableFile f,
          DurableFile::Create((fs::path(dir_) / header_->files(current_).name()).string()));
      file_.emplace(std::move(f));
      sha_.emplace();
      received_ = 0;
    }
    return absl::OkStatus();
  }

  const int64_t version_;
  const std::string dir_;
  std::optional<v1::ArtifactHeader> header_;
  int current_ = -1;
  std::optional<DurableFile> file_;
  std::optional<Sha256> sha_;
  int64_t received_ = 0;
};

}  // namespace

std::string RegistryArtifactUri(int64_t version) {
  return absl::StrCat("registry://model_artifacts/", version);
}

absl::Status ValidateArtifactHeader(const v1::ArtifactHeader& header) {
  if (header.version() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact version must be positive, got ", header.version()));
  }
  if (header.files().empty()) return absl::InvalidArgumentError("artifact lists no files");
  if (header.files_size() > kMaxArtifactFiles) {
    return absl::InvalidArgumentError(absl::StrCat("artifact lists ", header.files_size(),
                                                   " files; at most ", kMaxArtifactFiles));
  }
  std::set<std::string> names;
  int64_t total = 0;
  for (int i = 0; i < header.files_size(); ++i) {
    const common::v1::ArtifactFile& f = header.files(i);
    const std::string where = absl::StrCat("artifact file ", i, ": ");
    if (absl::Status s = ValidateFileName(f.name()); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, s.message()));
    }
    if (!names.insert(f.name()).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, "\"", f.name(), "\" is listed twice"));
    }
    if (f.size_bytes() < 0 || f.size_bytes() > kMaxArtifactBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, f.name(), ": size ", f.size_bytes(), " out of range"));
    }
    total += f.size_bytes();
    if (total > kMaxArtifactBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("artifact larger than ", kMaxArtifactBytes, " bytes in total"));
    }
    if (f.sha256().size() != 64 || !IsLowerHex(f.sha256())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, f.name(), ": sha256 must be 64 lowercase hex digits"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ArtifactHeader> DescribeArtifactFiles(int64_t version, const std::string& dir,
                                                         const std::vector<std::string>& names) {
  v1::ArtifactHeader header;
  header.set_version(version);
  for (const std::string& name : names) {
    FRAUD_RETURN_IF_ERROR(ValidateFileName(name));
    const std::string path = (fs::path(dir) / name).string();
    std::error_code ec;
    const uintmax_t size = fs::file_size(path, ec);
    if (ec) return ErrnoStatus(ec.value(), absl::StrCat("reading the size of ", path));
    FRAUD_ASSIGN_OR_RETURN(std::string sha, Sha256File(path));
    common::v1::ArtifactFile* f = header.add_files();
    f->set_name(name);
    f->set_size_bytes(static_cast<int64_t>(size));
    f->set_sha256(std::move(sha));
  }
  FRAUD_RETURN_IF_ERROR(ValidateArtifactHeader(header));
  return header;
}

absl::StatusOr<v1::PutModelArtifactResponse> PutModelArtifact(
    v1::StorageService::StubInterface& stub, int64_t version, const std::string& dir,
    const std::vector<std::string>& names, absl::Duration timeout) {
  FRAUD_ASSIGN_OR_RETURN(v1::ArtifactHeader header, DescribeArtifactFiles(version, dir, names));
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout);
  v1::PutModelArtifactResponse response;
  std::unique_ptr<grpc::ClientWriterInterface<v1::PutModelArtifactRequest>> writer =
      stub.PutModelArtifact(&ctx, &response);
  // A failed Write means the server ended the stream: Finish() below returns its reason.
  auto send = [&]() -> absl::Status {
    v1::PutModelArtifactRequest request;
    *request.mutable_begin() = header;
    if (!writer->Write(request)) return absl::OkStatus();
    std::string chunk;
    for (int i = 0; i < header.files_size(); ++i) {
      ChunkReader reader((fs::path(dir) / header.files(i).name()).string());
      FRAUD_RETURN_IF_ERROR(reader.status());
      int64_t sent = 0;
      while (true) {
        FRAUD_ASSIGN_OR_RETURN(bool more, reader.Next(&chunk));
        if (!more) break;
        sent += static_cast<int64_t>(chunk.size());
        v1::PutModelArtifactRequest piece;
        piece.mutable_chunk()->set_file_index(i);
        piece.mutable_chunk()->set_data(chunk);
        if (!writer->Write(piece)) return absl::OkStatus();
      }
      if (sent != header.files(i).size_bytes()) {
        return absl::AbortedError(absl::StrCat(header.files(i).name(), " changed while sending"));
      }
    }
    v1::PutModelArtifactRequest commit;
    commit.mutable_commit();
    writer->Write(commit);
    return absl::OkStatus();
  };
  absl::Status local = send();
  if (!local.ok()) ctx.TryCancel();
  writer->WritesDone();
  const absl::Status remote = FromGrpcStatus(writer->Finish());
  if (!local.ok()) return local;
  if (!remote.ok()) {
    return absl::Status(remote.code(), absl::StrCat("storing the artifact of model version ",
                                                    version, " in the registry: ",
                                                    remote.message()));
  }
  return response;
}

absl::StatusOr<std::string> FetchModelArtifact(v1::StorageService::StubInterface& stub,
                                               int64_t version, const std::string& root,
                                               absl::Duration timeout) {
  if (version <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("model version must be positive, got ", version));
  }
  const std::string final_dir = ArtifactDir(root, version);
  std::error_code ec;
  if (fs::is_directory(final_dir, ec)) return final_dir;
  fs::create_directories(root, ec);
  if (ec) return ErrnoStatus(ec.value(), absl::StrCat("creating model directory ", root));
  const std::string tmp_dir =
      (fs::path(root) / absl::StrCat(kFetchPrefix, version, "-", RandomHexSuffix())).string();
  if (::mkdir(tmp_dir.c_str(), 0755) != 0) {
    return ErrnoStatus(errno, absl::StrCat("creating ", tmp_dir));
  }
  auto fetch = [&]() -> absl::Status {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, timeout);
    v1::GetModelArtifactRequest request;
    request.set_version(version);
    std::unique_ptr<grpc::ClientReaderInterface<v1::GetModelArtifactResponse>> reader =
        stub.GetModelArtifact(&ctx, request);
    ArtifactReceiver receiver(version, tmp_dir);
    v1::GetModelArtifactResponse msg;
    while (reader->Read(&msg)) {
      if (absl::Status s = receiver.Accept(msg); !s.ok()) {
        ctx.TryCancel();
        reader->Finish();
        return s;
      }
    }
    const absl::Status remote = FromGrpcStatus(reader->Finish());
    if (!remote.ok()) {
      return absl::Status(remote.code(), absl::StrCat("fetching model version ", version,
                                                      " from the registry: ", remote.message()));
    }
    FRAUD_RETURN_IF_ERROR(receiver.Complete());
    FRAUD_RETURN_IF_ERROR(FsyncDir(tmp_dir));
    absl::Status renamed = RenameNoReplace(tmp_dir, final_dir);
    // Another fetch of the same version finished first: its directory is as good as ours.
    if (absl::IsAlreadyExists(renamed)) return renamed;
    FRAUD_RETURN_IF_ERROR(renamed);
    return FsyncDir(root);
  };
  absl::Status s = fetch();
  if (!s.ok()) {
    fs::remove_all(tmp_dir, ec);
    if (absl::IsAlreadyExists(s) && fs::is_directory(final_dir, ec)) return final_dir;
    return s;
  }
  return final_dir;
}

absl::Status RemoveInterruptedFetches(const std::string& root) {
  std::error_code ec;
  if (!fs::exists(root, ec)) return absl::OkStatus();
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (absl::StartsWith(entry.path().filename().string(), kFetchPrefix)) {
      fs::remove_all(entry.path(), ec);
      if (ec) return ErrnoStatus(ec.value(), absl::StrCat("removing ", entry.path().string()));
    }
  }
  if (ec) return ErrnoStatus(ec.value(), absl::StrCat("listing ", root));
  return absl::OkStatus();
}

}  // namespace fraud::rpc
