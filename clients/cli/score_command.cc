// fraudctl score: scores rows with the inference service's serving model (Predict). Rows come as
// JSON (--rows-json '[[Time, V1..V28, Amount], ...]') or from a CSV file (--csv FILE, validated by
// the same reader as uploads; a Class column is read but never sent). --explain adds each row's top
// reasons (--top-k, default 5): the features that moved its log-odds most, with signed
// contributions. --transaction-id (with --rows-json, one comma-separated id per row) makes
// inference store the scored rows for later feedback by id.
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "clients/cli/cli_rpc.h"
#include "clients/cli/format.h"
#include "clients/cli/flag_parser.h"
#include "clients/cli/rpc_commands.h"
#include "fraud/inference/v1/inference.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "services/common/csv/csv_reader.h"

namespace fraud::cli {
namespace {

constexpr int kF = csv::kNumFeatures;

// Parses '[[30 numbers], ...]' or a single '[30 numbers]' into rows.
absl::Status ParseRowsJson(const std::string& text, csv::RowBatch* rows) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("score: --rows-json is not valid JSON");
  if (!doc.is_array() || doc.empty()) {
    return absl::InvalidArgumentError("score: --rows-json must be a non-empty array of rows");
  }
  if (!doc[0].is_array()) doc = nlohmann::json::array({doc});
  int64_t line = 0;
  for (const nlohmann::json& row : doc) {
    ++line;
    if (!row.is_array() || row.size() != static_cast<size_t>(kF)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "score: --rows-json row ", line, " must be an array of ", kF,
          " numbers (Time, V1..V28, Amount), got ",
          row.is_array() ? absl::StrCat(row.size(), " values") : std::string(row.type_name())));
    }
    for (size_t i = 0; i < row.size(); ++i) {
      if (!row[i].is_number()) {
        return absl::InvalidArgumentError(
            absl::StrCat("score: --rows-json row ", line, " value ", i + 1, " (",
                         std::string(csv::kFeatureNames[i]), ") is not a number"));
      }
      rows->features.push_back(row[i].get<double>());
    }
    rows->line_numbers.push_back(line);
  }
  return absl::OkStatus();
}

class Scorer {
 public:
  Scorer(const ConnectionFlags& conn, bool json, bool explain, int top_k, CommandIo& io)
      : conn_(conn),
        json_(json),
        explain_(explain),
        top_k_(top_k),
        io_(io),
        stub_(inference::v1::InferenceService::NewStub(conn.Channel())) {}

  // Scores one batch (with one transaction id per row, or none) and prints its rows. Returns
  // false (after printing the error) on failure.
  bool Score(const csv::RowBatch& rows, const std::vector<std::string>& transaction_ids = {}) {
    if (rows.empty()) return true;
    inference::v1::PredictRequest request;
    request.mutable_rows()->set_num_rows(static_cast<uint32_t>(rows.num_rows()));
    request.mutable_rows()->mutable_features()->Assign(rows.features.begin(), rows.features.end());
    request.mutable_rows()->mutable_line_numbers()->Assign(rows.line_numbers.begin(),
                                                           rows.line_numbers.end());
    request.set_explain(explain_);
    request.set_top_k(explain_ ? top_k_ : 0);
    for (const std::string& id : transaction_ids) request.add_transaction_ids(id);
    inference::v1::PredictResponse response;
    std::unique_ptr<grpc::ClientContext> ctx = conn_.Context();
    const grpc::Status s = stub_->Predict(ctx.get(), request, &response);
    if (!s.ok()) {
      io_.err << "fraudctl score: " << DescribeRpcError(s, conn_.target) << "\n";
      return false;
    }
    const auto& scores = response.scores();
    if (batches_ == 0) {
      version_ = scores.model_version();
      threshold_ = scores.threshold();
      if (!json_) {
        io_.out << "model v" << version_ << absl::StrFormat(", threshold %.4f\n", threshold_);
        io_.out << absl::StrFormat("%-8s %-10s %s\n", "row", "score", "decision");
      }
    }
    ++batches_;
    for (size_t i = 0; i < rows.num_rows(); ++i) {
      const float score = scores.scores(static_cast<int>(i));
      const bool fraud = scores.decisions(static_cast<int>(i));
      flagged_ += fraud;
      ++rows_;
      const common::v1::Explanation* why = i < static_cast<size_t>(response.explanations_size())
                                               ? &response.explanations(static_cast<int>(i))
                                               : nullptr;
      if (json_) {
        nlohmann::json row = {{"row", rows.line_numbers[i]}, {"score", score}, {"fraud", fraud}};
        if (why != nullptr) row["reasons"] = ReasonsJson(*why);
        json_rows_.push_back(std::move(row));
      } else {
        io_.out << absl::StrFormat("%-8d %-10.6f %s\n", rows.line_numbers[i], score,
                                   fraud ? "FRAUD" : "ok");
        if (why != nullptr) PrintReasons(*why);
      }
    }
    return true;
  }

  void Finish() {
    if (json_) {
      nlohmann::json out = {{"modelVersion", version_},
                            {"threshold", threshold_},
                            {"rows", json_rows_},
                            {"flagged", flagged_}};
      io_.out << out.dump(2) << "\n";
    } else {
      io_.out << WithThousands(rows_) << " rows scored, " << WithThousands(flagged_)
              << " flagged as fraud\n";
    }
  }

 private:
  // One line per reason under the row: signed contribution to the log-odds, feature = value.
  void PrintReasons(const common::v1::Explanation& why) {
    for (const common::v1::FeatureContribution& c : why.top()) {
      io_.out << absl::StrFormat("         %+9.4f  %s = %s\n", c.contribution(), c.feature(),
                                 absl::StrCat(c.value()));
    }
    io_.out << absl::StrFormat(
        "         (log-odds %.4f = bias %.4f + these + %.4f from the rest)\n", why.margin(),
        why.bias(), why.rest());
  }

  static nlohmann::json ReasonsJson(const common::v1::Explanation& why) {
    nlohmann::json top = nlohmann::json::array();
    for (const common::v1::FeatureContribution& c : why.top()) {
      top.push_back({{"feature", c.feature()},
                     {"index", c.index()},
                     {"value", c.value()},
                     {"contribution", c.contribution()}});
    }
    return {{"top", top}, {"bias", why.bias()}, {"margin", why.margin()}, {"rest", why.rest()}};
  }

  const ConnectionFlags& conn_;
  const bool json_;
  const bool explain_;
  const int top_k_;
  CommandIo& io_;
  std::unique_ptr<inference::v1::InferenceService::Stub> stub_;
  int64_t batches_ = 0;
  int64_t rows_ = 0;
  int64_t flagged_ = 0;
  int64_t version_ = 0;
  double threshold_ = 0;
  nlohmann::json json_rows_ = nlohmann::json::array();
};

}  // namespace

int RunScore(const std::vector<std::string>& args, CommandIo& io) {
  std::string rows_json;
  std::string csv_path;
  bool json = false;
  bool explain = false;
  int64_t top_k = 0;
  int64_t batch_rows = 4096;
  std::string transaction_id;
  ConnectionFlags conn;
  FlagSet flags("score",
                "Usage: fraudctl score --rows-json '[[Time, V1, ..., V28, Amount], ...]'\n"
                "       fraudctl score --csv FILE [--json] [--explain [--top-k N]]\n"
                "       fraudctl score --rows-json ROWS --transaction-id ID[,ID...]\n\n"
                "Scores rows with the model the inference service is serving and prints one\n"
                "line per row: its number (the CSV line for --csv), the fraud score and the\n"
                "decision at the model's threshold. Labels in a CSV are never sent. With\n"
                "--explain, each row is followed by its top reasons: the features whose values\n"
                "moved its log-odds most, with signed contributions (+ = towards fraud).\n"
                "With --transaction-id, the scored rows are stored with their ids (one per\n"
                "row) so feedback can label them later; the call fails when they cannot be.");
  flags.String("rows-json", &rows_json, "rows as a JSON array of 30-number arrays");
  flags.String("csv", &csv_path, "score every row of this CSV file ('-' = stdin)");
  flags.Bool("json", &json, "print JSON instead of a table");
  flags.Int64("batch-rows", &batch_rows, "rows per Predict call for --csv");
  flags.Bool("explain", &explain, "print each row's top reasons (signed contributions)");
  flags.Int64("top-k", &top_k, "reasons per row with --explain, 1..30 (default 5)");
  flags.String("transaction-id", &transaction_id,
               "with --rows-json: store the scored rows under these ids (comma-separated, one "
               "per row)");
  conn.Register(&flags, Service::kInference);
  absl::Status parsed = flags.Parse(args);
  if (parsed.ok() && flags.help_requested()) {
    io.out << flags.Usage();
    return kExitOk;
  }
  if (parsed.ok() && !flags.positional().empty()) {
    parsed = absl::InvalidArgumentError("score: unexpected argument '" +
                                        flags.positional().front() + "'");
  }
  if (parsed.ok() && rows_json.empty() == csv_path.empty()) {
    parsed = absl::InvalidArgumentError("score: give exactly one of --rows-json and --csv");
  }
  if (parsed.ok() && (batch_rows < 1 || batch_rows > 65536)) {
    parsed = absl::InvalidArgumentError("score: --batch-rows must be in 1..65536");
  }
  if (parsed.ok() && (top_k < 0 || top_k > kF)) {
    parsed = absl::InvalidArgumentError("score: --top-k must be in 1..30");
  }
  if (parsed.ok() && top_k != 0 && !explain) {
    parsed = absl::InvalidArgumentError("score: --top-k needs --explain");
  }
  if (parsed.ok() && !transaction_id.empty() && rows_json.empty()) {
    parsed = absl::InvalidArgumentError("score: --transaction-id needs --rows-json");
  }
  csv::RowBatch rows;
  if (parsed.ok() && !rows_json.empty()) parsed = ParseRowsJson(rows_json, &rows);
  std::vector<std::string> transaction_ids;
  if (!transaction_id.empty()) transaction_ids = absl::StrSplit(transaction_id, ',');
  if (parsed.ok() && !transaction_ids.empty() && transaction_ids.size() != rows.num_rows()) {
    parsed = absl::InvalidArgumentError(absl::StrCat("score: --transaction-id has ",
                                                     transaction_ids.size(), " ids for ",
                                                     rows.num_rows(), " rows"));
  }
  if (!parsed.ok()) {
    io.err << parsed.message() << "\n\n" << flags.Usage();
    return kExitUsage;
  }

  Scorer scorer(conn, json, explain, static_cast<int>(top_k), io);
  if (!rows_json.empty()) {
    if (!scorer.Score(rows, transaction_ids)) return kExitFailure;
    scorer.Finish();
    return kExitOk;
  }

  std::ifstream file;
  std::istream* in = &std::cin;
  if (csv_path != "-") {
    file.open(csv_path, std::ios::binary);
    if (!file) {
      io.err << "fraudctl score: cannot open " << csv_path << "\n";
      return kExitFailure;
    }
    in = &file;
  }
  csv::CsvReaderOptions reader_options;
  reader_options.batch_rows = batch_rows;
  csv::CsvReader reader(reader_options);
  std::string buffer(64 * 1024, '\0');
  csv::RowBatch batch;
  absl::Status s;
  while (s.ok()) {
    in->read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize got = in->gcount();
    if (got <= 0) break;
    s = reader.Feed(std::string_view(buffer.data(), static_cast<size_t>(got)));
    while (reader.NextBatch(&batch)) {
      if (!scorer.Score(batch)) return kExitFailure;
    }
  }
  if (s.ok() && in->bad()) s = absl::DataLossError("reading the file failed");
  if (s.ok()) s = reader.Finish();
  if (!s.ok()) {
    io.err << "fraudctl score: " << csv_path << ": " << s.message() << "\n";
    return kExitFailure;
  }
  while (reader.NextBatch(&batch)) {
    if (!scorer.Score(batch)) return kExitFailure;
  }
  scorer.Finish();
  return kExitOk;
}

}  // namespace fraud::cli
