#include "services/gateway/static_files.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fraud::gateway {
namespace {

constexpr char kImmutable[] = "public, max-age=31536000, immutable";
constexpr char kRevalidate[] = "no-cache";

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) return "";
  return buf;
}

}  // namespace

std::string ContentTypeForPath(const std::string& path) {
  const size_t dot = path.rfind('.');
  const size_t slash = path.rfind('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) {
    return "application/octet-stream";
  }
  const std::string ext = absl::AsciiStrToLower(path.substr(dot + 1));
  static const std::vector<std::pair<std::string, std::string>>* kTypes =
      new std::vector<std::pair<std::string, std::string>>{
          {"html", "text/html; charset=utf-8"},
          {"htm", "text/html; charset=utf-8"},
          {"js", "text/javascript; charset=utf-8"},
          {"mjs", "text/javascript; charset=utf-8"},
          {"css", "text/css; charset=utf-8"},
          {"json", "application/json"},
          {"map", "application/json"},
          {"webmanifest", "application/manifest+json"},
          {"svg", "image/svg+xml"},
          {"png", "image/png"},
          {"jpg", "image/jpeg"},
          {"jpeg", "image/jpeg"},
          {"gif", "image/gif"},
          {"webp", "image/webp"},
          {"ico", "image/x-icon"},
          {"woff", "font/woff"},
          {"woff2", "font/woff2"},
          {"ttf", "font/ttf"},
          {"txt", "text/plain; charset=utf-8"},
          {"csv", "text/csv; charset=utf-8"},
          {"wasm", "application/wasm"},
      };
  for (const auto& [e, type] : *kTypes) {
    if (e == ext) return type;
  }
  return "application/octet-stream";
}

StaticFiles::StaticFiles(const std::string& root) {
  if (root.empty()) return;
  root_ = RealPath(root);
  // A root that does not exist (yet) keeps serving enabled; every lookup is then NotFound.
  if (root_.empty()) root_ = root;
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
}

absl::StatusOr<StaticFile> StaticFiles::Stat(const std::string& relative, bool spa_fallback) const {
  const std::string candidate = absl::StrCat(root_, "/", relative);
  struct stat st {};
  if (::stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat("no file /", relative));
  }
  const std::string real = RealPath(candidate);
  if (real.empty() || !absl::StartsWith(real, absl::StrCat(root_, "/"))) {
    return absl::PermissionDeniedError("the path leaves the web root");
  }
  StaticFile f;
  f.path = real;
  f.size = st.st_size;
  f.content_type = ContentTypeForPath(real);
  f.spa_fallback = spa_fallback;
  f.cache_control =
      absl::StartsWith(relative, "assets/") && !spa_fallback ? kImmutable : kRevalidate;
  return f;
}

absl::StatusOr<StaticFile> StaticFiles::Resolve(const std::string& url_path) const {
  if (!enabled()) return absl::NotFoundError("static files are not served (no --web_root)");
  if (url_path.empty() || url_path[0] != '/') {
    return absl::InvalidArgumentError("the path must start with '/'");
  }
  if (url_path.find('\0') != std::string::npos || url_path.find('\\') != std::string::npos) {
    return absl::InvalidArgumentError("the path contains a forbidden character");
  }
  std::string relative = url_path.substr(1);
  if (relative.empty()) relative = "index.html";
  const bool directory = relative.back() == '/';
  std::vector<std::string> segments = absl::StrSplit(relative, '/');
  if (directory) segments.pop_back();
  for (const std::string& s : segments) {
    if (s.empty() || s == "." || s == "..") {
      return absl::InvalidArgumentError("the path contains an empty, '.' or '..' segment");
    }
  }
  if (directory) relative += "index.html";
  absl::StatusOr<StaticFile> file = Stat(relative, false);
  if (file.ok() || file.status().code() == absl::StatusCode::kPermissionDenied) return file;
  // Client-side routes have no extension in their last segment; missing assets stay 404.
  const std::string& last = segments.empty() ? relative : segments.back();
  if (last.find('.') == std::string::npos) return Stat("index.html", true);
  return file;
}

}  // namespace fraud::gateway
