// fraud-bench-footprint: peak memory and CPU seconds of every service doing its heaviest
// documented job, against the instance the services deploy on (Render Starter: 512 MB).
// Targets: every service <= 450 MB peak; training's full run <= 120 CPU-seconds.
//
// The services run as real child processes on loopback (tests/testing/process_constellation.h:
// storage, inference, training, ingest, gateway, as ./fraud up runs them, each ML service with its
// own model cache) on a fresh database (bench/common/bench_database.h). Then, --runs times:
//   upload     the 4x file (4 x 284,807 synthetic labelled rows, ~600 MB) through the gateway:
//              gateway, ingest and storage store it, inference scores every row
//   training   one run of the full default candidate set on a 284,807-row upload (made once,
//              before the runs; the run names it in train_upload_ids), started through the gateway
//              and followed until it ends
//   inference  --clients concurrent gRPC clients sending one-row Predicts while another thread
//              reloads between the bootstrap version and the newest trained one every 0.5 s (both
//              models are resident during a swap), for --reload_seconds. Calls the server sheds
//              (RESOURCE_EXHAUSTED: its --max_threads, default 16, is below 16 clients + a reload)
//              are counted, not failed; any other error fails the bench.
// Before each phase every process's VmHWM is reset (clear_refs); RSS is also sampled every 10 ms.
// The 4x upload is deleted again after each run so the next one is not a duplicate.
//
// Figures (JSON lines, bench_util.h), medians over the runs:
//   peak_rss:<service>  MB; floor: the process's RSS when idle after start-up. gateway, ingest
//                       and storage: during the 4x upload; inference: the larger of the upload and
//                       the reload phase (both in the line); training: during its run. extra:
//                       cpu_s (CPU seconds of the process in that phase), target_mb 450
//   training_cpu        CPU seconds of the full run; floor: its wall seconds x 1 (what one core
//                       would allow); target 120
//
// Flags: --runs=3 --rows=284807 --big_factor=4 --reload_seconds=10 --clients=16 --keep.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/common/bench_database.h"
#include "bench/common/bench_util.h"
#include "bench/common/service_bench.h"
#include "fraud/inference/v1/inference.grpc.pb.h"
#include "services/common/csv/synthetic_generator.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/channel.h"
#include "tests/testing/process_constellation.h"

namespace fraud::bench {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr double kTargetMb = 450;
constexpr double kTargetTrainingCpu = 120;

struct Config {
  int runs = 3;
  int64_t rows = 284807;
  int big_factor = 4;
  double reload_seconds = 10;
  int clients = 16;
  bool keep = false;
};

Config ParseArgs(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    bool ok = true;
    if (name == "--runs") {
      ok = absl::SimpleAtoi(value, &c.runs) && c.runs >= 1;
    } else if (name == "--rows") {
      ok = absl::SimpleAtoi(value, &c.rows) && c.rows >= 1000;
    } else if (name == "--big_factor") {
      ok = absl::SimpleAtoi(value, &c.big_factor) && c.big_factor >= 1;
    } else if (name == "--reload_seconds") {
      ok = absl::SimpleAtod(value, &c.reload_seconds) && c.reload_seconds > 0;
    } else if (name == "--clients") {
      ok = absl::SimpleAtoi(value, &c.clients) && c.clients >= 1;
    } else if (name == "--keep") {
      c.keep = true;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: fraud-bench-footprint [--runs=3] [--rows=284807] [--big_factor=4] "
                   "[--reload_seconds=10] [--clients=16] [--keep]\n(bad argument: %s)\n",
                   arg.c_str());
      std::exit(2);
    }
  }
  return c;
}

double Mb(long bytes) { return static_cast<double>(bytes) / 1048576.0; }

// Peak RSS (MB) and CPU seconds of each named process over one phase.
class PhaseMeter {
 public:
  PhaseMeter(testing::ProcessConstellation& c, std::vector<std::string> names)
      : names_(std::move(names)) {
    std::vector<int> pids;
    for (const std::string& n : names_) {
      const int pid = c.process(n).pid();
      pids.push_back(pid);
      ResetPeak(pid);
      cpu_start_.push_back(CpuSeconds(pid));
    }
    pids_ = pids;
    sampler_ = std::make_unique<RssSampler>(std::move(pids));
  }
  // name -> {peak MB, CPU seconds}
  std::map<std::string, std::pair<double, double>> Stop() {
    const std::vector<long> peaks = sampler_->Stop();
    std::map<std::string, std::pair<double, double>> out;
    for (size_t i = 0; i < names_.size(); ++i) {
      out[names_[i]] = {Mb(peaks[i]), CpuSeconds(pids_[i]) - cpu_start_[i]};
    }
    return out;
  }

 private:
  std::vector<std::string> names_;
  std::vector<int> pids_;
  std::vector<double> cpu_start_;
  std::unique_ptr<RssSampler> sampler_;
};

absl::StatusOr<int64_t> Upload(int port, const fs::path& file, const std::string& name) {
  const UploadOutcome u = UploadFile(port, file, name);
  if (u.status != 200) {
    return absl::InternalError(absl::StrCat("upload of ", name, ": HTTP ", u.status, " ", u.error));
  }
  int64_t id = 0;
  if (!u.summary.is_object() || !absl::SimpleAtoi(u.summary.value("uploadId", ""), &id)) {
    return absl::InternalError(absl::StrCat("upload of ", name, ": no uploadId in the summary"));
  }
  std::fprintf(stderr, "uploaded %s as upload %lld in %.1f s\n", name.c_str(),
               static_cast<long long>(id), u.seconds);
  return id;
}

// Starts a run on `upload_id` through the gateway and waits for it; returns the registered version.
absl::StatusOr<int64_t> TrainOn(int port, const std::string& token, int64_t upload_id) {
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(60, 0);
  const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
  const json body = {{"trainUploadIds", {std::to_string(upload_id)}},
                     {"description", "footprint bench"}};
  auto r = http.Post("/api/v1/training/runs", auth, body.dump(), "application/json");
  if (!r || r->status != 200) {
    return absl::InternalError(absl::StrCat("starting a run: ", r ? r->body : "no answer"));
  }
  const json started = json::parse(r->body, nullptr, false);
  const std::string id = started.is_object() ? started["run"].value("id", "") : "";
  if (id.empty()) return absl::InternalError(absl::StrCat("no run id in ", r->body));
  const absl::Time deadline = absl::Now() + absl::Minutes(30);
  while (absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
    auto g = http.Get(absl::StrCat("/api/v1/training/runs/", id));
    if (!g || g->status != 200) continue;
    const json run = json::parse(g->body, nullptr, false)["run"];
    const std::string status = run.value("status", "");
    if (status == "RUN_STATUS_QUEUED" || status == "RUN_STATUS_RUNNING") continue;
    if (status != "RUN_STATUS_SUCCEEDED") {
      return absl::InternalError(absl::StrCat("run ", id, " ended ", status, ": ",
                                              run.value("error", g->body.substr(0, 400))));
    }
    int64_t version = 0;
    if (!absl::SimpleAtoi(run.value("modelVersion", "0"), &version) || version == 0) {
      return absl::InternalError(absl::StrCat("run ", id, " registered no version"));
    }
    return version;
  }
  return absl::DeadlineExceededError(absl::StrCat("run ", id, " did not end within 30 minutes"));
}

struct ReloadLoad {
  int64_t predictions = 0;
  // RESOURCE_EXHAUSTED: the server refusing work it has no thread for (load shedding).
  int64_t shed = 0;
  int64_t errors = 0;
  int64_t reloads = 0;
  std::string first_error;
};

// `clients` one-row Predict loops plus one reload loop alternating between versions a and b.
ReloadLoad PredictWhileReloading(const std::string& target, const std::string& token,
                                 int64_t a, int64_t b, int clients, double seconds) {
  auto channel = rpc::MakeChannel({target});
  auto stub = inference::v1::InferenceService::NewStub(channel);
  inference::v1::PredictRequest request;
  {
    csv::GeneratorOptions g;
    g.rows = 1;
    csv::SyntheticGenerator gen(g);
    double f[csv::kNumFeatures];
    int32_t label = 0;
    gen.Next(f, &label);
    request.mutable_rows()->set_num_rows(1);
    for (double v : f) request.mutable_rows()->add_features(v);
  }
  std::atomic<bool> stop{false};
  std::atomic<int64_t> predictions{0}, shed{0}, errors{0}, reloads{0};
  std::mutex mu;
  std::string first_error;
  auto note_error = [&](const grpc::Status& s, const char* what) {
    errors.fetch_add(1);
    std::lock_guard<std::mutex> lock(mu);
    if (first_error.empty()) first_error = absl::StrCat(what, ": ", s.error_message());
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        inference::v1::PredictResponse response;
        const grpc::Status s = stub->Predict(&ctx, request, &response);
        if (s.ok()) {
          predictions.fetch_add(1);
        } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          shed.fetch_add(1);
        } else {
          note_error(s, "predict");
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (int64_t n = 0; !stop.load(); ++n) {
      grpc::ClientContext ctx;
      rpc::AddBearerToken(&ctx, token);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      inference::v1::ReloadRequest reload;
      reload.set_version(n % 2 == 0 ? b : a);
      inference::v1::ReloadResponse response;
      const grpc::Status s = stub->Reload(&ctx, reload, &response);
      if (s.ok()) {
        reloads.fetch_add(1);
      } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        shed.fetch_add(1);
      } else {
        note_error(s, "reload");
      }
      absl::SleepFor(absl::Milliseconds(500));
    }
  });
  absl::SleepFor(absl::Seconds(seconds));
  stop.store(true);
  for (std::thread& t : threads) t.join();
  return {predictions.load(), shed.load(), errors.load(), reloads.load(), first_error};
}

int Main(int argc, char** argv) {
  const Config config = ParseArgs(argc, argv);
  const std::string root = testing::SourceRoot(FRAUD_SOURCE_DIR);
  absl::StatusOr<std::unique_ptr<BenchDatabase>> db = BenchDatabase::Open(root, "bench_footprint");
  if (!db.ok()) {
    std::fprintf(stderr, "fraud-bench-footprint: %s\n", db.status().ToString().c_str());
    return 1;
  }
  const std::string db_uri = (*db)->uri();

  testing::ConstellationOptions o;
  o.bin_dir = testing::BinDir(FRAUD_BIN_DIR_DEFAULT);
  o.database_url = db_uri;
  // The bootstrap trains the default candidate set on 20,000 rows (version 1); automatic runs are
  // off so that only the measured run trains.
  o.extra_flags["training"] = {"--bootstrap_rows=20000", "--auto_train=false"};
  o.extra_flags["inference"] = {"--poll_interval_seconds=2"};
  o.extra_flags["ingest"] = {"--max_upload_bytes=8589934592"};
  o.extra_flags["gateway"] = {"--max_upload_bytes=8589934592", "--rate_limit_rps=0",
                              "--log_level=warning"};
  testing::ProcessConstellation c(o);
  if (!c.has("gateway")) {
    std::fprintf(stderr, "fraud-bench-footprint: fraud-gateway is not built\n");
    return 1;
  }
  if (absl::Status started = c.StartServing(absl::Minutes(5)); !started.ok()) {
    std::fprintf(stderr, "fraud-bench-footprint: constellation: %s\n", started.ToString().c_str());
    return 1;
  }
  if (config.keep) std::fprintf(stderr, "logs in %s\n", c.work_dir().c_str());
  std::map<std::string, double> idle_mb;
  for (const std::string& name : c.names()) idle_mb[name] = Mb(c.process(name).RssBytes());

  const fs::path small_csv = fs::path(c.work_dir()) / "train.csv";
  const fs::path big_csv = fs::path(c.work_dir()) / "big.csv";
  if (!WriteCsv(small_csv, config.rows, 11) ||
      !WriteCsv(big_csv, config.rows * config.big_factor, 12)) {
    std::fprintf(stderr, "fraud-bench-footprint: cannot write the CSV files\n");
    return 1;
  }
  const int gateway = c.port("gateway");
  absl::StatusOr<int64_t> train_upload = Upload(gateway, small_csv, "footprint-train.csv");
  if (!train_upload.ok()) {
    std::fprintf(stderr, "fraud-bench-footprint: %s\n", train_upload.status().ToString().c_str());
    return 1;
  }
  fs::remove(small_csv);

  // service -> per-run peak MB and CPU seconds
  std::map<std::string, std::vector<double>> peak, cpu;
  std::vector<double> inference_upload_mb, inference_reload_mb, training_wall;
  ReloadLoad last_load;
  const std::vector<std::string> upload_services = {"gateway", "ingest", "storage", "inference"};
  for (int run = 0; run < config.runs; ++run) {
    {
      PhaseMeter meter(c, upload_services);
      absl::StatusOr<int64_t> id =
          Upload(gateway, big_csv, absl::StrCat("footprint-big-", run, ".csv"));
      auto m = meter.Stop();
      if (!id.ok()) {
        std::fprintf(stderr, "fraud-bench-footprint: %s\n", id.status().ToString().c_str());
        return 1;
      }
      for (const auto& [name, v] : m) {
        peak[name].push_back(v.first);
        cpu[name].push_back(v.second);
      }
      inference_upload_mb.push_back(m["inference"].first);
      DeleteUpload(db_uri, *id);
    }
    int64_t trained = 0;
    {
      PhaseMeter meter(c, {"training"});
      const double start = NowSeconds();
      absl::StatusOr<int64_t> version = TrainOn(gateway, o.admin_token, *train_upload);
      training_wall.push_back(NowSeconds() - start);
      auto m = meter.Stop();
      if (!version.ok()) {
        std::fprintf(stderr, "fraud-bench-footprint: %s\n", version.status().ToString().c_str());
        return 1;
      }
      trained = *version;
      peak["training"].push_back(m["training"].first);
      cpu["training"].push_back(m["training"].second);
    }
    {
      PhaseMeter meter(c, {"inference"});
      last_load = PredictWhileReloading(c.target("inference"), o.admin_token, 1, trained,
                                        config.clients, config.reload_seconds);
      auto m = meter.Stop();
      inference_reload_mb.push_back(m["inference"].first);
      peak["inference"].back() = std::max(peak["inference"].back(), m["inference"].first);
      cpu["inference"].back() += m["inference"].second;
      if (last_load.reloads == 0 || last_load.errors > 0) {
        std::fprintf(stderr, "fraud-bench-footprint: reload phase: %lld reloads, %lld errors (%s)\n",
                     static_cast<long long>(last_load.reloads),
                     static_cast<long long>(last_load.errors), last_load.first_error.c_str());
        return 1;
      }
    }
    std::fprintf(stderr, "run %d done\n", run + 1);
  }

  const std::map<std::string, std::string> phase = {
      {"gateway", "4x upload"}, {"ingest", "4x upload"}, {"storage", "4x upload"},
      {"inference", "4x upload scoring; predicts while reloading"},
      {"training", "full default candidate set"}};
  for (const std::string& name : c.names()) {
    Figure f{"footprint", "peak_rss:" + name, Median(peak[name]), "MB", "idle_rss_mb",
             idle_mb[name], config.runs, Spread(peak[name])};
    f.extra["cpu_s"] = Median(cpu[name]);
    f.extra["target_mb"] = kTargetMb;
    f.notes["phase"] = phase.at(name);
    f.notes["meets_target"] = f.value <= kTargetMb ? "yes" : "no";
    if (name == "inference") {
      f.extra["upload_phase_mb"] = Median(inference_upload_mb);
      f.extra["reload_phase_mb"] = Median(inference_reload_mb);
      f.extra["predictions"] = static_cast<double>(last_load.predictions);
      f.extra["reloads"] = static_cast<double>(last_load.reloads);
      f.extra["shed"] = static_cast<double>(last_load.shed);
      f.extra["clients"] = config.clients;
    }
    if (name == "gateway" || name == "ingest" || name == "storage") {
      f.extra["rows"] = static_cast<double>(config.rows * config.big_factor);
    }
    if (name == "training") f.extra["rows"] = static_cast<double>(config.rows);
    Print(f);
  }
  Figure t{"footprint", "training_cpu", Median(cpu["training"]), "s", "training_wall_s",
           Median(training_wall), config.runs, Spread(cpu["training"])};
  t.extra["target_s"] = kTargetTrainingCpu;
  t.extra["rows"] = static_cast<double>(config.rows);
  t.notes["meets_target"] = t.value <= kTargetTrainingCpu ? "yes" : "no";
  Print(t);
  c.Stop();
  return 0;
}

}  // namespace
}  // namespace fraud::bench

int main(int argc, char** argv) { return fraud::bench::Main(argc, argv); }
