#include "services/common/csv/csv_reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/csv/fast_float_parse.h"

namespace fraud::csv {
namespace {

constexpr unsigned char kUtf8Bom[] = {0xEF, 0xBB, 0xBF};
constexpr char kUtf16Message[] = "file is UTF-16; save as UTF-8";
constexpr size_t kMaxListedColumns = 10;
constexpr int64_t kMaxReservedRows = 65536;

inline bool IsBlank(char c) { return c == ' ' || c == '\t'; }

const char* SkipBlanks(const char* p, const char* end) {
  while (p < end && IsBlank(*p)) ++p;
  return p;
}
const char* TrimBlanksBack(const char* begin, const char* end) {
  while (end > begin && IsBlank(end[-1])) --end;
  return end;
}

// Length of the valid UTF-8 sequence starting at p, or 0 when the bytes there are not one.
size_t Utf8SequenceLength(const unsigned char* p, const unsigned char* end) {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // > U+10FFFF
  } else {
    return 0;
  }
  if (static_cast<size_t>(end - p) < len) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < len; ++i) {
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  }
  return len;
}

// UTF-16 text of ASCII characters has a NUL in every other byte.
bool LooksLikeUtf16(std::string_view line) {
  if (line.size() < 4) return false;
  size_t even_nuls = 0, odd_nuls = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\0') ++(i % 2 ? odd_nuls : even_nuls);
  }
  const size_t half = line.size() / 2;
  return even_nuls * 10 >= half * 8 || odd_nuls * 10 >= half * 8;
}

// Splits a header line on commas, honouring double quotes ("" escapes a quote inside quotes).
// Returns false when a quote is left open.
bool SplitHeader(std::string_view line, std::vector<std::string>* names) {
  names->clear();
  std::string cur;
  bool in_quotes = false;
  bool was_quoted = false;
  auto finish_field = [&]() {
    size_t b = 0, e = cur.size();
    while (b < e && IsBlank(cur[b])) ++b;
    while (e > b && IsBlank(cur[e - 1])) --e;
    names->push_back(cur.substr(b, e - b));
    cur.clear();
    was_quoted = false;
  };
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          cur.push_back('"');
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        cur.push_back(c);
      }
    } else if (c == '"') {
      // An opening quote after leading blanks starts a quoted name; blanks before it are dropped.
      bool only_blanks = true;
      for (char b : cur) only_blanks = only_blanks && IsBlank(b);
      if (only_blanks) {
        cur.clear();
        in_quotes = true;
        was_quoted = true;
      } else {
        cur.push_back(c);
      }
    } else if (c == ',') {
      finish_field();
    } else if (was_quoted && IsBlank(c)) {
      // Blanks after a closing quote are dropped.
    } else {
      cur.push_back(c);
    }
  }
  if (in_quotes) return false;
  finish_field();
  return true;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string ExpectedNameFor(std::string_view unknown) {
  for (std::string_view n : kFeatureNames) {
    if (EqualsIgnoreCase(n, unknown)) return std::string(n);
  }
  if (EqualsIgnoreCase(kLabelColumn, unknown)) return std::string(kLabelColumn);
  return "";
}

}  // namespace

std::string QuoteForMessage(std::string_view text, size_t max_bytes) {
  std::string out = "'";
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  size_t used = 0;
  while (p < end) {
    const unsigned char c = *p;
    if (c >= 0x20 && c < 0x7F) {
      if (used + 1 > max_bytes) break;
      out.push_back(static_cast<char>(c));
      ++p;
      ++used;
      continue;
    }
    const size_t len = c >= 0x80 ? Utf8SequenceLength(p, end) : 0;
    if (len > 0) {
      if (used + len > max_bytes) break;
      out.append(reinterpret_cast<const char*>(p), len);
      p += len;
      used += len;
    } else {
      if (used + 4 > max_bytes) break;
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
      ++p;
      used += 4;
    }
  }
  out.push_back('\'');
  if (p < end) out += "...";
  return out;
}

bool IsValidUtf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    if (*p < 0x80) {
      ++p;
      continue;
    }
    const size_t len = Utf8SequenceLength(p, end);
    if (len == 0) return false;
    p += len;
  }
  return true;
}

std::string RowError::ToString() const {
  if (line == 0) return reason;
  if (column.empty() && column_index == 0) return absl::StrCat("line ", line, ": ", reason);
  if (column.empty()) return absl::StrCat("line ", line, ", field ", column_index, ": ", reason);
  return absl::StrCat("line ", line, ", column ", column, " (", column_index, "): ", reason);
}

CsvReader::CsvReader(CsvReaderOptions options, BatchCallback on_batch)
    : options_(options), on_batch_(std::move(on_batch)) {
  if (options_.batch_rows < 1) options_.batch_rows = 1;
  if (options_.max_line_bytes < 1) options_.max_line_bytes = 1;
  if (options_.max_errors < 0) options_.max_errors = 0;
}

absl::Status CsvReader::Feed(std::string_view chunk) {
  if (state_ == State::kFailed) return status_;
  if (state_ == State::kFinished) {
    return absl::FailedPreconditionError("CsvReader::Feed called after Finish");
  }
  counters_.bytes += static_cast<int64_t>(chunk.size());
  const char* p = chunk.data();
  const char* const end = p + chunk.size();

  // The UTF-16 BOM may be split across the first chunks: collect two bytes before judging.
  if (prefix_len_ < 2) {
    for (const char* q = p; q < end && prefix_len_ < 2; ++q) {
      prefix_[prefix_len_++] = static_cast<unsigned char>(*q);
    }
    if (prefix_len_ == 2 && ((prefix_[0] == 0xFF && prefix_[1] == 0xFE) ||
                             (prefix_[0] == 0xFE && prefix_[1] == 0xFF))) {
      FailFile(RowError{0, "", 0, kUtf16Message});
      return status_;
    }
  }

  const int64_t max_line = options_.max_line_bytes;
  if (skipping_line_) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
    if (nl == nullptr) return absl::OkStatus();
    skipping_line_ = false;
    ++line_;
    p = nl + 1;
  }
  if (!carry_.empty()) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
    const char* stop = nl != nullptr ? nl : end;
    if (static_cast<int64_t>(carry_.size() + (stop - p)) > max_line) {
      carry_.clear();
      LineTooLong();
      if (state_ == State::kFailed) return status_;
      if (nl == nullptr) {
        skipping_line_ = true;
        return absl::OkStatus();
      }
      ++line_;
    } else {
      carry_.append(p, stop - p);
      if (nl == nullptr) return absl::OkStatus();
      ConsumeLine(carry_.data(), carry_.data() + carry_.size());
      carry_.clear();
      if (state_ == State::kFailed) return status_;
    }
    p = nl + 1;
  }
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
    if (nl == nullptr) {
      if (end - p > max_line) {
        LineTooLong();
        skipping_line_ = true;
      } else {
        carry_.assign(p, end - p);
      }
      break;
    }
    if (nl - p > max_line) {
      LineTooLong();
      ++line_;
    } else {
      ConsumeLine(p, nl);
    }
    if (state_ == State::kFailed) return status_;
    p = nl + 1;
  }
  return status_;
}

absl::Status CsvReader::Finish() {
  if (state_ == State::kFailed) return status_;
  if (state_ == State::kFinished) {
    return absl::FailedPreconditionError("CsvReader::Finish called twice");
  }
  if (!skipping_line_ && !carry_.empty()) {
    ConsumeLine(carry_.data(), carry_.data() + carry_.size());
    carry_.clear();
    if (state_ == State::kFailed) return status_;
  }
  skipping_line_ = false;
  if (state_ == State::kHeader) {
    FailFile(RowError{0, "", 0, "file is empty"});
    return status_;
  }
  if (counters_.rows_seen == 0) {
    FailFile(RowError{0, "", 0, "file has no data rows"});
    return status_;
  }
  if (!batch_.empty()) {
    EmitBatch();
    if (state_ == State::kFailed) return status_;
  }
  state_ = State::kFinished;
  return absl::OkStatus();
}

bool CsvReader::NextBatch(RowBatch* out) {
  if (ready_.empty()) return false;
  std::swap(*out, ready_.front());
  ready_.front().Clear();
  spare_.push_back(std::move(ready_.front()));
  ready_.pop_front();
  return true;
}

void CsvReader::ConsumeLine(const char* begin, const char* end) {
  if (end > begin && end[-1] == '\r') --end;
  // Skip the UTF-8 BOM: it can only start line 1 (checked before blank-line skipping so that a
  // BOM followed by blank lines is still recognised).
  if (line_ == 1 && end - begin >= 3 && std::memcmp(begin, kUtf8Bom, 3) == 0) begin += 3;
  if (SkipBlanks(begin, end) == end) {
    ++line_;
    return;
  }
  if (state_ == State::kHeader) {
    ProcessHeader(begin, end);
  } else {
    ParseRow(begin, end);
  }
  ++line_;
}

void CsvReader::ProcessHeader(const char* begin, const char* end) {
  const std::string_view line(begin, end - begin);
  if (line.find('\0') != std::string_view::npos) {
    if (LooksLikeUtf16(line)) {
      FailFile(RowError{0, "", 0, kUtf16Message});
    } else {
      FailFile(RowError{line_, "", 0, "header contains a NUL byte"});
    }
    return;
  }
  if (!IsValidUtf8(line)) {
    FailFile(RowError{line_, "", 0,
                      absl::StrCat("header is not valid UTF-8: ", QuoteForMessage(line, 80))});
    return;
  }
  if (line.find('\r') != std::string_view::npos) {
    FailFile(RowError{line_, "", 0,
                      "line endings are bare CR (classic Mac); save with LF or CRLF line "
                      "endings"});
    return;
  }
  std::vector<std::string> names;
  if (!SplitHeader(line, &names)) {
    FailFile(RowError{line_, "", 0, "header has an unterminated quoted name"});
    return;
  }

  std::vector<int> slots(names.size(), -1);
  std::vector<int> first_position(kNumFeatures + 1, 0);  // 1-based position seen, 0 = not yet
  std::vector<std::string> unknown, duplicated;
  int first_bad_position = 0;
  std::string first_bad_name;
  auto note_bad = [&](int position, const std::string& name) {
    if (first_bad_position == 0) {
      first_bad_position = position;
      first_bad_name = name;
    }
  };
  for (size_t i = 0; i < names.size(); ++i) {
    const int position = static_cast<int>(i) + 1;
    const std::string& name = names[i];
    int slot = FeatureIndex(name);
    if (slot < 0 && name == kLabelColumn) slot = kLabelSlot;
    if (slot < 0) {
      std::string item = absl::StrCat(QuoteForMessage(name), " (column ", position, ")");
      if (name.empty()) item = absl::StrCat("'' (column ", position, ", empty name)");
      const std::string hint = ExpectedNameFor(name);
      if (!hint.empty()) absl::StrAppend(&item, ", did you mean '", hint, "'?");
      unknown.push_back(std::move(item));
      note_bad(position, name);
      continue;
    }
    if (first_position[slot] != 0) {
      duplicated.push_back(
          absl::StrCat("'", name, "' (columns ", first_position[slot], " and ", position, ")"));
      note_bad(position, name);
      continue;
    }
    first_position[slot] = position;
    slots[i] = slot;
  }
  std::vector<std::string> missing;
  for (int s = 0; s < kNumFeatures; ++s) {
    if (first_position[s] == 0) missing.emplace_back(kFeatureNames[s]);
  }
  if (!missing.empty() || !unknown.empty() || !duplicated.empty()) {
    std::vector<std::string> parts;
    if (!missing.empty()) {
      parts.push_back(absl::StrCat("missing columns: ", absl::StrJoin(missing, ", ")));
    }
    // A wrong file can have thousands of columns: name the first few of each kind, so the
    // message (which travels in gRPC status and metadata) stays small.
    auto listed = [](absl::string_view what, std::vector<std::string> names) {
      const size_t total = names.size();
      if (total > kMaxListedColumns) names.resize(kMaxListedColumns);
      std::string list = absl::StrCat(what, ": ", absl::StrJoin(names, ", "));
      if (total > kMaxListedColumns)
        absl::StrAppend(&list, " and ", total - kMaxListedColumns, " more");
      return list;
    };
    if (!unknown.empty()) parts.push_back(listed("unknown columns", std::move(unknown)));
    if (!duplicated.empty()) parts.push_back(listed("duplicated columns", std::move(duplicated)));
    std::string reason =
        absl::StrCat("bad header (expected Time, V1..V28, Amount and optionally Class): ",
                     absl::StrJoin(parts, "; "));
    if (first_bad_position == 0) {
      FailFile(RowError{line_, missing.front(), 0, std::move(reason)});
    } else {
      FailFile(RowError{line_, first_bad_name, first_bad_position, std::move(reason)});
    }
    return;
  }
  slot_of_position_ = std::move(slots);
  header_columns_ = std::move(names);
  label_position_ = -1;
  non_negative_positions_ = 0;
  for (size_t i = 0; i < slot_of_position_.size(); ++i) {
    const int slot = slot_of_position_[i];
    if (slot == kLabelSlot) label_position_ = static_cast<int>(i);
    if (slot == kTimeIndex || slot == kAmountIndex) non_negative_positions_ |= uint64_t{1} << i;
  }
  ReserveBatch();
  state_ = State::kRows;
}

void CsvReader::AcceptRow(int32_t label) {
  if (label_position_ >= 0) batch_.labels.push_back(label);
  batch_.line_numbers.push_back(line_);
  ++counters_.rows_accepted;
  if (static_cast<int64_t>(batch_.line_numbers.size()) >= options_.batch_rows) EmitBatch();
}

// Fields are parsed sequentially: on this data, finding all commas first and then parsing the
// fields independently measured slower (the per-comma loop mispredicts).
void CsvReader::ParseRow(const char* begin, const char* end) {
  ++counters_.rows_seen;
  const size_t base = batch_.features.size();
  batch_.features.resize(base + kNumFeatures);
  int32_t label = 0;
  if (ParseRowFast(begin, end, batch_.features.data() + base, &label)) {
    AcceptRow(label);
    return;
  }
  ParseRowInDetail(begin, end, base);
}

// The common case in a small function whose state fits in registers: every field a plain or
// quoted number that the exact fast path handles, the right field count, valid label and signs.
// Returns false at the first thing that is not so; ParseRowInDetail then redoes the row.
bool CsvReader::ParseRowFast(const char* begin, const char* end, double* out,
                             int32_t* label) const {
  const int num_fields = static_cast<int>(slot_of_position_.size());
  const int* slots = slot_of_position_.data();
  uint64_t negative = 0;
  const char* p = begin;
  for (int col = 0; col < num_fields; ++col) {
    double v;
    const char* ptr = internal::FastParseDouble(p, end, &v);
    if (ptr == nullptr || (ptr != end && *ptr != ',')) {
      if (p >= end || *p != '"') return false;
      ptr = internal::FastParseDouble(p + 1, end, &v);
      if (ptr == nullptr || ptr == end || *ptr != '"') return false;
      ++ptr;
      if (ptr != end && *ptr != ',') return false;
    }
    const int slot = slots[col];
    if (slot != kLabelSlot) {
      out[slot] = v;
      negative |= static_cast<uint64_t>(v < 0) << col;
    } else if (v == 0 || v == 1) {
      *label = static_cast<int32_t>(v);
    } else {
      return false;
    }
    if (ptr == end) return col + 1 == num_fields && (negative & non_negative_positions_) == 0;
    p = ptr + 1;
  }
  return false;  // more fields than the header
}

// Field by field, in order, so that the first problem of the row is the one reported.
void CsvReader::ParseRowInDetail(const char* begin, const char* end, size_t base) {
  const int num_fields = static_cast<int>(slot_of_position_.size());
  double* out = batch_.features.data() + base;
  int32_t label = 0;
  const int* slots = slot_of_position_.data();
  // Bit i set when field i is negative; the Time/Amount bits are checked after the loop, so the
  // sign of V1..V28 costs no branch.
  uint64_t negative = 0;
  const char* p = begin;
  for (int col = 0; col < num_fields; ++col) {
    double v;
    const char* field_end;
    const char* ptr = internal::FastParseDouble(p, end, &v);
    if (ptr != nullptr && (ptr == end || *ptr == ',')) {
      field_end = ptr;
    } else if (p < end && *p == '"' &&
               (ptr = internal::FastParseDouble(p + 1, end, &v)) != nullptr && ptr < end &&
               *ptr == '"' && (ptr + 1 == end || ptr[1] == ',')) {
      field_end = ptr + 1;  // a quoted number, like the Class values of the original file
    } else {
      // A separate variable: taking v's address would keep it in memory on the fast path too.
      double slow_value = 0;
      std::string_view text;
      const FieldError err = ParseFieldSlow(p, end, &slow_value, &field_end, &text);
      v = slow_value;
      if (err != FieldError::kNone) {
        RejectWithFirstProblem(begin, end, out, negative, col, FieldErrorReason(err, text));
        batch_.features.resize(base);
        return;
      }
    }
    const int slot = slots[col];
    if (slot != kLabelSlot) {
      out[slot] = v;
      negative |= static_cast<uint64_t>(v < 0) << col;
    } else if (v == 0 || v == 1) {
      label = static_cast<int32_t>(v);
    } else {
      RejectWithFirstProblem(begin, end, out, negative, col,
                             absl::StrCat("Class must be 0 or 1: ",
                                          QuoteForMessage(std::string_view(p, field_end - p))));
      batch_.features.resize(base);
      return;
    }
    if (col + 1 < num_fields) {
      if (field_end == end) {
        RejectWithFirstProblem(
            begin, end, out, negative, col + 1,
            absl::StrCat("too few fields: expected ", num_fields, ", got ", col + 1));
        batch_.features.resize(base);
        return;
      }
      p = field_end + 1;
    } else if (field_end != end) {
      RejectWithFirstProblem(begin, end, out, negative, num_fields,
                             absl::StrCat("too many fields: expected ", num_fields));
      batch_.features.resize(base);
      return;
    }
  }
  if ((negative & non_negative_positions_) != 0 &&
      RejectIfNegative(begin, end, out, negative, num_fields)) {
    batch_.features.resize(base);
    return;
  }
  AcceptRow(label);
}

void CsvReader::RejectWithFirstProblem(const char* begin, const char* end, const double* row,
                                       uint64_t negative, int position, std::string reason) {
  // A wrong field count comes first: it shifts the values, so their errors would mislead.
  const int expected = static_cast<int>(slot_of_position_.size());
  int fields = 1;
  bool in_quotes = false;
  for (const char* q = begin; q < end; ++q) {
    if (*q == '"') {
      in_quotes = !in_quotes;
    } else if (*q == ',' && !in_quotes) {
      ++fields;
    }
  }
  // With an unterminated quote the count means nothing; that quote is the problem reported.
  if (!in_quotes && fields < expected) {
    RejectRow(fields, absl::StrCat("too few fields: expected ", expected, ", got ", fields));
    return;
  }
  if (!in_quotes && fields > expected) {
    RejectRow(expected, absl::StrCat("too many fields: expected ", expected, ", got ", fields));
    return;
  }
  if (RejectIfNegative(begin, end, row, negative, position)) return;
  RejectRow(position, std::move(reason));
}

bool CsvReader::RejectIfNegative(const char* begin, const char* end, const double* row,
                                 uint64_t negative, int before_position) {
  uint64_t candidates = negative & non_negative_positions_;
  if (before_position < 64) candidates &= (uint64_t{1} << before_position) - 1;
  while (candidates != 0) {
    const int position = __builtin_ctzll(candidates);
    candidates &= candidates - 1;
    const int slot = slot_of_position_[position];
    if (!(row[slot] < 0)) continue;
    RejectRow(position,
              absl::StrCat(slot == kTimeIndex ? "Time" : "Amount", " must not be negative: ",
                           QuoteForMessage(FieldText(begin, end, position))));
    return true;
  }
  return false;
}

std::string CsvReader::FieldErrorReason(FieldError err, std::string_view text) {
  const std::string quoted = QuoteForMessage(text);
  switch (err) {
    case FieldError::kEmpty:
      return "empty value";
    case FieldError::kNotNumber:
      return absl::StrCat("not a number: ", quoted);
    case FieldError::kNotFinite:
      return absl::StrCat("not a finite number: ", quoted);
    case FieldError::kOutOfRange:
      return absl::StrCat("number out of range: ", quoted);
    case FieldError::kNulByte:
      return absl::StrCat("contains a NUL byte: ", quoted);
    case FieldError::kInvalidUtf8:
      return absl::StrCat("invalid UTF-8: ", quoted);
    case FieldError::kUnterminatedQuote:
      return absl::StrCat("unterminated quoted value: ", quoted);
    case FieldError::kTextAfterQuote:
      return absl::StrCat("unexpected text after closing quote: ", quoted);
    case FieldError::kNone:
      break;
  }
  return "";
}

std::string_view CsvReader::FieldText(const char* begin, const char* end, int position) {
  const char* p = begin;
  for (int i = 0; i < position && p < end; ++i) {
    bool in_quotes = false;
    while (p < end && (in_quotes || *p != ',')) {
      if (*p == '"') in_quotes = !in_quotes;
      ++p;
    }
    if (p < end) ++p;
  }
  const char* q = p;
  bool in_quotes = false;
  while (q < end && (in_quotes || *q != ',')) {
    if (*q == '"') in_quotes = !in_quotes;
    ++q;
  }
  const char* b = SkipBlanks(p, q);
  const char* e = TrimBlanksBack(b, q);
  if (e - b >= 2 && *b == '"' && e[-1] == '"') {
    ++b;
    --e;
  }
  return std::string_view(b, e - b);
}

CsvReader::FieldError CsvReader::ParseFieldSlow(const char* begin, const char* end, double* value,
                                                const char** field_end,
                                                std::string_view* text) const {
  const char* p = SkipBlanks(begin, end);
  const char* vb;  // value text
  const char* ve;
  if (p < end && *p == '"') {
    const char* q = p + 1;
    const char* close = nullptr;
    while (q < end) {
      const char* quote = static_cast<const char*>(std::memchr(q, '"', end - q));
      if (quote == nullptr) break;
      if (quote + 1 < end && quote[1] == '"') {
        q = quote + 2;
        continue;
      }
      close = quote;
      break;
    }
    if (close == nullptr) {
      *field_end = end;
      *text = std::string_view(p, end - p);
      return FieldError::kUnterminatedQuote;
    }
    const char* after = SkipBlanks(close + 1, end);
    if (after < end && *after != ',') {
      const char* comma = static_cast<const char*>(std::memchr(after, ',', end - after));
      *field_end = comma != nullptr ? comma : end;
      *text = std::string_view(p, *field_end - p);
      return FieldError::kTextAfterQuote;
    }
    *field_end = after;
    vb = SkipBlanks(p + 1, close);
    ve = TrimBlanksBack(vb, close);
    *text = std::string_view(p + 1, close - (p + 1));
  } else {
    const char* comma = static_cast<const char*>(std::memchr(p, ',', end - p));
    *field_end = comma != nullptr ? comma : end;
    vb = p;
    ve = TrimBlanksBack(p, *field_end);
    *text = std::string_view(begin, *field_end - begin);
  }
  if (vb == ve) return FieldError::kEmpty;
  const char* num = vb;
  if (*num == '+' && num + 1 < ve && (num[1] == '.' || (num[1] >= '0' && num[1] <= '9'))) ++num;
  auto [ptr, ec] = std::from_chars(num, ve, *value);
  if (ec == std::errc::result_out_of_range && ptr == ve) return FieldError::kOutOfRange;
  if (ec != std::errc() || ptr != ve) {
    const std::string_view v(vb, ve - vb);
    if (v.find('\0') != std::string_view::npos) return FieldError::kNulByte;
    if (!IsValidUtf8(v)) return FieldError::kInvalidUtf8;
    return FieldError::kNotNumber;
  }
  if (!std::isfinite(*value)) return FieldError::kNotFinite;
  return FieldError::kNone;
}

void CsvReader::LineTooLong() {
  RowError error{line_, "", 0,
                 absl::StrCat("line is longer than ", options_.max_line_bytes, " bytes")};
  if (state_ == State::kHeader) {
    FailFile(std::move(error));
    return;
  }
  ++counters_.rows_seen;
  ++counters_.rows_rejected;
  AddError(error);
  if (options_.mode == Mode::kStrict) {
    state_ = State::kFailed;
    status_ = absl::InvalidArgumentError(error.ToString());
  }
}

void CsvReader::RejectRow(int column_position, std::string reason) {
  ++counters_.rows_rejected;
  RowError error{line_, ColumnName(column_position), column_position + 1, std::move(reason)};
  AddError(error);
  if (options_.mode == Mode::kStrict) {
    state_ = State::kFailed;
    status_ = absl::InvalidArgumentError(error.ToString());
  }
}

void CsvReader::FailFile(RowError error) {
  status_ = absl::InvalidArgumentError(error.ToString());
  AddError(std::move(error));
  state_ = State::kFailed;
}

void CsvReader::AddError(RowError error) {
  ++errors_total_;
  // The error that fails the file (file-level, or any in strict mode) is always kept: it is the
  // reason the file failed, even with max_errors = 0.
  const bool fatal = error.line == 0 || state_ == State::kHeader || options_.mode == Mode::kStrict;
  if (static_cast<int64_t>(errors_.size()) < options_.max_errors || fatal) {
    errors_.push_back(std::move(error));
  }
}

void CsvReader::EmitBatch() {
  if (on_batch_) {
    absl::Status s = on_batch_(batch_);
    batch_.Clear();
    if (!s.ok()) {
      status_ = std::move(s);
      state_ = State::kFailed;
    }
    ReserveBatch();  // the callback may have taken the buffers
    return;
  }
  ready_.push_back(std::move(batch_));
  if (!spare_.empty()) {
    batch_ = std::move(spare_.back());
    spare_.pop_back();
  } else {
    batch_ = RowBatch();
  }
  batch_.Clear();
  ReserveBatch();
}

void CsvReader::ReserveBatch() {
  // Capped so that a huge batch_rows setting grows the vectors gradually instead of reserving
  // gigabytes up front.
  const size_t cap = static_cast<size_t>(std::min<int64_t>(options_.batch_rows, kMaxReservedRows));
  batch_.features.reserve(cap * kNumFeatures);
  batch_.line_numbers.reserve(cap);
  if (has_labels()) batch_.labels.reserve(cap);
}

std::string CsvReader::ColumnName(int position) const {
  if (position >= 0 && position < static_cast<int>(header_columns_.size())) {
    return header_columns_[position];
  }
  return "";
}

}  // namespace fraud::csv
