// fraud-bench-quality (`./fraud bench quality`): model quality beside standard peers on exactly
// the same rows, in the same run.
//
//   1. starts the real services (no bootstrap model, no automatic retraining) on a fresh database;
//   2. runs the replay (clients/replay): splits the data by Time into initial + P1..P4, uploads
//      them through ingest, trains a version after the initial part and after each of P1..P3,
//      and evaluates every version on P4 (never trained on), unweighted and with normal rows
//      re-weighted to the population fraud rate;
//   3. runs bench/quality/peers.py on the same part files: logistic regression, random forest,
//      XGBoost and an MLP with standard settings, trained per stage on the rows our version of
//      that stage trains on, scored on P4 with the same weights;
//   4. prints one JSON line per version, `value` = our weighted AUPRC on P4 and `floor_value` =
//      the best peer's on the same rows (ratio >= 1 means ours is at least as good), every peer's
//      line, and one line with the targets.
//
// Flags: --data=FILE (default: $FRAUD_REAL_DATA, else ../shared/data/creditcard-real.csv beside
// the source tree, else a synthetic file of --synthetic_rows rows), --boundaries=t1,t2,t3,t4
// (default: shared/data/STATS.md's estimates of the original file's row boundaries),
// --families=a,b --params=k=v,k=v (run params of every training run), --weight_to_rate=0.001727,
// --peers=a,b (subset of peers.py's), --skip_peers, --work_dir=DIR (keep the part files there),
// --ceiling (also peers.py --ceiling: per stage, the best weighted AUPRC on P4 of a wide grid of
// standard models and their averages, the configuration chosen by looking at P4: an upper bound
// for any honest selection among them, printed as ceiling_stageK and in the targets line).
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/common/bench_database.h"
#include "bench/common/bench_util.h"
#include "bench/common/service_bench.h"
#include "clients/replay/replay.h"
#include "services/common/rpc/channel.h"
#include "tests/testing/process_constellation.h"

namespace fraud::bench {
namespace {

// shared/data/STATS.md: estimated Time of the original file's rows 100,000 / 146,202 / 192,404 /
// 238,606; the synthetic generator spans the same two days, so they split it alike.
constexpr char kDefaultBoundaries[] = "67736,87299,129552,149681";
constexpr double kPopulationFraudRate = 0.001727;
// The targets (#22): final champion >= 0.85, version 1 >= 0.80 (weighted AUPRC on P4).
constexpr double kChampionTarget = 0.85;
constexpr double kFirstVersionTarget = 0.80;

struct Config {
  std::string data;
  std::string boundaries = kDefaultBoundaries;
  std::string families;
  std::string params;
  std::string peers;
  std::string work_dir;
  double weight_to_rate = kPopulationFraudRate;
  int64_t synthetic_rows = 284807;
  bool skip_peers = false;
  bool ceiling = false;
  // The delayed-label protocol (replay's label_delay.h): < 0 = off.
  double label_delay_days = -1;
  int64_t review_budget = 100;
};

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: fraud-bench-quality [--data=FILE.csv] [--boundaries=t1,t2,t3,t4] "
               "[--families=a,b] [--params=k=v,k=v] [--weight_to_rate=0.001727] "
               "[--peers=a,b] [--skip_peers] [--ceiling] [--synthetic_rows=N] [--work_dir=DIR] "
               "[--label_delay_days=D [--review_budget=K]]\n");
  std::exit(2);
}

Config ParseArgs(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) { return FlagValue(argc, argv, &i, absl::StrCat("--", name)); };
    if (const char* v = value("data")) {
      c.data = v;
    } else if (const char* v = value("boundaries")) {
      c.boundaries = v;
    } else if (const char* v = value("families")) {
      c.families = v;
    } else if (const char* v = value("params")) {
      c.params = v;
    } else if (const char* v = value("peers")) {
      c.peers = v;
    } else if (const char* v = value("work_dir")) {
      c.work_dir = v;
    } else if (const char* v = value("weight_to_rate")) {
      c.weight_to_rate = std::atof(v);
      if (!(c.weight_to_rate > 0 && c.weight_to_rate < 1)) Usage();
    } else if (const char* v = value("synthetic_rows")) {
      c.synthetic_rows = std::atoll(v);
      if (c.synthetic_rows < 1000) Usage();
    } else if (const char* v = value("label_delay_days")) {
      c.label_delay_days = std::atof(v);
      if (!(c.label_delay_days >= 0)) Usage();
    } else if (const char* v = value("review_budget")) {
      c.review_budget = std::atoll(v);
      if (c.review_budget < 0 || c.review_budget > 100000) Usage();
    } else if (a == "--skip_peers") {
      c.skip_peers = true;
    } else if (a == "--ceiling") {
      c.ceiling = true;
    } else {
      Usage();
    }
  }
  return c;
}

// The data file: the flag, $FRAUD_REAL_DATA, the genuine sample beside the checkout, or synthetic.
std::string ResolveData(const Config& c, const std::string& root, const std::string& work_dir,
                        std::string* source) {
  if (!c.data.empty()) {
    *source = "file";
    return c.data;
  }
  const char* env = std::getenv("FRAUD_REAL_DATA");
  for (const std::string& candidate :
       {std::string(env == nullptr ? "" : env), root + "/../shared/data/creditcard-real.csv"}) {
    if (!candidate.empty() && std::filesystem::exists(candidate)) {
      *source = "genuine sample";
      return candidate;
    }
  }
  const std::string path = work_dir + "/synthetic.csv";
  if (!WriteCsv(path, c.synthetic_rows, 7)) {
    std::fprintf(stderr, "fraud-bench-quality: cannot write %s\n", path.c_str());
    std::exit(1);
  }
  *source = absl::StrCat("synthetic, ", c.synthetic_rows, " rows");
  return path;
}

absl::Status ParseParams(const std::string& text, std::map<std::string, std::string>* out) {
  for (absl::string_view kv : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (p.first.empty() || p.second.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--params: '", kv, "' is not k=v"));
    }
    (*out)[p.first] = p.second;
  }
  return absl::OkStatus();
}

// Runs peers.py on the replay's part files (with --ceiling when `ceiling`); one parsed JSON
// object per output line.
absl::StatusOr<std::vector<nlohmann::json>> RunPeers(const Config& c, const std::string& root,
                                                     const replay::ReplayResult& result,
                                                     bool ceiling) {
  std::vector<std::string> paths;
  for (const replay::Part& p : result.parts) paths.push_back(p.path);
  std::string command = absl::StrCat("/usr/bin/python3 ", root, "/bench/quality/peers.py --parts ",
                                     absl::StrJoin(paths, ","), " --weight-to-rate ",
                                     c.weight_to_rate);
  if (!c.peers.empty()) absl::StrAppend(&command, " --peers ", c.peers);
  if (ceiling) absl::StrAppend(&command, " --ceiling");
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError("cannot start peers.py");
  std::vector<nlohmann::json> out;
  char line[4096];
  while (std::fgets(line, sizeof(line), pipe) != nullptr) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) continue;
    if (ceiling) {
      std::fprintf(stderr, "  ceiling %-18s weighted AUPRC %.3f (%s; %d configurations, %.1f s)\n",
                   j.value("trained_on", "").c_str(), j.value("ceiling", 0.0),
                   j.value("ceiling_config", "").c_str(), j.value("configs", 0),
                   j.value("seconds", 0.0));
    } else {
      std::fprintf(stderr, "  peer %-20s %-18s weighted AUPRC %.3f (%.1f s)\n",
                   j.value("peer", "").c_str(), j.value("trained_on", "").c_str(),
                   j.value("weighted_auprc", 0.0), j.value("seconds", 0.0));
    }
    out.push_back(std::move(j));
  }
  const int rc = ::pclose(pipe);
  if (rc != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "peers.py failed (exit ", rc, "); it needs Debian's python3-sklearn and python3-xgboost"));
  }
  return out;
}

// One line per line of peers.py: each peer's weighted AUPRC per stage, or with `ceiling` each
// stage's ceiling (peers.py --ceiling).
void PrintPeerLines(const std::vector<nlohmann::json>& lines, bool ceiling) {
  for (const nlohmann::json& j : lines) {
    Figure f;
    f.bench = "quality";
    f.unit = "weighted_auprc";
    f.extra["seconds"] = j.value("seconds", 0.0);
    f.notes["trained_on"] = j.value("trained_on", "");
    if (ceiling) {
      f.name = absl::StrCat("ceiling_stage", j.value("stage", 0));
      f.value = j.value("ceiling", 0.0);
      f.extra["configs"] = j.value("configs", 0);
      f.extra["median_config"] = j.value("median_config", 0.0);
      f.notes["config"] = j.value("ceiling_config", "");
      f.notes["chosen_on"] = "P4 (an upper bound, not a peer)";
    } else {
      f.name = absl::StrCat("peer_", j.value("peer", ""), "_stage", j.value("stage", 0));
      f.value = j.value("weighted_auprc", 0.0);
      f.extra["auprc"] = j.value("auprc", 0.0);
      f.extra["train_rows"] = j.value("train_rows", 0);
    }
    Print(f);
  }
}

// The ceiling of stage k, or -1 when there is none.
double CeilingOf(const std::vector<nlohmann::json>& ceilings, size_t k) {
  for (const nlohmann::json& j : ceilings) {
    if (j.value("stage", -1) == static_cast<int>(k)) return j.value("ceiling", 0.0);
  }
  return -1;
}

// Our version of stage k beside the best peer of the same stage; then the targets line.
void PrintComparison(const replay::ReplayResult& result, const std::vector<nlohmann::json>& peers,
                     const std::vector<nlohmann::json>& ceilings, const std::string& data_source,
                     const std::string& boundaries) {
  double previous_promoted = -1;
  bool monotone = true;
  double champion = -1;
  double champion_best_peer = 0;
  double champion_ceiling = -1;
  for (size_t k = 0; k < result.versions.size(); ++k) {
    const replay::VersionResult& v = result.versions[k];
    const nlohmann::json* best = nullptr;
    for (const nlohmann::json& j : peers) {
      if (j.value("stage", -1) != static_cast<int>(k)) continue;
      if (best == nullptr || j.value("weighted_auprc", 0.0) > best->value("weighted_auprc", 0.0)) {
        best = &j;
      }
    }
    Figure f;
    f.bench = "quality";
    f.name = absl::StrCat("version_", k + 1, "_on_P4");
    f.value = v.has_weighted ? v.weighted.auprc() : 0;
    f.unit = "weighted_auprc";
    if (best != nullptr) {
      f.floor_name = absl::StrCat("best_peer_", best->value("peer", ""));
      f.floor_value = best->value("weighted_auprc", 0.0);
    }
    if (const double ceiling = CeilingOf(ceilings, k); ceiling >= 0) f.extra["ceiling"] = ceiling;
    f.extra["version"] = static_cast<double>(v.version);
    f.extra["promoted"] = v.promoted ? 1 : 0;
    f.extra["auprc"] = v.metrics.auprc();
    f.extra["ci_low"] = v.has_weighted ? v.weighted.auprc_ci_low() : 0;
    f.extra["ci_high"] = v.has_weighted ? v.weighted.auprc_ci_high() : 0;
    f.notes["trained_on"] = v.trained_on;
    f.notes["family"] = v.family;
    f.notes["candidate"] = v.candidate;
    if (!v.error.empty()) f.notes["error"] = v.error;
    Print(f);
    if (v.promoted) {
      if (previous_promoted >= 0 && f.value < previous_promoted) monotone = false;
      previous_promoted = f.value;
      champion = f.value;
      champion_best_peer = f.floor_value;
      champion_ceiling = CeilingOf(ceilings, k);
    }
  }
  const double first = result.versions.empty() || !result.versions[0].has_weighted
                           ? 0
                           : result.versions[0].weighted.auprc();
  Figure t;
  t.bench = "quality";
  t.name = "targets";
  t.value = champion;
  t.unit = "weighted_auprc";
  t.floor_name = "best_peer_same_rows";
  t.floor_value = champion_best_peer;
  t.extra["champion_target"] = kChampionTarget;
  t.extra["champion_met"] = champion >= kChampionTarget ? 1 : 0;
  t.extra["version_1"] = first;
  t.extra["version_1_met"] = first >= kFirstVersionTarget ? 1 : 0;
  t.extra["promoted_monotone"] = monotone ? 1 : 0;
  t.extra["beats_best_peer"] = peers.empty() ? -1 : (champion >= champion_best_peer ? 1 : 0);
  if (!ceilings.empty()) {
    // With --ceiling: the most any of the grid's models reaches on the champion's / version 1's
    // training rows when chosen on P4 (a target above it cannot be met by choosing among them).
    t.extra["champion_ceiling"] = champion_ceiling;
    t.extra["version_1_ceiling"] = CeilingOf(ceilings, 0);
  }
  t.extra["comparison_rows"] = static_cast<double>(result.comparison_rows);
  t.extra["comparison_frauds"] = static_cast<double>(result.comparison_frauds);
  t.notes["data"] = data_source;
  t.notes["boundaries"] = boundaries;
  Print(t);
}

rpc::ChannelOptions Target(const testing::ProcessConstellation& c, const std::string& name) {
  rpc::ChannelOptions o;
  o.target = c.target(name);
  return o;
}

int Main(int argc, char** argv) {
  const Config config = ParseArgs(argc, argv);
  const std::string root = testing::SourceRoot(FRAUD_SOURCE_DIR);
  std::string work_dir = config.work_dir;
  if (work_dir.empty()) {
    work_dir = (std::filesystem::temp_directory_path() / "fraud-bench-quality-XXXXXX").string();
    if (::mkdtemp(work_dir.data()) == nullptr) {
      std::perror("fraud-bench-quality: mkdtemp");
      return 1;
    }
  }
  std::filesystem::create_directories(work_dir);
  // A temporary work directory goes at the end; one the user named stays.
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ignored;
      if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
    }
  } cleanup{config.work_dir.empty() ? work_dir : ""};
  std::string data_source;
  const std::string data = ResolveData(config, root, work_dir, &data_source);

  replay::ReplayOptions o;
  o.csv_path = data;
  if (absl::StatusOr<std::vector<double>> b = replay::ParseBoundaries(config.boundaries); b.ok()) {
    o.boundaries = *b;
  } else {
    std::fprintf(stderr, "fraud-bench-quality: %s\n", b.status().ToString().c_str());
    return 2;
  }
  if (absl::Status s = ParseParams(config.params, &o.params); !s.ok()) {
    std::fprintf(stderr, "fraud-bench-quality: %s\n", s.ToString().c_str());
    return 2;
  }
  o.families = absl::StrSplit(config.families, ',', absl::SkipEmpty());
  o.work_dir = work_dir + "/parts";
  o.weight_to_rate = config.weight_to_rate;
  o.bootstrap_resamples = 200;
  o.label_delay.enabled = config.label_delay_days >= 0;
  o.label_delay.days = config.label_delay_days;
  o.label_delay.review_budget = config.review_budget;
  o.log = [](const std::string& line) { std::fprintf(stderr, "  %s\n", line.c_str()); };

  absl::StatusOr<std::unique_ptr<BenchDatabase>> db = BenchDatabase::Open(root, "bench_quality");
  if (!db.ok()) {
    std::fprintf(stderr, "fraud-bench-quality: %s\n", db.status().ToString().c_str());
    return 1;
  }
  testing::ConstellationOptions co;
  co.bin_dir = testing::BinDir(FRAUD_BIN_DIR_DEFAULT);
  co.database_url = (*db)->uri();
  co.work_dir = work_dir + "/services";
  co.services = {"storage", "inference", "training", "ingest"};
  co.extra_flags["training"] = {"--bootstrap=false", "--auto_train=false"};
  o.token = co.admin_token;
  testing::ProcessConstellation c(co);
  if (absl::Status s = c.Start(); !s.ok()) {
    std::fprintf(stderr, "fraud-bench-quality: constellation: %s\n", s.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "fraud-bench-quality: data %s (%s), boundaries %s\n", data.c_str(),
               data_source.c_str(), config.boundaries.c_str());
  std::unique_ptr<replay::Uploader> uploader =
      replay::MakeIngestUploader(rpc::MakeChannel(Target(c, "ingest")), co.admin_token);
  auto training = training::v1::TrainingService::NewStub(
      rpc::MakeChannel(Target(c, "training")));
  const double start = NowSeconds();
  auto storage = storage::v1::StorageService::NewStub(rpc::MakeChannel(Target(c, "storage")));
  absl::StatusOr<replay::ReplayResult> result =
      replay::RunReplay(o, *uploader, *training, storage.get());
  if (!result.ok()) {
    std::fprintf(stderr, "fraud-bench-quality: replay: %s\n", result.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "\n%s\nreplay took %.1f s\n", replay::FormatTable(*result).c_str(),
               NowSeconds() - start);
  c.Stop();
  // peers.py's lines (its ceiling's with `ceiling`); nullopt once the failure is printed.
  auto run_peers = [&](bool ceiling) -> std::optional<std::vector<nlohmann::json>> {
    absl::StatusOr<std::vector<nlohmann::json>> p = RunPeers(config, root, *result, ceiling);
    if (p.ok()) return *std::move(p);
    std::fprintf(stderr, "fraud-bench-quality: %s\n", p.status().ToString().c_str());
    return std::nullopt;
  };
  std::vector<nlohmann::json> peers;
  if (o.label_delay.enabled && !config.skip_peers) {
    // The peers train on whole part files; with delayed labels our versions train on the labels
    // known at the time, so the peers would not be on the same rows.
    std::fprintf(stderr, "fraud-bench-quality: no peers with --label_delay_days (they would not "
                         "train on the same rows)\n");
  } else if (!config.skip_peers) {
    std::optional<std::vector<nlohmann::json>> p = run_peers(false);
    if (!p) return 1;
    peers = *std::move(p);
    PrintPeerLines(peers, false);
  }
  std::vector<nlohmann::json> ceilings;
  if (config.ceiling && !o.label_delay.enabled) {
    std::optional<std::vector<nlohmann::json>> p = run_peers(true);
    if (!p) return 1;
    ceilings = *std::move(p);
    PrintPeerLines(ceilings, true);
  }
  PrintComparison(*result, peers, ceilings, data_source, config.boundaries);
  return 0;
}

}  // namespace
}  // namespace fraud::bench

int main(int argc, char** argv) { return fraud::bench::Main(argc, argv); }
