// fraudctl replay / train / runs / promote / operating-point: the training service's client
// commands (operating-point show asks storage).
#include "clients/cli/training_commands.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "clients/cli/cli_rpc.h"
#include "clients/cli/format.h"
#include "clients/cli/flag_parser.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "fraud/training/v1/training.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/channel.h"
#include "clients/replay/replay.h"

namespace fraud::cli {
namespace {

namespace tpb = ::fraud::training::v1;
namespace spb = ::fraud::storage::v1;

std::string TokenFromEnv() {
  const char* t = std::getenv("FRAUD_ADMIN_TOKEN");
  return t == nullptr ? "" : t;
}

// Parses the flags; prints usage on --help or errors. Returns -1 to continue, else an exit code.
int ParseOrExit(FlagSet& flags, const std::vector<std::string>& args, CommandIo& io,
                size_t min_positional, size_t max_positional) {
  absl::Status parsed = flags.Parse(args);
  if (parsed.ok() && flags.help_requested()) {
    io.out << flags.Usage();
    return kExitOk;
  }
  if (parsed.ok() && (flags.positional().size() < min_positional ||
                      flags.positional().size() > max_positional)) {
    parsed = absl::InvalidArgumentError(
        flags.positional().size() < min_positional ? "missing argument"
                                                   : "unexpected argument '" +
                                                         flags.positional().back() + "'");
  }
  if (!parsed.ok()) {
    io.err << parsed.message() << "\n\n" << flags.Usage();
    return kExitUsage;
  }
  return -1;
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view piece : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    out.emplace_back(piece);
  }
  return out;
}

absl::Status ParseIds(const std::string& text, google::protobuf::RepeatedField<int64_t>* out) {
  for (const std::string& piece : SplitList(text)) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(piece, &id) || id <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("'", piece, "' is not an upload id"));
    }
    out->Add(id);
  }
  return absl::OkStatus();
}

absl::Status ParseParams(const std::string& text, std::map<std::string, std::string>* out) {
  for (const std::string& piece : SplitList(text)) {
    const size_t eq = piece.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter '", piece, "' is not key=value (for example mlp.epochs=10)"));
    }
    (*out)[piece.substr(0, eq)] = piece.substr(eq + 1);
  }
  return absl::OkStatus();
}

std::string StatusName(spb::RunStatus s) {
  switch (s) {
    case spb::RUN_STATUS_QUEUED:
      return "queued";
    case spb::RUN_STATUS_RUNNING:
      return "running";
    case spb::RUN_STATUS_SUCCEEDED:
      return "succeeded";
    case spb::RUN_STATUS_FAILED:
      return "failed";
    case spb::RUN_STATUS_CANCELLED:
      return "cancelled";
    default:
      return "?";
  }
}

bool Terminal(spb::RunStatus s) {
  return s == spb::RUN_STATUS_SUCCEEDED || s == spb::RUN_STATUS_FAILED ||
         s == spb::RUN_STATUS_CANCELLED;
}

std::string ProgressLine(const spb::TrainingRun& run) {
  const spb::RunProgress& p = run.progress();
  std::string line = absl::StrCat("run ", run.id(), " [", StatusName(run.status()), "] ", p.phase());
  if (p.candidates_total() > 0 && p.phase() == "training") {
    absl::StrAppend(&line, " ", p.candidates_done(), "/", p.candidates_total());
  }
  if (p.epoch() > 0) {
    absl::StrAppend(&line, " ", p.candidate(), " epoch ", p.epoch(),
                    absl::StrFormat(" loss %.4f val AUPRC %.4f", p.loss(), p.metric()));
  } else if (!p.message().empty()) {
    absl::StrAppend(&line, ": ", p.message());
  }
  return line;
}

void PrintRunDetail(const spb::TrainingRun& run, std::ostream& out) {
  out << "run " << run.id() << ": " << StatusName(run.status()) << " (trigger " << run.trigger()
      << ")\n";
  out << "  created " << UtcTime(run.created_at()) << ", started " << UtcTime(run.started_at())
      << ", finished " << UtcTime(run.finished_at()) << " (UTC)\n";
  if (run.has_lineage()) {
    const common::v1::DataLineage& l = run.lineage();
    out << absl::StrFormat("  data: train %d rows / %d frauds, validation %d rows / %d frauds, "
                           "Time %.0f..%.0f, uploads",
                           l.train_rows(), l.train_frauds(), l.validation_rows(),
                           l.validation_frauds(), l.time_min(), l.time_max());
    for (int64_t id : l.upload_ids()) out << " " << id;
    out << "\n";
  }
  if (auto it = run.params().find("selection"); it != run.params().end()) {
    out << "  selection: " << it->second << "\n";
  }
  if (run.candidates_size() > 0) {
    out << absl::StrFormat("  %-3s %-52s %-10s %-15s %-8s %-9s %s\n", "", "candidate",
                           "val AUPRC", "backtest mean/worst", "epochs", "seconds", "peak RSS");
    for (const spb::Candidate& c : run.candidates()) {
      const std::string backtest =
          c.backtest_size() > 0
              ? absl::StrFormat("%.4f/%.4f", c.backtest_mean_auprc(), c.backtest_worst_auprc())
              : "-";
      out << absl::StrFormat("  %-3s %-52s %-10s %-19s %-8d %-9.1f %.0f MB\n",
                             c.selected() ? "*" : "", c.name(), AuprcText(c.validation_metrics()),
                             backtest, c.curve_size(), c.train_seconds(),
                             c.peak_rss_bytes() / 1048576.0);
      for (const spb::BacktestBlock& b : c.backtest()) {
        out << absl::StrFormat(
            "        block Time %.0f..%.0f: %d rows / %d frauds, trained on %d rows%s: %s\n",
            b.time_min(), b.time_max(), b.rows(), b.frauds(), b.train_rows(),
            b.normal_sample_rate() < 1
                ? absl::StrFormat(" (normals sampled at %.3f)", b.normal_sample_rate())
                : "",
            b.error().empty() ? absl::StrFormat("AUPRC %.4f", b.auprc())
                              : absl::StrCat("failed: ", b.error()));
      }
    }
  }
  if (run.model_version() > 0) {
    out << "  version v" << run.model_version() << (run.promoted() ? " (promoted)" : "")
        << "; comparison AUPRC challenger " << AuprcText(run.challenger_comparison())
        << ", champion v" << run.champion_version_before() << " "
        << AuprcText(run.champion_comparison()) << "\n";
    if (run.has_comparison_difference()) {
      const spb::PairedComparison& d = run.comparison_difference();
      out << absl::StrFormat(
          "  paired AUPRC difference %+.4f (95%% %+.4f..%+.4f; challenger better in %.0f%% of %d "
          "resamples)\n",
          d.difference(), d.ci_low(), d.ci_high(), 100 * d.share_better(), d.resamples());
    }
    if (run.has_backtest_gate()) {
      const spb::BacktestGate& g = run.backtest_gate();
      const spb::PairedComparison& d = g.difference();
      out << absl::StrFormat(
          "  gate evidence: %d backtest block(s) newer than v%d's training rows, mean AUPRC "
          "%.4f vs %.4f, paired difference %+.4f (95%% %+.4f..%+.4f)\n",
          g.blocks(), g.champion_version(), g.challenger_mean_auprc(), g.champion_mean_auprc(),
          d.difference(), d.ci_low(), d.ci_high());
    }
  }
  if (!run.message().empty()) out << "  " << run.message() << "\n";
}

struct TrainingConnection {
  ConnectionFlags conn;
  std::string token;
  void Register(FlagSet* flags) {
    conn.Register(flags, Service::kTraining);
    token = TokenFromEnv();
    flags->String("token", &token, "admin bearer token (env FRAUD_ADMIN_TOKEN)");
  }
};

}  // namespace

int RunReplayCommand(const std::vector<std::string>& args, CommandIo& io) {
  TrainingConnection training;
  std::string ingest_target = DefaultTarget(Service::kIngest);
  std::string boundaries, json_out, families, params, work_dir;
  int64_t initial_rows = 100000;
  int64_t bootstrap = 200;
  double weight_to_rate = 0, margin = 0, run_timeout_minutes = 120;
  double label_delay_days = -1;
  int64_t review_budget = 100;
  std::string storage_target = DefaultTarget(Service::kStorage);
  std::string service_token;
  FlagSet flags(
      "replay",
      "Usage: fraudctl replay DATA.csv [--boundaries t1,t2,t3,t4] [--json OUT] "
      "[--weight-to-rate 0.001727] [--label-delay-days D --review-budget K]\n\n"
      "Replays the time-ordered experiment through the running system: splits DATA.csv into the\n"
      "initial rows (first 100,000, or Time < t1) and four parts P1..P4 (equal row counts, or\n"
      "at the Time boundaries), uploads the initial part and P4 (the fixed comparison set, never\n"
      "trained on), trains a version, then uploads P1..P3 one by one (each scored by the\n"
      "champion) retraining after each, and evaluates every version on P4. The genuine partial\n"
      "sample needs --boundaries 67736,87299,129552,149681 (see shared/data/STATS.md).\n"
      "With --label-delay-days D, P1..P3 are uploaded WITHOUT labels (scored by the champion);\n"
      "after each part analysts have reviewed K rows per day at a steady rate, the day's\n"
      "highest-scored first (labels known at once), and every other label arrives D days after\n"
      "its Time; the labels go to storage as feedback,\n"
      "so each run trains only on the labels known then; at the end all labels arrive and the\n"
      "table adds storage's realised precision@K per version and day. Needs a fresh database\n"
      "and storage's service token (--service-token or $FRAUD_SERVICE_TOKEN).\n"
      "Progress goes to stderr, the table to stdout.");
  training.Register(&flags);
  flags.String("ingest-target", &ingest_target, "ingest service host:port (env FRAUD_INGEST_TARGET)");
  flags.String("boundaries", &boundaries, "four ascending Time boundaries t1,t2,t3,t4");
  flags.Int64("initial-rows", &initial_rows, "rows of the initial part when splitting by rows");
  flags.String("json", &json_out, "also write the result as JSON to this file");
  flags.Double("weight-to-rate", &weight_to_rate,
               "also report AUPRC with normal rows weighted so frauds are this fraction "
               "(0.001727 = the full dataset's rate)");
  flags.String("families", &families, "families to train (default: the server's)");
  flags.String("params", &params, "run params k=v,k=v (for example grid=small,max_epochs=10)");
  flags.Double("margin", &margin, "promotion margin of each run (0 = server default)");
  flags.Int64("bootstrap", &bootstrap, "bootstrap resamples of the AUPRC interval");
  flags.String("work-dir", &work_dir, "where the part files are written (default: a temp dir)");
  flags.Double("run-timeout-minutes", &run_timeout_minutes, "longest a single run may take");
  flags.Double("label-delay-days", &label_delay_days,
               "upload P1..P3 without labels; labels arrive this many days after their Time");
  flags.Int64("review-budget", &review_budget,
              "with --label-delay-days: reviewed rows per day whose labels are known at once");
  flags.String("storage-target", &storage_target,
               "storage service host:port (env FRAUD_STORAGE_TARGET), for --label-delay-days");
  RegisterServiceTokenFlag(&flags, &service_token, "storage's service token (feedback writes)");
  if (int code = ParseOrExit(flags, args, io, 1, 1); code >= 0) return code;

  replay::ReplayOptions o;
  o.csv_path = flags.positional()[0];
  if (!boundaries.empty()) {
    absl::StatusOr<std::vector<double>> b = replay::ParseBoundaries(boundaries);
    if (!b.ok()) {
      io.err << "fraudctl replay: " << b.status().message() << "\n";
      return kExitUsage;
    }
    o.boundaries = *b;
  }
  if (weight_to_rate < 0 || weight_to_rate >= 1) {
    io.err << "fraudctl replay: --weight-to-rate must be in [0, 1)\n";
    return kExitUsage;
  }
  if (absl::Status s = ParseParams(params, &o.params); !s.ok()) {
    io.err << "fraudctl replay: " << s.message() << "\n";
    return kExitUsage;
  }
  const bool delayed = flags.WasSet("label-delay-days");
  if (delayed && !(label_delay_days >= 0)) {
    io.err << "fraudctl replay: --label-delay-days must be >= 0\n";
    return kExitUsage;
  }
  if (review_budget < 0 || review_budget > 100000) {
    io.err << "fraudctl replay: --review-budget must be in [0, 100000]\n";
    return kExitUsage;
  }
  if (!delayed && flags.WasSet("review-budget")) {
    io.err << "fraudctl replay: --review-budget needs --label-delay-days\n";
    return kExitUsage;
  }
  o.label_delay.enabled = delayed;
  o.label_delay.days = label_delay_days;
  o.label_delay.review_budget = review_budget;
  o.initial_rows = initial_rows;
  o.work_dir = work_dir;
  o.families = SplitList(families);
  o.promotion_margin = margin;
  o.weight_to_rate = weight_to_rate;
  o.bootstrap_resamples = static_cast<int>(bootstrap);
  o.token = training.token;
  o.run_timeout = absl::Minutes(run_timeout_minutes);
  o.log = [&io](const std::string& line) { io.err << line << "\n" << std::flush; };

  std::unique_ptr<replay::Uploader> uploader = replay::MakeIngestUploader(
      rpc::MakeChannel({ingest_target, training.conn.tls_ca}), training.token);
  auto stub = tpb::TrainingService::NewStub(training.conn.Channel());
  std::unique_ptr<storage::v1::StorageService::Stub> storage;
  if (delayed) {
    rpc::ChannelOptions storage_channel;
    storage_channel.target = storage_target;
    storage_channel.tls_ca_file = training.conn.tls_ca;
    storage_channel.service_token = service_token;
    storage = storage::v1::StorageService::NewStub(rpc::MakeChannel(storage_channel));
  }
  absl::StatusOr<replay::ReplayResult> result =
      replay::RunReplay(o, *uploader, *stub, storage.get());
  if (!result.ok()) {
    io.err << "fraudctl replay: " << result.status().message() << "\n";
    return kExitFailure;
  }
  io.out << replay::FormatTable(*result);
  if (!json_out.empty()) {
    std::ofstream out(json_out, std::ios::binary | std::ios::trunc);
    out << replay::ToJson(*result) << "\n";
    if (!out) {
      io.err << "fraudctl replay: cannot write " << json_out << "\n";
      return kExitFailure;
    }
  }
  return kExitOk;
}

int RunTrain(const std::vector<std::string>& args, CommandIo& io) {
  TrainingConnection training;
  std::string families, params, description, comparison_uploads, train_uploads;
  bool watch = false, no_promote = false;
  double margin = 0, validation_fraction = 0;
  FlagSet flags("train",
                "Usage: fraudctl train [--families logreg,mlp,...] [--watch] [--no-promote]\n\n"
                "Starts a training run on the stored labelled data (queued when one is running).\n"
                "With --watch, prints progress lines until the run ends; the exit code is then 0\n"
                "only when the run succeeded.");
  training.Register(&flags);
  flags.String("families", &families,
               "comma-separated family names, e.g. logreg,mlp, or all (default: the server's)");
  flags.Bool("watch", &watch, "follow the run's progress until it ends");
  flags.Bool("no-promote", &no_promote, "register the winner but never promote it");
  flags.Double("margin", &margin, "promotion margin over the champion's AUPRC (0 = server's)");
  flags.Double("validation-fraction", &validation_fraction, "newest fraction used for validation");
  flags.String("params", &params, "run params k=v,k=v (grid=small, max_epochs=10, mlp.epochs=5)");
  flags.String("comparison-uploads", &comparison_uploads,
               "upload ids of the fixed comparison set (default: newest rows held out)");
  flags.String("train-uploads", &train_uploads, "train only on these upload ids");
  flags.String("description", &description, "recorded with the run");
  training.conn.timeout_seconds = 30;
  if (int code = ParseOrExit(flags, args, io, 0, 0); code >= 0) return code;

  tpb::StartRunRequest request;
  for (const std::string& f : SplitList(families)) request.add_families(f);
  std::map<std::string, std::string> p;
  absl::Status s = ParseParams(params, &p);
  if (s.ok()) s = ParseIds(comparison_uploads, request.mutable_comparison_upload_ids());
  if (s.ok()) s = ParseIds(train_uploads, request.mutable_train_upload_ids());
  if (!s.ok()) {
    io.err << "fraudctl train: " << s.message() << "\n";
    return kExitUsage;
  }
  for (const auto& [k, v] : p) (*request.mutable_params())[k] = v;
  request.set_no_promote(no_promote);
  request.set_promotion_margin(margin);
  request.set_validation_fraction(validation_fraction);
  request.set_description(description);
  request.set_trigger("manual");
  auto stub = tpb::TrainingService::NewStub(training.conn.Channel());
  tpb::StartRunResponse started;
  {
    std::unique_ptr<grpc::ClientContext> ctx = training.conn.Context();
    rpc::AddBearerToken(ctx.get(), training.token);
    const grpc::Status st = stub->StartRun(ctx.get(), request, &started);
    if (!st.ok()) {
      io.err << "fraudctl train: " << DescribeRpcError(st, training.conn.target) << "\n";
      return kExitFailure;
    }
  }
  io.out << "run " << started.run().id() << " " << StatusName(started.run().status()) << ": "
         << started.run().progress().message() << "\n";
  if (!watch) return kExitOk;

  grpc::ClientContext ctx;
  tpb::WatchRunRequest w;
  w.set_run_id(started.run().id());
  auto reader = stub->WatchRun(&ctx, w);
  tpb::WatchRunResponse message;
  spb::TrainingRun last = started.run();
  std::string previous;
  while (reader->Read(&message)) {
    last = message.run();
    const std::string line = ProgressLine(last);
    if (line != previous) io.out << line << "\n" << std::flush;
    previous = line;
  }
  const grpc::Status st = reader->Finish();
  if (!st.ok()) {
    io.err << "fraudctl train: watching: " << DescribeRpcError(st, training.conn.target) << "\n";
    return kExitFailure;
  }
  io.out << "\n";
  PrintRunDetail(last, io.out);
  return Terminal(last.status()) && last.status() == spb::RUN_STATUS_SUCCEEDED ? kExitOk
                                                                               : kExitFailure;
}

int RunRuns(const std::vector<std::string>& args, CommandIo& io) {
  ConnectionFlags conn;
  bool json = false;
  int64_t limit = 20;
  FlagSet flags("runs",
                "Usage: fraudctl runs [ID] [--json] [--limit N]\n\n"
                "Lists training runs (newest first), or shows run ID with its candidates, data\n"
                "and the promotion decision.");
  conn.Register(&flags, Service::kTraining);
  flags.Bool("json", &json, "print the response as JSON");
  flags.Int64("limit", &limit, "runs to list");
  if (int code = ParseOrExit(flags, args, io, 0, 1); code >= 0) return code;
  auto stub = tpb::TrainingService::NewStub(conn.Channel());
  google::protobuf::util::JsonPrintOptions jo;
  jo.add_whitespace = true;
  if (!flags.positional().empty()) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(flags.positional()[0], &id) || id <= 0) {
      io.err << "fraudctl runs: '" << flags.positional()[0] << "' is not a run id\n";
      return kExitUsage;
    }
    tpb::GetRunRequest request;
    request.set_run_id(id);
    tpb::GetRunResponse response;
    std::unique_ptr<grpc::ClientContext> ctx = conn.Context();
    const grpc::Status s = stub->GetRun(ctx.get(), request, &response);
    if (!s.ok()) {
      io.err << "fraudctl runs: " << DescribeRpcError(s, conn.target) << "\n";
      return kExitFailure;
    }
    if (json) {
      std::string out;
      (void)google::protobuf::util::MessageToJsonString(response.run(), &out, jo);
      io.out << out << "\n";
    } else {
      PrintRunDetail(response.run(), io.out);
    }
    return kExitOk;
  }
  tpb::ListRunsRequest request;
  request.set_page_size(static_cast<int32_t>(limit));
  tpb::ListRunsResponse response;
  std::unique_ptr<grpc::ClientContext> ctx = conn.Context();
  const grpc::Status s = stub->ListRuns(ctx.get(), request, &response);
  if (!s.ok()) {
    io.err << "fraudctl runs: " << DescribeRpcError(s, conn.target) << "\n";
    return kExitFailure;
  }
  if (json) {
    std::string out;
    (void)google::protobuf::util::MessageToJsonString(response, &out, jo);
    io.out << out << "\n";
    return kExitOk;
  }
  if (response.runs_size() == 0) {
    io.out << "no training run yet\n";
    return kExitOk;
  }
  io.out << absl::StrFormat("%-5s %-10s %-10s %-20s %-8s %-9s %s\n", "run", "status", "trigger",
                            "created (UTC)", "version", "promoted", "message");
  for (const spb::TrainingRun& r : response.runs()) {
    std::string message = r.message().empty() ? r.progress().message() : r.message();
    if (message.size() > 90) message = message.substr(0, 87) + "...";
    io.out << absl::StrFormat("%-5d %-10s %-10s %-20s %-8s %-9s %s\n", r.id(), StatusName(r.status()),
                              r.trigger(), UtcTime(r.created_at()),
                              r.model_version() > 0 ? absl::StrCat("v", r.model_version()) : "-",
                              r.promoted() ? "yes" : "no", message);
  }
  return kExitOk;
}

int RunPromote(const std::vector<std::string>& args, CommandIo& io) {
  TrainingConnection training;
  std::string reason;
  FlagSet flags("promote",
                "Usage: fraudctl promote VERSION [--reason TEXT]\n\n"
                "Makes a registered version the champion (promotion, or rollback to an older one)\n"
                "and has inference load it. When inference cannot load it, the previous champion\n"
                "is restored and the command fails.");
  training.Register(&flags);
  flags.String("reason", &reason, "recorded in the champion history");
  training.conn.timeout_seconds = 180;
  if (int code = ParseOrExit(flags, args, io, 1, 1); code >= 0) return code;
  int64_t version = 0;
  std::string text = flags.positional()[0];
  if (!text.empty() && (text[0] == 'v' || text[0] == 'V')) text = text.substr(1);
  if (!absl::SimpleAtoi(text, &version) || version <= 0) {
    io.err << "fraudctl promote: '" << flags.positional()[0] << "' is not a version number\n";
    return kExitUsage;
  }
  auto stub = tpb::TrainingService::NewStub(training.conn.Channel());
  tpb::PromoteRequest request;
  request.set_version(version);
  request.set_reason(reason);
  tpb::PromoteResponse response;
  std::unique_ptr<grpc::ClientContext> ctx = training.conn.Context();
  rpc::AddBearerToken(ctx.get(), training.token);
  const grpc::Status s = stub->Promote(ctx.get(), request, &response);
  if (!s.ok()) {
    io.err << "fraudctl promote: " << DescribeRpcError(s, training.conn.target) << "\n";
    return kExitFailure;
  }
  io.out << response.message() << "\n";
  if (!response.reloaded()) {
    io.err << "fraudctl promote: inference is not serving v" << version << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

namespace {

std::string WhatIfLine(const tpb::WhatIfPoint& p) {
  return absl::StrFormat("threshold %.6g: %.1f alerts/day (%d alerts, %.3f%% flagged), precision %s, recall %.3f",
                         p.threshold(), p.alerts_per_day(), p.alerts(), 100 * p.alert_fraction(),
                         p.alerts() > 0 ? absl::StrFormat("%.3f", p.precision()) : "n/a",
                         p.recall());
}

// "7", "v7" -> 7; "champion" -> 0 (the champion); -1 when neither.
int64_t VersionArg(std::string text, bool allow_champion) {
  if (allow_champion && text == "champion") return 0;
  if (!text.empty() && (text[0] == 'v' || text[0] == 'V')) text = text.substr(1);
  int64_t v = 0;
  return absl::SimpleAtoi(text, &v) && v > 0 ? v : -1;
}

}  // namespace

int RunOperatingPoint(const std::vector<std::string>& args, CommandIo& io) {
  TrainingConnection training;
  double threshold = -1, alerts_per_day = -1, fraction = -1;
  int64_t days = 0;
  std::string reason;
  FlagSet flags(
      "operating-point",
      "Usage: fraudctl operating-point show VERSION [--target STORAGE]\n"
      "       fraudctl operating-point what-if VERSION|champion [--days N]\n"
      "                [--threshold T | --alerts-per-day N | --fraction F]\n"
      "       fraudctl operating-point set VERSION|champion --reason TEXT\n"
      "                (--threshold T | --alerts-per-day N | --fraction F) [--days N] [--token T]\n\n"
      "show: the version's serving threshold (operating point or manifest) and its audited\n"
      "history (storage). what-if: expected alerts/day, precision and recall on the latest\n"
      "labelled data (newest --days days of Time, default 7) at the current point, the manifest's\n"
      "and a candidate (training). set: records the new operating point (admin; the budget is\n"
      "resolved on the same data) and reloads inference when the version is champion.");
  training.Register(&flags);
  flags.Double("threshold", &threshold, "candidate threshold in [0, 1]");
  flags.Double("alerts-per-day", &alerts_per_day, "candidate budget: at most N alerts per day");
  flags.Double("fraction", &fraction, "candidate budget: at most this fraction flagged");
  flags.Int64("days", &days, "newest days of labelled data to evaluate on (default 7)");
  flags.String("reason", &reason, "why (required by set; recorded in the history)");
  training.conn.timeout_seconds = 300;
  const bool show = !args.empty() && args[0] == "show";
  if (show) training.conn.target = DefaultTarget(Service::kStorage);
  if (int code = ParseOrExit(flags, args, io, 2, 2); code >= 0) return code;
  const std::string sub = flags.positional()[0];
  if (sub != "show" && sub != "what-if" && sub != "set") {
    io.err << "fraudctl operating-point: unknown subcommand '" << sub << "' (show, what-if, set)\n";
    return kExitUsage;
  }
  const int64_t version = VersionArg(flags.positional()[1], sub != "show");
  if (version < 0) {
    io.err << "fraudctl operating-point: '" << flags.positional()[1] << "' is not a version number\n";
    return kExitUsage;
  }
  const int candidates = (threshold >= 0) + (alerts_per_day >= 0) + (fraction >= 0);
  if (candidates > 1) {
    io.err << "fraudctl operating-point: give at most one of --threshold, --alerts-per-day, --fraction\n";
    return kExitUsage;
  }
  std::unique_ptr<grpc::ClientContext> ctx = training.conn.Context();
  if (sub == "show") {
    auto stub = storage::v1::StorageService::NewStub(training.conn.Channel());
    storage::v1::GetOperatingPointRequest request;
    request.set_version(version);
    request.set_include_history(true);
    storage::v1::GetOperatingPointResponse response;
    const grpc::Status s = stub->GetOperatingPoint(ctx.get(), request, &response);
    if (!s.ok()) {
      io.err << "fraudctl operating-point: " << DescribeRpcError(s, training.conn.target) << "\n";
      return kExitFailure;
    }
    io.out << absl::StrFormat("v%d serves at threshold %.6g (%s; manifest %.6g)\n", version,
                              response.threshold(),
                              response.has_point() ? "operating point" : "manifest",
                              response.manifest_threshold());
    for (const storage::v1::OperatingPoint& p : response.history()) {
      io.out << absl::StrFormat(
          "  #%d %s %s=%.6g -> threshold %.6g (was %.6g), expected %.1f alerts/day precision "
          "%.3f recall %.3f, by %s: %s\n",
          p.id(), UtcTime(p.changed_at()),
          absl::AsciiStrToLower(absl::StripPrefix(
              storage::v1::OperatingPointKind_Name(p.kind()), "OPERATING_POINT_KIND_")),
          p.requested_value(), p.threshold(), p.previous_threshold(), p.expected_alerts_per_day(),
          p.expected_precision(), p.expected_recall(), p.actor(), p.reason());
    }
    return kExitOk;
  }
  auto stub = tpb::TrainingService::NewStub(training.conn.Channel());
  if (sub == "what-if") {
    tpb::WhatIfRequest request;
    request.set_version(version);
    request.set_days(static_cast<int32_t>(days));
    if (threshold >= 0) request.set_threshold(threshold);
    if (alerts_per_day >= 0) request.set_alerts_per_day(alerts_per_day);
    if (fraction >= 0) request.set_alert_fraction(fraction);
    tpb::WhatIfResponse response;
    const grpc::Status s = stub->WhatIf(ctx.get(), request, &response);
    if (!s.ok()) {
      io.err << "fraudctl operating-point: " << DescribeRpcError(s, training.conn.target) << "\n";
      return kExitFailure;
    }
    io.out << absl::StrFormat("v%d on %d labelled rows (%d frauds) over %.0f day(s), days %d-%d%s\n",
                              response.version(), response.rows(), response.frauds(),
                              response.days(), response.first_day(), response.last_day(),
                              response.truncated() ? " (older days left out)" : "");
    io.out << "current (" << response.current_source() << "): " << WhatIfLine(response.current()) << "\n";
    io.out << "manifest: " << WhatIfLine(response.manifest()) << "\n";
    if (response.has_candidate()) io.out << "candidate: " << WhatIfLine(response.candidate()) << "\n";
    return kExitOk;
  }
  tpb::SetOperatingPointRequest request;
  request.set_version(version);
  request.set_reason(reason);
  request.set_days(static_cast<int32_t>(days));
  if (threshold >= 0) {
    request.set_kind(storage::v1::OPERATING_POINT_KIND_THRESHOLD);
    request.set_value(threshold);
  } else if (alerts_per_day >= 0) {
    request.set_kind(storage::v1::OPERATING_POINT_KIND_ALERTS_PER_DAY);
    request.set_value(alerts_per_day);
  } else if (fraction >= 0) {
    request.set_kind(storage::v1::OPERATING_POINT_KIND_FRACTION);
    request.set_value(fraction);
  } else {
    io.err << "fraudctl operating-point set: give --threshold, --alerts-per-day or --fraction\n";
    return kExitUsage;
  }
  rpc::AddBearerToken(ctx.get(), training.token);
  tpb::SetOperatingPointResponse response;
  const grpc::Status s = stub->SetOperatingPoint(ctx.get(), request, &response);
  if (!s.ok()) {
    io.err << "fraudctl operating-point: " << DescribeRpcError(s, training.conn.target) << "\n";
    return kExitFailure;
  }
  io.out << absl::StrFormat("v%d operating point #%d: threshold %.6g (was %.6g), expected %.1f "
                            "alerts/day, precision %.3f, recall %.3f\n",
                            response.point().version(), response.point().id(),
                            response.point().threshold(), response.point().previous_threshold(),
                            response.point().expected_alerts_per_day(),
                            response.point().expected_precision(),
                            response.point().expected_recall());
  io.out << response.message() << "\n";
  return kExitOk;
}

}  // namespace fraud::cli
