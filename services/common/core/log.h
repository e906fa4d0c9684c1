// Structured, prefixed logging (LibTorch's glog owns LOG/CHECK; Abseil 20220623 has no absl/log).
//
//   FRAUD_LOG(INFO) << "upload committed" << fraud::Kv("upload_id", id) << fraud::Kv("rows", n);
//
// One event per stderr line: `ts level service file:line msg key=value ...`. Thread-safe: each line
// is formatted in a buffer and written with one call. Never log transaction feature values at INFO.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace fraud {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Process-wide settings; call once from main before threads start.
void SetLogService(std::string_view service);
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

// A key=value pair appended to a log line; values with spaces are quoted.
struct Kv {
  template <typename T>
  Kv(std::string_view k, const T& v) : key(k) {
    std::ostringstream os;
    os << v;
    value = os.str();
  }
  std::string key;
  std::string value;
};
std::ostream& operator<<(std::ostream& os, const Kv& kv);

namespace internal {
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};
}  // namespace internal
}  // namespace fraud

#define FRAUD_LOG_LEVEL_DEBUG ::fraud::LogLevel::kDebug
#define FRAUD_LOG_LEVEL_INFO ::fraud::LogLevel::kInfo
#define FRAUD_LOG_LEVEL_WARNING ::fraud::LogLevel::kWarning
#define FRAUD_LOG_LEVEL_ERROR ::fraud::LogLevel::kError

#define FRAUD_LOG(severity)                                          \
  if (FRAUD_LOG_LEVEL_##severity < ::fraud::MinLogLevel()) {         \
  } else                                                             \
    ::fraud::internal::LogMessage(FRAUD_LOG_LEVEL_##severity, __FILE__, __LINE__).stream()
