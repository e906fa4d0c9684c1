#include "tests/testing/fraudctl_runner.h"

#include <sstream>

#include "clients/cli/commands.h"

namespace fraud::testing {

CliResult RunCli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  cli::CommandIo io{out, err};
  CliResult r;
  r.code = cli::RunFraudctl(args, io);
  r.out = out.str();
  r.err = err.str();
  return r;
}

}  // namespace fraud::testing
