// fraud-bench-feedback: delayed labels and realised metrics against a real PostgreSQL.
//
// Figures (one JSON line each, see bench/common/bench_util.h), medians of --runs runs:
//   record_feedback   seconds to parse a CSV of 284,807 labels (upload_id,line,label) and apply
//                     it with storage's FeedbackWriter (rows kept in memory, then per upload
//                     the reads, the overlay and history writes of migration 0009, commit), in
//                     process (no gRPC hop), on an unscored upload. Every run changes every row
//                     (run 1 labels unlabelled rows, later runs flip them), so each run appends
//                     284,807 changes to history. first_run_s is run 1 alone (the first labels
//                     of the rows: the overlay chunks are new). Floor "psql_copy_csv": psql
//                     "\copy" of the same file into a bare (upload_id, line, label) table, same
//                     run. Target ratio <= 1.0.
//   record_feedback_scored  the same on an upload scored by one version, so every change also
//                     moves its prediction between label states in the realised summary.
//   record_feedback_no_line_map  the same on an unscored upload without a line map (stored
//                     before migration 0009), whose rows' labels feedback reads.
//   realised_metrics  seconds of GetRealisedMetrics by day over --predictions stored predictions
//                     (--versions versions each scoring every row of --days days, 80% of rows
//                     labelled), generated with generate_series INSERTs. Floor "count_join": the
//                     same join counted (SELECT count(*)), same run. Target < 0.2 s. Extras:
//                     insert_s (the generating UPDATE + INSERT, which also fills the summary
//                     through its trigger), exact_s (GetRealisedMetricsExact once) and the
//                     largest |summary - exact| of AUPRC and precision@k over the groups.
//
// Needs a PostgreSQL URI: --uri or FRAUD_BENCH_PG_URI (skipped with a note when absent). Works in
// a private schema bench_feedback_<pid> that it drops at the end.
// Usage: fraud-bench-feedback [--uri URI] [--runs N] [--labels N] [--predictions N]
//                             [--versions N] [--days N]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <functional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/common/service_bench.h"
#include "services/common/csv/feedback_csv.h"
#include "services/common/rpc/feedback_transfer.h"
#include "services/storage/feedback_store.h"
#include "services/storage/migrations.h"
#include "services/storage/pg_pool.h"
#include "services/storage/realised_metrics.h"
#include "tests/testing/realised_metrics_exact.h"

namespace fraud::storage {
namespace {

namespace v1 = ::fraud::storage::v1;

struct Args {
  std::string uri;
  int runs = 3;
  int64_t labels = 284807;
  int64_t predictions = 2800000;
  int versions = 5;
  int days = 30;
};

bool ParseArgs(int argc, char** argv, Args* args) {
  if (const char* env = std::getenv("FRAUD_BENCH_PG_URI"); env != nullptr) args->uri = env;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const std::string v = argv[i + 1];
    if (a == "--uri") {
      args->uri = v;
    } else if (a == "--runs") {
      args->runs = std::atoi(v.c_str());
    } else if (a == "--labels") {
      args->labels = std::atoll(v.c_str());
    } else if (a == "--predictions") {
      args->predictions = std::atoll(v.c_str());
    } else if (a == "--versions") {
      args->versions = std::atoi(v.c_str());
    } else if (a == "--days") {
      args->days = std::atoi(v.c_str());
    } else {
      return false;
    }
  }
  return argc % 2 == 1 && args->runs >= 1 && args->labels >= 1 && args->versions >= 1 &&
         args->days >= 1 && args->predictions >= args->versions;
}

using bench::Exec;
using bench::ShellQuote;
using bench::WithSearchPath;

// Prints the median of `values` beside the median of `floors` (bench_util.h's JSON line).
void Report(const std::string& name, const std::vector<double>& values,
            const std::string& floor_name, const std::vector<double>& floors,
            const std::map<std::string, double>& extra) {
  bench::Figure fig;
  fig.bench = "feedback";
  fig.name = name;
  fig.value = bench::Median(values);
  fig.unit = "s";
  fig.floor_name = floor_name;
  fig.floor_value = bench::Median(floors);
  fig.runs = static_cast<int>(values.size());
  fig.spread = bench::Spread(values);
  fig.extra = extra;
  fig.extra["floor_spread"] = bench::Spread(floors);
  bench::Print(fig);
}

double Timed(const std::function<bool()>& fn) {
  const double t0 = bench::NowSeconds();
  if (!fn()) return -1;
  return bench::NowSeconds() - t0;
}

// The line map StoreUpload writes for upload `upload_id` of n unlabelled rows at lines 2..n+1
// (label_overlay: byte 254 for each row, 255 elsewhere; uploads.line_map).
std::string InsertLineMap(int64_t upload_id, int64_t n) {
  return absl::StrCat(
      "INSERT INTO label_overlay (upload_id, chunk, labels) SELECT ", upload_id,
      ", c, (SELECT string_agg(CASE WHEN c * 1024 + o BETWEEN 2 AND ", n + 1,
      " THEN '\\xfe'::bytea ELSE '\\xff'::bytea END, ''::bytea ORDER BY o)"
      " FROM generate_series(0, 1023) o) FROM generate_series(0, ", (n + 1) >> 10,
      ") c; UPDATE uploads SET line_map = true WHERE id = ", upload_id);
}

// Stored transactions of upload `upload_id`: lines 2..n+1, Time spread over `days` days, the
// row width of real data (28 doubles), no label.
std::string InsertRows(int64_t upload_id, int64_t n, int days) {
  return absl::StrCat(
      "INSERT INTO uploads (id, sha256, status, rows) VALUES (", upload_id, ", lpad('", upload_id,
      "', 64, '0'), 1, ", n, ");"
      "INSERT INTO transactions (upload_id, line, time, amount, v) SELECT ", upload_id,
      ", g + 1, (g - 1) * ", days * 86400.0 / static_cast<double>(n),
      ", g % 500, pack_v(array_fill((g % 7)::float8 / 7, ARRAY[28])) FROM generate_series(1, ", n,
      ") g");
}

// Applies the CSV at `path` with a FeedbackWriter; false on any error.
bool ApplyFeedback(PgPool& pool, const std::string& path, v1::RecordFeedbackResponse* out) {
  FeedbackWriter writer(&pool, absl::InfiniteFuture());
  v1::RecordFeedbackRequest batch;
  absl::Status s;
  csv::FeedbackCsvReader reader([&](csv::FeedbackRow& row) {
    rpc::ToLabelFeedback(row, batch.add_labels());
    if (batch.labels_size() < rpc::kFeedbackBatchRows) return absl::OkStatus();
    absl::Status added = writer.Add(batch);
    batch.clear_labels();
    return added;
  });
  std::ifstream in(path, std::ios::binary);
  std::string chunk(64 << 10, '\0');
  while (s.ok() && in.read(chunk.data(), static_cast<std::streamsize>(chunk.size())).gcount() > 0) {
    s = reader.Feed(std::string_view(chunk.data(), static_cast<size_t>(in.gcount())));
  }
  if (s.ok()) s = reader.Finish();
  if (s.ok()) s = writer.Add(batch);
  if (!s.ok()) {
    std::fprintf(stderr, "feedback: %s\n", s.ToString().c_str());
    return false;
  }
  absl::StatusOr<v1::RecordFeedbackResponse> r = writer.Finish();
  if (!r.ok()) {
    std::fprintf(stderr, "feedback: %s\n", r.status().ToString().c_str());
    return false;
  }
  *out = *r;
  return true;
}

int Run(const Args& args) {
  const std::string schema = absl::StrCat("bench_feedback_", getpid());
  const std::string uri = WithSearchPath(args.uri, schema);
  char tmpl[] = "/tmp/fraud-bench-feedback-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  const std::string dir = tmpl;
  chmod(dir.c_str(), 0755);
  PgPoolOptions options;
  options.conninfo = uri;
  options.size = 2;
  options.statement_timeout_ms = 0;
  int rc = 0;
  try {
    Exec(args.uri, absl::StrCat("CREATE SCHEMA ", schema));
    PgPool pool(options);
    if (absl::Status s = ApplyMigrations(pool, EmbeddedMigrations()); !s.ok()) {
      std::fprintf(stderr, "migrations: %s\n", s.ToString().c_str());
      return 1;
    }
    // ---- feedback ----
    // Upload 1 is unscored; upload 3 is scored by one version (its predictions move between
    // label states in the realised summary with every change); both have the line map
    // StoreUpload writes. Upload 4 has none (stored before migration 0009, or the live-scoring
    // upload): feedback reads its rows' labels.
    constexpr int64_t kUpload = 1;
    constexpr int64_t kScoredUpload = 3;
    constexpr int64_t kUnmappedUpload = 4;
    Exec(uri, InsertRows(kUpload, args.labels, 2));
    Exec(uri, InsertLineMap(kUpload, args.labels));
    Exec(uri, InsertRows(kScoredUpload, args.labels, 2));
    Exec(uri, InsertLineMap(kScoredUpload, args.labels));
    Exec(uri, InsertRows(kUnmappedUpload, args.labels, 2));
    Exec(uri, absl::StrCat("INSERT INTO predictions (upload_id, line, model_version, score,"
                           " decision) SELECT upload_id, line, 1, (line % 1000) / 1000.0,"
                           " line % 1000 >= 990 FROM transactions WHERE upload_id = ",
                           kScoredUpload));
    Exec(uri, "CREATE TABLE bench_floor (upload_id bigint, line bigint, label smallint); "
              "ANALYZE transactions; ANALYZE predictions");
    for (const int64_t upload : {kUpload, kScoredUpload, kUnmappedUpload}) {
      const long peak_before = bench::PeakRssBytes();
      std::vector<std::string> files;
      for (int flip = 0; flip < 2; ++flip) {
        files.push_back(absl::StrCat(dir, "/labels", upload, "_", flip, ".csv"));
        std::ofstream f(files.back());
        f << "upload_id,line,label\n";
        for (int64_t i = 0; i < args.labels; ++i) {
          f << upload << ',' << i + 2 << ',' << (((i % 577 == 0) ? 1 : 0) ^ flip) << '\n';
        }
      }
      std::vector<double> floor_s, apply_s, apply_only_s;
      for (int run = 0; rc == 0 && run < args.runs; ++run) {
        Exec(uri, "TRUNCATE bench_floor");
        const std::string& file = files[run % 2];
        const double f = Timed([&] {
          return std::system(
                     absl::StrCat("psql ", ShellQuote(uri), " -q -v ON_ERROR_STOP=1 -c ",
                                  ShellQuote(absl::StrCat("\\copy bench_floor FROM '", file,
                                                          "' CSV HEADER")))
                         .c_str()) == 0;
        });
        v1::RecordFeedbackResponse resp;
        const double t = Timed([&] { return ApplyFeedback(pool, file, &resp); });
        if (f < 0 || t < 0 || resp.applied() + resp.conflicts() != args.labels) {
          std::fprintf(stderr, "run %d failed (applied %lld, conflicts %lld)\n", run,
                       static_cast<long long>(resp.applied()),
                       static_cast<long long>(resp.conflicts()));
          rc = 1;
          break;
        }
        floor_s.push_back(f);
        apply_s.push_back(t);
        apply_only_s.push_back(resp.apply_seconds());
      }
      if (rc == 0) {
        Report(upload == kUpload         ? "record_feedback"
               : upload == kScoredUpload ? "record_feedback_scored"
                                         : "record_feedback_no_line_map",
               apply_s,
               "psql_copy_csv", floor_s,
               {{"labels", static_cast<double>(args.labels)},
                {"apply_seconds", bench::Median(apply_only_s)},
                {"first_run_s", apply_s.front()},
                {"first_run_floor_s", floor_s.front()},
                // Growth of this process's peak RSS over the runs (the rows FeedbackWriter
                // holds, the messages in flight): an upper bound of what one stream costs.
                {"peak_rss_growth_mb",
                 static_cast<double>(bench::PeakRssBytes() - peak_before) / (1 << 20)},
                {"target_ratio", 1.0}});
      }
    }

    // The realised figures below measure their own upload only.
    Exec(uri, absl::StrCat("DELETE FROM predictions WHERE upload_id = ", kScoredUpload));

    // ---- realised metrics ----
    const int64_t rows = args.predictions / args.versions;
    constexpr int64_t kRealisedUpload = 2;
    Exec(uri, InsertRows(kRealisedUpload, rows, args.days));
    // Every version scores every row; 80% of the rows are labelled, ~0.2% frauds.
    // The INSERT also maintains the realised summary (migration 0007's trigger): insert_s.
    const double insert_s = Timed([&] {
      Exec(uri, absl::StrCat(
                  "UPDATE transactions SET class = CASE WHEN line % 5 = 0 THEN NULL"
                  " WHEN line % 577 = 0 THEN 1 ELSE 0 END WHERE upload_id = ", kRealisedUpload,
                  "; INSERT INTO predictions (upload_id, line, model_version, score, decision)"
                  " SELECT ", kRealisedUpload, ", line, ver, s, s > 0.9 FROM (SELECT line, ver,"
                  " ((line * 7919 + ver * 104729) % 10007)::real / 10007 AS s"
                  " FROM transactions, generate_series(1, ", args.versions, ") ver"
                  " WHERE upload_id = ", kRealisedUpload, ") x; ANALYZE"));
      return true;
    });
    std::vector<double> realised_s, count_s;
    size_t groups = 0;
    for (int run = 0; rc == 0 && run < args.runs; ++run) {
      const double c = Timed([&] {
        Exec(uri, "SELECT count(*) FROM predictions p JOIN transactions t"
                  " ON t.upload_id = p.upload_id AND t.line = p.line");
        return true;
      });
      v1::GetRealisedMetricsRequest req;
      req.set_by(v1::REALISED_PERIOD_DAY);
      const double t = Timed([&] {
        absl::StatusOr<v1::GetRealisedMetricsResponse> r = GetRealisedMetrics(pool, req);
        if (!r.ok()) std::fprintf(stderr, "realised: %s\n", r.status().ToString().c_str());
        if (r.ok()) groups = r->metrics_size();
        return r.ok();
      });
      if (t < 0) {
        rc = 1;
        break;
      }
      count_s.push_back(c);
      realised_s.push_back(t);
    }
    // The exact computation once (seconds): how far the histogram's AUPRC and precision@k are.
    double exact_s = 0;
    double max_auprc_diff = 0;
    double max_pak_diff = 0;
    if (rc == 0) {
      v1::GetRealisedMetricsRequest req;
      req.set_by(v1::REALISED_PERIOD_DAY);
      absl::StatusOr<v1::GetRealisedMetricsResponse> summary = GetRealisedMetrics(pool, req);
      absl::StatusOr<v1::GetRealisedMetricsResponse> exact;
      exact_s = Timed([&] {
        exact = ::fraud::testing::GetRealisedMetricsExact(pool, req);
        return exact.ok();
      });
      if (!summary.ok() || !exact.ok() || summary->metrics_size() != exact->metrics_size()) {
        std::fprintf(stderr, "realised: summary and exact computation disagree on the groups\n");
        rc = 1;
      } else {
        for (int i = 0; i < exact->metrics_size(); ++i) {
          max_auprc_diff = std::max(
              max_auprc_diff, std::abs(summary->metrics(i).auprc() - exact->metrics(i).auprc()));
          max_pak_diff = std::max(max_pak_diff, std::abs(summary->metrics(i).precision_at_k() -
                                                         exact->metrics(i).precision_at_k()));
        }
      }
    }
    if (rc == 0) {
      Report("realised_metrics", realised_s, "count_join", count_s,
             {{"predictions", static_cast<double>(rows * args.versions)},
              {"groups", static_cast<double>(groups)},
              {"insert_s", insert_s},
              {"exact_s", exact_s},
              {"max_auprc_diff", max_auprc_diff},
              {"max_precision_at_k_diff", max_pak_diff},
              {"target_s", 0.2}});
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "database: %s\n", e.what());
    rc = 1;
  }
  try {
    Exec(args.uri, absl::StrCat("DROP SCHEMA ", schema, " CASCADE"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cleanup: %s\n", e.what());
  }
  std::system(absl::StrCat("rm -rf ", ShellQuote(dir)).c_str());
  return rc;
}

}  // namespace
}  // namespace fraud::storage

int main(int argc, char** argv) {
  fraud::storage::Args args;
  if (!fraud::storage::ParseArgs(argc, argv, &args)) {
    std::fprintf(stderr,
                 "usage: fraud-bench-feedback [--uri URI] [--runs N] [--labels N] "
                 "[--predictions N] [--versions N] [--days N]\n");
    return 2;
  }
  if (args.uri.empty()) {
    std::printf("{\"bench\":\"feedback\",\"skipped\":\"no --uri or FRAUD_BENCH_PG_URI\"}\n");
    return 0;
  }
  return fraud::storage::Run(args);
}
