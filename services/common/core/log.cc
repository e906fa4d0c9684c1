#include "services/common/core/log.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <ctime>
#include <mutex>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fraud {
namespace {
std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};
std::string& ServiceName() {
  static std::string* name = new std::string("fraud");
  return *name;
}
const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarning: return "WARN";
    case LogLevel::kError: return "ERROR";
  }
  return "?";
}
}  // namespace

void SetLogService(std::string_view service) { ServiceName() = std::string(service); }
void SetMinLogLevel(LogLevel level) { g_min_level = static_cast<int>(level); }
LogLevel MinLogLevel() { return static_cast<LogLevel>(g_min_level.load()); }

std::ostream& operator<<(std::ostream& os, const Kv& kv) {
  os << ' ' << kv.key << '=';
  if (kv.value.find_first_of(" \"=") != std::string::npos || kv.value.empty()) {
    os << '"';
    for (char c : kv.value) {
      if (c == '"' || c == '\\') os << '\\';
      os << c;
    }
    os << '"';
  } else {
    os << kv.value;
  }
  return os;
}

namespace internal {
LogMessage::LogMessage(LogLevel level, const char* file, int line) : level_(level) {
  const char* base = std::strrchr(file, '/');
  stream_ << absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()) << ' '
          << LevelName(level_) << ' ' << ServiceName() << ' ' << (base ? base + 1 : file) << ':'
          << line << ' ';
}
LogMessage::~LogMessage() {
  stream_ << '\n';
  const std::string s = stream_.str();
  // One write() per line keeps concurrent lines from interleaving.
  ssize_t ignored = ::write(STDERR_FILENO, s.data(), s.size());
  (void)ignored;
}
}  // namespace internal
}  // namespace fraud
