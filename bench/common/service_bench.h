// Helpers of the benchmarks that drive real service processes (upload, load, footprint): peak
// memory and CPU time of a process from /proc, a background RSS sampler, the bench database's
// URI and SQL on it, synthetic CSV files on disk and a streamed REST upload. Includers link
// libpqxx and cpp-httplib.
#pragma once

#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/common/bench_util.h"
#include "services/common/csv/synthetic_generator.h"

namespace fraud::bench {

// Resets a process's VmHWM to its current RSS (Linux clear_refs 5).
inline void ResetPeak(int pid) { std::ofstream(absl::StrCat("/proc/", pid, "/clear_refs")) << "5"; }

// User + system CPU seconds a process has used so far (/proc/<pid>/stat fields 14 and 15).
inline double CpuSeconds(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// CPU seconds of named processes and of every PostgreSQL process on the machine (comm
// "postgres": the bench's server and its backends), so a bench can say where one operation's
// CPU went. Take one before and one after; Since() gives each name's CPU in between (a
// PostgreSQL backend that started in between counts from zero, one that exited is lost).
class CpuSnapshot {
 public:
  explicit CpuSnapshot(const std::vector<std::pair<std::string, int>>& named) : named_(named) {
    for (const auto& [name, pid] : named_) cpu_[pid] = CpuSeconds(pid);
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string pid = entry.path().filename().string();
      if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream comm(entry.path() / "comm");
      std::string name;
      if (std::getline(comm, name) && name == "postgres") {
        postgres_[std::stoi(pid)] = CpuSeconds(std::stoi(pid));
      }
    }
  }
  // name -> CPU seconds used between `before` and this snapshot; "postgres" sums its processes.
  std::vector<std::pair<std::string, double>> Since(const CpuSnapshot& before) const {
    std::vector<std::pair<std::string, double>> out;
    for (const auto& [name, pid] : named_) {
      auto b = before.cpu_.find(pid);
      out.emplace_back(name, cpu_.at(pid) - (b == before.cpu_.end() ? 0 : b->second));
    }
    double pg = 0;
    for (const auto& [pid, seconds] : postgres_) {
      auto b = before.postgres_.find(pid);
      pg += seconds - (b == before.postgres_.end() ? 0 : b->second);
    }
    out.emplace_back("postgres", pg);
    return out;
  }

 private:
  std::vector<std::pair<std::string, int>> named_;
  std::map<int, double> cpu_, postgres_;
};

// Samples VmRSS of some processes until stopped; keeps the maximum of each. Stop() also reads
// VmHWM, which catches peaks shorter than the sampling interval (reset it with ResetPeak first).
class RssSampler {
 public:
  explicit RssSampler(std::vector<int> pids) : pids_(std::move(pids)), peak_(pids_.size(), 0) {
    thread_ = std::thread([this] {
      while (!stop_) {
        for (size_t i = 0; i < pids_.size(); ++i) {
          peak_[i] = std::max(peak_[i], RssBytes(pids_[i]));
        }
        absl::SleepFor(absl::Milliseconds(10));
      }
    });
  }
  ~RssSampler() {
    if (thread_.joinable()) Stop();
  }
  std::vector<long> Stop() {
    stop_ = true;
    thread_.join();
    for (size_t i = 0; i < pids_.size(); ++i) {
      peak_[i] = std::max(peak_[i], PeakRssBytes(pids_[i]));
    }
    return peak_;
  }

 private:
  std::vector<int> pids_;
  std::vector<long> peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// `uri` with its database name replaced by `db` (query parameters kept).
inline std::string WithDatabase(const std::string& uri, const std::string& db) {
  const size_t scheme = uri.find("://");
  const size_t slash = uri.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  const size_t query = uri.find('?');
  std::string base = slash == std::string::npos ? uri.substr(0, query) : uri.substr(0, slash);
  std::string tail = query == std::string::npos ? "" : uri.substr(query);
  return absl::StrCat(base, "/", db, tail);
}

// Runs `sql` (one or more statements) on the database at `uri`, outside a transaction.
inline void Exec(const std::string& uri, const std::string& sql) {
  pqxx::connection c(uri);
  pqxx::nontransaction n(c);
  n.exec(sql);
}

// Deletes a stored upload with its rows and predictions, so the same file can be uploaded again
// (benchmarks only: the product never deletes an upload), then vacuums those tables, so that
// autovacuum does not clean the dead rows up in the middle of a later timed run (it did, and
// PostgreSQL's CPU for the same upload then varied 1.2-1.9 s from run to run). The realised
// summary's delete trigger is deferred and the upload's bins deleted directly, which is what the
// trigger would end with once every prediction of the upload is gone; through the trigger the
// delete of a 4x upload's predictions took ~14 s (a JIT-compiled join of 1.1 M rows).
inline void DeleteUpload(const std::string& uri, int64_t id) {
  Exec(uri, absl::StrCat("SET fraud.realised_deferred = on",
                         "; DELETE FROM alert_explanations WHERE upload_id = ", id,
                         "; DELETE FROM predictions WHERE upload_id = ", id,
                         "; DELETE FROM realised_bins WHERE upload_id = ", id,
                         "; DELETE FROM label_overlay WHERE upload_id = ", id,
                         "; DELETE FROM transactions WHERE upload_id = ", id,
                         "; DELETE FROM uploads WHERE id = ", id));
  Exec(uri, "VACUUM alert_explanations, predictions, label_overlay, transactions, uploads");
}

// Writes `rows` synthetic labelled rows (header included) to `path`.
inline bool WriteCsv(const std::filesystem::path& path, int64_t rows, uint64_t seed) {
  csv::GeneratorOptions g;
  g.rows = rows;
  g.seed = seed;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = csv::WriteSyntheticCsv(g, f).ok();
  return std::fclose(f) == 0 && ok;
}

struct UploadOutcome {
  int status = 0;
  double seconds = 0;
  nlohmann::json summary;
  std::string error;
};

// Streams `file` to the gateway as a raw text/csv body in 64 KiB pieces (strict mode).
inline UploadOutcome UploadFile(int port, const std::filesystem::path& file,
                                const std::string& name) {
  UploadOutcome out;
  const size_t size = std::filesystem::file_size(file);
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (f == nullptr) {
    out.error = absl::StrCat("cannot open ", file.string());
    return out;
  }
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(3600, 0);
  client.set_write_timeout(600, 0);
  std::vector<char> buf(64 * 1024);
  const double start = NowSeconds();
  auto r = client.Post(
      absl::StrCat("/api/v1/uploads?mode=strict&file_name=", name), size,
      [&](size_t offset, size_t length, httplib::DataSink& sink) {
        std::fseek(f, static_cast<long>(offset), SEEK_SET);
        const size_t n = std::fread(buf.data(), 1, std::min(length, buf.size()), f);
        return n > 0 && sink.write(buf.data(), n);
      },
      "text/csv");
  out.seconds = NowSeconds() - start;
  std::fclose(f);
  if (!r) {
    out.error = httplib::to_string(r.error());
    return out;
  }
  out.status = r->status;
  out.summary = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200) out.error = r->body.substr(0, 500);
  return out;
}

}  // namespace fraud::bench
