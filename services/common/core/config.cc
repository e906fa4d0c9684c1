#include "services/common/core/config.h"

#include <cctype>
#include <cstdlib>

#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"

namespace fraud {

std::string EnvNameForFlag(const std::string& flag) {
  std::string out = "FRAUD_";
  for (char c : flag) out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  return out;
}

std::vector<std::string> LoadFlagsFromEnv() {
  std::vector<std::string> errors;
  for (auto& [name, flag] : absl::GetAllFlags()) {
    const std::string env = EnvNameForFlag(std::string(name));
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      errors.push_back(absl::StrCat(env, "=", value, ": ", error));
    }
  }
  return errors;
}

}  // namespace fraud
