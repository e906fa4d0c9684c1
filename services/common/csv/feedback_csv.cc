#include "services/common/csv/feedback_csv.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "services/common/csv/csv_reader.h"

namespace fraud::csv {
namespace {

constexpr size_t kMaxLineBytes = 64 << 10;
constexpr char kBom[] = "\xEF\xBB\xBF";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

absl::Status SplitCsvLine(std::string_view line, std::vector<std::string>* fields) {
  fields->clear();
  size_t i = 0;
  while (true) {
    std::string field;
    size_t start = i;
    while (i < line.size() && line[i] == ' ') ++i;
    if (i < line.size() && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        field.push_back(line[i++]);
      }
      if (!closed) {
        return absl::InvalidArgumentError(
            absl::StrCat("field ", fields->size() + 1, ": unterminated quote"));
      }
      while (i < line.size() && line[i] == ' ') ++i;
      if (i < line.size() && line[i] != ',') {
        return absl::InvalidArgumentError(
            absl::StrCat("field ", fields->size() + 1, ": text after the closing quote"));
      }
    } else {
      i = start;
      while (i < line.size() && line[i] != ',') ++i;
      field = std::string(Trim(line.substr(start, i - start)));
    }
    fields->push_back(std::move(field));
    if (i >= line.size()) break;
    ++i;  // the comma
  }
  return absl::OkStatus();
}

absl::Status FeedbackCsvReader::Fail(absl::Status s) {
  status_ = s;
  return s;
}

absl::Status FeedbackCsvReader::Feed(std::string_view chunk) {
  if (!status_.ok()) return status_;
  if (finished_) return absl::FailedPreconditionError("feedback CSV already finished");
  while (!chunk.empty()) {
    const size_t nl = chunk.find('\n');
    const std::string_view piece = chunk.substr(0, nl);
    if (carry_.size() + piece.size() > kMaxLineBytes) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "line ", line_no_ + 1, ": longer than ", kMaxLineBytes, " bytes")));
    }
    if (nl == std::string_view::npos) {
      carry_.append(piece);
      break;
    }
    std::string_view line = piece;
    if (!carry_.empty()) {
      carry_.append(piece);
      line = carry_;
    }
    if (absl::Status s = Line(line); !s.ok()) return Fail(s);
    carry_.clear();
    chunk.remove_prefix(nl + 1);
  }
  return absl::OkStatus();
}

absl::Status FeedbackCsvReader::Finish() {
  if (!status_.ok()) return status_;
  if (finished_) return absl::OkStatus();
  finished_ = true;
  if (!carry_.empty()) {
    std::string last = std::move(carry_);
    carry_.clear();
    if (absl::Status s = Line(last); !s.ok()) return Fail(s);
  }
  if (!header_done_) return Fail(absl::InvalidArgumentError("file is empty (no header line)"));
  return absl::OkStatus();
}

absl::Status FeedbackCsvReader::Line(std::string_view line) {
  ++line_no_;
  if (line_no_ == 1 && line.substr(0, 3) == kBom) line.remove_prefix(3);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (Trim(line).empty()) return absl::OkStatus();
  if (line.find('\0') != std::string_view::npos || !IsValidUtf8(line)) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line_no_, ": not valid UTF-8 text (or a NUL byte)"));
  }
  std::vector<std::string> fields;
  if (absl::Status s = SplitCsvLine(line, &fields); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("line ", line_no_, ", ", s.message()));
  }
  return header_done_ ? Row(fields) : Header(fields);
}

absl::Status FeedbackCsvReader::Header(const std::vector<std::string>& fields) {
  struct Column {
    const char* name;
    int* position;
  };
  const Column columns[] = {{"upload_id", &upload_id_}, {"line", &line_},
                            {"transaction_id", &transaction_id_}, {"label", &label_},
                            {"source", &source_}, {"note", &note_}, {"at", &at_}};
  for (size_t i = 0; i < fields.size(); ++i) {
    const std::string name = absl::AsciiStrToLower(fields[i]);
    bool known = false;
    for (const Column& c : columns) {
      if (name != c.name) continue;
      known = true;
      if (*c.position >= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_no_, ", column ", name, ": repeated column"));
      }
      *c.position = static_cast<int>(i);
    }
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_no_, ", column ", i + 1, ": unknown column ", QuoteForMessage(fields[i]),
          " (expected upload_id, line, transaction_id, label, source, note, at)"));
    }
  }
  if (label_ < 0) {
    return absl::InvalidArgumentError(absl::StrCat("line ", line_no_, ": no label column"));
  }
  if ((upload_id_ < 0) != (line_ < 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line_no_, ": upload_id and line go together"));
  }
  if (upload_id_ < 0 && transaction_id_ < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "line ", line_no_, ": no id columns (upload_id and line, or transaction_id)"));
  }
  columns_ = fields.size();
  header_done_ = true;
  return absl::OkStatus();
}

absl::Status FeedbackCsvReader::Row(const std::vector<std::string>& fields) {
  auto bad = [&](int position, const char* column, absl::string_view reason) {
    return absl::InvalidArgumentError(absl::StrCat("line ", line_no_, ", column ", column, " (",
                                                   position + 1, "): ", reason));
  };
  if (fields.size() != columns_) {
    return absl::InvalidArgumentError(absl::StrCat("line ", line_no_, ": ", fields.size(),
                                                   " fields, the header has ", columns_));
  }
  FeedbackRow row;
  row.file_line = line_no_;
  auto integer = [&](int position, const char* column, int64_t* out) -> absl::Status {
    if (position < 0 || fields[position].empty()) return absl::OkStatus();
    if (!absl::SimpleAtoi(fields[position], out) || *out <= 0) {
      return bad(position, column,
                 absl::StrCat("not a positive integer: ", QuoteForMessage(fields[position])));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = integer(upload_id_, "upload_id", &row.upload_id); !s.ok()) return s;
  if (absl::Status s = integer(line_, "line", &row.line); !s.ok()) return s;
  if (transaction_id_ >= 0) row.transaction_id = fields[transaction_id_];
  const bool by_line = row.upload_id != 0 || row.line != 0;
  if (by_line && (row.upload_id == 0 || row.line == 0)) {
    return bad(row.upload_id == 0 ? upload_id_ : line_, row.upload_id == 0 ? "upload_id" : "line",
               "empty (upload_id and line go together)");
  }
  if (by_line == !row.transaction_id.empty()) {
    return bad(transaction_id_ >= 0 ? transaction_id_ : upload_id_,
               transaction_id_ >= 0 ? "transaction_id" : "upload_id",
               "give either upload_id and line, or transaction_id");
  }
  const std::string& label = fields[label_];
  if (label != "0" && label != "1") {
    return bad(label_, "label", absl::StrCat("must be 0 or 1, got ", QuoteForMessage(label)));
  }
  row.label = label == "1" ? 1 : 0;
  if (source_ >= 0) row.source = fields[source_];
  if (note_ >= 0) row.note = fields[note_];
  if (at_ >= 0 && !fields[at_].empty()) {
    absl::Time t;
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, fields[at_], &t, &err)) {
      return bad(at_, "at", absl::StrCat("not an RFC 3339 time: ", QuoteForMessage(fields[at_])));
    }
    row.has_at = true;
    const absl::Duration since = t - absl::UnixEpoch();
    row.at_seconds = absl::ToInt64Seconds(since);
    row.at_nanos =
        static_cast<int32_t>(absl::ToInt64Nanoseconds(since - absl::Seconds(row.at_seconds)));
    if (row.at_nanos < 0) {
      row.at_seconds -= 1;
      row.at_nanos += 1000000000;
    }
  }
  ++rows_;
  return on_row_(row);
}

}  // namespace fraud::csv
