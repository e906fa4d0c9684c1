// Durable file-system steps shared by everything that publishes a directory atomically (model
// artifacts written by training, artifacts fetched from the registry): errno as absl::Status, a
// file written and fsynced in pieces, fsync of a directory, rename that never replaces.
//
// Thread-safety: the functions are thread-safe; a DurableFile belongs to one thread.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fraud {

// `what: strerror(err)` with a code that follows errno: ENOENT NotFound, EACCES/EPERM
// PermissionDenied, EEXIST/ENOTEMPTY AlreadyExists, ENOSPC/EDQUOT ResourceExhausted, else Internal.
absl::Status ErrnoStatus(int err, absl::string_view what);

// A new file (O_EXCL: never an existing one) written in pieces; Finish() fsyncs and closes it.
// Destroying an unfinished file closes it without fsync (the caller removes it).
class DurableFile {
 public:
  static absl::StatusOr<DurableFile> Create(const std::string& path);
  DurableFile(DurableFile&& other) noexcept;
  DurableFile& operator=(DurableFile&&) = delete;
  DurableFile(const DurableFile&) = delete;
  ~DurableFile();

  absl::Status Append(absl::string_view bytes);
  absl::Status Finish();

 private:
  DurableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
};

// Create + Append + Finish.
absl::Status WriteFileDurably(const std::string& path, absl::string_view bytes);
absl::Status FsyncDir(const std::string& dir);
// 16 random hex digits, for temporary names.
std::string RandomHexSuffix();
// rename(2) with RENAME_NOREPLACE: AlreadyExists when `to` exists (even an empty directory).
absl::Status RenameNoReplace(const std::string& from, const std::string& to);

// A model version's directory in a model directory (every model cache: training's, inference's,
// fraudctl --download's): "<root>/<version>", or "<version>" when root is empty.
std::string ArtifactDir(const std::string& root, int64_t version);

}  // namespace fraud
