// Resolves request paths to files of the web build (--web_root, e.g. clients/web/dist) for the
// single-page app: existing files are served with their content type; a path without a file
// extension that names no file falls back to index.html (client-side routes such as /uploads/12);
// a missing file with an extension is NotFound. Hashed build assets (under /assets/) are cacheable
// forever; everything else must be revalidated.
//
// Security: only files below the root are ever opened. Paths with "..", "." or empty segments,
// backslashes or NUL bytes are refused (InvalidArgument), and the resolved real path (symlinks
// followed) must stay below the root's real path (PermissionDenied otherwise).
// Thread-safety: immutable after construction.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace fraud::gateway {

struct StaticFile {
  // Absolute real path of the file to send.
  std::string path;
  std::string content_type;
  std::string cache_control;
  int64_t size = 0;
  // True when this is index.html served for a client-side route.
  bool spa_fallback = false;
};

// Content type by file extension ("application/octet-stream" when unknown).
std::string ContentTypeForPath(const std::string& path);

class StaticFiles {
 public:
  // `root` may be empty (static serving disabled) or missing (every lookup is NotFound).
  explicit StaticFiles(const std::string& root);

  bool enabled() const { return !root_.empty(); }
  const std::string& root() const { return root_; }

  // `url_path` is the decoded request path ("/", "/assets/index-abc.js", "/uploads/3").
  absl::StatusOr<StaticFile> Resolve(const std::string& url_path) const;

 private:
  absl::StatusOr<StaticFile> Stat(const std::string& relative, bool spa_fallback) const;

  // Real path of the root, without a trailing slash ("" when disabled).
  std::string root_;
};

}  // namespace fraud::gateway
