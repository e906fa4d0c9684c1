// fraudctl review: the review queue (storage's ListReviewQueue) and an analyst's disposition of
// one transaction (SubmitReview).
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "clients/cli/cli_rpc.h"
#include "clients/cli/flag_parser.h"
#include "clients/cli/rpc_commands.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"

namespace fraud::cli {
namespace {

namespace v1 = ::fraud::storage::v1;

constexpr char kUsage[] =
    "Usage: fraudctl review list [--page-size N] [--page-token T] [--model-version V]\n"
    "                            [--upload U] [--json] [--target host:port]\n"
    "       fraudctl review mark fraud|not-fraud|unsure (--upload U --line L | --transaction-id T)\n"
    "                            [--note TEXT] [--actor NAME] [--json] [--target host:port]\n\n"
    "list: unreviewed alerts (flagged predictions), newest upload first, then score descending.\n"
    "mark: records an analyst's disposition; fraud / not-fraud also label the transaction\n"
    "(label event with source 'review', as feedback does), unsure only takes it out of the\n"
    "queue. Storage writes need the deployment's service token: --service-token or\n"
    "$FRAUD_SERVICE_TOKEN.";

const char* LabelName(int label) {
  if (label == 1) return "fraud";
  if (label == 0) return "genuine";
  return "unlabelled";
}

void PrintJson(const google::protobuf::Message& m, std::ostream& out) {
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(m, &text, options);
  out << text;
}

absl::StatusOr<v1::ReviewDisposition> ParseDisposition(const std::string& word) {
  if (word == "fraud") return v1::REVIEW_DISPOSITION_FRAUD;
  if (word == "not-fraud" || word == "not_fraud") return v1::REVIEW_DISPOSITION_NOT_FRAUD;
  if (word == "unsure") return v1::REVIEW_DISPOSITION_UNSURE;
  return absl::InvalidArgumentError(absl::StrFormat(
      "review mark: the disposition must be fraud, not-fraud or unsure (got '%s')", word));
}

}  // namespace

int RunReview(const std::vector<std::string>& args, CommandIo& io) {
  bool json = false;
  int64_t page_size = 0;
  std::string page_token;
  int64_t model_version = 0;
  int64_t upload = 0;
  int64_t line = 0;
  std::string transaction_id;
  std::string note;
  std::string actor = "fraudctl";
  std::string service_token;
  ConnectionFlags conn;
  FlagSet flags("review", kUsage);
  flags.Bool("json", &json, "print storage's response as JSON");
  flags.Int64("page-size", &page_size, "list: alerts per page (default 50, at most 500)");
  flags.String("page-token", &page_token, "list: the next-page token a previous list printed");
  flags.Int64("model-version", &model_version, "list: only alerts of this model version");
  flags.Int64("upload", &upload, "list: only alerts of this upload; mark: the transaction's upload");
  flags.Int64("line", &line, "mark: the transaction's line in its upload");
  flags.String("transaction-id", &transaction_id, "mark: the transaction's caller-assigned id");
  flags.String("note", &note, "mark: free text recorded with the disposition (optional)");
  flags.String("actor", &actor, "mark: who reviewed");
  RegisterServiceTokenFlag(&flags, &service_token);
  conn.Register(&flags, Service::kStorage);
  absl::Status parsed = flags.Parse(args);
  if (parsed.ok() && flags.help_requested()) {
    io.out << flags.Usage();
    return kExitOk;
  }
  const std::vector<std::string>& words = flags.positional();
  const std::string sub = words.empty() ? "" : words[0];
  if (parsed.ok() && !(sub == "list" && words.size() == 1) &&
      !(sub == "mark" && words.size() == 2)) {
    parsed = absl::InvalidArgumentError(
        "review: give 'list', or 'mark' and one of fraud, not-fraud, unsure");
  }
  absl::StatusOr<v1::ReviewDisposition> disposition = v1::REVIEW_DISPOSITION_UNSPECIFIED;
  if (parsed.ok() && sub == "mark") {
    disposition = ParseDisposition(words[1]);
    if (!disposition.ok()) parsed = disposition.status();
  }
  if (!parsed.ok()) {
    io.err << parsed.message() << "\n\n" << flags.Usage();
    return kExitUsage;
  }
  auto stub = storage::v1::StorageService::NewStub(
      rpc::MakeChannel({.target = conn.target, .tls_ca_file = conn.tls_ca,
                        .service_token = service_token}));
  std::unique_ptr<grpc::ClientContext> ctx = conn.Context();
  if (sub == "list") {
    v1::ListReviewQueueRequest request;
    request.set_page_size(static_cast<int32_t>(page_size));
    request.set_page_token(page_token);
    request.set_model_version(model_version);
    request.set_upload_id(upload);
    v1::ListReviewQueueResponse response;
    const grpc::Status s = stub->ListReviewQueue(ctx.get(), request, &response);
    if (!s.ok()) {
      io.err << "fraudctl review list: " << DescribeRpcError(s, conn.target) << "\n";
      return kExitFailure;
    }
    if (json) {
      PrintJson(response, io.out);
      return kExitOk;
    }
    if (response.items().empty()) io.out << "no alert waits for review\n";
    for (const v1::ReviewItem& item : response.items()) {
      const std::string id =
          item.transaction_id().empty()
              ? absl::StrFormat("upload %d line %d", item.upload_id(), item.line())
              : absl::StrFormat("transaction %s", item.transaction_id());
      io.out << absl::StrFormat("%-32s score %.4f  v%d  amount %.2f  %s\n", id, item.score(),
                                item.model_version(), item.amount(),
                                LabelName(item.current_label()));
    }
    if (!response.next_page_token().empty()) {
      io.out << "next page: --page-token " << response.next_page_token() << "\n";
    }
    return kExitOk;
  }
  v1::SubmitReviewRequest request;
  request.set_upload_id(upload);
  request.set_line(line);
  request.set_transaction_id(transaction_id);
  request.set_disposition(*disposition);
  request.set_note(note);
  request.set_actor(actor);
  v1::SubmitReviewResponse response;
  const grpc::Status s = stub->SubmitReview(ctx.get(), request, &response);
  if (!s.ok()) {
    io.err << "fraudctl review mark: " << DescribeRpcError(s, conn.target) << "\n";
    return kExitFailure;
  }
  if (json) {
    PrintJson(response, io.out);
    return kExitOk;
  }
  io.out << absl::StrFormat("upload %d line %d marked %s (review %d)", response.upload_id(),
                            response.line(), words[1], response.review_id());
  if (!response.label_outcome().empty()) {
    io.out << absl::StrFormat("; label %s, now %s", response.label_outcome(),
                              LabelName(response.current_label()));
  }
  io.out << "\n";
  return kExitOk;
}

}  // namespace fraud::cli
