// fraudctl: wiring only; the commands live in fraudctl_lib (commands.h).
#include <iostream>
#include <string>
#include <vector>

#include "clients/cli/commands.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  std::vector<std::string> args(argv + 1, argv + argc);
  fraud::cli::CommandIo io{std::cout, std::cerr};
  const int code = fraud::cli::RunFraudctl(args, io);
  std::cout.flush();
  return code;
}
