// fraudctl commands that talk to the running services over gRPC (upload side): upload, validate,
// score, models, health, rpc, feedback, review. Each follows commands.h (arguments in, exit code out,
// output only through CommandIo). Targets default to the local ports and can be set per command with
// --target or through the environment: FRAUD_INGEST_TARGET (127.0.0.1:50051),
// FRAUD_STORAGE_TARGET (:50052), FRAUD_INFERENCE_TARGET (:50053), FRAUD_TRAINING_TARGET (:50054).
// --tls-ca (or FRAUD_TLS_CA) switches the channel to TLS.
#pragma once

#include <string>
#include <vector>

#include "clients/cli/commands.h"

namespace fraud::cli {

// fraudctl upload FILE [--lenient] [--json] [--target host:port]
int RunUpload(const std::vector<std::string>& args, CommandIo& io);
// fraudctl validate FILE [--lenient] [--json] [--target host:port]
int RunValidate(const std::vector<std::string>& args, CommandIo& io);
// fraudctl score --rows-json '[[30 numbers], ...]' | --csv FILE [--json] [--target host:port]
int RunScore(const std::vector<std::string>& args, CommandIo& io);
// fraudctl models [--json] [--target host:port]
int RunModels(const std::vector<std::string>& args, CommandIo& io);
// fraudctl health [--all] [--target host:port]
int RunHealth(const std::vector<std::string>& args, CommandIo& io);
// fraudctl rpc list --target host:port
int RunRpc(const std::vector<std::string>& args, CommandIo& io);
// fraudctl feedback FILE.csv [--actor NAME] [--json] [--service-token T] [--target host:port]
int RunFeedback(const std::vector<std::string>& args, CommandIo& io);
// fraudctl review list [--page-size N] [--page-token T] [--model-version V] [--upload U]
// fraudctl review mark fraud|not-fraud|unsure (--upload U --line L | --transaction-id T)
//                      [--note TEXT] [--actor NAME] [--service-token T]
int RunReview(const std::vector<std::string>& args, CommandIo& io);

}  // namespace fraud::cli
