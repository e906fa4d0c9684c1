// libFuzzer target: the streaming CSV reader/validator (services/common/csv).
//
// Input layout: byte 0 = options (mode, batch size, line limit, error cap), byte 1 = chunk size
// seed, the rest = the file. The file is read twice, whole and in fuzzer-chosen chunks, and the two
// readings must agree exactly (the reader promises that chunk boundaries may fall anywhere).
// Every accepted row must satisfy the documented invariants (30 finite features, Time and Amount
// >= 0, Class 0/1, increasing line numbers); the counters must add up; error texts must be valid
// UTF-8. A violated invariant aborts (= a crash for libFuzzer).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "services/common/csv/csv_reader.h"
#include "services/common/csv/transaction_row.h"

namespace {

using fraud::csv::CsvReader;
using fraud::csv::CsvReaderOptions;
using fraud::csv::RowBatch;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "csv_reader_fuzzer invariant violated: %s\n", what);
    std::abort();
  }
}

struct Reading {
  absl::Status status;
  fraud::csv::CsvCounters counters;
  std::vector<fraud::csv::RowError> errors;
  int64_t errors_total = 0;
  std::vector<double> features;
  std::vector<int32_t> labels;
  std::vector<int64_t> lines;
  bool has_labels = false;
};

Reading Read(const CsvReaderOptions& options, std::string_view file,
             const std::vector<size_t>& cuts) {
  Reading r;
  bool labelled = false;
  CsvReader reader(options, [&](RowBatch& batch) {
    Check(batch.features.size() == batch.num_rows() * fraud::csv::kNumFeatures, "batch shape");
    Check(static_cast<int64_t>(batch.num_rows()) <= options.batch_rows, "batch larger than asked");
    Check(batch.labels.empty() || batch.labels.size() == batch.num_rows(), "labels per row");
    Check(batch.line_numbers.size() == batch.num_rows(), "line numbers per row");
    r.features.insert(r.features.end(), batch.features.begin(), batch.features.end());
    r.labels.insert(r.labels.end(), batch.labels.begin(), batch.labels.end());
    r.lines.insert(r.lines.end(), batch.line_numbers.begin(), batch.line_numbers.end());
    labelled = batch.has_labels();
    return absl::OkStatus();
  });
  size_t pos = 0;
  absl::Status s;
  for (size_t cut : cuts) {
    if (cut <= pos || cut > file.size()) continue;
    s = reader.Feed(file.substr(pos, cut - pos));
    pos = cut;
    if (!s.ok()) break;
  }
  if (s.ok()) s = reader.Feed(file.substr(pos));
  if (s.ok()) s = reader.Finish();
  // After a failure every call returns the same status.
  if (!s.ok()) Check(reader.Feed("x") == s, "sticky failure status");
  r.status = s;
  r.counters = reader.counters();
  r.errors = reader.errors();
  r.errors_total = reader.errors_total();
  r.has_labels = labelled || reader.has_labels();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t opt = data[0];
  const uint8_t chunk_seed = data[1];
  const std::string_view file(reinterpret_cast<const char*>(data) + 2, size - 2);

  CsvReaderOptions options;
  options.mode = (opt & 1) ? fraud::csv::Mode::kLenient : fraud::csv::Mode::kStrict;
  static constexpr int64_t kBatch[] = {1, 2, 3, 8192};
  options.batch_rows = kBatch[(opt >> 1) & 3];
  static constexpr int64_t kLine[] = {1 << 20, 64, 300, 2000};
  options.max_line_bytes = kLine[(opt >> 3) & 3];
  options.max_errors = (opt >> 5) & 7;

  std::vector<size_t> cuts;
  const size_t step = 1 + chunk_seed % 97;
  for (size_t c = step; c < file.size(); c += step + (c % 5)) cuts.push_back(c);

  const Reading whole = Read(options, file, {});
  const Reading chunked = Read(options, file, cuts);

  Check(whole.status == chunked.status, "status differs between whole and chunked reading");
  Check(whole.errors == chunked.errors, "errors differ between whole and chunked reading");
  Check(whole.errors_total == chunked.errors_total, "error totals differ");
  Check(whole.counters.rows_seen == chunked.counters.rows_seen &&
            whole.counters.rows_accepted == chunked.counters.rows_accepted &&
            whole.counters.rows_rejected == chunked.counters.rows_rejected,
        "counters differ between whole and chunked reading");
  Check(whole.lines == chunked.lines && whole.labels == chunked.labels, "rows differ");
  Check(whole.features.size() == chunked.features.size(), "feature count differs");
  for (size_t i = 0; i < whole.features.size(); ++i) {
    // Bitwise: the same text must give the same double.
    Check(std::memcmp(&whole.features[i], &chunked.features[i], sizeof(double)) == 0,
          "feature values differ");
  }

  const Reading& r = whole;
  Check(r.counters.rows_accepted + r.counters.rows_rejected == r.counters.rows_seen,
        "accepted + rejected != seen");
  Check(r.counters.bytes <= static_cast<int64_t>(file.size()), "bytes counted beyond input");
  Check(r.errors.size() <= static_cast<size_t>(options.max_errors) + 1, "too many errors kept");
  Check(r.errors_total >= static_cast<int64_t>(r.errors.size()), "errors_total too small");
  if (r.status.ok()) {
    Check(static_cast<int64_t>(r.lines.size()) == r.counters.rows_accepted,
          "emitted rows != accepted rows");
    Check(r.counters.rows_seen > 0, "an OK file has data rows");
    if (options.mode == fraud::csv::Mode::kStrict) {
      Check(r.errors.empty(), "strict OK with errors");
      Check(r.counters.rows_accepted > 0, "a strict OK file has accepted rows");
    }
  } else {
    Check(r.status.code() == absl::StatusCode::kInvalidArgument, "failure is INVALID_ARGUMENT");
    Check(!r.errors.empty(), "a failure names its error");
  }
  for (size_t i = 0; i < r.lines.size(); ++i) {
    Check(r.lines[i] >= 2, "data rows start at line 2");
    if (i > 0) Check(r.lines[i] > r.lines[i - 1], "line numbers increase");
    const double* f = &r.features[i * fraud::csv::kNumFeatures];
    for (int j = 0; j < fraud::csv::kNumFeatures; ++j) Check(std::isfinite(f[j]), "finite value");
    Check(f[0] >= 0, "Time >= 0");
    Check(f[fraud::csv::kNumFeatures - 1] >= 0, "Amount >= 0");
  }
  for (int32_t label : r.labels) Check(label == 0 || label == 1, "Class is 0 or 1");
  for (const auto& e : r.errors) {
    Check(fraud::csv::IsValidUtf8(e.reason), "error reason is valid UTF-8");
    Check(fraud::csv::IsValidUtf8(e.column), "error column is valid UTF-8");
    Check(e.line >= 0 && e.column_index >= 0, "error position");
    Check(e.reason.size() < 4096, "error reason bounded");
  }
  return 0;
}
