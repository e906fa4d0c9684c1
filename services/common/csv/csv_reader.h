// Streaming reader and validator for transaction CSV files (Time, V1..V28, Amount[, Class]).
//
// The reader is fed the file as arbitrary byte chunks (chunk boundaries may fall anywhere: inside
// a line, between '\r' and '\n', inside the UTF-8 BOM or inside a quoted field) and produces
// packed RowBatches of validated rows. It holds at most one batch plus one partial line, so memory
// is flat whatever the file size:
//
//   CsvReader reader(options, [&](RowBatch& batch) { return store.Append(batch); });
//   while (ReadChunk(&chunk)) FRAUD_RETURN_IF_ERROR(reader.Feed(chunk));
//   FRAUD_RETURN_IF_ERROR(reader.Finish());     // last line, last batch, empty-file checks
//
// File format accepted:
//   - Encoding UTF-8, optional UTF-8 BOM. UTF-16 (BOM or NUL-interleaved header) is refused with
//     "file is UTF-16; save as UTF-8". Line endings LF or CRLF; the last newline is optional.
//   - Blank lines (empty or only spaces/tabs) are skipped anywhere; they still count as lines.
//   - The first non-blank line is the header. Column names may be quoted and are trimmed of
//     surrounding spaces; columns may come in any order. The set must be exactly Time, V1..V28,
//     Amount, optionally Class (the label). Missing, unknown or duplicated columns fail the whole
//     file, in both modes, with every offending name in the message.
//   - Values are decimal numbers (std::from_chars syntax, optional leading '+', may be quoted and
//     surrounded by spaces). Rejected: empty values, text, NaN/Inf in any spelling, numbers out
//     of double range (1e400), negative Time or Amount, Class other than 0 or 1, too few or too
//     many fields, NUL bytes, invalid UTF-8, unterminated quotes, lines longer than
//     max_line_bytes (detected without buffering the rest of the line).
//
// Errors are RowErrors: 1-based line (header = line 1; 0 = the whole file), column name and
// 1-based column position when the problem belongs to one field, and a reason that quotes the
// offending value (truncated, non-printable bytes escaped so the text is valid UTF-8), e.g.
// "not a number: 'abc'". Each rejected row reports its first problem only.
//
// Modes:
//   kStrict  - the first row error fails the file: Feed()/Finish() return INVALID_ARGUMENT and
//              the caller stops (nothing after the error is parsed or emitted).
//   kLenient - bad rows are skipped; every one is counted, the first max_errors are kept.
//   File-level errors (header, empty file, no data rows, UTF-16) fail in both modes.
//
// Batches are delivered through the callback given to the constructor when `batch_rows` rows are
// ready and once more, with the rest, in Finish(). Without a callback, ready batches queue up and
// are taken with NextBatch(); the queue then holds the batches completed by one Feed() call, so
// feed chunks of a moderate size (64 KiB) and drain after every Feed() to keep memory flat.
//
// The reader does not hash the bytes; callers that need a checksum feed fraud::Sha256 themselves.
// Thread-safety: none; one reader per file, used from one thread at a time.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "services/common/csv/transaction_row.h"

namespace fraud::csv {

enum class Mode { kStrict, kLenient };

struct CsvReaderOptions {
  Mode mode = Mode::kStrict;
  // Rows per emitted batch (>= 1).
  int64_t batch_rows = 8192;
  // Longest accepted line in bytes, excluding the '\n' (a '\r' before it counts).
  int64_t max_line_bytes = 1 << 20;
  // Row errors kept in errors(); further errors are only counted (errors_total()).
  int64_t max_errors = 100;
};

// One validation problem. Mirrors fraud.common.v1.RowError.
struct RowError {
  // 1-based line in the file (header = 1); 0 for problems of the whole file.
  int64_t line = 0;
  // Column name from the header (or the expected name), empty when no single column is at fault.
  std::string column;
  // 1-based position of the field in the line, 0 when unknown or not applicable.
  int32_t column_index = 0;
  std::string reason;

  // "line 7, column Amount (30): not a number: 'abc'" / "file is empty".
  std::string ToString() const;
  bool operator==(const RowError& o) const {
    return line == o.line && column == o.column && column_index == o.column_index &&
           reason == o.reason;
  }
};

struct CsvCounters {
  // Non-blank data lines seen (accepted + rejected).
  int64_t rows_seen = 0;
  int64_t rows_accepted = 0;
  int64_t rows_rejected = 0;
  // Bytes passed to Feed().
  int64_t bytes = 0;
};

class CsvReader {
 public:
  // Receives each full batch (and the last partial one). The batch may be modified or swapped
  // out; the reader clears it after the call. A non-OK status stops the reader: Feed()/Finish()
  // return that status unchanged, and so does every later call.
  using BatchCallback = std::function<absl::Status(RowBatch& batch)>;

  explicit CsvReader(CsvReaderOptions options = {}, BatchCallback on_batch = nullptr);
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  // Consumes the next bytes of the file. Returns OK, INVALID_ARGUMENT for a file-level error or
  // (strict mode) the first row error, or the callback's error. After a failure every call
  // returns the same status; after Finish() it returns FAILED_PRECONDITION.
  absl::Status Feed(std::string_view chunk);
  // Ends the file: validates the last line, emits the last batch, and returns INVALID_ARGUMENT
  // "file is empty" (no header) or "file has no data rows" (header only) when that is the case.
  absl::Status Finish();

  // Pull API (no callback given): moves the oldest ready batch into *out and returns true, or
  // returns false when none is ready. *out's previous buffers are recycled.
  bool NextBatch(RowBatch* out);

  // True once the header has been accepted.
  bool header_done() const { return state_ != State::kHeader; }
  // True when the header has a Class column (valid once header_done()).
  bool has_labels() const { return label_position_ >= 0; }
  // Header column names as read (unquoted, trimmed), valid once header_done().
  const std::vector<std::string>& header_columns() const { return header_columns_; }

  const CsvCounters& counters() const { return counters_; }
  // The first max_errors errors, in file order; the error that failed the file (strict mode or a
  // file-level problem) is always included, even beyond max_errors.
  const std::vector<RowError>& errors() const { return errors_; }
  // Every error seen, including those not kept.
  int64_t errors_total() const { return errors_total_; }
  bool errors_truncated() const { return errors_total_ > static_cast<int64_t>(errors_.size()); }
  // The failure status, OK while the reader is healthy.
  const absl::Status& status() const { return status_; }

 private:
  enum class State { kHeader, kRows, kFinished, kFailed };
  // Outcome of parsing one field's text.
  enum class FieldError {
    kNone,
    kEmpty,
    kNotNumber,
    kNotFinite,
    kOutOfRange,
    kNulByte,
    kInvalidUtf8,
    kUnterminatedQuote,
    kTextAfterQuote
  };

  // One complete line without its '\n'.
  void ConsumeLine(const char* begin, const char* end);
  void ProcessHeader(const char* begin, const char* end);
  // Parses one data line; accepts the row or rejects it with its first error. No allocation for
  // an accepted row.
  void ParseRow(const char* begin, const char* end);
  // Every field a plain or quoted number on the exact fast path (fast_float_parse.h), the right
  // field count, a valid label and signs: writes the row to `out` and returns true. Otherwise
  // returns false (`out` partly written) and ParseRowInDetail redoes the row.
  bool ParseRowFast(const char* begin, const char* end, double* out, int32_t* label) const;
  // Field by field with ParseFieldSlow where needed; accepts, or rejects with the first problem.
  void ParseRowInDetail(const char* begin, const char* end, size_t base);
  void AcceptRow(int32_t label);
  // Slow path for a field that is not a plain number followed by ',' or the end of the line.
  // Sets *value, *field_end (the ',' or `end`) and *text (the field's raw text, for messages).
  FieldError ParseFieldSlow(const char* begin, const char* end, double* value,
                            const char** field_end, std::string_view* text) const;
  // Rejects the row for its first problem: a wrong field count, else a negative Time/Amount
  // before `position`, else `reason` at `position` (0-based field).
  void RejectWithFirstProblem(const char* begin, const char* end, const double* row,
                              uint64_t negative, int position, std::string reason);
  // Rejects the row for the first negative Time/Amount among fields [0, before_position), if any;
  // `negative` marks negative fields, `row` holds the parsed values (features in model order).
  bool RejectIfNegative(const char* begin, const char* end, const double* row, uint64_t negative,
                        int before_position);
  static std::string FieldErrorReason(FieldError err, std::string_view text);
  // Raw text of field `position` of a line (error messages only).
  static std::string_view FieldText(const char* begin, const char* end, int position);
  void LineTooLong();
  void RejectRow(int column_position, std::string reason);
  void FailFile(RowError error);
  void AddError(RowError error);
  void EmitBatch();
  void ReserveBatch();
  std::string ColumnName(int position) const;

  CsvReaderOptions options_;
  BatchCallback on_batch_;
  State state_ = State::kHeader;
  absl::Status status_;

  // Line number of the line being assembled (1-based).
  int64_t line_ = 1;
  // Bytes of a line that began in an earlier chunk (never more than max_line_bytes).
  std::string carry_;
  // Discarding the rest of an over-long line up to its '\n'.
  bool skipping_line_ = false;
  // First bytes of the file, to detect a UTF-16 BOM split across chunks.
  unsigned char prefix_[2] = {0, 0};
  int prefix_len_ = 0;

  // Header mapping: for each field position, the feature slot (0..29) or kLabelSlot.
  static constexpr int kLabelSlot = kNumFeatures;
  std::vector<int> slot_of_position_;
  std::vector<std::string> header_columns_;
  int label_position_ = -1;
  // Bit i set when field i is Time or Amount (must not be negative). The header has <= 31 fields.
  uint64_t non_negative_positions_ = 0;

  RowBatch batch_;
  std::deque<RowBatch> ready_;
  std::vector<RowBatch> spare_;

  CsvCounters counters_;
  std::vector<RowError> errors_;
  int64_t errors_total_ = 0;
};

// Quotes a field's raw text for an error message: at most `max_bytes` bytes of it, bytes that are
// not printable ASCII or part of valid UTF-8 escaped as \xNN, "..." appended when cut.
std::string QuoteForMessage(std::string_view text, size_t max_bytes = 40);

// True when `text` is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view text);

}  // namespace fraud::csv
