// The number fast path must agree bit for bit with std::from_chars whenever it accepts a text,
// in both its SWAR (long buffer) and scalar (short buffer) forms.
#include "services/common/csv/fast_float_parse.h"

#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace fraud::csv::internal {
namespace {

struct Parsed {
  bool handled = false;
  double value = 0;
  size_t consumed = 0;
};

// Parses `text` followed by `tail` (the rest of a line) so that the buffer is long (SWAR path)
// or short (scalar path).
Parsed Fast(const std::string& text, const std::string& tail) {
  const std::string buf = text + tail;
  Parsed p;
  const char* end = FastParseDouble(buf.data(), buf.data() + buf.size(), &p.value);
  p.handled = end != nullptr;
  if (p.handled) p.consumed = static_cast<size_t>(end - buf.data());
  return p;
}

void ExpectAgreesWithFromChars(const std::string& text) {
  for (const std::string& tail : {std::string(), std::string(",") + std::string(60, '7'),
                                  std::string("\"") + std::string(60, ',')}) {
    const Parsed fast = Fast(text, tail);
    if (!fast.handled) continue;
    const std::string buf = text + tail;
    double expected = 0;
    const auto [ptr, ec] = std::from_chars(buf.data(), buf.data() + buf.size(), expected);
    ASSERT_EQ(ec, std::errc()) << text;
    EXPECT_EQ(fast.consumed, static_cast<size_t>(ptr - buf.data()))
        << "'" << text << "' tail " << tail.size();
    uint64_t a, b;
    std::memcpy(&a, &fast.value, 8);
    std::memcpy(&b, &expected, 8);
    EXPECT_EQ(a, b) << "'" << text << "': fast " << fast.value << " from_chars " << expected;
  }
}

TEST(FastParseDoubleTest, AgreesWithFromCharsOnHandPickedTexts) {
  for (const char* t : {"0",
                        "-0",
                        "1",
                        "-1",
                        "0.5",
                        "-0.5",
                        ".5",
                        "-.5",
                        "5.",
                        "00012",
                        "172792",
                        "149.62",
                        "-1.3598071336738",
                        "0.0986979012610507",
                        "-0.0727811733098497",
                        "2.53634673796914",
                        "-2.68638196892377e-05",
                        "1e22",
                        "1e-22",
                        "9007199254740992",
                        "9007199254740993",
                        "123456789012345678",
                        "1234567890123456789",
                        "0.000000000000000000001",
                        "1E5",
                        "1e+5",
                        "3.14159265358979323846",
                        "99999999.99999999",
                        "12345678.12345678",
                        "0.1234567812345678",
                        "1.0000000000000002"}) {
    SCOPED_TRACE(t);
    ExpectAgreesWithFromChars(t);
  }
}

TEST(FastParseDoubleTest, HandlesEveryValueShapeOfTheDataset) {
  // Every V column is printed with %.15g; these must all take the fast path (no fallback).
  double v = -56.407509631329;
  for (int i = 0; i < 2000; ++i) {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%.15g", v);
    const Parsed p = Fast(buf, std::string(",") + std::string(60, '1'));
    if (std::strchr(buf, 'e') == nullptr || std::fabs(v) > 1e-7) {
      EXPECT_TRUE(p.handled) << buf;
    }
    ExpectAgreesWithFromChars(buf);
    v = v * -0.731 + 0.0137;
  }
}

TEST(FastParseDoubleTest, AgreesWithFromCharsOnRandomDigitStrings) {
  uint64_t state = 88172645463325252ULL;
  auto next = [&state]() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (int i = 0; i < 200000; ++i) {
    std::string t;
    if (next() % 2) t += '-';
    const int int_digits = static_cast<int>(next() % 10);
    for (int k = 0; k < int_digits; ++k) t += static_cast<char>('0' + next() % 10);
    if (next() % 4 != 0) {
      t += '.';
      const int frac_digits = static_cast<int>(next() % 26);
      for (int k = 0; k < frac_digits; ++k) t += static_cast<char>('0' + next() % 10);
    }
    if (next() % 8 == 0) {
      t += (next() % 2) ? 'e' : 'E';
      const int r = static_cast<int>(next() % 3);
      if (r == 1) t += '-';
      if (r == 2) t += '+';
      const int exp_digits = static_cast<int>(next() % 4);
      for (int k = 0; k < exp_digits; ++k) t += static_cast<char>('0' + next() % 10);
    }
    ExpectAgreesWithFromChars(t);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(FastParseDoubleTest, LeavesEverythingUnusualToTheFallback) {
  for (const char* t : {"", "-", ".", "-.", "+1", " 1", "\"1\"", "inf", "nan", "-Infinity", "1e400",
                        "1e-400", "12345678901234567890", "0x10", "e5", "1e", "1e+"}) {
    SCOPED_TRACE(t);
    for (const std::string& tail : {std::string(), std::string(60, ',')}) {
      const Parsed p = Fast(t, tail);
      if (p.handled) {
        // Handled is fine only when from_chars reads the same prefix ("1e" -> "1").
        const std::string buf = std::string(t) + tail;
        double expected = 0;
        const auto [ptr, ec] = std::from_chars(buf.data(), buf.data() + buf.size(), expected);
        ASSERT_EQ(ec, std::errc());
        EXPECT_EQ(p.consumed, static_cast<size_t>(ptr - buf.data()));
        EXPECT_EQ(p.value, expected);
      }
    }
  }
  EXPECT_FALSE(Fast("inf", "").handled);
  EXPECT_FALSE(Fast("+1", std::string(60, ',')).handled);
  EXPECT_FALSE(Fast("1e400", "").handled);
  EXPECT_FALSE(Fast("12345678901234567890", std::string(60, ',')).handled);
}

TEST(FastParseDoubleTest, EightDigitHelpersMatchTheirDefinition) {
  const char* digits = "12345678";
  EXPECT_TRUE(AllEightDigits(Load8(digits)));
  EXPECT_EQ(ParseEightDigits(Load8(digits)), 12345678u);
  EXPECT_FALSE(AllEightDigits(Load8("1234567,")));
  EXPECT_EQ(LeadingDigits(Load8("1234567,")), 7);
  EXPECT_EQ(LeadingDigits(Load8(",2345678")), 0);
  EXPECT_EQ(LeadingDigits(Load8("12:45678")), 2);  // ':' is '9' + 1
  EXPECT_EQ(LeadingDigits(Load8("12/45678")), 2);  // '/' is '0' - 1
  for (int n = 0; n <= 8; ++n) {
    EXPECT_EQ(
        ParseLeadingDigits(Load8("98765432"), n),
        n == 0 ? 0u : static_cast<uint32_t>(std::stoul(std::string("98765432").substr(0, n))));
  }
}

}  // namespace
}  // namespace fraud::csv::internal
