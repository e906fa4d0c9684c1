// fraud-bench-storage: how fast uploads reach PostgreSQL through the storage service, and how
// much memory the service needs for it.
//
// Figures (one JSON line each, see bench/common/bench_util.h), medians of --runs runs:
//   store_upload         seconds to parse a full-size CSV (fraud_csv, 64 KiB chunks, sha256 on
//                        the way) and stream it through StoreUpload (rows only) to a fraud-storage
//                        child process until the commit returns; floor "psql_copy_csv": psql
//                        "\copy bench_floor FROM file CSV HEADER" into a bare table with the CSV's
//                        columns, same file, same database, same run. Target ratio <= 1.2.
//   store_upload_scored  the same with a ScoreBatch per batch (predictions written too), same floor.
//   store_upload_rss_growth  growth of the fraud-storage resident set during the loads (max over
//                        runs, sampled every 10 ms from /proc/<pid>/status), MB; floor: its idle
//                        RSS before the first load. Target < 64 MB.
//   scan_transactions    seconds to ScanTransactions every stored row (Time order, 8192 per batch);
//                        floor "psql_copy_out": psql "\copy (same SELECT) TO /dev/null". Extra:
//                        rss_growth_mb of the service during the scan.
//
// Needs a PostgreSQL URI: --uri or FRAUD_BENCH_PG_URI (skipped with a note when absent). Works in
// a private schema bench_storage_<pid> that it drops at the end.
// Usage: fraud-bench-storage [--uri URI] [--file CSV] [--runs N] [--dir TMPDIR]
//                            [--server PATH/TO/fraud-storage] [--batch_rows N]
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/common/bench_util.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "services/common/core/sha256.h"
#include "services/common/csv/csv_reader.h"
#include "services/common/csv/synthetic_generator.h"
#include "services/common/rpc/channel.h"
#include "tests/testing/process_constellation.h"

namespace fraud::storage {
namespace {

namespace v1 = ::fraud::storage::v1;

constexpr int64_t kFullRows = 284807;
constexpr size_t kChunkBytes = 64 * 1024;

struct Args {
  std::string uri;
  std::string file;
  std::string dir;
  std::string server;
  int runs = 3;
  int batch_rows = 8192;
};

bool ParseArgs(int argc, char** argv, Args* args) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    if (a == "--uri") {
      args->uri = v;
    } else if (a == "--file") {
      args->file = v;
    } else if (a == "--dir") {
      args->dir = v;
    } else if (a == "--server") {
      args->server = v;
    } else if (a == "--runs") {
      args->runs = std::atoi(v.c_str());
      if (args->runs < 1) return false;
    } else if (a == "--batch_rows") {
      args->batch_rows = std::atoi(v.c_str());
      if (args->batch_rows < 1) return false;
    } else {
      return false;
    }
  }
  return true;
}

using bench::ShellQuote;
using bench::WithSearchPath;

void Exec(const std::string& uri, const std::string& sql) {
  pqxx::connection c(uri);
  pqxx::nontransaction t(c);
  t.exec(sql);
}

// Samples a process's VmRSS every 10 ms while running; max() is the peak seen.
class RssSampler {
 public:
  explicit RssSampler(int pid) : pid_(pid), thread_([this] {
    while (!stop_.load()) {
      const long rss = bench::RssBytes(pid_);
      if (rss > max_.load()) max_.store(rss);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }) {}
  ~RssSampler() { Stop(); }
  long Stop() {
    if (thread_.joinable()) {
      stop_.store(true);
      thread_.join();
    }
    return max_.load();
  }

 private:
  int pid_;
  std::atomic<bool> stop_{false};
  std::atomic<long> max_{0};
  std::thread thread_;
};

// Streams the CSV through StoreUpload; returns the rows stored, or -1 on failure.
int64_t StoreFile(v1::StorageService::Stub* stub, const std::string& path, int batch_rows,
                  bool scored) {
  grpc::ClientContext ctx;
  v1::StoreUploadResponse response;
  auto writer = stub->StoreUpload(&ctx, &response);
  v1::StoreUploadRequest req;
  req.mutable_begin()->set_file_name("bench.csv");
  if (!writer->Write(req)) return -1;

  csv::CsvReaderOptions options;
  options.batch_rows = batch_rows;
  v1::StoreUploadRequest rows_req;
  csv::CsvReader reader(options, [&](csv::RowBatch& batch) -> absl::Status {
    v1::UploadRows* rows = rows_req.mutable_rows();
    fraud::common::v1::TransactionBatch* b = rows->mutable_rows();
    b->set_num_rows(static_cast<uint32_t>(batch.num_rows()));
    b->mutable_features()->Assign(batch.features.begin(), batch.features.end());
    b->mutable_labels()->Assign(batch.labels.begin(), batch.labels.end());
    b->mutable_line_numbers()->Assign(batch.line_numbers.begin(), batch.line_numbers.end());
    if (scored) {
      auto* s = rows->mutable_scores();
      s->set_model_version(1);
      s->set_threshold(0.5);
      s->clear_scores();
      s->clear_decisions();
      for (size_t i = 0; i < batch.num_rows(); ++i) {
        const float score = static_cast<float>(i % 97) / 97.0f;
        s->add_scores(score);
        s->add_decisions(score > 0.5f);
      }
    }
    if (!writer->Write(rows_req)) return absl::UnavailableError("stream broken");
    return absl::OkStatus();
  });
  Sha256 sha;
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return -1;
  std::string chunk(kChunkBytes, '\0');
  int64_t bytes = 0;
  absl::Status status;
  while (status.ok()) {
    const ssize_t n = read(fd, chunk.data(), chunk.size());
    if (n <= 0) break;
    const std::string_view piece(chunk.data(), static_cast<size_t>(n));
    sha.Update(piece);
    bytes += n;
    status = reader.Feed(piece);
  }
  close(fd);
  if (status.ok()) status = reader.Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "csv: %s\n", status.ToString().c_str());
    ctx.TryCancel();
    writer->Finish();
    return -1;
  }
  req.Clear();
  req.mutable_commit()->set_sha256(sha.HexDigest());
  req.mutable_commit()->set_bytes(bytes);
  writer->Write(req);
  writer->WritesDone();
  const grpc::Status s = writer->Finish();
  if (!s.ok()) {
    std::fprintf(stderr, "StoreUpload: %s\n", s.error_message().c_str());
    return -1;
  }
  return response.upload().rows();
}

int64_t ScanAll(v1::StorageService::Stub* stub) {
  grpc::ClientContext ctx;
  v1::ScanTransactionsRequest req;
  auto reader = stub->ScanTransactions(&ctx, req);
  v1::ScanTransactionsResponse resp;
  int64_t rows = 0;
  while (reader->Read(&resp)) rows += resp.batch().num_rows();
  const grpc::Status s = reader->Finish();
  if (!s.ok()) {
    std::fprintf(stderr, "ScanTransactions: %s\n", s.error_message().c_str());
    return -1;
  }
  return rows;
}

double TimedShell(const std::string& command) {
  const double t0 = bench::NowSeconds();
  if (std::system(command.c_str()) != 0) return -1;
  return bench::NowSeconds() - t0;
}

int Run(const Args& args) {
  const std::string schema = absl::StrCat("bench_storage_", getpid());
  const std::string uri = WithSearchPath(args.uri, schema);
  std::string dir = args.dir;
  bool own_dir = false;
  if (dir.empty()) {
    char tmpl[] = "/tmp/fraud-bench-storage-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return 1;
    dir = tmpl;
    own_dir = true;
    chmod(dir.c_str(), 0755);
  }
  std::string file = args.file;
  if (file.empty()) {
    file = dir + "/full.csv";
    std::FILE* f = std::fopen(file.c_str(), "wb");
    csv::GeneratorOptions o;
    o.rows = kFullRows;
    const bool ok = f != nullptr && csv::WriteSyntheticCsv(o, f).ok();
    if (f != nullptr) std::fclose(f);
    if (!ok) {
      std::fprintf(stderr, "cannot generate %s\n", file.c_str());
      return 1;
    }
  }
  struct stat st {};
  stat(file.c_str(), &st);

  std::string cols = "\"Time\" double precision";
  for (int i = 1; i <= 28; ++i) absl::StrAppend(&cols, ", \"V", i, "\" double precision");
  absl::StrAppend(&cols, ", \"Amount\" double precision, \"Class\" smallint");
  try {
    Exec(args.uri, absl::StrCat("CREATE SCHEMA ", schema));
    Exec(uri, absl::StrCat("CREATE TABLE bench_floor (", cols, ")"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "database setup: %s\n", e.what());
    return 1;
  }

  // The service as a child process, so its memory is measured alone.
  // No metrics port, hence no /healthz: readiness is a first successful RPC. Its output goes to
  // our stderr.
  const int port = ::fraud::testing::FreePort();
  ::fraud::testing::ServiceProcess server(
      "storage", args.server,
      {"--database_url=" + uri, "--host=127.0.0.1", absl::StrCat("--port=", port),
       "--metrics_port=-1", "--log_level=warning"},
      "/dev/stderr", 0, ::fraud::testing::ServiceProcess::Health::kListening);
  if (!server.Spawn().ok()) {
    std::fprintf(stderr, "cannot start %s\n", args.server.c_str());
    return 1;
  }
  const int pid = server.pid();
  auto channel = rpc::MakeChannel({absl::StrCat("127.0.0.1:", port)});
  auto stub = v1::StorageService::NewStub(channel);
  bool ready = false;
  for (int i = 0; i < 300 && !ready; ++i) {
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(1));
    v1::GetDataStatsResponse stats;
    ready = stub->GetDataStats(&ctx, {}, &stats).ok();
    if (!ready) absl::SleepFor(absl::Milliseconds(100));
  }
  int rc = 0;
  if (!ready) {
    std::fprintf(stderr, "fraud-storage did not become ready\n");
    rc = 1;
  }

  // Warm the page cache so both paths read the file from memory.
  {
    std::string sink;
    const int fd = open(file.c_str(), O_RDONLY);
    std::string buf(1 << 20, '\0');
    while (fd >= 0 && read(fd, buf.data(), buf.size()) > 0) {
    }
    if (fd >= 0) close(fd);
  }
  const std::string psql_uri = ShellQuote(uri);
  const long idle_rss = bench::RssBytes(pid);
  long max_growth = 0;
  std::vector<double> floor_s, store_s, scored_s;
  int64_t stored_rows = 0;
  for (int run = 0; rc == 0 && run < args.runs; ++run) {
    Exec(uri, "TRUNCATE bench_floor");
    const double f = TimedShell(absl::StrCat("psql ", psql_uri, " -q -v ON_ERROR_STOP=1 -c ",
                                             ShellQuote(absl::StrCat("\\copy bench_floor FROM ",
                                                                     "'", file, "' CSV HEADER"))));
    if (f < 0) {
      rc = 1;
      break;
    }
    floor_s.push_back(f);
    for (int scored = 0; scored < 2; ++scored) {
      Exec(uri, "TRUNCATE uploads, transactions, predictions");
      const long before = bench::RssBytes(pid);
      RssSampler sampler(pid);
      const double t0 = bench::NowSeconds();
      stored_rows = StoreFile(stub.get(), file, args.batch_rows, scored == 1);
      const double t = bench::NowSeconds() - t0;
      max_growth = std::max(max_growth, sampler.Stop() - before);
      if (stored_rows <= 0) {
        rc = 1;
        break;
      }
      (scored ? scored_s : store_s).push_back(t);
    }
  }
  Exec(uri, "TRUNCATE bench_floor");

  if (rc == 0) {
    const double floor_med = bench::Median(floor_s);
    bench::Figure fig;
    fig.bench = "storage";
    fig.name = "store_upload";
    fig.value = bench::Median(store_s);
    fig.unit = "s";
    fig.floor_name = "psql_copy_csv";
    fig.floor_value = floor_med;
    fig.runs = static_cast<int>(store_s.size());
    fig.spread = bench::Spread(store_s);
    fig.extra["rows"] = static_cast<double>(stored_rows);
    fig.extra["rows_per_s"] = stored_rows / fig.value;
    fig.extra["floor_rows_per_s"] = stored_rows / floor_med;
    fig.extra["floor_spread"] = bench::Spread(floor_s);
    fig.extra["file_mb"] = st.st_size / 1e6;
    fig.extra["target_ratio"] = 1.2;
    bench::Print(fig);

    fig.name = "store_upload_scored";
    fig.value = bench::Median(scored_s);
    fig.runs = static_cast<int>(scored_s.size());
    fig.spread = bench::Spread(scored_s);
    fig.extra["rows_per_s"] = stored_rows / fig.value;
    bench::Print(fig);

    bench::Figure rss;
    rss.bench = "storage";
    rss.name = "store_upload_rss_growth";
    rss.value = max_growth / 1e6;
    rss.unit = "MB";
    rss.floor_name = "server_idle_rss";
    rss.floor_value = idle_rss / 1e6;
    rss.runs = static_cast<int>(store_s.size() + scored_s.size());
    rss.extra["target_mb"] = 64;
    rss.extra["peak_rss_mb"] = bench::PeakRssBytes(pid) / 1e6;
    bench::Print(rss);

    // Scan of the last upload's rows (the scored run left them in place).
    std::vector<double> scan_s, scan_floor_s;
    long scan_growth = 0;
    int64_t scanned = 0;
    const std::string select =
        "SELECT upload_id, line, time, amount, v, class FROM transactions "
        "ORDER BY time, upload_id, line";
    for (int run = 0; run < args.runs; ++run) {
      const double f = TimedShell(absl::StrCat("psql ", psql_uri, " -q -v ON_ERROR_STOP=1 -c ",
                                               ShellQuote(absl::StrCat("\\copy (", select,
                                                                       ") TO '/dev/null'"))));
      if (f < 0) break;
      scan_floor_s.push_back(f);
      const long before = bench::RssBytes(pid);
      RssSampler sampler(pid);
      const double t0 = bench::NowSeconds();
      scanned = ScanAll(stub.get());
      scan_s.push_back(bench::NowSeconds() - t0);
      scan_growth = std::max(scan_growth, sampler.Stop() - before);
      if (scanned != stored_rows) {
        std::fprintf(stderr, "scan returned %lld rows, want %lld\n",
                     static_cast<long long>(scanned), static_cast<long long>(stored_rows));
        rc = 1;
        break;
      }
    }
    if (rc == 0 && !scan_s.empty() && !scan_floor_s.empty()) {
      bench::Figure scan;
      scan.bench = "storage";
      scan.name = "scan_transactions";
      scan.value = bench::Median(scan_s);
      scan.unit = "s";
      scan.floor_name = "psql_copy_out";
      scan.floor_value = bench::Median(scan_floor_s);
      scan.runs = static_cast<int>(scan_s.size());
      scan.spread = bench::Spread(scan_s);
      scan.extra["rows_per_s"] = scanned / scan.value;
      scan.extra["rss_growth_mb"] = scan_growth / 1e6;
      bench::Print(scan);
    }
  }

  (void)server.Stop(absl::Minutes(1));
  try {
    Exec(args.uri, absl::StrCat("DROP SCHEMA ", schema, " CASCADE"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dropping %s: %s\n", schema.c_str(), e.what());
  }
  if (own_dir) {
    if (args.file.empty()) unlink(file.c_str());
    rmdir(dir.c_str());
  }
  return rc;
}

}  // namespace
}  // namespace fraud::storage

int main(int argc, char** argv) {
  fraud::storage::Args args;
  if (!fraud::storage::ParseArgs(argc, argv, &args)) {
    std::fprintf(stderr,
                 "usage: fraud-bench-storage [--uri URI] [--file CSV] [--runs N] [--dir DIR] "
                 "[--server fraud-storage] [--batch_rows N]\n");
    return 2;
  }
  if (args.uri.empty()) {
    const char* env = std::getenv("FRAUD_BENCH_PG_URI");
    if (env != nullptr) args.uri = env;
  }
  if (args.uri.empty()) {
    std::fprintf(stderr, "fraud-bench-storage: FRAUD_BENCH_PG_URI not set; skipped\n");
    return 0;
  }
  if (args.server.empty()) {
    // Default: the fraud-storage binary next to this one (build*/bin/).
    std::string self(4096, '\0');
    const ssize_t n = readlink("/proc/self/exe", self.data(), self.size());
    self.resize(n > 0 ? static_cast<size_t>(n) : 0);
    args.server = self.substr(0, self.rfind('/') + 1) + "fraud-storage";
  }
  return fraud::storage::Run(args);
}
