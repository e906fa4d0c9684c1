// A small per-command flag parser for fraudctl (absl flags are process globals, which does not
// fit one binary with many subcommands that each have their own flags).
//
//   FlagSet flags("generate", "Writes a synthetic CSV.");
//   int64_t rows = 1000;
//   flags.Int64("rows", &rows, "data rows to write");
//   absl::Status s = flags.Parse(args);     // INVALID_ARGUMENT with a message on bad input
//   if (flags.help_requested()) { out << flags.Usage(); return 0; }
//
// Syntax: "--name value", "--name=value"; boolean flags take no value ("--name") or an explicit
// "--name=true|false"; "-h"/"--help" request help; "--" ends the flags; anything else not
// starting with "--" is a positional argument. Unknown flags, missing values, unparsable numbers
// and repeated flags are errors. Targets keep their values when a flag is absent (the defaults).
// Thread-safety: none; one FlagSet per command invocation.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace fraud::cli {

class FlagSet {
 public:
  // `command` names the subcommand in messages; `synopsis` is the usage text's first lines.
  FlagSet(std::string command, std::string synopsis);

  void String(const std::string& name, std::string* target, const std::string& help);
  void Int64(const std::string& name, int64_t* target, const std::string& help);
  void Uint64(const std::string& name, uint64_t* target, const std::string& help);
  void Double(const std::string& name, double* target, const std::string& help);
  void Bool(const std::string& name, bool* target, const std::string& help);

  absl::Status Parse(const std::vector<std::string>& args);

  bool help_requested() const { return help_requested_; }
  // True when the flag appeared on the command line.
  bool WasSet(const std::string& name) const { return set_.count(name) > 0; }
  const std::vector<std::string>& positional() const { return positional_; }
  // Synopsis followed by one line per flag with its default.
  std::string Usage() const;

 private:
  enum class Type { kString, kInt64, kUint64, kDouble, kBool };
  struct Flag {
    std::string name;
    Type type;
    void* target;
    std::string help;
    std::string default_text;
  };
  const Flag* Find(const std::string& name) const;
  absl::Status Assign(const Flag& flag, const std::string& value);
  void Add(const std::string& name, Type type, void* target, const std::string& help,
           std::string default_text);

  std::string command_;
  std::string synopsis_;
  std::vector<Flag> flags_;
  std::set<std::string> set_;
  std::vector<std::string> positional_;
  bool help_requested_ = false;
};

}  // namespace fraud::cli
