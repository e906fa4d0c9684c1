// Synthetic transaction CSV for tests, and a way to spoil one line of it.
#pragma once

#include <cstdint>
#include <string>

namespace fraud::testing {

// csv::WriteSyntheticCsv (the generator's defaults otherwise): a header line, then `rows` data
// rows; deterministic for a given seed. A generator failure fails the current test (EXPECT) and
// returns what was written.
std::string SyntheticCsv(int64_t rows, uint64_t seed, bool labels = true,
                         double fraud_rate = 0.03);

// `text` with its line `line` (1-based, the header is line 1) replaced by `replacement`, which
// ends with '\n'. `text` must have at least `line` lines, each ending with '\n'.
std::string ReplaceLine(const std::string& text, int line, const std::string& replacement);

}  // namespace fraud::testing
