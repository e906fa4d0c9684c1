// fraud-bench-upload: a full-size upload end to end through the REST gateway, against the real
// services started as child processes, beside the floor of `psql \copy` of the same file into a
// bare table in the same PostgreSQL, same run.
//
//   FRAUD_BENCH_PG_URI=postgresql://fraud@127.0.0.1:PORT/fraud fraud-bench-upload
//
// The bench creates its own database (fraud_bench_<pid>) on that server and drops it at the end.
// Binaries come from $FRAUD_BIN_DIR, else the directory of this executable. The training service
// bootstraps a quick logistic model on synthetic rows; the upload starts once every service is
// SERVING (inference only serves with a model loaded).
//
// Figures (JSON lines, bench_util.h):
//   upload_e2e_rows_per_s     median of 3 uploads of 284,807 synthetic labelled rows (~150 MB):
//                             validated, stored, scored, predictions stored, summary returned;
//                             floor: psql \copy of the same file (time_ratio = e2e / floor time,
//                             issue #23's target <= 0.75; meets_target says whether it is met)
//   peak_rss_gateway_mb / peak_rss_ingest_mb   during the upload (VmHWM reset before it); floor:
//                             the idle RSS before it (target < 100 MB)
//   upload_e2e_4x_rows_per_s, peak_rss_*_4x_mb   the same with a 4x file (--big_runs, default
//                             --runs; median; time_ratio target <= 0.6)
//   stage:NAME, stage_4x:NAME the median seconds from ingest's first byte to the end of each
//                             stage of one upload (UploadSummary.stages); floor: the client's
//                             end-to-end seconds
//   concurrent_uploads_stored 8 concurrent uploads of 10,000 rows, each stored exactly once
//                             (counted in the database); floor: 8
// Flags: --runs=3 --rows=284807 --big_factor=4 (0 skips the 4x file) --big_runs=RUNS --keep
// (keep logs/db) --skip_concurrent.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "bench/common/bench_util.h"
#include "bench/common/service_bench.h"
#include "services/common/csv/synthetic_generator.h"
#include "tests/testing/process_constellation.h"

namespace fraud::bench {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

int64_t Scalar(const std::string& uri, const std::string& sql) {
  pqxx::connection c(uri);
  pqxx::nontransaction n(c);
  return n.exec1(sql)[0].as<int64_t>();
}

// Peak RSS of one process (MB, median over `runs_mb`) beside its idle RSS, against the target.
void PrintPeakRss(const std::string& name, const std::vector<double>& runs_mb, long idle_bytes) {
  Figure f{"upload",
           name,
           Median(runs_mb),
           "MB",
           "idle_rss_mb",
           static_cast<double>(idle_bytes) / 1048576.0,
           static_cast<int>(runs_mb.size()),
           Spread(runs_mb)};
  f.notes["target"] = "< 100 MB";
  Print(f);
}

// Writes out PostgreSQL's dirty buffers before a timed run, so that neither path pays for what
// the one before it left behind (the previous run's rows, the cleanup's VACUUM): without it the
// floor's \copy took 1.8 s or 2.7 s depending on what came before. Needs a superuser or
// pg_checkpoint; without either the runs go unsettled.
void Settle(const std::string& uri) {
  try {
    Exec(uri, "CHECKPOINT");
  } catch (const std::exception& e) {
    static bool said = false;
    if (!said) {
      std::fprintf(stderr, "fraud-bench-upload: no CHECKPOINT between runs: %s\n", e.what());
    }
    said = true;
  }
}

double PsqlCopySeconds(const std::string& uri, const fs::path& file, const fs::path& log) {
  Exec(uri, "TRUNCATE bench_floor");
  Settle(uri);
  const std::string cmd =
      absl::StrCat("\\copy bench_floor FROM '", file.string(), "' WITH (FORMAT csv, HEADER true)");
  const double start = NowSeconds();
  testing::ServiceProcess psql("psql", "/usr/bin/psql",
                               {uri, "-v", "ON_ERROR_STOP=1", "-q", "-c", cmd}, log.string(), 0,
                               testing::ServiceProcess::Health::kListening);
  if (!psql.Spawn().ok()) return -1;
  const absl::StatusOr<int> exit_code = psql.Wait(absl::InfiniteDuration());
  const double seconds = NowSeconds() - start;
  if (!exit_code.ok() || *exit_code != 0) return -1;
  return seconds;
}

// The stages of one upload as ingest reports them (UploadSummary.stages, proto JSON names), in
// seconds since ingest received the first byte, then the client's end-to-end time.
const std::vector<std::pair<std::string, std::string>>& StageNames() {
  static const auto* names = new std::vector<std::pair<std::string, std::string>>{
      {"headerValidated", "header_validated"}, {"firstBatchScored", "first_batch_scored"},
      {"lastBatchSent", "last_batch_sent"},     {"summaryComputed", "summary_computed"},
      {"lastCopy", "last_copy"},                {"committed", "committed"},
      {"summaryReturned", "summary_returned"},  {"storageCopySeconds", "storage_copy_seconds"},
      {"storageCommitSeconds", "storage_commit_seconds"}};
  return *names;
}

std::map<std::string, double> Stages(const json& summary, double e2e) {
  std::map<std::string, double> out;
  const json stages = summary.contains("stages") ? summary["stages"] : json::object();
  for (const auto& [json_name, name] : StageNames()) out[name] = stages.value(json_name, 0.0);
  out["client_e2e"] = e2e;
  return out;
}

void PrintStages(const std::map<std::string, double>& st) {
  std::string line = "    stages (s since first byte):";
  for (const auto& [json_name, name] : StageNames()) {
    (void)json_name;
    absl::StrAppend(&line, " ", name, " ", absl::StrFormat("%.3f", st.at(name)));
  }
  absl::StrAppend(&line, "; client e2e ", absl::StrFormat("%.3f", st.at("client_e2e")));
  std::fprintf(stderr, "%s\n", line.c_str());
}

// One figure per stage: the median time since the first byte, beside the median end-to-end time.
void PrintStageFigures(const std::string& prefix,
                       const std::vector<std::map<std::string, double>>& runs) {
  if (runs.empty()) return;
  for (const auto& [json_name, name] : StageNames()) {
    (void)json_name;
    std::vector<double> values, e2e;
    for (const auto& r : runs) {
      values.push_back(r.at(name));
      e2e.push_back(r.at("client_e2e"));
    }
    Figure f{"upload", prefix + name,          Median(values),
             "s",      "client_e2e_seconds",   Median(e2e),
             static_cast<int>(runs.size()),    Spread(values)};
    Print(f);
  }
}

// Prints one upload's CPU seconds per process and keeps them (with their sum) in `runs`.
void PrintCpu(const std::vector<std::pair<std::string, double>>& cpu,
              std::vector<std::map<std::string, double>>* runs) {
  std::map<std::string, double> run;
  std::string line = "    CPU seconds:";
  double total = 0;
  for (const auto& [name, seconds] : cpu) {
    run[name] = seconds;
    total += seconds;
    absl::StrAppend(&line, " ", name, " ", absl::StrFormat("%.2f", seconds));
  }
  run["total"] = total;
  absl::StrAppend(&line, "; total ", absl::StrFormat("%.2f", total));
  std::fprintf(stderr, "%s\n", line.c_str());
  runs->push_back(std::move(run));
}

// One figure per process: the median CPU seconds of an upload beside its median end-to-end time
// (ratio = how many cores that process kept busy on average).
void PrintCpuFigures(const std::string& prefix,
                     const std::vector<std::map<std::string, double>>& cpu_runs,
                     const std::vector<std::map<std::string, double>>& stage_runs) {
  if (cpu_runs.empty() || stage_runs.size() != cpu_runs.size()) return;
  std::vector<double> e2e;
  for (const auto& r : stage_runs) e2e.push_back(r.at("client_e2e"));
  for (const auto& [name, unused] : cpu_runs.front()) {
    (void)unused;
    std::vector<double> values;
    for (const auto& r : cpu_runs) values.push_back(r.at(name));
    Figure f{"upload", prefix + name,           Median(values),
             "cpu_s",  "client_e2e_seconds",    Median(e2e),
             static_cast<int>(cpu_runs.size()), Spread(values)};
    Print(f);
  }
}

// End-to-end rows/s of `rows`-row uploads (median of `e2e` seconds) beside psql \copy's.
// `target`: the largest e2e / floor time ratio issue #23 accepts for this file.
Figure E2eFigure(const std::string& name, int64_t rows, const std::vector<double>& e2e,
                 const std::vector<double>& floor, double file_mb, double target) {
  Figure fig{"upload",
             name,
             static_cast<double>(rows) / Median(e2e),
             "rows/s",
             "psql_copy_rows_per_s",
             static_cast<double>(rows) / Median(floor),
             static_cast<int>(e2e.size()),
             Spread(e2e)};
  fig.extra["seconds"] = Median(e2e);
  fig.extra["floor_seconds"] = Median(floor);
  fig.extra["time_ratio"] = Median(e2e) / Median(floor);
  fig.extra["file_mb"] = file_mb;
  fig.extra["rows"] = static_cast<double>(rows);
  fig.notes["target"] = absl::StrCat("time_ratio <= ", target);
  fig.notes["meets_target"] = Median(e2e) / Median(floor) <= target ? "yes" : "no";
  return fig;
}

struct Flags {
  std::string uri;
  int runs = 3;
  int64_t rows = 284807;
  int big_factor = 4;
  int big_runs = -1;  // default: runs
  bool keep = false;
  bool skip_concurrent = false;
};

// "--name=V" or "--name V"; an unknown flag or a value that is not a number is an error (a typo
// must not run a different bench: "--runs 1" once ran none and exited 0).
bool ParseFlags(int argc, char** argv, Flags* f) {
  auto number = [](const char* name, const char* v, auto* out) {
    if (v != nullptr && absl::SimpleAtoi(v, out) && *out >= 0) return true;
    std::fprintf(stderr, "fraud-bench-upload: %s needs a non-negative integer\n", name);
    return false;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--keep") {
      f->keep = true;
    } else if (arg == "--skip_concurrent") {
      f->skip_concurrent = true;
    } else if (const char* v = FlagValue(argc, argv, &i, "--uri")) {
      f->uri = v;
    } else if (arg.rfind("--runs", 0) == 0 && arg.rfind("--runs_", 0) != 0) {
      if (!number("--runs", FlagValue(argc, argv, &i, "--runs"), &f->runs)) return false;
    } else if (arg.rfind("--rows", 0) == 0) {
      if (!number("--rows", FlagValue(argc, argv, &i, "--rows"), &f->rows)) return false;
    } else if (arg.rfind("--big_factor", 0) == 0) {
      if (!number("--big_factor", FlagValue(argc, argv, &i, "--big_factor"), &f->big_factor)) {
        return false;
      }
    } else if (arg.rfind("--big_runs", 0) == 0) {
      if (!number("--big_runs", FlagValue(argc, argv, &i, "--big_runs"), &f->big_runs)) {
        return false;
      }
    } else {
      std::fprintf(stderr, "fraud-bench-upload: unknown flag %s\n", argv[i]);
      return false;
    }
  }
  if (f->big_runs < 0) f->big_runs = f->runs;
  return true;
}

int Run(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  const char* pg = std::getenv("FRAUD_BENCH_PG_URI");
  const std::string base_uri = !flags.uri.empty() ? flags.uri : pg ? pg : "";
  if (base_uri.empty()) {
    std::fprintf(stderr, "fraud-bench-upload: FRAUD_BENCH_PG_URI not set; skipped\n");
    return 0;
  }
  const int runs = flags.runs;
  const int64_t rows = flags.rows;
  const int big_factor = flags.big_factor;
  const int big_runs = flags.big_runs;
  const bool keep = flags.keep;
  const std::string bin =
      testing::BinDir(fs::read_symlink("/proc/self/exe").parent_path().string());
  const bool skip_concurrent = flags.skip_concurrent;
  const fs::path work = fs::temp_directory_path() / absl::StrCat("fraud-bench-upload-", ::getpid());
  fs::create_directories(work);
  const std::string db = absl::StrCat("fraud_bench_", ::getpid());
  const std::string uri = WithDatabase(base_uri, db);
  try {
    Exec(base_uri, absl::StrCat("CREATE DATABASE ", db));
    std::string cols = "\"Time\" double precision";
    for (int i = 1; i <= 28; ++i) absl::StrAppend(&cols, ", \"V", i, "\" double precision");
    absl::StrAppend(&cols, ", \"Amount\" double precision, \"Class\" smallint");
    Exec(uri, absl::StrCat("CREATE TABLE bench_floor (", cols, ")"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fraud-bench-upload: database setup: %s\n", e.what());
    return 1;
  }

  // The services (logs in `work`). Training bootstraps a quick logistic model; the upload starts
  // once every service is SERVING (inference only serves with a model loaded).
  testing::ConstellationOptions o;
  o.bin_dir = bin;
  o.work_dir = work.string();
  o.database_url = uri;
  for (const std::string& name : o.services) o.extra_flags[name] = {"--log_level=warning"};
  auto add = [&o](const std::string& name, std::vector<std::string> flags) {
    o.extra_flags[name].insert(o.extra_flags[name].end(), flags.begin(), flags.end());
  };
  add("training", {"--auto_train=false", "--bootstrap_rows=20000", "--families=logreg"});
  add("ingest", {"--max_upload_bytes=8589934592"});
  add("gateway",
      {"--max_upload_bytes=8589934592", "--max_concurrent_uploads=8", "--rate_limit_rps=0"});
  testing::ProcessConstellation c(o);
  if (c.names().size() != o.services.size()) {
    std::fprintf(stderr,
                 "fraud-bench-upload: a service is missing in %s (build it or set "
                 "FRAUD_BIN_DIR)\n",
                 bin.c_str());
    return 1;
  }
  const double wait_start = NowSeconds();
  if (absl::Status s = c.StartServing(absl::Seconds(900)); !s.ok()) {
    std::fprintf(stderr, "fraud-bench-upload: services not ready: %s\n", s.ToString().c_str());
    return 1;
  }
  const int gateway_port = c.port("gateway");
  const int gateway_pid = c.process("gateway").pid(), ingest_pid = c.process("ingest").pid();
  std::fprintf(stderr, "fraud-bench-upload: constellation ready after %.1f s\n",
               NowSeconds() - wait_start);
  // Where each upload's CPU goes: every service, PostgreSQL, and this process (the client).
  std::vector<std::pair<std::string, int>> cpu_named = {{"client", ::getpid()}};
  for (const std::string& name : c.names()) cpu_named.emplace_back(name, c.process(name).pid());
  std::vector<std::map<std::string, double>> cpu_runs, big_cpu_runs;

  const fs::path file = work / "full.csv";
  if (!WriteCsv(file, rows, 1)) {
    std::fprintf(stderr, "fraud-bench-upload: cannot write %s\n", file.c_str());
    return 1;
  }
  const double mb = static_cast<double>(fs::file_size(file)) / 1e6;
  const long idle_gw = RssBytes(gateway_pid), idle_ingest = RssBytes(ingest_pid);
  // One untimed run of each path first: the file in the page cache, and services, PostgreSQL's
  // caches and the bench database past their first use (the first upload after start-up takes
  // ~1.4x a later one: fresh malloc arenas, catalog caches, empty tables). Printed as
  // upload_first_e2e_seconds beside its \copy, not counted in the medians.
  {
    const double first_floor = PsqlCopySeconds(uri, file, work / "psql.log");
    Settle(uri);
    UploadOutcome first = UploadFile(gateway_port, file, "warmup.csv");
    if (first.status != 200 || first_floor < 0) {
      std::fprintf(stderr, "fraud-bench-upload: first upload failed (%d): %s\n", first.status,
                   first.error.c_str());
      return 1;
    }
    DeleteUpload(uri, std::stoll(first.summary.value("uploadId", "0")));
    std::fprintf(stderr, "  first (untimed) run: e2e %.2f s, psql \\copy %.2f s\n", first.seconds,
                 first_floor);
    Figure f{"upload", "upload_first_e2e_seconds", first.seconds, "s", "psql_copy_seconds",
             first_floor, 1, 0};
    f.notes["counted"] = "no: the first run after start-up, not in the medians";
    Print(f);
  }

  std::vector<double> e2e, floor, rss_gw, rss_ingest;
  std::vector<std::map<std::string, double>> stage_runs;
  int rc = 0;
  json last_summary;
  for (int i = 0; i < runs; ++i) {
    const double f = PsqlCopySeconds(uri, file, work / "psql.log");
    if (f < 0) {
      std::fprintf(stderr, "fraud-bench-upload: psql \\copy failed; see %s\n",
                   (work / "psql.log").c_str());
      return 1;
    }
    floor.push_back(f);
    Settle(uri);
    ResetPeak(gateway_pid);
    ResetPeak(ingest_pid);
    RssSampler sampler({gateway_pid, ingest_pid});
    const CpuSnapshot cpu_before(cpu_named);
    UploadOutcome u = UploadFile(gateway_port, file, "full.csv");
    PrintCpu(CpuSnapshot(cpu_named).Since(cpu_before), &cpu_runs);
    std::vector<long> peak = sampler.Stop();
    if (u.status != 200) {
      std::fprintf(stderr, "fraud-bench-upload: upload failed (%d): %s\n", u.status,
                   u.error.c_str());
      rc = 1;
      break;
    }
    const int64_t id = std::stoll(u.summary.value("uploadId", "0"));
    const int64_t stored = Scalar(uri, absl::StrCat("SELECT count(*) FROM transactions WHERE "
                                                    "upload_id = ",
                                                    id));
    const int64_t predicted = Scalar(uri, absl::StrCat("SELECT count(*) FROM predictions WHERE "
                                                       "upload_id = ",
                                                       id));
    if (stored != rows || predicted != rows || !u.summary.value("scored", false)) {
      std::fprintf(stderr, "fraud-bench-upload: upload %lld stored %lld rows, %lld predictions\n",
                   static_cast<long long>(id), static_cast<long long>(stored),
                   static_cast<long long>(predicted));
      rc = 1;
    }
    e2e.push_back(u.seconds);
    rss_gw.push_back(static_cast<double>(peak[0]) / 1048576.0);
    rss_ingest.push_back(static_cast<double>(peak[1]) / 1048576.0);
    last_summary = u.summary;
    std::fprintf(stderr,
                 "  run %d: e2e %.2f s, psql \\copy %.2f s, RSS gateway %.1f MB, ingest %.1f MB\n",
                 i + 1, u.seconds, f, rss_gw.back(), rss_ingest.back());
    stage_runs.push_back(Stages(u.summary, u.seconds));
    PrintStages(stage_runs.back());
    DeleteUpload(uri, id);
  }
  if (!e2e.empty()) {
    Figure fig = E2eFigure("upload_e2e_rows_per_s", rows, e2e, floor, mb, 0.75);
    fig.extra["mb_per_s"] = mb / Median(e2e);
    if (last_summary.contains("metrics")) {
      fig.extra["auprc"] = last_summary["metrics"].value("auprc", 0.0);
    }
    // Alerts whose reasons the upload computed (one explain Predict per batch with alerts; 0
    // means the run measured no explaining). int64 fields are JSON strings.
    fig.extra["alerts_explained"] = std::stod(last_summary.value("alertsExplained", "0"));
    fig.extra["predicted_frauds"] = std::stod(last_summary.value("predictedFrauds", "0"));
    Print(fig);
    PrintPeakRss("peak_rss_gateway_mb", rss_gw, idle_gw);
    PrintPeakRss("peak_rss_ingest_mb", rss_ingest, idle_ingest);
    PrintStageFigures("stage:", stage_runs);
    PrintCpuFigures("cpu:", cpu_runs, stage_runs);
  }

  if (rc == 0 && big_factor > 1) {
    const fs::path big = work / "big.csv";
    const int64_t big_rows = rows * big_factor;
    if (WriteCsv(big, big_rows, 2)) {
      fs::remove(file);
      std::vector<double> big_e2e, big_floor, big_gw, big_ingest;
      std::vector<std::map<std::string, double>> big_stages;
      for (int i = 0; i < big_runs && rc == 0; ++i) {
        const double f = PsqlCopySeconds(uri, big, work / "psql.log");
        Settle(uri);
        ResetPeak(gateway_pid);
        ResetPeak(ingest_pid);
        RssSampler sampler({gateway_pid, ingest_pid});
        const CpuSnapshot cpu_before(cpu_named);
        UploadOutcome u = UploadFile(gateway_port, big, "big.csv");
        PrintCpu(CpuSnapshot(cpu_named).Since(cpu_before), &big_cpu_runs);
        std::vector<long> peak = sampler.Stop();
        if (u.status != 200 || f < 0) {
          std::fprintf(stderr, "fraud-bench-upload: 4x upload failed (%d): %s\n", u.status,
                       u.error.c_str());
          rc = 1;
          break;
        }
        big_e2e.push_back(u.seconds);
        big_floor.push_back(f);
        big_gw.push_back(static_cast<double>(peak[0]) / 1048576.0);
        big_ingest.push_back(static_cast<double>(peak[1]) / 1048576.0);
        big_stages.push_back(Stages(u.summary, u.seconds));
        std::fprintf(stderr,
                     "  4x run %d: e2e %.2f s, psql \\copy %.2f s (ratio %.2f), RSS gateway %.1f "
                     "MB, ingest %.1f MB\n",
                     i + 1, u.seconds, f, u.seconds / f, big_gw.back(), big_ingest.back());
        PrintStages(big_stages.back());
        DeleteUpload(uri, std::stoll(u.summary.value("uploadId", "0")));
      }
      if (!big_e2e.empty()) {
        Print(E2eFigure("upload_e2e_4x_rows_per_s", big_rows, big_e2e, big_floor,
                        static_cast<double>(fs::file_size(big)) / 1e6, 0.6));
        PrintPeakRss("peak_rss_gateway_4x_mb", big_gw, idle_gw);
        PrintPeakRss("peak_rss_ingest_4x_mb", big_ingest, idle_ingest);
        PrintStageFigures("stage_4x:", big_stages);
        PrintCpuFigures("cpu_4x:", big_cpu_runs, big_stages);
      }
      fs::remove(big);
    }
  }

  if (rc == 0 && !skip_concurrent) {
    // 8 concurrent uploads of distinct 10,000-row files.
    constexpr int kConcurrent = 8;
    constexpr int64_t kRows = 10000;
    std::vector<fs::path> files;
    for (int i = 0; i < kConcurrent; ++i) {
      files.push_back(work / absl::StrCat("c", i, ".csv"));
      WriteCsv(files.back(), kRows, 100 + i);
    }
    std::vector<UploadOutcome> outcomes(kConcurrent);
    std::vector<std::thread> threads;
    const double t0 = NowSeconds();
    for (int i = 0; i < kConcurrent; ++i) {
      threads.emplace_back([&, i] {
        outcomes[i] = UploadFile(gateway_port, files[i], absl::StrCat("c", i, ".csv"));
      });
    }
    for (auto& t : threads) t.join();
    const double seconds = NowSeconds() - t0;
    int ok = 0;
    std::string ids;
    for (const UploadOutcome& o : outcomes) {
      if (o.status != 200) {
        std::fprintf(stderr, "  concurrent upload failed (%d): %s\n", o.status, o.error.c_str());
        continue;
      }
      ++ok;
      absl::StrAppend(&ids, ids.empty() ? "" : ",", o.summary.value("uploadId", "0"));
    }
    const int64_t uploads =
        Scalar(uri, "SELECT count(*) FROM uploads WHERE file_name LIKE 'c%.csv'");
    const int64_t stored = Scalar(uri,
                                  "SELECT count(*) FROM transactions t JOIN uploads u ON "
                                  "u.id = t.upload_id WHERE u.file_name LIKE 'c%.csv'");
    const int64_t exactly_once =
        Scalar(uri, absl::StrCat("SELECT count(*) FROM (SELECT upload_id FROM transactions WHERE "
                                 "upload_id IN (",
                                 ids.empty() ? "0" : ids,
                                 ") GROUP BY upload_id HAVING count(*) = ", kRows, ") s"));
    Figure c{"upload",
             "concurrent_uploads_stored",
             static_cast<double>(exactly_once),
             "uploads",
             "uploads_sent",
             kConcurrent,
             1,
             0};
    c.extra["ok_answers"] = ok;
    c.extra["uploads_rows"] = static_cast<double>(uploads);
    c.extra["rows_in_db"] = static_cast<double>(stored);
    c.extra["expected_rows"] = static_cast<double>(kConcurrent * kRows);
    c.extra["seconds"] = seconds;
    c.extra["rows_per_s"] = kConcurrent * kRows / seconds;
    Print(c);
    if (exactly_once != kConcurrent || stored != kConcurrent * kRows) rc = 1;
  }

  c.Stop(absl::Seconds(15));
  if (!keep) {
    try {
      Exec(base_uri, absl::StrCat("DROP DATABASE IF EXISTS ", db));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fraud-bench-upload: drop database: %s\n", e.what());
    }
    fs::remove_all(work);
  } else {
    std::fprintf(stderr, "fraud-bench-upload: kept %s and database %s\n", work.c_str(), db.c_str());
  }
  return rc;
}

}  // namespace
}  // namespace fraud::bench

int main(int argc, char** argv) { return fraud::bench::Run(argc, argv); }
