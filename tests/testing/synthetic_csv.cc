#include "tests/testing/synthetic_csv.h"

#include <sstream>

#include "services/common/csv/synthetic_generator.h"
#include "tests/testing/status_matchers.h"

namespace fraud::testing {

std::string SyntheticCsv(int64_t rows, uint64_t seed, bool labels, double fraud_rate) {
  csv::GeneratorOptions o;
  o.rows = rows;
  o.seed = seed;
  o.with_labels = labels;
  o.fraud_rate = fraud_rate;
  std::ostringstream out;
  EXPECT_THAT(csv::WriteSyntheticCsv(o, out), IsOk());
  return out.str();
}

std::string ReplaceLine(const std::string& text, int line, const std::string& replacement) {
  size_t begin = 0;
  for (int l = 1; l < line; ++l) begin = text.find('\n', begin) + 1;
  const size_t end = text.find('\n', begin) + 1;
  return text.substr(0, begin) + replacement + text.substr(end);
}

}  // namespace fraud::testing
