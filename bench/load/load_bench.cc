// fraud-bench-load: a bounded load generator against a real constellation on loopback.
//
// Starts storage, inference, training (bootstraps a small logreg champion), ingest and the gateway
// as processes (tests/testing/process_constellation.h) on a fresh database: a new database in the
// cluster named by $FRAUD_BENCH_PG_URI (dropped at the end), or a private cluster started with
// deploy/local/pg.sh when the variable is unset. Then drives mixed traffic in closed loops:
//   upload      POST /api/v1/uploads  (10,000 labelled rows, ~5 MB, every file distinct)
//   score_rest  POST /api/v1/score    (one row)
//   predict     gRPC InferenceService.Predict (one row)
//   models      GET  /api/v1/models
// at increasing concurrency (default 1, 4, 16, 64 workers), then a final low-load phase (one
// worker with a 20 ms pause between requests) that must see zero errors: recovery.
//
// Reported per phase and operation (JSON lines, bench_util.h): throughput (floor: the same
// operation's throughput at concurrency 1), p50 and p99 latency (floor: the unloaded p50 measured
// sequentially before the phases), outcomes split into ok / shed (HTTP 429, gRPC
// RESOURCE_EXHAUSTED: the system refusing work it cannot take) / errors by kind; and the RSS of
// every service process after each phase (floor: its RSS when idle after start-up).
//
// Flags: --seconds=N (total load time, default 60, split evenly over the phases),
//        --levels=1,4,16,64, --upload_rows=10000, --rate_limit_rps=R (gateway per-client limit;
//        default 0 = off, since every request here comes from one address), --keep (keep logs).
// Loopback only; every loop is bounded by its phase's end time and by request deadlines.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <pqxx/pqxx>

#include <algorithm>
#include <csignal>
#include <array>
#include <sstream>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "bench/common/bench_database.h"
#include "bench/common/bench_util.h"
#include "fraud/inference/v1/inference.grpc.pb.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "services/common/csv/synthetic_generator.h"
#include "services/common/csv/transaction_row.h"
#include "services/common/rpc/channel.h"
#include "tests/testing/process_constellation.h"

namespace fraud::bench {
namespace {

// Set by SIGINT/SIGTERM: phases end early and everything is cleaned up (databases, processes).
std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) { g_stop.store(true); }

constexpr const char* kOps[] = {"upload", "score_rest", "predict", "models"};
constexpr int kNumOps = 4;

struct Config {
  double seconds = 60;
  std::vector<int> levels = {1, 4, 16, 64};
  int64_t upload_rows = 10000;
  double rate_limit_rps = 0;
  bool keep = false;
};

// Outcomes of one operation in one phase.
struct OpStats {
  std::vector<double> latency;  // seconds, successful requests only
  int64_t ok = 0;
  int64_t shed = 0;
  std::map<std::string, int64_t> errors;  // kind -> count
  std::map<std::string, std::string> samples;  // kind -> first response body
  int64_t error_total() const {
    int64_t n = 0;
    for (const auto& [k, v] : errors) n += v;
    return n;
  }
  void Merge(const OpStats& o) {
    latency.insert(latency.end(), o.latency.begin(), o.latency.end());
    ok += o.ok;
    shed += o.shed;
    for (const auto& [k, v] : o.errors) errors[k] += v;
    for (const auto& [k, v] : o.samples) samples.try_emplace(k, v);
  }
};

struct Shared {
  std::string base_csv;
  std::string score_body;
  inference::v1::PredictRequest predict;
  int gateway_port = 0;
  std::shared_ptr<grpc::Channel> inference;
  std::atomic<int64_t> upload_counter{0};
};

// base + one line of spaces/tabs encoding n: skipped by the reader, but makes every file distinct
// (storage would otherwise answer "duplicate" without writing anything).
std::string DistinctUpload(const std::string& base, int64_t n) {
  std::string out;
  out.reserve(base.size() + 66);
  out = base;
  for (int i = 0; i < 63; ++i) out.push_back((n >> i) & 1 ? '\t' : ' ');
  out.push_back('\n');
  return out;
}

class Worker {
 public:
  Worker(Shared* shared, int id)
      : shared_(shared),
        id_(id),
        http_("127.0.0.1", shared->gateway_port),
        stub_(inference::v1::InferenceService::NewStub(shared->inference)) {
    http_.set_connection_timeout(5, 0);
    http_.set_read_timeout(120, 0);
    http_.set_write_timeout(120, 0);
    http_.set_keep_alive(true);
    // Like browsers and curl: without it, a keep-alive request written as headers + body waits
    // for a delayed ACK (~40 ms) and the figure measures Nagle's algorithm, not the gateway.
    http_.set_tcp_nodelay(true);
  }

  // Runs operation `op` once and records it.
  void Run(int op, OpStats* stats) {
    const double start = NowSeconds();
    std::string error;
    bool shed = false;
    {
      if (op == 2) {
        grpc::ClientContext ctx;
        rpc::SetDeadline(&ctx, absl::Seconds(10));
        inference::v1::PredictResponse response;
        const grpc::Status s = stub_->Predict(&ctx, shared_->predict, &response);
        if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          shed = true;
        } else if (!s.ok()) {
          error = absl::StrCat("grpc_", GrpcCodeName(s.error_code()));
        } else if (response.scores().scores_size() != 1) {
          error = "wrong_answer";
        }
      } else {
        auto request = [&]() -> httplib::Result {
          if (op == 0) {
            const std::string body =
                DistinctUpload(shared_->base_csv, shared_->upload_counter.fetch_add(1) + 1);
            const std::string path =
                absl::StrCat("/api/v1/uploads?mode=strict&file_name=load-", id_, ".csv");
            return http_.Post(path.c_str(), body, "text/csv");
          }
          if (op == 1) return http_.Post("/api/v1/score", shared_->score_body, "application/json");
          return http_.Get("/api/v1/models");
        };
        httplib::Result res = request();
        if (!res) {
          error = absl::StrCat("http_", httplib::to_string(res.error()));
        } else if (res->status == 429) {
          shed = true;
        } else if (res->status != 200) {
          error = absl::StrCat("http_", res->status);
          // The error's message (the body is {"code", "message", "details"}).
          const auto body = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
          stats->samples.try_emplace(error, body.is_object() && body.contains("message")
                                                ? body["message"].dump()
                                                : res->body.substr(0, 300));
        }
      }
    }
    const double elapsed = NowSeconds() - start;
    if (shed) {
      ++stats->shed;
    } else if (!error.empty()) {
      ++stats->errors[error];
    } else {
      ++stats->ok;
      stats->latency.push_back(elapsed);
    }
  }

  static std::string GrpcCodeName(grpc::StatusCode c) {
    switch (c) {
      case grpc::StatusCode::UNAVAILABLE:
        return "UNAVAILABLE";
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        return "DEADLINE_EXCEEDED";
      case grpc::StatusCode::INTERNAL:
        return "INTERNAL";
      case grpc::StatusCode::CANCELLED:
        return "CANCELLED";
      default:
        return absl::StrCat(static_cast<int>(c));
    }
  }

 private:
  Shared* shared_;
  int id_;
  httplib::Client http_;
  std::unique_ptr<inference::v1::InferenceService::Stub> stub_;
};

// The mix each worker cycles through: per upload, 4 REST scores, 4 gRPC predictions, 1 listing.
constexpr int kMix[] = {0, 1, 2, 1, 2, 3, 1, 2, 1, 2};

struct PhaseResult {
  std::string name;
  int concurrency = 0;
  double seconds = 0;
  OpStats ops[kNumOps];
  std::map<std::string, int64_t> rss;
};

PhaseResult RunPhase(Shared* shared, const std::string& name, int concurrency, double seconds,
                     absl::Duration pause) {
  PhaseResult result;
  result.name = name;
  result.concurrency = concurrency;
  std::vector<std::array<OpStats, kNumOps>> per_worker(concurrency);
  std::vector<std::thread> threads;
  const double start = NowSeconds();
  const double end = start + seconds;
  for (int w = 0; w < concurrency; ++w) {
    threads.emplace_back([&, w] {
      Worker worker(shared, w);
      // Workers start at different points of the mix so every operation runs at every level.
      for (int i = w; NowSeconds() < end && !g_stop.load(); ++i) {
        const int op = kMix[i % (sizeof(kMix) / sizeof(kMix[0]))];
        worker.Run(op, &per_worker[w][op]);
        if (pause > absl::ZeroDuration()) absl::SleepFor(pause);
      }
    });
  }
  for (auto& t : threads) t.join();
  result.seconds = NowSeconds() - start;
  for (const auto& w : per_worker) {
    for (int op = 0; op < kNumOps; ++op) result.ops[op].Merge(w[op]);
  }
  return result;
}

std::string ErrorKinds(const OpStats& s) {
  std::string out;
  for (const auto& [k, v] : s.errors) absl::StrAppend(&out, out.empty() ? "" : ",", k, "=", v);
  return out.empty() ? "none" : out;
}

Config ParseArgs(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) { return FlagValue(argc, argv, &i, absl::StrCat("--", name)); };
    if (const char* v = value("seconds")) {
      c.seconds = std::max(5.0, std::atof(v));
    } else if (const char* v = value("levels")) {
      c.levels.clear();
      for (absl::string_view s : absl::StrSplit(v, ',')) {
        int n = 0;
        if (absl::SimpleAtoi(s, &n) && n > 0 && n <= 256) c.levels.push_back(n);
      }
    } else if (const char* v = value("upload_rows")) {
      c.upload_rows = std::max<int64_t>(1, std::atoll(v));
    } else if (const char* v = value("rate_limit_rps")) {
      c.rate_limit_rps = std::atof(v);
    } else if (a == "--keep") {
      c.keep = true;
    } else {
      std::fprintf(stderr,
                   "usage: fraud-bench-load [--seconds=60] [--levels=1,4,16,64] "
                   "[--upload_rows=10000] [--rate_limit_rps=0] [--keep]\n");
      std::exit(2);
    }
  }
  if (c.levels.empty()) c.levels = {1};
  return c;
}

// The database URI for the bench: a fresh database in $FRAUD_BENCH_PG_URI's cluster.
int Main(int argc, char** argv) {
  const Config config = ParseArgs(argc, argv);
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
  const std::string root = testing::SourceRoot(FRAUD_SOURCE_DIR);

  absl::StatusOr<std::unique_ptr<bench::BenchDatabase>> db =
      bench::BenchDatabase::Open(root, "bench_load");
  if (!db.ok()) {
    std::fprintf(stderr, "fraud-bench-load: %s\n", db.status().ToString().c_str());
    return 1;
  }
  const std::string db_uri = (*db)->uri();

  testing::ConstellationOptions o;
  o.bin_dir = testing::BinDir(FRAUD_BIN_DIR_DEFAULT);
  o.database_url = db_uri;
  o.extra_flags["training"] = {"--bootstrap_rows=20000", "--families=logreg", "--auto_train=false",
                               "--train_threads=1"};
  o.extra_flags["inference"] = {"--poll_interval_seconds=2"};
  o.extra_flags["gateway"] = {absl::StrCat("--rate_limit_rps=", config.rate_limit_rps)};
  int64_t phases_total = static_cast<int64_t>(config.levels.size()) + 1;
  const double phase_seconds = config.seconds / static_cast<double>(phases_total);
  std::unique_ptr<testing::ProcessConstellation> c;
  {
    c = std::make_unique<testing::ProcessConstellation>(o);
    if (!c->has("gateway")) {
      std::fprintf(stderr, "fraud-bench-load: fraud-gateway is not built\n");
      return 1;
    }
    if (absl::Status s = c->StartServing(absl::Seconds(120)); !s.ok()) {
      std::fprintf(stderr, "fraud-bench-load: constellation: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  if (config.keep) std::fprintf(stderr, "logs in %s\n", c->work_dir().c_str());

  Shared shared;
  {
    csv::GeneratorOptions g;
    g.rows = config.upload_rows;
    g.seed = 777;
    g.fraud_rate = 0.01;
    std::ostringstream out;
    (void)csv::WriteSyntheticCsv(g, out);
    shared.base_csv = out.str();
    g.rows = 1;
    csv::SyntheticGenerator gen(g);
    double f[csv::kNumFeatures];
    int32_t label;
    gen.Next(f, &label);
    shared.score_body = "{\"rows\": [[";
    auto* batch = shared.predict.mutable_rows();
    batch->set_num_rows(1);
    for (int i = 0; i < csv::kNumFeatures; ++i) {
      absl::StrAppend(&shared.score_body, i ? ", " : "", f[i]);
      batch->add_features(f[i]);
    }
    shared.score_body += "]]}";
  }
  shared.gateway_port = c->port("gateway");
  shared.inference = rpc::MakeChannel({c->target("inference")});

  std::map<std::string, int64_t> idle_rss;
  for (const std::string& name : c->names()) idle_rss[name] = c->process(name).RssBytes();

  // The gateway answers /healthz before its backend channels are connected: wait until a REST
  // call goes through (bounded), so the figures start from a warm system.
  {
    httplib::Client http("127.0.0.1", shared.gateway_port);
    const absl::Time warm_start = absl::Now();
    const absl::Time deadline = warm_start + absl::Seconds(30);
    int last = 0;
    std::string first_body;
    while (absl::Now() < deadline) {
      auto res = http.Get("/api/v1/models");
      last = res ? res->status : 0;
      if (last == 200) break;
      if (first_body.empty() && res) first_body = res->body.substr(0, 300);
      absl::SleepFor(absl::Milliseconds(100));
    }
    std::fprintf(stderr, "gateway warm after %.1f s (GET /api/v1/models -> %d; first answer %s)\n",
                 absl::ToDoubleSeconds(absl::Now() - warm_start), last, first_body.c_str());
  }
  // Unloaded latency: each operation alone, sequentially (the floor of every latency figure).
  double unloaded_p50[kNumOps];
  {
    Worker w(&shared, 999);
    for (int op = 0; op < kNumOps; ++op) {
      OpStats s;
      const int n = op == 0 ? 5 : 50;
      for (int i = 0; i < n; ++i) w.Run(op, &s);
      unloaded_p50[op] = Median(s.latency);
      std::fprintf(stderr, "unloaded %-10s p50 %.2f ms (%lld ok, %lld errors: %s)\n", kOps[op],
                   unloaded_p50[op] * 1e3, static_cast<long long>(s.ok),
                   static_cast<long long>(s.error_total()), ErrorKinds(s).c_str());
      for (const auto& [kind, body] : s.samples) {
        std::fprintf(stderr, "  first %s body: %s\n", kind.c_str(), body.c_str());
      }
    }
  }

  std::vector<PhaseResult> phases;
  for (int level : config.levels) {
    std::fprintf(stderr, "phase: %d workers for %.0f s\n", level, phase_seconds);
    phases.push_back(RunPhase(&shared, absl::StrCat("c", level), level, phase_seconds,
                              absl::ZeroDuration()));
    for (const std::string& name : c->names()) {
      phases.back().rss[name] = c->process(name).RssBytes();
    }
    absl::SleepFor(absl::Seconds(1));
  }
  std::fprintf(stderr, "phase: recovery, 1 worker with 20 ms pauses for %.0f s\n", phase_seconds);
  phases.push_back(RunPhase(&shared, "recovery", 1, phase_seconds, absl::Milliseconds(20)));
  for (const std::string& name : c->names()) phases.back().rss[name] = c->process(name).RssBytes();

  double base_throughput[kNumOps] = {0, 0, 0, 0};
  bool any_died = false;
  for (const std::string& name : c->names()) {
    if (!c->process(name).running()) {
      any_died = true;
      std::fprintf(stderr, "%s DIED during the load; log tail:\n%s", name.c_str(),
                   c->process(name).LogTail().c_str());
    }
  }
  std::fprintf(stderr, "\n%-9s %-10s %9s %9s %9s %7s %6s  %s\n", "phase", "op", "ops/s", "p50 ms",
               "p99 ms", "ok", "shed", "errors");
  for (const PhaseResult& p : phases) {
    for (int op = 0; op < kNumOps; ++op) {
      const OpStats& s = p.ops[op];
      const double throughput = static_cast<double>(s.ok) / p.seconds;
      if (&p == &phases.front()) base_throughput[op] = throughput;
      const double p50 = Percentile(s.latency, 50), p99 = Percentile(s.latency, 99);
      std::fprintf(stderr, "%-9s %-10s %9.1f %9.2f %9.2f %7lld %6lld  %s\n", p.name.c_str(),
                   kOps[op], throughput, p50 * 1e3, p99 * 1e3, static_cast<long long>(s.ok),
                   static_cast<long long>(s.shed), ErrorKinds(s).c_str());
      for (const auto& [kind, body] : s.samples) {
        std::fprintf(stderr, "          first %s body: %s\n", kind.c_str(), body.c_str());
      }
      Figure t;
      t.bench = "load";
      t.name = absl::StrCat(kOps[op], "_throughput_", p.name);
      t.value = throughput;
      t.unit = "ops/s";
      t.floor_name = absl::StrCat(kOps[op], "_throughput_c", config.levels.front());
      t.floor_value = base_throughput[op];
      t.extra = {{"concurrency", p.concurrency},
                 {"ok", static_cast<double>(s.ok)},
                 {"shed", static_cast<double>(s.shed)},
                 {"errors", static_cast<double>(s.error_total())},
                 {"seconds", p.seconds}};
      t.notes = {{"error_kinds", ErrorKinds(s)}};
      if (op == 0) t.extra["rows_per_s"] = throughput * static_cast<double>(config.upload_rows);
      Print(t);
      for (const auto& [q, value] : {std::pair<const char*, double>{"p50", p50}, {"p99", p99}}) {
        Figure l;
        l.bench = "load";
        l.name = absl::StrCat(kOps[op], "_", q, "_", p.name);
        l.value = value * 1e3;
        l.unit = "ms";
        l.floor_name = absl::StrCat(kOps[op], "_unloaded_p50");
        l.floor_value = unloaded_p50[op] * 1e3;
        l.runs = static_cast<int>(s.latency.size());
        l.extra = {{"concurrency", p.concurrency}};
        Print(l);
      }
    }
    for (const auto& [name, rss] : p.rss) {
      Figure r;
      r.bench = "load";
      r.name = absl::StrCat("rss_", name, "_", p.name);
      r.value = static_cast<double>(rss) / (1 << 20);
      r.unit = "MiB";
      r.floor_name = absl::StrCat("rss_", name, "_idle");
      r.floor_value = static_cast<double>(idle_rss[name]) / (1 << 20);
      r.extra = {{"concurrency", p.concurrency},
                 {"peak_mib", static_cast<double>(PeakRssBytes(c->process(name).pid())) / (1 << 20)}};
      Print(r);
    }
  }
  int64_t recovery_errors = 0, recovery_shed = 0;
  for (const OpStats& s : phases.back().ops) {
    recovery_errors += s.error_total();
    recovery_shed += s.shed;
  }
  Figure rec;
  rec.bench = "load";
  rec.name = "recovery_errors";
  rec.value = static_cast<double>(recovery_errors);
  rec.unit = "requests";
  rec.floor_name = "zero";
  rec.extra = {{"shed", static_cast<double>(recovery_shed)}, {"services_died", any_died ? 1.0 : 0}};
  Print(rec);
  c->Stop();
  c.reset();
  const bool ok = recovery_errors == 0 && !any_died;
  std::fprintf(stderr, "%s\n", ok ? "load: recovered with zero errors, no service died"
                                  : "load: FAILED (errors after the load dropped, or a service died)");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace fraud::bench

int main(int argc, char** argv) { return fraud::bench::Main(argc, argv); }
