// Helpers for the CSV tests: build rows and files, and run a CsvReader over bytes split into
// chunks in a chosen way, collecting everything it reports.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "services/common/csv/csv_reader.h"
#include "services/common/csv/transaction_row.h"

namespace fraud::csv::testing {

// "Time,V1,...,V28,Amount" (+ ",Class"), unquoted, no newline.
inline std::string Header(bool with_class = true) {
  std::string h;
  for (int i = 0; i < kNumFeatures; ++i) {
    if (i > 0) h += ',';
    h += std::string(kFeatureNames[i]);
  }
  if (with_class) h += ",Class";
  return h;
}

// The fields of a valid row: Time = 10 * i, V_k = k + i / 100 (negated for odd k), Amount =
// 1.5 * i, Class = i % 2.
inline std::vector<std::string> RowFields(int i, bool with_class = true) {
  std::vector<std::string> f;
  f.push_back(std::to_string(10 * i));
  for (int k = 1; k <= 28; ++k) {
    char v[32];
    std::snprintf(v, sizeof(v), "%s%d.%02d", k % 2 == 1 ? "-" : "", k, i % 100);
    f.push_back(v);
  }
  f.push_back(std::to_string(3 * i / 2) + (i % 2 ? ".5" : ""));
  if (with_class) f.push_back(std::to_string(i % 2));
  return f;
}

inline std::string Join(const std::vector<std::string>& fields) {
  std::string s;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) s += ',';
    s += fields[i];
  }
  return s;
}

// A valid row as text (no newline).
inline std::string Row(int i, bool with_class = true) { return Join(RowFields(i, with_class)); }

// A valid row with field `position` (0-based) replaced by `value`.
inline std::string RowWith(int i, int position, const std::string& value) {
  std::vector<std::string> f = RowFields(i);
  f[position] = value;
  return Join(f);
}

// Expected features of Row(i), in model order (glibc's strtod rounds correctly, as from_chars).
inline std::vector<double> RowFeatures(int i) {
  std::vector<std::string> f = RowFields(i, /*with_class=*/false);
  std::vector<double> v;
  for (const std::string& s : f) v.push_back(std::strtod(s.c_str(), nullptr));
  return v;
}

// Everything a reader reported for one file.
struct Result {
  absl::Status status;  // first non-OK of Feed/Finish, else Finish's
  std::vector<double> features;
  std::vector<int32_t> labels;
  std::vector<int64_t> lines;
  std::vector<size_t> batch_sizes;
  std::vector<RowError> errors;
  int64_t errors_total = 0;
  CsvCounters counters;
  bool has_labels = false;

  size_t rows() const { return lines.size(); }
};

// How to cut the bytes: `split_at` >= 0 cuts into [0, split_at) and the rest; otherwise
// `chunk_size` > 0 feeds pieces of that many bytes; otherwise one piece.
struct Chunking {
  int64_t split_at = -1;
  size_t chunk_size = 0;
};

inline Result RunReader(std::string_view data, CsvReaderOptions options = {},
                        Chunking chunking = {}) {
  Result r;
  CsvReader reader(options, [&r](RowBatch& batch) {
    r.features.insert(r.features.end(), batch.features.begin(), batch.features.end());
    r.labels.insert(r.labels.end(), batch.labels.begin(), batch.labels.end());
    r.lines.insert(r.lines.end(), batch.line_numbers.begin(), batch.line_numbers.end());
    r.batch_sizes.push_back(batch.num_rows());
    return absl::OkStatus();
  });
  std::vector<std::string_view> pieces;
  if (chunking.split_at >= 0) {
    pieces.push_back(data.substr(0, chunking.split_at));
    pieces.push_back(data.substr(chunking.split_at));
  } else if (chunking.chunk_size > 0) {
    for (size_t off = 0; off < data.size(); off += chunking.chunk_size) {
      pieces.push_back(data.substr(off, chunking.chunk_size));
    }
  } else {
    pieces.push_back(data);
  }
  for (std::string_view piece : pieces) {
    // Copy each piece so that reading past its end is caught by sanitizers.
    const std::string copy(piece);
    r.status = reader.Feed(copy);
    if (!r.status.ok()) break;
  }
  if (r.status.ok()) r.status = reader.Finish();
  r.errors = reader.errors();
  r.errors_total = reader.errors_total();
  r.counters = reader.counters();
  r.has_labels = reader.has_labels();
  return r;
}

}  // namespace fraud::csv::testing
