#include "services/gateway/route_spec.h"

namespace fraud::gateway {

std::vector<std::string> PathParams(const std::string& pattern) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = pattern.find('{', pos)) != std::string::npos) {
    const size_t end = pattern.find('}', pos);
    if (end == std::string::npos) break;
    out.push_back(pattern.substr(pos + 1, end - pos - 1));
    pos = end + 1;
  }
  return out;
}

std::string PathRegex(const std::string& pattern) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '{') {
      const size_t end = pattern.find('}', i);
      out += "([0-9]+)";
      i = end;
    } else if (std::string("\\^$.|?*+()[]").find(c) != std::string::npos) {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace fraud::gateway
