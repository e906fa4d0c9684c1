// The synthetic generator: determinism, format, validity under the reader, and statistics close
// to the genuine sample's (STATS.md).
#include "services/common/csv/synthetic_generator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "services/common/core/sha256.h"
#include "services/common/csv/csv_reader.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/csv/csv_test_util.h"

namespace fraud::csv {
namespace {

using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Generate(const GeneratorOptions& o) {
  std::ostringstream os;
  EXPECT_THAT(WriteSyntheticCsv(o, os), IsOk());
  return os.str();
}

GeneratorOptions Small(int64_t rows, uint64_t seed) {
  GeneratorOptions o;
  o.rows = rows;
  o.seed = seed;
  return o;
}

TEST(SyntheticGeneratorTest, SameSeedGivesTheSameBytes) {
  EXPECT_EQ(Generate(Small(3000, 42)), Generate(Small(3000, 42)));
}

TEST(SyntheticGeneratorTest, DifferentSeedsGiveDifferentRows) {
  const std::string a = Generate(Small(200, 1));
  const std::string b = Generate(Small(200, 2));
  EXPECT_NE(a, b);
  // Not just one row: almost every line differs.
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  int same = 0, lines = 0;
  while (std::getline(sa, la) && std::getline(sb, lb)) {
    ++lines;
    same += la == lb;
  }
  EXPECT_EQ(lines, 201);
  EXPECT_EQ(same, 1);  // the header
}

TEST(SyntheticGeneratorTest, OutputIsPinnedForAGivenSeed) {
  // Guards the promise "same seed, same bytes" across changes to the code: if this digest has to
  // change, the generator's output changed for everyone (benchmarks, demos, tests).
  const std::string csv = Generate(Small(500, 7));
  EXPECT_EQ(Sha256Hex(csv), Sha256Hex(Generate(Small(500, 7))));
  EXPECT_THAT(csv, StartsWith("\"Time\",\"V1\",\"V2\",\"V3\""));
  EXPECT_EQ(Sha256Hex(csv), "69599eab0dc4e2749ae464bd5dca308d008480646f19fc140e59e832ee909708");
}

TEST(SyntheticGeneratorTest, StreamAndFileWritersProduceTheSameBytes) {
  const GeneratorOptions o = Small(700, 9);
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  ASSERT_THAT(WriteSyntheticCsv(o, f), IsOk());
  std::rewind(f);
  std::string from_file;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) from_file.append(buf, n);
  std::fclose(f);
  EXPECT_EQ(from_file, Generate(o));
}

TEST(SyntheticGeneratorTest, HeaderIsQuotedLikeTheOriginalFileOrPlainOnRequest) {
  GeneratorOptions o = Small(3, 1);
  const std::string quoted = Generate(o);
  EXPECT_THAT(quoted, StartsWith("\"Time\",\"V1\","));
  EXPECT_THAT(quoted.substr(0, quoted.find('\n')), HasSubstr("\"V28\",\"Amount\",\"Class\""));
  // Class values quoted too, as in the original file.
  EXPECT_THAT(quoted.substr(quoted.find('\n') + 1), ::testing::MatchesRegex("(.*,\"[01]\"\n)+"));
  o.quote = false;
  const std::string plain = Generate(o);
  EXPECT_THAT(plain, StartsWith("Time,V1,V2,"));
  EXPECT_EQ(plain.find('"'), std::string::npos);
}

TEST(SyntheticGeneratorTest, NumbersUseTheOriginalFormatting) {
  GeneratorOptions o = Small(2000, 3);
  o.quote = false;
  const std::string csv = Generate(o);
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    const std::vector<std::string> f = [&] {
      std::vector<std::string> out;
      std::stringstream ss(line);
      std::string x;
      while (std::getline(ss, x, ',')) out.push_back(x);
      return out;
    }();
    ASSERT_EQ(f.size(), 31u) << line;
    // Time: an integer.
    EXPECT_EQ(f[0].find_first_not_of("0123456789"), std::string::npos) << f[0];
    // V1..V28: at most 15 significant digits.
    for (int i = 1; i <= 28; ++i) {
      std::string mantissa = f[i].substr(0, f[i].find('e'));
      int digits = 0;
      bool leading = true;
      for (char c : mantissa) {
        if (c < '0' || c > '9') continue;
        if (leading && c == '0') continue;
        leading = false;
        ++digits;
      }
      EXPECT_LE(digits, 15) << f[i];
    }
    // Amount: at most 2 decimals, no trailing zeros ("1.5", "15", "149.62").
    const size_t dot = f[29].find('.');
    if (dot != std::string::npos) {
      EXPECT_LE(f[29].size() - dot - 1, 2u) << f[29];
      EXPECT_NE(f[29].back(), '0') << f[29];
    }
    EXPECT_TRUE(f[30] == "0" || f[30] == "1");
  }
}

// Reads a generated file back with the validator.
struct ReadBack {
  absl::Status status;
  std::vector<double> features;
  std::vector<int32_t> labels;
  CsvCounters counters;
  bool has_labels = false;
};

ReadBack Validate(const std::string& csv) {
  ReadBack r;
  CsvReader reader(CsvReaderOptions{}, [&](RowBatch& b) {
    r.features.insert(r.features.end(), b.features.begin(), b.features.end());
    r.labels.insert(r.labels.end(), b.labels.begin(), b.labels.end());
    return absl::OkStatus();
  });
  for (size_t off = 0; off < csv.size() && r.status.ok(); off += 65536) {
    r.status = reader.Feed(std::string_view(csv).substr(off, 65536));
  }
  if (r.status.ok()) r.status = reader.Finish();
  r.counters = reader.counters();
  r.has_labels = reader.has_labels();
  return r;
}

TEST(SyntheticGeneratorTest, OutputPassesTheStrictValidatorWithSortedTimesAndExactFraudCount) {
  GeneratorOptions o = Small(20000, 11);
  o.fraud_rate = 0.01;
  const ReadBack r = Validate(Generate(o));
  ASSERT_THAT(r.status, IsOk());
  EXPECT_EQ(r.counters.rows_accepted, 20000);
  int frauds = 0;
  for (int32_t l : r.labels) frauds += l;
  EXPECT_EQ(frauds, 200);
  double prev = -1;
  for (size_t i = 0; i < 20000; ++i) {
    const double t = r.features[i * kNumFeatures + kTimeIndex];
    EXPECT_GE(t, prev);
    EXPECT_LE(t, kTimeSpanSeconds);
    prev = t;
    const double amount = r.features[i * kNumFeatures + kAmountIndex];
    EXPECT_GE(amount, 0);
    EXPECT_NEAR(amount * 100, std::round(amount * 100), 1e-6);
  }
}

TEST(SyntheticGeneratorTest, RowsAreWrittenExactlyAsGenerated) {
  GeneratorOptions o = Small(300, 5);
  SyntheticGenerator gen(o);
  std::vector<double> expected;
  std::vector<int32_t> labels;
  double row[kNumFeatures];
  int32_t label;
  while (gen.Next(row, &label)) {
    expected.insert(expected.end(), row, row + kNumFeatures);
    labels.push_back(label);
  }
  const ReadBack r = Validate(Generate(o));
  ASSERT_THAT(r.status, IsOk());
  ASSERT_EQ(r.features.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    // 15 significant digits for V columns; Time and Amount exact.
    EXPECT_NEAR(r.features[i], expected[i], 1e-13 * std::max(1.0, std::fabs(expected[i])));
  }
  EXPECT_EQ(r.labels, labels);
}

TEST(SyntheticGeneratorTest, FullSizeFileHasTheDatasetsFraudCountAndSpansTwoDays) {
  GeneratorOptions o;  // 284,807 rows at 0.00172
  SyntheticGenerator gen(o);
  double row[kNumFeatures];
  int32_t label;
  int64_t rows = 0, frauds = 0;
  double first = -1, last = -1;
  while (gen.Next(row, &label)) {
    if (first < 0) first = row[kTimeIndex];
    last = row[kTimeIndex];
    ++rows;
    frauds += label;
  }
  EXPECT_EQ(rows, 284807);
  EXPECT_EQ(frauds, 490);  // round(284807 * 0.00172); the dataset has 492
  EXPECT_EQ(gen.frauds_total(), 490);
  EXPECT_LT(first, 60);
  EXPECT_GT(last, kTimeSpanSeconds - 60);
}

TEST(SyntheticGeneratorTest, NightsAreQuieterThanDays) {
  SyntheticGenerator gen(Small(100000, 4));
  double row[kNumFeatures];
  int32_t label;
  int night = 0, day = 0;  // 02:00-06:00 vs 14:00-18:00 of both days
  while (gen.Next(row, &label)) {
    const double hour = std::fmod(row[kTimeIndex], 86400) / 3600;
    night += hour >= 2 && hour < 6;
    day += hour >= 14 && hour < 18;
  }
  EXPECT_GT(day, 4 * night);
}

TEST(SyntheticGeneratorTest, OptionsDropLabelsAndHeaderAndShiftTime) {
  GeneratorOptions o = Small(50, 8);
  o.with_labels = false;
  const ReadBack r = Validate(Generate(o));
  ASSERT_THAT(r.status, IsOk());
  EXPECT_FALSE(r.has_labels);
  EXPECT_TRUE(r.labels.empty());

  GeneratorOptions shifted = Small(50, 8);
  shifted.time_offset = 172800;
  shifted.with_header = false;
  const std::string body = Generate(shifted);
  EXPECT_NE(body[0], '"');
  const ReadBack rs = Validate(SyntheticCsvHeader(shifted) + body);
  ASSERT_THAT(rs.status, IsOk());
  const ReadBack r0 = Validate(Generate(Small(50, 8)));
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(rs.features[i * kNumFeatures], r0.features[i * kNumFeatures] + 172800);
    EXPECT_EQ(rs.features[i * kNumFeatures + 14], r0.features[i * kNumFeatures + 14]);
  }
}

TEST(SyntheticGeneratorTest, RejectsBadOptions) {
  std::ostringstream os;
  GeneratorOptions o;
  o.rows = -1;
  EXPECT_THAT(WriteSyntheticCsv(o, os), StatusIs(absl::StatusCode::kInvalidArgument));
  o = GeneratorOptions();
  o.fraud_rate = 1.5;
  EXPECT_THAT(WriteSyntheticCsv(o, os), StatusIs(absl::StatusCode::kInvalidArgument));
  o.fraud_rate = std::nan("");
  EXPECT_THAT(WriteSyntheticCsv(o, os), StatusIs(absl::StatusCode::kInvalidArgument));
  o = GeneratorOptions();
  o.time_offset = -5;
  EXPECT_THAT(WriteSyntheticCsv(o, os), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(os.str().empty());
}

TEST(SyntheticGeneratorTest, ZeroRowsGiveAHeaderOnlyFile) {
  EXPECT_EQ(Generate(Small(0, 1)), SyntheticCsvHeader(Small(0, 1)));
}

// Class-conditional statistics against STATS.md (genuine sample; population sd).
struct Moments {
  double mean0, sd0, mean1, sd1;
};

TEST(SyntheticGeneratorTest, ClassMeansAndSpreadsAreCloseToTheGenuineSample) {
  GeneratorOptions o = Small(150000, 21);
  o.fraud_rate = 0.02;  // 3000 frauds: enough for tight fraud-class estimates
  SyntheticGenerator gen(o);
  double sum[2][kNumFeatures] = {}, sq[2][kNumFeatures] = {};
  int64_t n[2] = {0, 0};
  double row[kNumFeatures];
  int32_t label;
  while (gen.Next(row, &label)) {
    ++n[label];
    for (int i = 0; i < kNumFeatures; ++i) {
      sum[label][i] += row[i];
      sq[label][i] += row[i] * row[i];
    }
  }
  // V index -> STATS.md figures, for the columns that separate the classes.
  const std::vector<std::pair<int, Moments>> expected = {
      {14, {0.0539188, 0.916909, -6.83595, 4.24871}},
      {12, {-0.046988, 1.02989, -6.10325, 4.57748}},
      {10, {-0.00350796, 1.04273, -5.45327, 4.70147}},
      {17, {0.0333595, 0.754585, -6.46329, 6.95838}},
      {4, {0.0267836, 1.40564, 4.47259, 2.86849}},
      {11, {0.0723988, 1.0295, 3.71635, 2.66999}},
      {3, {0.184103, 1.42026, -6.7296, 6.90234}},
      {1, {-0.0538492, 1.87206, -4.49828, 6.58617}},
      {28, {-0.000694115, 0.303128, 0.0782702, 0.532536}}};
  for (const auto& [v, m] : expected) {
    SCOPED_TRACE("V" + std::to_string(v));
    const double mean0 = sum[0][v] / n[0], mean1 = sum[1][v] / n[1];
    const double sd0 = std::sqrt(sq[0][v] / n[0] - mean0 * mean0);
    const double sd1 = std::sqrt(sq[1][v] / n[1] - mean1 * mean1);
    EXPECT_NEAR(mean0, m.mean0 + 0.0, 0.03 + 0.02 * m.sd0);
    EXPECT_NEAR(sd0, m.sd0, 0.08 * m.sd0);
    EXPECT_NEAR(mean1, m.mean1, 0.1 * m.sd1 + 0.05);
    EXPECT_NEAR(sd1, m.sd1, 0.15 * m.sd1);
  }
  const double amount0 = sum[0][kAmountIndex] / n[0], amount1 = sum[1][kAmountIndex] / n[1];
  EXPECT_NEAR(amount0, 85.64, 10);
  EXPECT_NEAR(amount1, 123.87, 20);
}

}  // namespace
}  // namespace fraud::csv
