// fraud-bench-csv: throughput and memory of the streaming CSV reader/validator.
//
// Figures (one JSON line each, see bench/common/bench_util.h):
//   parse_validate  MB/s of read() in 64 KiB chunks + CsvReader::Feed, beside the floor "read":
//                   read() of the whole file into a reusable buffer (page cache), same file, same
//                   run. Median of --runs runs; rows_per_s as an extra.
//   rss_growth_1x   growth of the resident set (MB) while parsing a full-size file, and
//   rss_growth_4x   a file four times that size (four two-day periods), against the 32 MB
//                   target; measured in a fresh child process (peak VmHWM minus VmRSS before).
//
// Usage: fraud-bench-csv [--file CSV] [--runs N] [--dir TMPDIR] [--skip-4x]
// Without --file a full-size synthetic file (284,807 rows) is generated in a temporary directory,
// which is removed at the end.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "bench/common/bench_util.h"
#include "services/common/core/process_memory.h"
#include "services/common/csv/csv_reader.h"
#include "services/common/csv/synthetic_generator.h"

namespace fraud::csv {
namespace {

constexpr int64_t kFullRows = 284807;
constexpr size_t kChunkBytes = 64 * 1024;

struct Args {
  std::string file;
  std::string dir;
  int runs = 5;
  bool skip_4x = false;
};

bool ParseArgs(int argc, char** argv, Args* args) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--file") {
      if (!value(&args->file)) return false;
    } else if (a == "--dir") {
      if (!value(&args->dir)) return false;
    } else if (a == "--runs") {
      if (!value(&v)) return false;
      args->runs = std::atoi(v.c_str());
      if (args->runs < 1) return false;
    } else if (a == "--skip-4x") {
      args->skip_4x = true;
    } else {
      return false;
    }
  }
  return true;
}

// CPU time of the process (user + system), seconds: less sensitive than wall time to other
// processes competing for the cores.
double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Timing {
  double wall = -1;
  double cpu = -1;
};

int64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

// Writes `copies` consecutive two-day periods (Time shifted by 172800 s each) into one file.
bool GenerateFile(const std::string& path, int copies) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = true;
  for (int c = 0; c < copies && ok; ++c) {
    GeneratorOptions o;
    o.rows = kFullRows;
    o.seed = 1 + static_cast<uint64_t>(c);
    o.with_header = c == 0;
    o.time_offset = static_cast<int64_t>(c) * 172800;
    ok = WriteSyntheticCsv(o, f).ok();
  }
  return std::fclose(f) == 0 && ok;
}

// Floor: read() the whole file into `buf` (kept across runs). Timing < 0 on error.
Timing TimeRead(const std::string& path, std::vector<char>* buf) {
  Timing t;
  const int64_t size = FileSize(path);
  if (size < 0) return t;
  if (static_cast<int64_t>(buf->size()) < size) buf->resize(size);
  const double t0 = bench::NowSeconds();
  const double c0 = CpuSeconds();
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return t;
  int64_t off = 0;
  while (off < size) {
    const ssize_t n = read(fd, buf->data() + off, size - off);
    if (n <= 0) break;
    off += n;
  }
  close(fd);
  if (off != size) return t;
  t.wall = bench::NowSeconds() - t0;
  t.cpu = CpuSeconds() - c0;
  return t;
}

struct ParseResult {
  double seconds = -1;
  double cpu_seconds = -1;
  int64_t rows = 0;
  int64_t rejected = 0;
  long max_rss_bytes = 0;  // highest VmRSS seen at batch boundaries
};

// read() in 64 KiB chunks and feed the reader (strict mode, default batch size).
ParseResult TimeParse(const std::string& path, bool sample_rss) {
  ParseResult r;
  std::vector<char> chunk(kChunkBytes);
  int64_t rows = 0;
  CsvReader reader(CsvReaderOptions{}, [&](RowBatch& batch) {
    rows += static_cast<int64_t>(batch.num_rows());
    if (sample_rss) r.max_rss_bytes = std::max(r.max_rss_bytes, bench::RssBytes());
    return absl::OkStatus();
  });
  const double t0 = bench::NowSeconds();
  const double c0 = CpuSeconds();
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return r;
  bool ok = true;
  while (true) {
    const ssize_t n = read(fd, chunk.data(), chunk.size());
    if (n < 0) ok = false;
    if (n <= 0) break;
    if (!reader.Feed(std::string_view(chunk.data(), static_cast<size_t>(n))).ok()) {
      ok = false;
      break;
    }
  }
  close(fd);
  ok = ok && reader.Finish().ok();
  const double dt = bench::NowSeconds() - t0;
  const double cpu = CpuSeconds() - c0;
  if (!ok) {
    std::fprintf(stderr, "parse failed: %s\n", reader.status().ToString().c_str());
    return r;
  }
  r.seconds = dt;
  r.cpu_seconds = cpu;
  r.rows = rows;
  r.rejected = reader.counters().rows_rejected;
  return r;
}

// Child mode (--rss-child FILE): a fresh process parses FILE and prints "<before> <peak> <rows>"
// in bytes. A fresh process keeps the allocator's history (e.g. memory freed by the generator)
// out of the measurement.
int RssChild(const std::string& path) {
  const bool peak_reset = fraud::ResetPeakRss();
  const long before = bench::RssBytes();
  const ParseResult p = TimeParse(path, /*sample_rss=*/true);
  if (p.seconds < 0) return 1;
  long peak = p.max_rss_bytes;
  if (peak_reset) peak = std::max(peak, bench::PeakRssBytes());
  std::printf("%ld %ld %lld %d\n", before, peak, static_cast<long long>(p.rows),
              peak_reset ? 1 : 0);
  return 0;
}

// RSS growth (MB) while parsing `path` in a child process: peak during the parse minus RSS before.
bool MeasureRssGrowth(const std::string& path, const std::string& name, int copies) {
  char self[4096];
  const ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len <= 0) return false;
  self[len] = '\0';
  const std::string cmd = std::string("'") + self + "' --rss-child '" + path + "'";
  std::FILE* child = popen(cmd.c_str(), "r");
  if (child == nullptr) return false;
  long before = 0, peak = 0;
  long long rows = 0;
  int peak_reset = 0;
  const int got = std::fscanf(child, "%ld %ld %lld %d", &before, &peak, &rows, &peak_reset);
  if (pclose(child) != 0 || got != 4) {
    std::fprintf(stderr, "rss child failed for %s\n", path.c_str());
    return false;
  }
  bench::Figure f;
  f.bench = "csv";
  f.name = name;
  f.value = static_cast<double>(peak - before) / 1e6;
  f.unit = "MB";
  f.floor_name = "target";
  f.floor_value = 32;
  f.runs = 1;
  f.extra["file_mb"] = static_cast<double>(FileSize(path)) / 1e6;
  f.extra["rows"] = static_cast<double>(rows);
  f.extra["copies"] = copies;
  f.extra["rss_before_mb"] = static_cast<double>(before) / 1e6;
  f.extra["rss_peak_mb"] = static_cast<double>(peak) / 1e6;
  f.notes["peak_source"] =
      peak_reset ? "VmHWM after clear_refs, fresh process" : "VmRSS at batch boundaries";
  bench::Print(f);
  return true;
}

int Main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--rss-child") return RssChild(argv[2]);
  Args args;
  if (!ParseArgs(argc, argv, &args)) {
    std::fprintf(stderr,
                 "usage: fraud-bench-csv [--file CSV] [--runs N] [--dir TMPDIR] [--skip-4x]\n");
    return 2;
  }
  std::string dir = args.dir;
  std::string tmpdir;
  if (dir.empty()) {
    const char* env = std::getenv("TMPDIR");
    std::string templ =
        std::string(env != nullptr && *env ? env : "/tmp") + "/fraud-bench-csv-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    tmpdir = dir = templ;
  }
  std::string file = args.file;
  std::vector<std::string> created;
  if (file.empty()) {
    file = dir + "/synthetic-1x.csv";
    if (!GenerateFile(file, 1)) {
      std::fprintf(stderr, "cannot generate %s\n", file.c_str());
      return 1;
    }
    created.push_back(file);
  }
  int rc = 0;
  // Memory: each file parsed by a fresh child process.
  if (!MeasureRssGrowth(file, "rss_growth_1x", 1)) rc = 1;
  if (!args.skip_4x && rc == 0) {
    const std::string file4 = dir + "/synthetic-4x.csv";
    if (GenerateFile(file4, 4)) {
      created.push_back(file4);
      if (!MeasureRssGrowth(file4, "rss_growth_4x", 4)) rc = 1;
      std::remove(file4.c_str());
      created.pop_back();
    } else {
      std::fprintf(stderr, "cannot generate %s\n", file4.c_str());
      rc = 1;
    }
  }

  if (rc == 0) {
    const double mb = static_cast<double>(FileSize(file)) / 1e6;
    std::vector<char> buf;
    TimeRead(file, &buf);  // warm the page cache and the buffer
    TimeParse(file, false);
    std::vector<double> read_mbs, parse_mbs, rows_per_s, read_cpu_mbs, parse_cpu_mbs;
    int64_t rows = 0;
    for (int i = 0; i < args.runs && rc == 0; ++i) {
      const Timing tr = TimeRead(file, &buf);
      const ParseResult p = TimeParse(file, false);
      if (tr.wall <= 0 || p.seconds <= 0) {
        rc = 1;
        break;
      }
      read_mbs.push_back(mb / tr.wall);
      parse_mbs.push_back(mb / p.seconds);
      read_cpu_mbs.push_back(mb / std::max(tr.cpu, 1e-9));
      parse_cpu_mbs.push_back(mb / std::max(p.cpu_seconds, 1e-9));
      rows_per_s.push_back(static_cast<double>(p.rows) / p.seconds);
      rows = p.rows;
    }
    if (rc == 0) {
      bench::Figure f;
      f.bench = "csv";
      f.name = "parse_validate";
      f.value = bench::Median(parse_mbs);
      f.unit = "MB/s";
      f.floor_name = "read";
      f.floor_value = bench::Median(read_mbs);
      f.runs = args.runs;
      f.spread = bench::Spread(parse_mbs);
      f.extra["rows_per_s"] = bench::Median(rows_per_s);
      f.extra["floor_spread"] = bench::Spread(read_mbs);
      // The same throughputs per CPU-second (user + system) of this process.
      f.extra["value_cpu"] = bench::Median(parse_cpu_mbs);
      f.extra["floor_cpu"] = bench::Median(read_cpu_mbs);
      f.extra["file_mb"] = mb;
      f.extra["rows"] = static_cast<double>(rows);
      f.extra["chunk_kib"] = kChunkBytes / 1024.0;
      bench::Print(f);
    }
  }
  for (const std::string& p : created) std::remove(p.c_str());
  if (!tmpdir.empty()) rmdir(tmpdir.c_str());
  return rc;
}

}  // namespace
}  // namespace fraud::csv

int main(int argc, char** argv) { return fraud::csv::Main(argc, argv); }
