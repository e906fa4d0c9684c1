#include "clients/cli/commands.h"
#include "clients/cli/rpc_commands.h"
#include "clients/cli/training_commands.h"

#include <string>

namespace fraud::cli {
namespace {

void PrintOverview(std::ostream& os) {
  os << "fraudctl: command-line client of the fraud detection system.\n\n"
        "Usage: fraudctl COMMAND [flags]\n\nCommands:\n";
  for (const Command& c : Commands()) {
    std::string name(c.name);
    if (name.size() < 12) name.resize(12, ' ');
    os << "  " << name << " " << c.summary << "\n";
  }
  os << "\nRun 'fraudctl COMMAND --help' for the flags of a command.\n";
}

}  // namespace

const std::vector<Command>& Commands() {
  static const std::vector<Command> kCommands = {
      {"help", "show this overview, or the help of a command: fraudctl help COMMAND", RunHelp},
      {"generate", "write a deterministic synthetic transactions CSV", RunGenerate},
      {"upload", "upload a CSV: validate, store, score; print the summary", RunUpload},
      {"validate", "check a CSV with the ingest validator; nothing is stored", RunValidate},
      {"score", "score rows (--rows-json or --csv) with the serving model", RunScore},
      {"models", "list registered model versions and the champion", RunModels},
      {"health", "grpc.health.v1 check of one service or --all", RunHealth},
      {"rpc", "rpc list: the services a server exposes (reflection)", RunRpc},
      {"feedback", "send delayed labels (CSV) for stored transactions", RunFeedback},
      {"review", "the review queue: list alerts, mark one fraud / not-fraud / unsure", RunReview},
      {"train", "start a training run (--watch follows its progress)", RunTrain},
      {"runs", "list training runs, or show one: fraudctl runs [ID]", RunRuns},
      {"promote", "make a registered version champion (or roll back) and reload", RunPromote},
      {"operating-point", "a version's threshold: show, what-if (alerts/day, precision, recall), set",
       RunOperatingPoint},
      {"replay", "the time-ordered experiment: uploads, retraining, AUPRC on P4", RunReplayCommand},
  };
  return kCommands;
}

const Command* FindCommand(std::string_view name) {
  for (const Command& c : Commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

int RunHelp(const std::vector<std::string>& args, CommandIo& io) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    PrintOverview(io.out);
    return kExitOk;
  }
  const Command* c = FindCommand(args[0]);
  if (c == nullptr || c->run == RunHelp) {
    if (c == nullptr) io.err << "fraudctl: unknown command '" << args[0] << "'\n\n";
    PrintOverview(c == nullptr ? io.err : io.out);
    return c == nullptr ? kExitUsage : kExitOk;
  }
  return c->run({"--help"}, io);
}

int RunFraudctl(const std::vector<std::string>& args, CommandIo& io) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    PrintOverview(args.empty() ? io.err : io.out);
    return args.empty() ? kExitUsage : kExitOk;
  }
  const Command* c = FindCommand(args[0]);
  if (c == nullptr) {
    io.err << "fraudctl: unknown command '" << args[0] << "'\n\n";
    PrintOverview(io.err);
    return kExitUsage;
  }
  return c->run(std::vector<std::string>(args.begin() + 1, args.end()), io);
}

}  // namespace fraud::cli
