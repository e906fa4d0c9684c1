// fraudctl's subcommands and its dispatcher.
//
// A command is a function taking its arguments (everything after the command name) and the
// streams to write to, and returning the process exit code. It must not call exit(), read
// global flags or write to std::cout directly, so tests can run it in-process.
//
// Adding a command `foo`:
//   1. write `int RunFoo(const std::vector<std::string>& args, CommandIo& io)` in foo_command.cc
//      (parse `args` with FlagSet; print flags.Usage() to io.out on --help and return kExitOk;
//      on bad arguments print the message and the usage to io.err and return kExitUsage);
//   2. declare it below;
//   3. add a row {"foo", "one-line summary", RunFoo} to the table in commands.cc;
//   4. add foo_command.cc to fraudctl_lib in CMakeLists.txt (plus any library it needs).
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace fraud::cli {

// Exit codes.
constexpr int kExitOk = 0;
// The command ran and failed (I/O error, server error, invalid data).
constexpr int kExitFailure = 1;
// Bad command line.
constexpr int kExitUsage = 2;

// Where a command writes: stdout/stderr in the binary, string streams in tests.
struct CommandIo {
  std::ostream& out;
  std::ostream& err;
};

using CommandFn = int (*)(const std::vector<std::string>& args, CommandIo& io);

struct Command {
  std::string_view name;
  // One line shown by `fraudctl help`.
  std::string_view summary;
  CommandFn run;
};

// Every command, in the order `fraudctl help` lists them.
const std::vector<Command>& Commands();
// The command called `name`, or nullptr.
const Command* FindCommand(std::string_view name);

// Runs fraudctl with `args` = argv[1..]: dispatches to the named command; no command, "help",
// "-h" and "--help" print the overview. Unknown commands print the overview to io.err and return
// kExitUsage.
int RunFraudctl(const std::vector<std::string>& args, CommandIo& io);

// Commands.
int RunHelp(const std::vector<std::string>& args, CommandIo& io);
int RunGenerate(const std::vector<std::string>& args, CommandIo& io);

}  // namespace fraud::cli
