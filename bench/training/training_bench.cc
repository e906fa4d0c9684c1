// fraud-bench-training: one full training run of the default candidate set (logreg, 3 mlp,
// 2 xgboost, random_forest) on 200,000 synthetic rows, in-process through the service's own code
// path (ExecuteRun: scan -> time-ordered split -> candidates -> comparison -> artifact ->
// registry), with storage and inference replaced by in-memory fakes.
//
// Figures (one JSON line each, bench/common/bench_util.h):
//   run_total        wall seconds of the whole run; target <= 120 s. Also reports cpu_s (user +
//                    system CPU seconds of the process), which does not depend on what else the
//                    shared machine runs: wall >= cpu_s / threads. Floor: one pass of the
//                    200,000 raw rows through the cheapest model (the trained logreg's Score),
//                    i.e. the least work any model needs to look at the data once.
//   peak_rss         peak resident memory of the process during the run (sampled every 20 ms, so
//                    per-candidate resets of VmHWM do not hide it). Floor: the raw feature
//                    matrix (200,000 x 30 doubles). Includes the in-memory storage fake's copy
//                    of the rows (~60-80 MB), which in production lives in PostgreSQL; the
//                    450 MB target of the real training process is checked by bench/footprint.
//   candidate:<name> wall seconds of each candidate, with its peak RSS and validation AUPRC.
//
// Flags: --rows N (default 200000), --families a,b (default all), --threads N (default 2).
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bench/common/bench_util.h"
#include "services/common/model/artifact.h"
#include "services/common/model/blas.h"
#include "services/common/model/model_runtime.h"
#include "services/common/model/trainer.h"
#include "services/training/dataset.h"
#include "services/training/pipeline.h"
#include "tests/unit/training/fakes.h"

namespace fraud::training {
namespace {

class RecordingSink final : public RunSink {
 public:
  void Update(const std::function<void(storage_pb::TrainingRun&)>& mutate, bool) override {
    mutate(run);
  }
  storage_pb::TrainingRun run;
};

// Samples VmRSS in the background and keeps the maximum.
class RssSampler {
 public:
  RssSampler() : thread_([this] {
      while (!stop_.load()) {
        peak_.store(std::max(peak_.load(), bench::RssBytes()));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }) {}
  ~RssSampler() { Stop(); }
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  long peak() const { return std::max(peak_.load(), bench::RssBytes()); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<long> peak_{0};
  std::thread thread_;
};

int Main(int argc, char** argv) {
  int64_t rows = 200000;
  std::string families;
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const std::string& name) { return bench::FlagValue(argc, argv, &i, name); };
    if (const char* v = value("--rows")) {
      rows = std::atoll(v);
    } else if (const char* v = value("--families")) {
      families = v;
    } else if (const char* v = value("--threads")) {
      threads = std::atoi(v);
    } else {
      std::fprintf(stderr, "usage: fraud-bench-training [--rows N] [--families a,b] [--threads N]\n");
      return 2;
    }
  }

  testing::FakeStorage storage;
  testing::FakeInference inference;
  storage.AddSyntheticUpload(rows, 1, 0.00172);
  char tmpl[] = "/tmp/fraud-bench-training-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  const std::string root = tmpl;

  PipelineOptions options;
  options.model_dir = root + "/models";
  options.threads = threads;
  PipelineDeps deps;
  deps.storage = &storage;
  deps.inference = &inference;
  training::v1::StartRunRequest request;
  if (!families.empty()) request.add_families(families);
  RecordingSink sink;
  std::atomic<bool> cancel{false};

  RssSampler sampler;
  auto cpu_seconds = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  const double cpu_start = cpu_seconds();
  const double start = bench::NowSeconds();
  const absl::Status status = ExecuteRun(request, 1, options, deps, sink, cancel);
  const double total = bench::NowSeconds() - start;
  const double cpu_total = cpu_seconds() - cpu_start;
  sampler.Stop();
  if (!status.ok()) {
    std::fprintf(stderr, "training run failed: %s\n", status.ToString().c_str());
    return 1;
  }

  // Floor: one scoring pass of the raw rows through the cheapest model: a logistic regression
  // (trained here for one epoch on the first 20,000 rows; its scoring cost does not depend on
  // how well it is trained).
  double floor_seconds = 0;
  {
    model::Dataset all;
    all.features.reserve(static_cast<size_t>(rows) * kNumFeatures);
    absl::Status scan = storage.ScanTransactions(
        storage_pb::ScanTransactionsRequest(), [&](const common::v1::TransactionBatch& b) {
          all.features.insert(all.features.end(), b.features().begin(), b.features().end());
          all.labels.insert(all.labels.end(), b.labels().begin(), b.labels().end());
          return absl::OkStatus();
        });
    const size_t n = std::min<size_t>(all.rows(), 20000);
    model::Dataset small_train, small_val;
    small_train.features.assign(all.features.begin(), all.features.begin() + (n / 2) * kNumFeatures);
    small_train.labels.assign(all.labels.begin(), all.labels.begin() + n / 2);
    small_val.features.assign(all.features.begin() + (n / 2) * kNumFeatures,
                              all.features.begin() + n * kNumFeatures);
    small_val.labels.assign(all.labels.begin() + n / 2, all.labels.begin() + n);
    model::CandidateSpec spec;
    spec.family = common::v1::MODEL_FAMILY_LOGREG;
    spec.params = {{"epochs", "1"}};
    spec.threads = threads;
    absl::StatusOr<model::TrainedCandidate> logreg =
        scan.ok() ? model::TrainCandidate(spec, small_train, small_val)
                  : absl::StatusOr<model::TrainedCandidate>(scan);
    if (logreg.ok()) {
      std::vector<float> scores(all.rows());
      std::vector<double> times;
      for (int run = 0; run < 3; ++run) {
        const double t0 = bench::NowSeconds();
        (void)logreg->runtime->Score(all.features.data(), all.rows(), scores.data());
        times.push_back(bench::NowSeconds() - t0);
      }
      floor_seconds = bench::Median(times);
    } else {
      std::fprintf(stderr, "floor model failed: %s\n", logreg.status().ToString().c_str());
    }
  }

  // The BLAS LibTorch trains on: a 512^3 float32 product, beside the same product as a plain loop
  // (what a BLAS that does nothing clever achieves) measured in the same run.
  {
    const int64_t n = 512;
    const double gflops = model::GemmGflops(n, 5, threads);
    const double one_thread = model::GemmGflops(n, 5, 1);
    std::vector<float> a(n * n, 1.0f), b(n * n, 0.5f), c(n * n, 0.0f);
    const double t0 = bench::NowSeconds();
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t p = 0; p < n; ++p) {
        const float x = a[i * n + p];
        for (int64_t j = 0; j < n; ++j) c[i * n + j] += x * b[p * n + j];
      }
    }
    const double loop_gflops = 2.0 * n * n * n / (bench::NowSeconds() - t0) / 1e9;
    bench::Figure f;
    f.bench = "training";
    f.name = "gemm_gflops";
    f.value = gflops;
    f.unit = "GFLOP/s";
    f.floor_name = "plain_loop_512";
    f.floor_value = loop_gflops;
    f.extra = {{"n", static_cast<double>(n)},
               {"threads", static_cast<double>(threads)},
               {"one_thread_gflops", one_thread},
               {"check", c[0]}};
    f.notes = {{"blas", model::LoadedBlasLibrary()}};
    bench::Print(f);
  }

  const long peak = sampler.peak();
  bench::Figure run_figure;
  run_figure.bench = "training";
  run_figure.name = "run_total";
  run_figure.value = total;
  run_figure.unit = "s";
  run_figure.floor_name = absl::StrCat("logreg_score_pass_", rows, "_rows");
  run_figure.floor_value = floor_seconds;
  run_figure.extra = {{"rows", static_cast<double>(rows)},
                      {"candidates", static_cast<double>(sink.run.candidates_size())},
                      {"target_s", 120},
                      {"peak_rss_mb", peak / 1048576.0},
                      {"threads", static_cast<double>(threads)},
                      {"cpu_s", cpu_total}};
  run_figure.notes = {{"selected", sink.run.progress().message()}};
  bench::Print(run_figure);

  bench::Figure rss_figure;
  rss_figure.bench = "training";
  rss_figure.name = "peak_rss";
  rss_figure.value = peak / 1048576.0;
  rss_figure.unit = "MB";
  rss_figure.floor_name = "raw_feature_matrix";
  rss_figure.floor_value = static_cast<double>(rows) * kNumFeatures * sizeof(double) / 1048576.0;
  rss_figure.extra = {{"target_mb", 1536}};
  bench::Print(rss_figure);

  for (const storage_pb::Candidate& c : sink.run.candidates()) {
    bench::Figure f;
    f.bench = "training";
    f.name = absl::StrCat("candidate:", c.name());
    f.value = c.train_seconds();
    f.unit = "s";
    f.floor_name = run_figure.floor_name;
    f.floor_value = floor_seconds;
    f.extra = {{"peak_rss_mb", c.peak_rss_bytes() / 1048576.0},
               {"validation_auprc", c.validation_metrics().auprc()},
               {"epochs", static_cast<double>(c.curve_size())},
               // For the LibTorch families an epoch is one pass over the training rows: the
               // figure the BLAS changes.
               {"seconds_per_epoch", c.curve_size() > 0 ? c.train_seconds() / c.curve_size() : 0},
               {"selected", c.selected() ? 1.0 : 0.0}};
    bench::Print(f);
  }
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  return 0;
}

}  // namespace
}  // namespace fraud::training

int main(int argc, char** argv) { return fraud::training::Main(argc, argv); }
