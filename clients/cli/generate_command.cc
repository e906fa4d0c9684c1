// fraudctl generate: writes the synthetic dataset (services/common/csv/synthetic_generator.h).
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "clients/cli/commands.h"
#include "clients/cli/flag_parser.h"
#include "services/common/csv/synthetic_generator.h"

namespace fraud::cli {

int RunGenerate(const std::vector<std::string>& args, CommandIo& io) {
  csv::GeneratorOptions options;
  std::string out_path;
  bool no_labels = false;
  bool no_header = false;
  bool plain = false;
  FlagSet flags(
      "generate",
      "Usage: fraudctl generate [--rows N] [--seed S] [--fraud-rate R] [--no-labels] "
      "[--out FILE]\n\n"
      "Writes a synthetic transactions CSV in the creditcardfraud format (Time, V1..V28,\n"
      "Amount, Class), rows sorted by Time over two days. The same flags always give the\n"
      "same bytes. Writes to stdout unless --out is given.");
  flags.Int64("rows", &options.rows, "data rows to write");
  flags.Uint64("seed", &options.seed, "random seed");
  flags.Double("fraud-rate", &options.fraud_rate, "fraction of fraud rows, in [0, 1]");
  flags.Bool("no-labels", &no_labels, "omit the Class column");
  flags.Bool("no-header", &no_header, "omit the header line (to append to a file)");
  flags.Int64("time-offset", &options.time_offset, "seconds added to every Time");
  flags.Bool("plain", &plain, "do not quote the header names and Class values");
  flags.String("out", &out_path, "output file (written atomically); stdout when empty");

  absl::Status parsed = flags.Parse(args);
  if (parsed.ok() && !flags.positional().empty()) {
    parsed = absl::InvalidArgumentError("generate: unexpected argument '" +
                                        flags.positional().front() + "'");
  }
  if (parsed.ok() && flags.help_requested()) {
    io.out << flags.Usage();
    return kExitOk;
  }
  if (parsed.ok() && options.rows < 0) {
    parsed = absl::InvalidArgumentError("generate: --rows must be >= 0");
  }
  if (parsed.ok() && !(options.fraud_rate >= 0 && options.fraud_rate <= 1)) {
    parsed = absl::InvalidArgumentError("generate: --fraud-rate must be in [0, 1]");
  }
  if (parsed.ok() && options.time_offset < 0) {
    parsed = absl::InvalidArgumentError("generate: --time-offset must be >= 0");
  }
  if (!parsed.ok()) {
    io.err << parsed.message() << "\n\n" << flags.Usage();
    return kExitUsage;
  }
  options.with_labels = !no_labels;
  options.with_header = !no_header;
  options.quote = !plain;

  if (out_path.empty()) {
    absl::Status s = csv::WriteSyntheticCsv(options, io.out);
    if (!s.ok()) {
      io.err << "generate: " << s.message() << "\n";
      return kExitFailure;
    }
    return kExitOk;
  }
  // Write next to the target and rename, so readers never see a half-written file.
  const std::string tmp_path = out_path + ".tmp";
  std::ofstream file(tmp_path, std::ios::binary | std::ios::trunc);
  if (!file) {
    io.err << "generate: cannot open " << tmp_path << " for writing\n";
    return kExitFailure;
  }
  absl::Status s = csv::WriteSyntheticCsv(options, file);
  file.close();
  if (s.ok() && !file) s = absl::DataLossError("closing the output file failed");
  if (s.ok() && std::rename(tmp_path.c_str(), out_path.c_str()) != 0) {
    s = absl::DataLossError("cannot rename " + tmp_path + " to " + out_path);
  }
  if (!s.ok()) {
    std::remove(tmp_path.c_str());
    io.err << "generate: " << s.message() << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace fraud::cli
