// fraudctl commands of the training side (see commands.h for the command contract):
//   replay DATA.csv   the time-ordered experiment through the running system (replay.h)
//   train             start a training run (optionally --watch its progress)
//   runs [ID]         list runs, or show one with its candidates
//   promote VERSION   make a registered version champion (promotion or rollback) and reload
// Admin commands (replay, train, promote) send the bearer token from --token or
// FRAUD_ADMIN_TOKEN. The training target defaults to FRAUD_TRAINING_TARGET or 127.0.0.1:50054.
#pragma once

#include <string>
#include <vector>

#include "clients/cli/commands.h"

namespace fraud::cli {

int RunReplayCommand(const std::vector<std::string>& args, CommandIo& io);
int RunTrain(const std::vector<std::string>& args, CommandIo& io);
int RunRuns(const std::vector<std::string>& args, CommandIo& io);
int RunPromote(const std::vector<std::string>& args, CommandIo& io);
// fraudctl operating-point show|what-if|set: alert budgets and the what-if (issue 17 item 4).
int RunOperatingPoint(const std::vector<std::string>& args, CommandIo& io);

}  // namespace fraud::cli
