// fraudctl feedback: delayed labels from a CSV file, streamed to storage's RecordFeedback.
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "clients/cli/cli_rpc.h"
#include "clients/cli/flag_parser.h"
#include "clients/cli/rpc_commands.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/feedback_transfer.h"
#include "services/common/rpc/grpc_status.h"

namespace fraud::cli {
namespace {

constexpr size_t kReadChunkBytes = 64 << 10;
// Unknown rows printed in the summary.
constexpr int kUnknownShown = 5;

}  // namespace

int RunFeedback(const std::vector<std::string>& args, CommandIo& io) {
  bool json = false;
  std::string actor = "fraudctl";
  std::string service_token;
  ConnectionFlags conn;
  FlagSet flags(
      "feedback",
      "Usage: fraudctl feedback FILE.csv [--actor NAME] [--json] [--target host:port]\n\n"
      "Sends delayed labels for stored transactions to the storage service. The CSV's header\n"
      "names its columns: upload_id,line,label[,source,note,at] or\n"
      "transaction_id,label[,source,note,at] (label 0/1, at an RFC 3339 time).\n"
      "A bad row rejects the whole file (nothing stored); rows naming no stored transaction\n"
      "are reported and skipped. Prints applied, unchanged, conflicts and unknown rows.\n"
      "Storage writes need the deployment's service token: --service-token or\n"
      "$FRAUD_SERVICE_TOKEN.");
  flags.Bool("json", &json, "print storage's RecordFeedbackResponse as JSON");
  flags.String("actor", &actor, "who sends the labels (recorded with every label event)");
  RegisterServiceTokenFlag(&flags, &service_token);
  conn.Register(&flags, Service::kStorage);
  absl::Status parsed = flags.Parse(args);
  if (parsed.ok() && flags.help_requested()) {
    io.out << flags.Usage();
    return kExitOk;
  }
  if (parsed.ok() && flags.positional().size() != 1) {
    parsed = absl::InvalidArgumentError("feedback: give exactly one CSV file");
  }
  if (!parsed.ok()) {
    io.err << parsed.message() << "\n\n" << flags.Usage();
    return kExitUsage;
  }
  const std::string path = flags.positional().front();
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    io.err << "fraudctl feedback: cannot open " << path << "\n";
    return kExitFailure;
  }
  auto stub = storage::v1::StorageService::NewStub(
      rpc::MakeChannel({.target = conn.target, .tls_ca_file = conn.tls_ca,
                        .service_token = service_token}));
  std::unique_ptr<grpc::ClientContext> ctx = conn.Context();
  std::string buffer(kReadChunkBytes, '\0');
  absl::StatusOr<rpc::FeedbackSent> sent = rpc::SendFeedbackCsv(
      *stub, ctx.get(),
      [&](std::string* chunk) {
        file.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        const std::streamsize n = file.gcount();
        if (n <= 0) return false;
        chunk->assign(buffer.data(), static_cast<size_t>(n));
        return true;
      },
      actor);
  if (!sent.ok()) {
    io.err << "fraudctl feedback: " << path << ": " << rpc::CodeName(sent.status().code()) << ": "
           << sent.status().message() << " (target " << conn.target << ")\n";
    return kExitFailure;
  }
  const storage::v1::RecordFeedbackResponse& r = sent->response;
  if (json) {
    std::string out;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    (void)google::protobuf::util::MessageToJsonString(r, &out, options);
    io.out << out;
    return kExitOk;
  }
  io.out << absl::StrFormat(
      "%d rows: %d applied, %d unchanged, %d conflicts (latest label wins, history kept), "
      "%d unknown\n",
      r.received(), r.applied(), r.unchanged(), r.conflicts(), r.unknown());
  for (int i = 0; i < r.unknown_rows_size() && i < kUnknownShown; ++i) {
    const storage::v1::FeedbackProblem& p = r.unknown_rows(i);
    const int64_t line =
        p.row() >= 1 && p.row() <= static_cast<int64_t>(sent->file_lines.size())
            ? sent->file_lines[p.row() - 1]
            : 0;
    const std::string id = p.transaction_id().empty()
                               ? absl::StrFormat("upload %d line %d", p.upload_id(), p.line())
                               : absl::StrFormat("transaction_id '%s'", p.transaction_id());
    io.out << absl::StrFormat("  unknown: file line %d (%s): %s\n", line, id, p.reason());
  }
  if (r.unknown() > kUnknownShown) {
    io.out << absl::StrFormat("  ... and %d more unknown rows\n", r.unknown() - kUnknownShown);
  }
  return kExitOk;
}

}  // namespace fraud::cli
