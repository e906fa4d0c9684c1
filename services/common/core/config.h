// Configuration: absl flags with environment-variable defaults.
//
// Call LoadFlagsFromEnv() in main() before absl::ParseCommandLine(): every registered flag whose
// environment variable FRAUD_<FLAG_NAME_UPPERCASE> is set takes that value as its default, and the
// command line still wins. Only main() reads flags (TotW #103).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace fraud {

// Returns one error per environment variable that could not be parsed for its flag (the flag keeps
// its compiled-in default in that case).
std::vector<std::string> LoadFlagsFromEnv();

// The environment variable for a flag name: "metrics_port" -> "FRAUD_METRICS_PORT".
std::string EnvNameForFlag(const std::string& flag);

}  // namespace fraud
