// Streaming reader for delayed-label (feedback) CSV files, shared by the gateway's
// POST /api/v1/feedback and `fraudctl feedback`.
//
// Format: UTF-8 (optional BOM), LF or CRLF, blank lines skipped. The first non-blank line is the
// header; columns in any order, names trimmed and case-insensitive:
//   upload_id, line       the stored row (both), or
//   transaction_id        the id the transaction was scored with (instead of the two above);
//   label                 0 or 1 (required);
//   source, note, at      optional: source of the label, free text, RFC 3339 time.
// A row may leave upload_id/line empty and give transaction_id, or the reverse, when the header
// has all three. Fields may be quoted ("a, ""b""") but cannot contain a line break.
// Unknown or repeated columns, a header without label or without an id column fail the file.
//
// Strict: the first bad row stops the reader with INVALID_ARGUMENT
// "line N, column C: reason" (line 1 = the header). Which stored transactions exist, and the
// source/note rules, are checked by storage, not here.
// Memory: one line (at most 64 KiB) plus the rows the callback has not taken.
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace fraud::csv {

struct FeedbackRow {
  // 1-based line of the row in the file.
  int64_t file_line = 0;
  int64_t upload_id = 0;
  int64_t line = 0;
  std::string transaction_id;
  int32_t label = 0;
  std::string source;
  std::string note;
  // Seconds and nanoseconds since the epoch; has_at false when the field is absent or empty.
  bool has_at = false;
  int64_t at_seconds = 0;
  int32_t at_nanos = 0;
};

class FeedbackCsvReader {
 public:
  // Called with each valid row; a non-OK status stops the reader and is returned by Feed/Finish.
  using RowFn = std::function<absl::Status(FeedbackRow&)>;
  explicit FeedbackCsvReader(RowFn on_row) : on_row_(std::move(on_row)) {}

  absl::Status Feed(std::string_view chunk);
  // The last line without a newline; InvalidArgument for a file without header.
  absl::Status Finish();
  int64_t rows() const { return rows_; }

 private:
  absl::Status Line(std::string_view line);
  absl::Status Header(const std::vector<std::string>& fields);
  absl::Status Row(const std::vector<std::string>& fields);
  absl::Status Fail(absl::Status s);

  RowFn on_row_;
  absl::Status status_;
  std::string carry_;
  int64_t line_no_ = 0;
  int64_t rows_ = 0;
  bool header_done_ = false;
  bool finished_ = false;
  // Field position of each column, -1 when absent.
  int upload_id_ = -1, line_ = -1, transaction_id_ = -1, label_ = -1, source_ = -1, note_ = -1,
      at_ = -1;
  size_t columns_ = 0;
};

// Splits one CSV line into fields (RFC 4180 quoting within the line). InvalidArgument naming the
// 1-based field for an unterminated quote or text after a closing quote.
absl::Status SplitCsvLine(std::string_view line, std::vector<std::string>* fields);

}  // namespace fraud::csv
