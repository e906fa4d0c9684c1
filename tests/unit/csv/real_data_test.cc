// The genuine data sample (FRAUD_REAL_DATA; never committed) passes the validator in strict mode
// with the row and fraud counts of its STATS.md, in any chunking. Skipped when absent.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "services/common/csv/csv_reader.h"
#include "tests/testing/status_matchers.h"

namespace fraud::csv {
namespace {

using ::fraud::testing::IsOk;

std::string RealDataPath() {
  const char* p = std::getenv("FRAUD_REAL_DATA");
  if (p != nullptr && *p != '\0') return p;
  return "";
}

TEST(RealDataTest, GenuineSampleIsAcceptedWithItsKnownCounts) {
  const std::string path = RealDataPath();
  if (path.empty()) GTEST_SKIP() << "FRAUD_REAL_DATA not set";
  std::ifstream in(path, std::ios::binary);
  if (!in) GTEST_SKIP() << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  for (size_t chunk : {size_t{4096}, size_t{65536}, size_t{1000003}}) {
    SCOPED_TRACE(chunk);
    int64_t rows = 0, frauds = 0;
    double max_time = 0, max_amount = 0;
    CsvReader reader(CsvReaderOptions{}, [&](RowBatch& b) {
      rows += static_cast<int64_t>(b.num_rows());
      for (size_t i = 0; i < b.num_rows(); ++i) {
        frauds += b.labels[i];
        max_time = std::max(max_time, b.row(i)[kTimeIndex]);
        max_amount = std::max(max_amount, b.row(i)[kAmountIndex]);
      }
      return absl::OkStatus();
    });
    for (size_t off = 0; off < data.size(); off += chunk) {
      ASSERT_THAT(reader.Feed(std::string_view(data).substr(off, chunk)), IsOk());
    }
    ASSERT_THAT(reader.Finish(), IsOk());
    EXPECT_EQ(rows, 39416);
    EXPECT_EQ(frauds, 473);
    EXPECT_EQ(max_time, 172782);
    EXPECT_EQ(max_amount, 19656.53);
    EXPECT_EQ(reader.counters().rows_rejected, 0);
  }
}

}  // namespace
}  // namespace fraud::csv
