// CsvReader: table-driven accepted and rejected files, each also fed split at every byte offset
// and byte by byte; lenient mode, error limits, batches, the pull API and status stickiness.
#include "services/common/csv/csv_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testing/status_matchers.h"
#include "tests/unit/csv/csv_test_util.h"

namespace fraud::csv {
namespace {

using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using testing::Chunking;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using testing::Header;
using testing::Join;
using testing::Result;
using testing::Row;
using testing::RowFeatures;
using testing::RowFields;
using testing::RowWith;
using testing::RunReader;

std::string Lines(const std::vector<std::string>& lines, const std::string& eol = "\n") {
  std::string s;
  for (const std::string& l : lines) s += l + eol;
  return s;
}

std::string Quoted(const std::vector<std::string>& fields) {
  std::string s;
  for (size_t i = 0; i < fields.size(); ++i) s += (i ? ",\"" : "\"") + fields[i] + "\"";
  return s;
}

std::vector<std::string> HeaderNames(bool with_class = true) {
  std::vector<std::string> names;
  for (std::string_view n : kFeatureNames) names.emplace_back(n);
  if (with_class) names.emplace_back("Class");
  return names;
}

// Applies the permutation `order` (new position -> old position) to fields.
std::vector<std::string> Permute(const std::vector<std::string>& f, const std::vector<int>& order) {
  std::vector<std::string> out;
  for (int i : order) out.push_back(f[i]);
  return out;
}

std::vector<int> Reversed(int n) {
  std::vector<int> order;
  for (int i = n - 1; i >= 0; --i) order.push_back(i);
  return order;
}

// Class first, Amount, V28..V1 interleaved oddly, Time last.
std::vector<int> Shuffled() {
  std::vector<int> order = {30, 29};
  for (int k = 2; k <= 28; k += 2) order.push_back(k);
  for (int k = 1; k <= 28; k += 2) order.push_back(k);
  order.push_back(0);
  return order;
}

std::vector<std::string> Spaced(const std::vector<std::string>& f) {
  std::vector<std::string> out;
  for (size_t i = 0; i < f.size(); ++i) out.push_back(i % 2 ? "  " + f[i] : f[i] + " \t");
  return out;
}

// ---------------------------------------------------------------------------------------------
// Accepted files.

struct ValidCase {
  std::string name;
  std::string data;
  std::vector<int> row_ids;  // Row(i) values expected, in order
  std::vector<int64_t> lines;
  bool has_labels = true;
};

std::vector<ValidCase> ValidCases() {
  const std::string h = Header();
  std::vector<ValidCase> c;
  c.push_back({"PlainHeaderAndLf", Lines({h, Row(1), Row(2)}), {1, 2}, {2, 3}});
  c.push_back({"NoTrailingNewline", h + "\n" + Row(1) + "\n" + Row(2), {1, 2}, {2, 3}});
  c.push_back({"Crlf", Lines({h, Row(1), Row(2)}, "\r\n"), {1, 2}, {2, 3}});
  c.push_back(
      {"CrlfWithoutTrailingNewline", h + "\r\n" + Row(1) + "\r\n" + Row(2), {1, 2}, {2, 3}});
  c.push_back({"Utf8Bom", "\xEF\xBB\xBF" + Lines({h, Row(3)}), {3}, {2}});
  c.push_back({"QuotedHeader", Lines({Quoted(HeaderNames()), Row(4), Row(5)}), {4, 5}, {2, 3}});
  c.push_back(
      {"EveryValueQuoted", Lines({h, Quoted(RowFields(6)), Quoted(RowFields(7))}), {6, 7}, {2, 3}});
  {
    // The original file: quoted header, bare numbers, quoted Class values.
    std::vector<std::string> r = RowFields(8);
    r[30] = "\"" + r[30] + "\"";
    c.push_back(
        {"QuotedClassLikeTheOriginalFile", Lines({Quoted(HeaderNames()), Join(r)}), {8}, {2}});
  }
  c.push_back(
      {"ColumnsReversed",
       Lines({Join(Permute(HeaderNames(), Reversed(31))), Join(Permute(RowFields(9), Reversed(31))),
              Join(Permute(RowFields(10), Reversed(31)))}),
       {9, 10},
       {2, 3}});
  c.push_back(
      {"ColumnsShuffled",
       Lines({Join(Permute(HeaderNames(), Shuffled())), Join(Permute(RowFields(11), Shuffled()))}),
       {11},
       {2}});
  c.push_back({"NoClassColumn",
               Lines({Header(false), Row(12, false), Row(13, false)}),
               {12, 13},
               {2, 3},
               false});
  c.push_back({"NoClassColumnReversed",
               Lines({Join(Permute(HeaderNames(false), Reversed(30))),
                      Join(Permute(RowFields(14, false), Reversed(30)))}),
               {14},
               {2},
               false});
  c.push_back({"BlankLinesEverywhere",
               "\n\n" + h + "\n\n" + Row(15) + "\n  \n\t\n" + Row(16) + "\n\n\n",
               {15, 16},
               {5, 8}});
  c.push_back({"BlankCrlfLines", "\r\n" + h + "\r\n\r\n" + Row(17) + "\r\n \r\n", {17}, {4}});
  c.push_back({"SpacesAndTabsAroundNamesAndValues",
               Lines({Join(Spaced(HeaderNames())), Join(Spaced(RowFields(18)))}),
               {18},
               {2}});
  c.push_back({"SpacesAroundQuotedNamesAndInsideQuotedValues",
               Lines({" \"Time\" ," + Header().substr(5), Quoted(Spaced(RowFields(19)))}),
               {19},
               {2}});
  c.push_back({"BomQuotedCrlfReorderedTogether",
               "\xEF\xBB\xBF" + Lines({Quoted(Permute(HeaderNames(), Shuffled())),
                                       Join(Permute(RowFields(20), Shuffled())),
                                       Quoted(Permute(RowFields(21), Shuffled()))},
                                      "\r\n"),
               {20, 21},
               {2, 3}});
  c.push_back({"BomThenBlankLineThenHeader", "\xEF\xBB\xBF\n" + Lines({h, Row(22)}), {22}, {3}});
  {
    std::vector<std::string> rows = {h};
    std::vector<int> ids;
    std::vector<int64_t> lines;
    for (int i = 0; i < 40; ++i) {
      rows.push_back(Row(100 + i));
      ids.push_back(100 + i);
      lines.push_back(i + 2);
    }
    c.push_back({"FortyRows", Lines(rows), ids, lines});
  }
  return c;
}

void PrintTo(const ValidCase& c, std::ostream* os) { *os << c.name; }

class ValidFileTest : public ::testing::TestWithParam<ValidCase> {};

void ExpectValid(const ValidCase& c, const Result& r) {
  ASSERT_THAT(r.status, IsOk());
  ASSERT_EQ(r.rows(), c.row_ids.size());
  std::vector<double> expected;
  std::vector<int32_t> labels;
  for (int id : c.row_ids) {
    const std::vector<double> f = RowFeatures(id);
    expected.insert(expected.end(), f.begin(), f.end());
    labels.push_back(id % 2);
  }
  EXPECT_EQ(r.features, expected);
  EXPECT_EQ(r.has_labels, c.has_labels);
  if (c.has_labels) {
    EXPECT_EQ(r.labels, labels);
  } else {
    EXPECT_TRUE(r.labels.empty());
  }
  EXPECT_EQ(r.lines, c.lines);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.counters.rows_seen, static_cast<int64_t>(c.row_ids.size()));
  EXPECT_EQ(r.counters.rows_accepted, static_cast<int64_t>(c.row_ids.size()));
  EXPECT_EQ(r.counters.rows_rejected, 0);
  EXPECT_EQ(r.counters.bytes, static_cast<int64_t>(c.data.size()));
}

TEST_P(ValidFileTest, AcceptsEveryRowWithExactValues) {
  ExpectValid(GetParam(), RunReader(GetParam().data));
}

TEST_P(ValidFileTest, GivesTheSameRowsWhateverTheChunkBoundaries) {
  const ValidCase& c = GetParam();
  for (size_t split = 0; split <= c.data.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    ExpectValid(c, RunReader(c.data, {}, Chunking{static_cast<int64_t>(split), 0}));
    if (::testing::Test::HasFailure()) return;
  }
  for (size_t size : {1, 2, 3, 7, 64}) {
    SCOPED_TRACE("chunks of " + std::to_string(size));
    ExpectValid(c, RunReader(c.data, {}, Chunking{-1, size}));
  }
}

TEST_P(ValidFileTest, GivesTheSameRowsInLenientModeAndWithOneRowBatches) {
  CsvReaderOptions o;
  o.mode = Mode::kLenient;
  o.batch_rows = 1;
  const Result r = RunReader(GetParam().data, o);
  ExpectValid(GetParam(), r);
  EXPECT_EQ(r.batch_sizes, std::vector<size_t>(GetParam().row_ids.size(), 1));
}

INSTANTIATE_TEST_SUITE_P(Csv, ValidFileTest, ::testing::ValuesIn(ValidCases()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Rejected files and rows (strict mode: the first error fails the file).

struct BadCase {
  std::string name;
  std::string data;
  int64_t line;
  std::string column;
  int32_t column_index;
  std::string reason;  // substring of the reason
  int64_t max_line_bytes = 1 << 20;
};

// A file whose line 3 is `bad` (after the header and one good row).
std::string WithBadLine(const std::string& bad) { return Lines({Header(), Row(1), bad, Row(2)}); }

std::vector<BadCase> BadCases() {
  std::vector<BadCase> c;
  // Values.
  c.push_back({"NonNumericAmount", WithBadLine(RowWith(2, 29, "abc")), 3, "Amount", 30,
               "not a number: 'abc'"});
  c.push_back({"EmptyValue", WithBadLine(RowWith(2, 3, "")), 3, "V3", 4, "empty value"});
  c.push_back({"BlankValue", WithBadLine(RowWith(2, 3, "   ")), 3, "V3", 4, "empty value"});
  c.push_back({"EmptyQuotedValue", WithBadLine(RowWith(2, 5, "\"\"")), 3, "V5", 6, "empty value"});
  c.push_back({"EmptyLastValue", WithBadLine(RowWith(2, 30, "")), 3, "Class", 31, "empty value"});
  c.push_back({"NaN", WithBadLine(RowWith(2, 1, "NaN")), 3, "V1", 2, "not a finite number: 'NaN'"});
  c.push_back({"LowercaseNan", WithBadLine(RowWith(2, 2, "nan")), 3, "V2", 3,
               "not a finite number: 'nan'"});
  c.push_back(
      {"NegativeNan", WithBadLine(RowWith(2, 2, "-nan")), 3, "V2", 3, "not a finite number"});
  c.push_back({"Inf", WithBadLine(RowWith(2, 4, "inf")), 3, "V4", 5, "not a finite number: 'inf'"});
  c.push_back({"NegativeInfinity", WithBadLine(RowWith(2, 4, "-Infinity")), 3, "V4", 5,
               "not a finite number: '-Infinity'"});
  c.push_back({"QuotedInf", WithBadLine(RowWith(2, 4, "\"INF\"")), 3, "V4", 5,
               "not a finite number: 'INF'"});
  c.push_back({"Overflow", WithBadLine(RowWith(2, 7, "1e400")), 3, "V7", 8,
               "number out of range: '1e400'"});
  c.push_back({"NegativeOverflow", WithBadLine(RowWith(2, 7, "-2e308")), 3, "V7", 8,
               "number out of range: '-2e308'"});
  c.push_back({"NegativeTime", WithBadLine(RowWith(2, 0, "-1")), 3, "Time", 1,
               "Time must not be negative: '-1'"});
  c.push_back({"NegativeAmount", WithBadLine(RowWith(2, 29, "-0.01")), 3, "Amount", 30,
               "Amount must not be negative: '-0.01'"});
  c.push_back({"NegativeQuotedAmount", WithBadLine(RowWith(2, 29, "\"-5\"")), 3, "Amount", 30,
               "Amount must not be negative: '-5'"});
  c.push_back(
      {"ClassTwo", WithBadLine(RowWith(2, 30, "2")), 3, "Class", 31, "Class must be 0 or 1: '2'"});
  c.push_back({"ClassHalf", WithBadLine(RowWith(2, 30, "0.5")), 3, "Class", 31,
               "Class must be 0 or 1: '0.5'"});
  c.push_back({"ClassNegative", WithBadLine(RowWith(2, 30, "-1")), 3, "Class", 31,
               "Class must be 0 or 1: '-1'"});
  c.push_back(
      {"ClassText", WithBadLine(RowWith(2, 30, "fraud")), 3, "Class", 31, "not a number: 'fraud'"});
  c.push_back(
      {"HexNumber", WithBadLine(RowWith(2, 8, "0x10")), 3, "V8", 9, "not a number: '0x10'"});
  c.push_back(
      {"SpaceInsideNumber", WithBadLine(RowWith(2, 8, "1 2")), 3, "V8", 9, "not a number: '1 2'"});
  c.push_back(
      {"TrailingGarbage", WithBadLine(RowWith(2, 9, "1.5e")), 3, "V9", 10, "not a number: '1.5e'"});
  c.push_back(
      {"DoubleSign", WithBadLine(RowWith(2, 9, "+-1")), 3, "V9", 10, "not a number: '+-1'"});
  c.push_back({"NulByte",
               WithBadLine(RowWith(2, 10,
                                   std::string("1\0"
                                               "2",
                                               3))),
               3, "V10", 11, "contains a NUL byte: '1\\x002'"});
  c.push_back({"InvalidUtf8", WithBadLine(RowWith(2, 11, "\xff\xfe")), 3, "V11", 12,
               "invalid UTF-8: '\\xff\\xfe'"});
  c.push_back({"ValidUtf8Text", WithBadLine(RowWith(2, 11, "\xc3\xa9t\xc3\xa9")), 3, "V11", 12,
               "not a number: '\xc3\xa9t\xc3\xa9'"});
  c.push_back({"LongValueIsTruncatedInTheMessage",
               WithBadLine(RowWith(2, 12, std::string(200, 'x'))), 3, "V12", 13,
               "not a number: '" + std::string(40, 'x') + "'..."});
  c.push_back({"UnterminatedQuote", WithBadLine(RowWith(2, 30, "\"1")), 3, "Class", 31,
               "unterminated quoted value: '\"1'"});
  c.push_back({"UnterminatedQuoteSwallowsTheRestOfTheLine", WithBadLine(RowWith(2, 13, "\"1")), 3,
               "V13", 14, "unterminated quoted value"});
  c.push_back({"TextAfterClosingQuote", WithBadLine(RowWith(2, 14, "\"1\"x")), 3, "V14", 15,
               "unexpected text after closing quote: '\"1\"x'"});
  // Field counts.
  {
    std::vector<std::string> f = RowFields(2);
    f.pop_back();
    c.push_back({"TooFewFields", WithBadLine(Join(f)), 3, "Class", 31,
                 "too few fields: expected 31, got 30"});
    f.resize(5);
    c.push_back({"FarTooFewFields", WithBadLine(Join(f)), 3, "V5", 6,
                 "too few fields: expected 31, got 5"});
  }
  c.push_back({"TooManyFields", WithBadLine(Row(2) + ",7"), 3, "", 32,
               "too many fields: expected 31, got 32"});
  c.push_back({"TrailingComma", WithBadLine(Row(2) + ","), 3, "", 32,
               "too many fields: expected 31, got 32"});
  // A wrong field count is reported before the value errors it causes (values have shifted).
  c.push_back({"DecimalCommaIsAFieldCountError", WithBadLine(RowWith(2, 15, "1,5")), 3, "", 32,
               "too many fields: expected 31, got 32"});
  c.push_back({"FieldCountBeforeValueErrors", WithBadLine(RowWith(2, 3, "x") + ",y"), 3, "", 32,
               "too many fields: expected 31, got 32"});
  c.push_back({"MissingFieldBeforeValueErrors", WithBadLine(Join([] {
                 auto f = RowFields(2);
                 f.erase(f.begin() + 4);
                 f[10] = "x";
                 return f;
               }())),
               3, "Class", 31, "too few fields: expected 31, got 30"});
  c.push_back({"QuotedCommaCountsAsOneField", WithBadLine(RowWith(2, 3, "\"1,5\"")), 3, "V3", 4,
               "not a number: '1,5'"});
  c.push_back({"FirstProblemOfTheRowIsReported", WithBadLine(Join([] {
                 auto f = RowFields(2);
                 f[2] = "a";
                 f[20] = "b";
                 return f;
               }())),
               3, "V2", 3, "not a number: 'a'"});
  c.push_back({"NegativeTimeBeforeALaterTextValue", WithBadLine(Join([] {
                 auto f = RowFields(2);
                 f[0] = "-3";
                 f[20] = "x";
                 return f;
               }())),
               3, "Time", 1, "Time must not be negative: '-3'"});
  c.push_back({"LineTooLong", WithBadLine(RowWith(2, 5, std::string(300, '1'))), 3, "", 0,
               "line is longer than 400 bytes", 400});
  c.push_back({"LineNumbersCountBlankLinesAndCrlf",
               Lines({Header(), "", Row(1), "  ", RowWith(2, 29, "x")}, "\r\n"), 5, "Amount", 30,
               "not a number: 'x'"});
  c.push_back({"ErrorOnTheLastLineWithoutNewline", Header() + "\n" + RowWith(1, 1, "?"), 2, "V1", 2,
               "not a number: '?'"});
  // Whole-file problems.
  c.push_back({"EmptyFile", "", 0, "", 0, "file is empty"});
  c.push_back({"OnlyBlankLines", "\n \r\n\t\n", 0, "", 0, "file is empty"});
  c.push_back({"OnlyABom", "\xEF\xBB\xBF", 0, "", 0, "file is empty"});
  c.push_back({"HeaderOnly", Header() + "\n", 0, "", 0, "file has no data rows"});
  c.push_back({"HeaderOnlyWithoutNewline", Header(), 0, "", 0, "file has no data rows"});
  c.push_back(
      {"HeaderThenBlankLines", Header() + "\r\n\r\n  \n", 0, "", 0, "file has no data rows"});
  c.push_back({"Utf16LittleEndianBom", std::string("\xFF\xFET\0i\0m\0e\0", 10), 0, "", 0,
               "file is UTF-16; save as UTF-8"});
  c.push_back({"Utf16BigEndianBom", std::string("\xFE\xFF\0T\0i\0m\0e", 10), 0, "", 0,
               "file is UTF-16; save as UTF-8"});
  {
    std::string utf16;
    for (char ch : Header() + "\n") {
      utf16.push_back(ch);
      utf16.push_back('\0');
    }
    c.push_back({"Utf16WithoutBom", utf16, 0, "", 0, "file is UTF-16; save as UTF-8"});
  }
  c.push_back({"MissingColumn",
               Lines({"Time,V1,V2,V4,V5,V6,V7,V8,V9,V10,V11,V12,V13,V14,V15,V16,V17,"
                      "V18,V19,V20,V21,V22,V23,V24,V25,V26,V27,V28,Amount",
                      Row(1)}),
               1, "V3", 0, "missing columns: V3"});
  c.push_back({"SeveralMissingColumnsAreAllNamed", Lines({"Time,V1,Class", Row(1)}), 1, "V2", 0,
               "missing columns: V2, V3, V4"});
  c.push_back({"UnknownColumn", Lines({Header() + ",Foo", Row(1) + ",1"}), 1, "Foo", 32,
               "unknown columns: 'Foo' (column 32)"});
  c.push_back({"WrongCaseGetsAHint", Lines({"time" + Header().substr(4), Row(1)}), 1, "time", 1,
               "'time' (column 1), did you mean 'Time'?"});
  c.push_back({"DuplicatedColumn", Lines({Header() + ",V7", Row(1) + ",1"}), 1, "V7", 32,
               "duplicated columns: 'V7' (columns 8 and 32)"});
  c.push_back({"EmptyColumnName", Lines({Header() + ",", Row(1) + ","}), 1, "", 32,
               "unknown columns: '' (column 32, empty name)"});
  c.push_back({"MissingAndUnknownTogether", Lines({"Tim" + Header().substr(4), Row(1)}), 1, "Tim",
               1, "missing columns: Time; unknown columns: 'Tim' (column 1)"});
  {
    std::string h = Header();
    for (int i = 0; i < 25; ++i) h += ",X" + std::to_string(i);
    c.push_back({"ManyUnknownColumnsAreListedBriefly", Lines({h, Row(1)}), 1, "X0", 32,
                 "'X9' (column 41) and 15 more"});
  }
  c.push_back({"BareCrLineEndings", Header() + "\r" + Row(1) + "\r", 1, "", 0, "bare CR"});
  c.push_back({"HeaderWithNulByte",
               Lines({std::string("Time,V1\0,V2", 11) + Header().substr(10), Row(1)}), 1, "", 0,
               "header contains a NUL byte"});
  c.push_back({"HeaderWithInvalidUtf8", Lines({"Time\xff" + Header().substr(4), Row(1)}), 1, "", 0,
               "header is not valid UTF-8"});
  c.push_back({"HeaderWithUnterminatedQuote", Lines({"\"Time" + Header().substr(4), Row(1)}), 1, "",
               0, "unterminated quoted name"});
  c.push_back(
      {"HeaderTooLong", Lines({Header(), Row(1)}), 1, "", 0, "line is longer than 100 bytes", 100});
  return c;
}

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class BadFileTest : public ::testing::TestWithParam<BadCase> {};

void ExpectBad(const BadCase& c, const Result& r) {
  ASSERT_THAT(r.status, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.reason)));
  ASSERT_EQ(r.errors.size(), 1u);
  const RowError& e = r.errors[0];
  EXPECT_EQ(e.line, c.line);
  EXPECT_EQ(e.column, c.column);
  EXPECT_EQ(e.column_index, c.column_index);
  EXPECT_THAT(e.reason, HasSubstr(c.reason));
  EXPECT_EQ(std::string(r.status.message()), e.ToString());
  EXPECT_TRUE(IsValidUtf8(e.reason)) << "reasons travel in proto strings";
  EXPECT_EQ(r.errors_total, 1);
}

TEST_P(BadFileTest, FailsWithTheExactLineColumnAndReason) {
  CsvReaderOptions o;
  o.max_line_bytes = GetParam().max_line_bytes;
  ExpectBad(GetParam(), RunReader(GetParam().data, o));
}

TEST_P(BadFileTest, FailsTheSameWayWhateverTheChunkBoundaries) {
  const BadCase& c = GetParam();
  CsvReaderOptions o;
  o.max_line_bytes = c.max_line_bytes;
  const Result whole = RunReader(c.data, o);
  for (size_t split = 0; split <= c.data.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    const Result r = RunReader(c.data, o, Chunking{static_cast<int64_t>(split), 0});
    ExpectBad(c, r);
    EXPECT_EQ(r.rows(), whole.rows());
    EXPECT_EQ(r.counters.rows_seen, whole.counters.rows_seen);
    if (::testing::Test::HasFailure()) return;
  }
  for (size_t size : {1, 2, 5, 64}) {
    SCOPED_TRACE("chunks of " + std::to_string(size));
    ExpectBad(c, RunReader(c.data, o, Chunking{-1, size}));
  }
}

TEST_P(BadFileTest, RowErrorsAreSkippedInLenientModeButFileErrorsStillFail) {
  const BadCase& c = GetParam();
  CsvReaderOptions o;
  o.mode = Mode::kLenient;
  o.max_line_bytes = c.max_line_bytes;
  const Result r = RunReader(c.data, o);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, c.line);
  EXPECT_EQ(r.errors[0].column, c.column);
  EXPECT_THAT(r.errors[0].reason, HasSubstr(c.reason));
  const bool file_level = c.line <= 1;
  if (file_level) {
    EXPECT_THAT(r.status, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_EQ(r.rows(), 0u);
  } else {
    EXPECT_THAT(r.status, IsOk());
    EXPECT_EQ(r.counters.rows_rejected, 1);
    EXPECT_EQ(r.counters.rows_accepted, r.counters.rows_seen - 1);
    EXPECT_EQ(static_cast<int64_t>(r.rows()), r.counters.rows_accepted);
  }
}

INSTANTIATE_TEST_SUITE_P(Csv, BadFileTest, ::testing::ValuesIn(BadCases()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Number syntax accepted in a field.

struct NumberCase {
  std::string name;
  std::string text;
  double expected;
};

void PrintTo(const NumberCase& c, std::ostream* os) { *os << c.name << " '" << c.text << "'"; }

class NumberSyntaxTest : public ::testing::TestWithParam<NumberCase> {};

TEST_P(NumberSyntaxTest, ParsesTheValueExactly) {
  const Result r = RunReader(Lines({Header(), RowWith(1, 5, GetParam().text)}));
  ASSERT_THAT(r.status, IsOk());
  ASSERT_EQ(r.rows(), 1u);
  const double got = r.features[5];
  EXPECT_EQ(got, GetParam().expected);
  EXPECT_EQ(std::signbit(got), std::signbit(GetParam().expected));
}

INSTANTIATE_TEST_SUITE_P(
    Csv, NumberSyntaxTest,
    ::testing::Values(
        NumberCase{"LeadingPlus", "+1.5", 1.5}, NumberCase{"NoIntegerPart", ".5", 0.5},
        NumberCase{"NegativeNoIntegerPart", "-.25", -0.25}, NumberCase{"NoFraction", "5.", 5},
        NumberCase{"UpperExponent", "1E3", 1000}, NumberCase{"NegativeExponent", "2.5e-3", 0.0025},
        NumberCase{"NegativeZero", "-0", -0.0}, NumberCase{"NegativeZeroFraction", "-0.000", -0.0},
        NumberCase{"LeadingZeros", "00012", 12},
        NumberCase{"SixteenDecimals", "0.0986979012610507", 0.0986979012610507},
        NumberCase{"EighteenDigitsUseTheSlowPath", "-1.35980713367380012", -1.35980713367380012},
        NumberCase{"HugeIntegerMantissa", "1234567890123456789012", 1234567890123456789012.0},
        NumberCase{"Subnormal", "4e-320", 4e-320}, NumberCase{"LargeExponent", "1e23", 1e23},
        NumberCase{"Quoted", "\"2.5\"", 2.5}, NumberCase{"Blanks", " \t2.5  ", 2.5},
        NumberCase{"BlanksInsideQuotes", "\" 2.5 \"", 2.5},
        NumberCase{"BlanksAroundQuotes", "  \"-2.5\" ", -2.5},
        NumberCase{"ExponentWithSmallMantissa", "-2.68638196892377e-05", -2.68638196892377e-05}),
    [](const auto& info) { return info.param.name; });

TEST(CsvReaderTest, AcceptsNegativeZeroTimeAndAmount) {
  const Result r = RunReader(Lines({Header(), RowWith(1, 0, "-0"), RowWith(2, 29, "\"-0.0\"")}));
  ASSERT_THAT(r.status, IsOk());
  EXPECT_EQ(r.rows(), 2u);
}

TEST(CsvReaderTest, AcceptsClassWrittenAsAFloatingPointZeroOrOne) {
  const Result r = RunReader(
      Lines({Header(), RowWith(1, 30, "1.0"), RowWith(2, 30, "0e0"), RowWith(3, 30, "\"1\"")}));
  ASSERT_THAT(r.status, IsOk());
  EXPECT_THAT(r.labels, ElementsAre(1, 0, 1));
}

// ---------------------------------------------------------------------------------------------
// Lenient mode, error limits, counters.

TEST(CsvReaderTest, LenientModeSkipsEachBadRowAndReportsItInFileOrder) {
  CsvReaderOptions o;
  o.mode = Mode::kLenient;
  const std::string data = Lines({Header(), Row(1), RowWith(2, 29, "abc"), Row(3), "",
                                  RowWith(4, 0, "-5"), Row(5) + ",9", Row(6)});
  const Result r = RunReader(data, o);
  ASSERT_THAT(r.status, IsOk());
  EXPECT_THAT(r.lines, ElementsAre(2, 4, 8));
  EXPECT_THAT(r.labels, ElementsAre(1, 1, 0));
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0], (RowError{3, "Amount", 30, "not a number: 'abc'"}));
  EXPECT_EQ(r.errors[1], (RowError{6, "Time", 1, "Time must not be negative: '-5'"}));
  EXPECT_EQ(r.errors[2], (RowError{7, "", 32, "too many fields: expected 31, got 32"}));
  EXPECT_EQ(r.counters.rows_seen, 6);
  EXPECT_EQ(r.counters.rows_accepted, 3);
  EXPECT_EQ(r.counters.rows_rejected, 3);
  EXPECT_EQ(r.errors_total, 3);
}

TEST(CsvReaderTest, LenientModeKeepsAtMostMaxErrorsButCountsThemAll) {
  CsvReaderOptions o;
  o.mode = Mode::kLenient;
  o.max_errors = 2;
  std::vector<std::string> lines = {Header()};
  for (int i = 0; i < 10; ++i) lines.push_back(i % 2 ? Row(i) : RowWith(i, 3, "bad"));
  CsvReader reader(o);
  ASSERT_THAT(reader.Feed(Lines(lines)), IsOk());
  ASSERT_THAT(reader.Finish(), IsOk());
  ASSERT_EQ(reader.errors().size(), 2u);
  EXPECT_EQ(reader.errors()[0].line, 2);
  EXPECT_EQ(reader.errors()[1].line, 4);
  EXPECT_EQ(reader.errors_total(), 5);
  EXPECT_TRUE(reader.errors_truncated());
  EXPECT_EQ(reader.counters().rows_rejected, 5);
  EXPECT_EQ(reader.counters().rows_accepted, 5);
}

TEST(CsvReaderTest, TheErrorThatFailsTheFileIsKeptEvenWithMaxErrorsZero) {
  CsvReaderOptions o;
  o.max_errors = 0;
  Result r = RunReader(Lines({Header(), RowWith(1, 1, "x")}), o);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 2);
  r = RunReader(Lines({"Time", Row(1)}), o);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 1);
  o.mode = Mode::kLenient;
  r = RunReader(Lines({Header(), RowWith(1, 1, "x")}), o);
  EXPECT_THAT(r.status, IsOk());
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.errors_total, 1);
}

TEST(CsvReaderTest, LenientModeWithOnlyBadRowsSucceedsWithNothingAccepted) {
  CsvReaderOptions o;
  o.mode = Mode::kLenient;
  const Result r = RunReader(Lines({Header(), RowWith(1, 1, "x"), RowWith(2, 1, "y")}), o);
  EXPECT_THAT(r.status, IsOk());
  EXPECT_EQ(r.rows(), 0u);
  EXPECT_EQ(r.counters.rows_rejected, 2);
}

TEST(CsvReaderTest, LenientModeSkipsAnOverlongLineFedInSmallChunksAndGoesOn) {
  CsvReaderOptions o;
  o.mode = Mode::kLenient;
  o.max_line_bytes = 1000;
  const std::string data = Lines({Header(), Row(1), std::string(100000, '7'), Row(2)});
  for (size_t chunk : {size_t{64}, size_t{999}, size_t{1000}, size_t{1001}, size_t{65536}}) {
    SCOPED_TRACE(chunk);
    const Result r = RunReader(data, o, Chunking{-1, chunk});
    ASSERT_THAT(r.status, IsOk());
    EXPECT_THAT(r.lines, ElementsAre(2, 4));
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0], (RowError{3, "", 0, "line is longer than 1000 bytes"}));
  }
}

TEST(CsvReaderTest, AcceptsALineOfExactlyMaxLineBytes) {
  CsvReaderOptions o;
  const std::string row = Row(1);
  o.max_line_bytes = static_cast<int64_t>(row.size());
  const std::string data = Lines({Header(), row});
  EXPECT_THAT(RunReader(data, o).status, IsOk());
  for (size_t split = 0; split <= data.size(); split += 7) {
    EXPECT_THAT(RunReader(data, o, Chunking{static_cast<int64_t>(split), 0}).status, IsOk());
  }
  o.max_line_bytes -= 1;
  EXPECT_THAT(RunReader(data, o).status,
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line is longer")));
}

TEST(CsvReaderTest, StrictModeStopsAtTheFirstErrorAndEmitsNothingAfterIt) {
  CsvReaderOptions o;
  o.batch_rows = 2;
  const std::string data =
      Lines({Header(), Row(1), Row(2), Row(3), RowWith(4, 2, "x"), Row(5), Row(6), Row(7)});
  const Result r = RunReader(data, o);
  EXPECT_THAT(r.status, StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("line 5, column V2 (3): not a number: 'x'")));
  EXPECT_THAT(r.lines, ElementsAre(2, 3));  // the first full batch only
  EXPECT_EQ(r.counters.rows_seen, 4);
  EXPECT_EQ(r.counters.rows_accepted, 3);
  EXPECT_EQ(r.counters.rows_rejected, 1);
}

TEST(CsvReaderTest, FailureIsStickyAndFeedAfterFinishIsRefused) {
  CsvReader bad;
  const absl::Status first = bad.Feed(Lines({Header(), RowWith(1, 1, "x")}));
  EXPECT_THAT(first, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(bad.Feed(Row(2) + "\n"), first);
  EXPECT_EQ(bad.Finish(), first);
  EXPECT_EQ(bad.status(), first);

  CsvReader good;
  ASSERT_THAT(good.Feed(Lines({Header(), Row(1)})), IsOk());
  ASSERT_THAT(good.Finish(), IsOk());
  EXPECT_THAT(good.Feed(Row(2)), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(good.Finish(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(CsvReaderTest, CountsEveryFedByteAndExposesTheHeader) {
  CsvReader reader;
  EXPECT_FALSE(reader.header_done());
  ASSERT_THAT(reader.Feed("\xEF\xBB\xBF\"Time\""), IsOk());
  ASSERT_THAT(reader.Feed(Header(false).substr(4) + "\r\n" + Row(1, false)), IsOk());
  EXPECT_TRUE(reader.header_done());
  EXPECT_FALSE(reader.has_labels());
  ASSERT_THAT(reader.Finish(), IsOk());
  EXPECT_EQ(reader.header_columns(), HeaderNames(false));
  EXPECT_EQ(reader.counters().bytes,
            static_cast<int64_t>(3 + 6 + Header(false).size() - 4 + 2 + Row(1, false).size()));
}

// ---------------------------------------------------------------------------------------------
// Batches.

TEST(CsvReaderTest, EmitsFullBatchesAndTheRestAtFinish) {
  CsvReaderOptions o;
  o.batch_rows = 3;
  std::vector<std::string> lines = {Header()};
  for (int i = 0; i < 10; ++i) lines.push_back(Row(i));
  std::vector<size_t> sizes;
  std::vector<int64_t> line_numbers;
  std::vector<double> features;
  CsvReader reader(o, [&](RowBatch& b) {
    EXPECT_EQ(b.features.size(), b.num_rows() * kNumFeatures);
    EXPECT_EQ(b.labels.size(), b.num_rows());
    EXPECT_EQ(b.line_numbers.size(), b.num_rows());
    sizes.push_back(b.num_rows());
    line_numbers.insert(line_numbers.end(), b.line_numbers.begin(), b.line_numbers.end());
    features.insert(features.end(), b.features.begin(), b.features.end());
    return absl::OkStatus();
  });
  const std::string data = Lines(lines);
  ASSERT_THAT(reader.Feed(data), IsOk());
  EXPECT_THAT(sizes, ElementsAre(3, 3, 3));
  ASSERT_THAT(reader.Finish(), IsOk());
  EXPECT_THAT(sizes, ElementsAre(3, 3, 3, 1));
  EXPECT_THAT(line_numbers, ElementsAre(2, 3, 4, 5, 6, 7, 8, 9, 10, 11));
  std::vector<double> expected;
  for (int i = 0; i < 10; ++i) {
    const auto f = RowFeatures(i);
    expected.insert(expected.end(), f.begin(), f.end());
  }
  EXPECT_EQ(features, expected);
}

TEST(CsvReaderTest, ABatchExactlyFullIsNotFollowedByAnEmptyOne) {
  CsvReaderOptions o;
  o.batch_rows = 2;
  const Result r = RunReader(Lines({Header(), Row(1), Row(2), Row(3), Row(4)}), o);
  ASSERT_THAT(r.status, IsOk());
  EXPECT_THAT(r.batch_sizes, ElementsAre(2, 2));
}

TEST(CsvReaderTest, CallbackMayTakeTheBatchBuffers) {
  CsvReaderOptions o;
  o.batch_rows = 2;
  std::vector<RowBatch> taken;
  CsvReader reader(o, [&](RowBatch& b) {
    taken.push_back(std::move(b));
    return absl::OkStatus();
  });
  ASSERT_THAT(reader.Feed(Lines({Header(), Row(1), Row(2), Row(3), Row(4), Row(5)})), IsOk());
  ASSERT_THAT(reader.Finish(), IsOk());
  ASSERT_EQ(taken.size(), 3u);
  EXPECT_THAT(taken[1].line_numbers, ElementsAre(4, 5));
  EXPECT_EQ(std::vector<double>(taken[2].features.begin(), taken[2].features.end()),
            RowFeatures(5));
}

TEST(CsvReaderTest, CallbackErrorStopsTheReaderWithThatStatus) {
  CsvReaderOptions o;
  o.batch_rows = 1;
  int calls = 0;
  CsvReader reader(o, [&](RowBatch&) {
    ++calls;
    return absl::UnavailableError("storage down");
  });
  const absl::Status s = reader.Feed(Lines({Header(), Row(1), Row(2), Row(3)}));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("storage down")));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(reader.Finish(), s);
}

TEST(CsvReaderTest, PullApiHandsOutReadyBatchesInOrderAndRecyclesBuffers) {
  CsvReaderOptions o;
  o.batch_rows = 4;
  CsvReader reader(o);
  std::vector<std::string> lines = {Header()};
  for (int i = 0; i < 11; ++i) lines.push_back(Row(i));
  const std::string data = Lines(lines);
  RowBatch batch;
  std::vector<int64_t> seen;
  std::vector<size_t> sizes;
  for (size_t off = 0; off < data.size(); off += 100) {
    ASSERT_THAT(reader.Feed(std::string_view(data).substr(off, 100)), IsOk());
    while (reader.NextBatch(&batch)) {
      sizes.push_back(batch.num_rows());
      seen.insert(seen.end(), batch.line_numbers.begin(), batch.line_numbers.end());
    }
  }
  ASSERT_THAT(reader.Finish(), IsOk());
  while (reader.NextBatch(&batch)) {
    sizes.push_back(batch.num_rows());
    seen.insert(seen.end(), batch.line_numbers.begin(), batch.line_numbers.end());
  }
  EXPECT_THAT(sizes, ElementsAre(4, 4, 3));
  std::vector<int64_t> expected;
  for (int i = 0; i < 11; ++i) expected.push_back(i + 2);
  EXPECT_EQ(seen, expected);
  EXPECT_FALSE(reader.NextBatch(&batch));
}

// ---------------------------------------------------------------------------------------------
// Fixture files (tests/testdata/csv, see its README.md).

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(FRAUD_CSV_TESTDATA_DIR) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(TestdataFileTest, OriginalFormatAndBomCrlfReversedCopyGiveTheSameRows) {
  const Result kaggle = RunReader(ReadTestdata("kaggle_format_20_rows.csv"), {}, Chunking{-1, 333});
  const Result reversed =
      RunReader(ReadTestdata("bom_crlf_reversed_columns.csv"), {}, Chunking{-1, 333});
  ASSERT_THAT(kaggle.status, IsOk());
  ASSERT_THAT(reversed.status, IsOk());
  EXPECT_EQ(kaggle.rows(), 20u);
  EXPECT_EQ(std::count(kaggle.labels.begin(), kaggle.labels.end(), 1), 2);
  EXPECT_EQ(reversed.features, kaggle.features);
  EXPECT_EQ(reversed.labels, kaggle.labels);
  EXPECT_EQ(reversed.lines, kaggle.lines);
}

TEST(TestdataFileTest, UnlabelledFileHasNoLabels) {
  const Result r = RunReader(ReadTestdata("unlabelled_12_rows.csv"));
  ASSERT_THAT(r.status, IsOk());
  EXPECT_EQ(r.rows(), 12u);
  EXPECT_FALSE(r.has_labels);
}

TEST(TestdataFileTest, MixedErrorsFailStrictAtTheFirstAndAreListedInLenientMode) {
  const std::string data = ReadTestdata("mixed_errors.csv");
  const Result strict = RunReader(data);
  EXPECT_THAT(strict.status,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 3, column Amount (30): not a number: 'abc'")));
  CsvReaderOptions o;
  o.mode = Mode::kLenient;
  const Result r = RunReader(data, o, Chunking{-1, 100});
  ASSERT_THAT(r.status, IsOk());
  EXPECT_THAT(r.lines, ElementsAre(2, 4, 8, 10, 12));
  ASSERT_EQ(r.errors.size(), 5u);
  EXPECT_EQ(r.errors[0], (RowError{3, "Amount", 30, "not a number: 'abc'"}));
  EXPECT_EQ(r.errors[1], (RowError{5, "Time", 1, "Time must not be negative: '-12'"}));
  EXPECT_EQ(r.errors[2], (RowError{6, "", 32, "too many fields: expected 31, got 32"}));
  EXPECT_EQ(r.errors[3], (RowError{9, "Class", 31, "Class must be 0 or 1: '2'"}));
  EXPECT_EQ(r.errors[4], (RowError{11, "V14", 15, "not a finite number: 'NaN'"}));
}

// ---------------------------------------------------------------------------------------------
// Message helpers.

TEST(QuoteForMessageTest, EscapesControlAndInvalidBytesAndCutsLongText) {
  EXPECT_EQ(QuoteForMessage("abc"), "'abc'");
  EXPECT_EQ(QuoteForMessage(std::string("a\0b\n", 4)), "'a\\x00b\\x0a'");
  EXPECT_EQ(QuoteForMessage("\xc3\xa9\xff"), "'\xc3\xa9\\xff'");
  EXPECT_EQ(QuoteForMessage(std::string(50, 'z'), 10), "'zzzzzzzzzz'...");
  // A multi-byte character is never cut in half.
  EXPECT_EQ(QuoteForMessage("ab\xe2\x82\xac", 4), "'ab'...");
}

TEST(IsValidUtf8Test, RejectsOverlongsSurrogatesAndTruncatedSequences) {
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x92\xb3"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation
}

TEST(RowErrorTest, FormatsFileLineAndColumnErrors) {
  EXPECT_EQ((RowError{0, "", 0, "file is empty"}).ToString(), "file is empty");
  EXPECT_EQ((RowError{1, "", 0, "bad header"}).ToString(), "line 1: bad header");
  EXPECT_EQ((RowError{7, "Amount", 30, "not a number: 'abc'"}).ToString(),
            "line 7, column Amount (30): not a number: 'abc'");
  EXPECT_EQ((RowError{7, "", 32, "too many fields"}).ToString(),
            "line 7, field 32: too many fields");
}

}  // namespace
}  // namespace fraud::csv
