// Runs fraudctl in-process (cli::RunFraudctl with string streams) and captures what it printed.
//
//   CliResult r = RunCli({"upload", path, "--target", ingest_target});
//   EXPECT_EQ(r.code, cli::kExitOk) << r.err;
//
// Thread-safety: as RunFraudctl (each call has its own streams).
#pragma once

#include <string>
#include <vector>

namespace fraud::testing {

struct CliResult {
  int code = -1;    // RunFraudctl's exit code
  std::string out;  // everything written to stdout
  std::string err;  // everything written to stderr
};

// `args` are the words after "fraudctl".
CliResult RunCli(const std::vector<std::string>& args);

}  // namespace fraud::testing
