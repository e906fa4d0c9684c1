// fraudctl upload / validate: streams a CSV file to the ingest service in 256 KiB chunks (the
// first message carries the options) and prints the UploadSummary, or on failure the one-line
// error plus the summary the server attached to the status (fraud-upload-summary-bin).
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "clients/cli/cli_rpc.h"
#include "clients/cli/format.h"
#include "clients/cli/flag_parser.h"
#include "clients/cli/rpc_commands.h"
#include "clients/cli/summary_printer.h"
#include "fraud/ingest/v1/ingest.grpc.pb.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/summary_trailer.h"
#include "services/common/rpc/upload_chunk.h"

namespace fraud::cli {
namespace {

constexpr size_t kChunkBytes = rpc::kUploadChunkBytes;

// A one-line progress bar on a terminal: percentage (when the size is known), bytes and rows/s.
class Progress {
 public:
  Progress(std::ostream& err, int64_t total_bytes, bool enabled)
      : err_(err), total_(total_bytes), enabled_(enabled), start_(absl::Now()) {}

  void Update(int64_t bytes, int64_t rows, bool force = false) {
    if (!enabled_) return;
    const absl::Time now = absl::Now();
    if (!force && now - last_ < absl::Milliseconds(100)) return;
    last_ = now;
    const double seconds = std::max(1e-3, absl::ToDoubleSeconds(now - start_));
    std::string line = "\r";
    if (total_ > 0) {
      const double fraction = std::min(1.0, static_cast<double>(bytes) / total_);
      const int filled = static_cast<int>(fraction * 30);
      absl::StrAppend(&line, absl::StrFormat("%5.1f%% [", 100 * fraction), std::string(filled, '#'),
                      std::string(30 - filled, '.'), "] ", HumanBytes(bytes), " / ",
                      HumanBytes(total_));
    } else {
      absl::StrAppend(&line, HumanBytes(bytes), " sent");
    }
    absl::StrAppend(&line, "  ", WithThousands(static_cast<int64_t>(rows / seconds)), " rows/s ");
    err_ << line << std::flush;
    shown_ = true;
  }
  // Erases the bar.
  void Done() {
    if (shown_) err_ << "\r\033[K" << std::flush;
    shown_ = false;
  }

 private:
  std::ostream& err_;
  const int64_t total_;
  const bool enabled_;
  const absl::Time start_;
  absl::Time last_ = absl::InfinitePast();
  bool shown_ = false;
};

std::string BaseName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

int RunUploadOrValidate(const std::vector<std::string>& args, CommandIo& io, bool validate) {
  const std::string command = validate ? "validate" : "upload";
  bool lenient = false;
  bool json = false;
  bool no_progress = false;
  int64_t max_errors = 0;
  int64_t top_k = 0;
  std::string name;
  std::string token;
  ConnectionFlags conn;
  FlagSet flags(
      command,
      validate
          ? "Usage: fraudctl validate FILE [--lenient] [--json] [--target host:port]\n\n"
            "Checks a transactions CSV with the ingest service's validator without storing or\n"
            "scoring anything. Strict (default) stops at the first bad row; --lenient lists every\n"
            "bad row (up to --max-errors). FILE '-' reads stdin. Exits 1 when the file has any\n"
            "invalid row."
          : "Usage: fraudctl upload FILE [--lenient] [--json] [--target host:port]\n\n"
            "Uploads a transactions CSV (Time, V1..V28, Amount[, Class]) to the ingest service:\n"
            "every row is validated, stored (all or nothing in strict mode; --lenient skips bad\n"
            "rows and lists them) and scored by the serving model. Prints the summary: counts,\n"
            "errors, metrics when labelled, the most suspicious rows and a data report.\n"
            "FILE '-' reads stdin. A progress bar is shown on a terminal.");
  flags.Bool("lenient", &lenient, "skip and list bad rows instead of rejecting the file");
  flags.Bool("json", &json, "print the summary as JSON (the gateway's format)");
  flags.Int64("max-errors", &max_errors, "row errors to list (0 = server default, 100)");
  if (!validate) {
    flags.Int64("top-k", &top_k, "most suspicious rows to list (0 = server default, 20)");
    flags.String("token", &token, "bearer token when ingest requires one (env FRAUD_UPLOAD_TOKEN)");
  }
  flags.String("name", &name, "file name to record (default: FILE's base name)");
  flags.Bool("no-progress", &no_progress, "never draw the progress bar");
  conn.timeout_seconds = 3600;
  conn.Register(&flags, Service::kIngest);

  absl::Status parsed = flags.Parse(args);
  if (parsed.ok() && flags.help_requested()) {
    io.out << flags.Usage();
    return kExitOk;
  }
  if (parsed.ok() && flags.positional().size() != 1) {
    parsed =
        absl::InvalidArgumentError(absl::StrCat(command, ": expected exactly one FILE argument"));
  }
  if (parsed.ok() && (max_errors < 0 || top_k < 0)) {
    parsed = absl::InvalidArgumentError(absl::StrCat(command, ": counts must be >= 0"));
  }
  if (!parsed.ok()) {
    io.err << parsed.message() << "\n\n" << flags.Usage();
    return kExitUsage;
  }

  // Read here rather than as the flag's default, so --help never prints the token.
  if (!flags.WasSet("token")) {
    if (const char* env = std::getenv("FRAUD_UPLOAD_TOKEN"); env != nullptr) token = env;
  }
  const std::string path = flags.positional().front();
  std::ifstream file;
  std::istream* in = &std::cin;
  int64_t total_bytes = 0;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) {
      io.err << "fraudctl " << command << ": cannot open " << path << "\n";
      return kExitFailure;
    }
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) total_bytes = st.st_size;
    in = &file;
  }
  if (name.empty()) name = path == "-" ? "stdin.csv" : BaseName(path);

  auto stub = ingest::v1::IngestService::NewStub(conn.Channel());
  std::unique_ptr<grpc::ClientContext> ctx = conn.Context();
  rpc::AddBearerToken(ctx.get(), token);
  ingest::v1::UploadResponse response;
  auto writer =
      validate ? stub->ValidateOnly(ctx.get(), &response) : stub->Upload(ctx.get(), &response);
  ingest::v1::UploadRequest request;
  ingest::v1::UploadOptions* options = request.mutable_options();
  options->set_file_name(name);
  options->set_mode(lenient ? storage::v1::UPLOAD_MODE_LENIENT : storage::v1::UPLOAD_MODE_STRICT);
  options->set_max_errors(static_cast<int32_t>(std::min<int64_t>(max_errors, 1 << 30)));
  options->set_top_k(static_cast<int32_t>(std::min<int64_t>(top_k, 1 << 30)));

  Progress progress(io.err, total_bytes, !no_progress && !json && IsTerminal(io.err));
  bool open = writer->Write(request);
  int64_t sent = 0;
  int64_t lines = 0;
  std::string buffer(kChunkBytes, '\0');
  while (open) {
    in->read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize got = in->gcount();
    if (got <= 0) break;
    request.set_data(buffer.data(), static_cast<size_t>(got));
    // A failed Write means the server already answered (for example a bad header): Finish
    // below returns its status.
    open = writer->Write(request);
    sent += got;
    lines += std::count(buffer.data(), buffer.data() + got, '\n');
    progress.Update(sent, lines);
  }
  if (in->bad()) {
    progress.Done();
    ctx->TryCancel();
    writer->Finish();
    io.err << "fraudctl " << command << ": reading " << path << " failed after " << sent
           << " bytes; nothing stored\n";
    return kExitFailure;
  }
  progress.Update(sent, lines, /*force=*/true);
  if (open) writer->WritesDone();
  const grpc::Status status = writer->Finish();
  progress.Done();

  if (!status.ok()) {
    io.err << "fraudctl " << command << ": " << DescribeRpcError(status, conn.target) << "\n";
    std::optional<ingest::v1::UploadSummary> details = rpc::SummaryFromTrailers(*ctx);
    if (details.has_value()) {
      if (json) {
        io.out << SummaryJson(*details);
      } else {
        PrintSummary(*details, SummaryKind::kFailure, io.out);
      }
    }
    return kExitFailure;
  }
  const ingest::v1::UploadSummary& summary = response.summary();
  if (json) {
    io.out << SummaryJson(summary);
  } else {
    PrintSummary(summary, validate ? SummaryKind::kValidation : SummaryKind::kUpload, io.out);
  }
  if (validate && summary.rows_rejected() > 0) {
    io.err << "fraudctl validate: " << summary.rows_rejected() << " invalid row"
           << (summary.rows_rejected() == 1 ? "" : "s") << " in " << path << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

int RunUpload(const std::vector<std::string>& args, CommandIo& io) {
  return RunUploadOrValidate(args, io, /*validate=*/false);
}

int RunValidate(const std::vector<std::string>& args, CommandIo& io) {
  return RunUploadOrValidate(args, io, /*validate=*/true);
}

}  // namespace fraud::cli
