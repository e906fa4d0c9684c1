// A fast path for parsing the decimal numbers of the dataset (internal to fraud_csv; exposed for
// tests).
//
// FastParseDouble accepts [-]digits[.digits][(e|E)[+-]digits] with at most 19 digits in the
// mantissa, and only when the result is exactly representable by Clinger's fast path: the
// mantissa fits in 53 bits and the decimal exponent is within [-22, 22], so one IEEE
// multiplication or division gives the correctly rounded double. That is the same value
// std::from_chars returns. For anything else (more digits, larger exponents, inf/nan, leading
// '+', blanks, quotes) it returns nullptr and the caller falls back to std::from_chars.
//
// The V1..V28 columns of the dataset carry at most 15 significant digits, so every value of a
// well-formed file takes the fast path.
#pragma once

#include <cstdint>
#include <cstring>

namespace fraud::csv::internal {

inline constexpr double kExactPowersOf10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                                1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                                1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

inline constexpr double kSigns[2] = {1.0, -1.0};

inline bool IsDigit(char c) { return static_cast<unsigned char>(c - '0') < 10; }

// True when the 8 bytes of `chunk` (little-endian load) are all ASCII digits.
inline bool AllEightDigits(uint64_t chunk) {
  return (((chunk & 0xF0F0F0F0F0F0F0F0ULL) |
           (((chunk + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) ==
          0x3333333333333333ULL);
}

// Value of 8 ASCII digits loaded little-endian (first digit in the lowest byte).
inline uint32_t ParseEightDigits(uint64_t chunk) {
  const uint64_t mask = 0x000000FF000000FFULL;
  const uint64_t mul1 = 0x000F424000000064ULL;  // 100 + (1000000 << 32)
  const uint64_t mul2 = 0x0000271000000001ULL;  // 1 + (10000 << 32)
  chunk -= 0x3030303030303030ULL;
  chunk = (chunk * 10) + (chunk >> 8);
  chunk = (((chunk & mask) * mul1) + (((chunk >> 16) & mask) * mul2)) >> 32;
  return static_cast<uint32_t>(chunk);
}

inline uint64_t Load8(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;  // x86-64 and aarch64 Linux are little-endian
}

// Mask with a bit set in every byte of `chunk` that is not an ASCII digit (bits only in high
// nibbles; no carries between bytes).
inline uint64_t NonDigitBytes(uint64_t chunk) {
  const uint64_t high = (chunk & 0xF0F0F0F0F0F0F0F0ULL) ^ 0x3030303030303030ULL;
  const uint64_t low =
      ((chunk & 0x0F0F0F0F0F0F0F0FULL) + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL;
  return high | low;
}

// Number of leading ASCII digits in the 8 bytes of `chunk` (0..8).
inline int LeadingDigits(uint64_t chunk) {
  const uint64_t non_digits = NonDigitBytes(chunk);
  return non_digits == 0 ? 8 : __builtin_ctzll(non_digits) >> 3;
}

// Value of the first `n` (0..8) digits of `chunk`: the digits are moved to the top bytes and the
// bytes below are filled with '0' (each shift is split in two so that n = 0 and n = 8 are defined).
inline uint32_t ParseLeadingDigits(uint64_t chunk, int n) {
  const int half = 32 - 4 * n;
  const uint64_t digits = (chunk << half) << half;
  const uint64_t zeros = (0x3030303030303030ULL >> (4 * n)) >> (4 * n);
  return ParseEightDigits(digits | zeros);
}

inline constexpr uint64_t kPowersOf10U[9] = {1,      10,      100,      1000,     10000,
                                             100000, 1000000, 10000000, 100000000};

// Scalar version: any remaining length.
inline const char* FastParseDoubleScalar(const char* p, const char* end, double* out) {
  const char* s = p;
  bool negative = false;
  if (s < end && *s == '-') {
    negative = true;
    ++s;
  }
  uint64_t mantissa = 0;
  const char* int_begin = s;
  while (s < end && IsDigit(*s)) {
    mantissa = mantissa * 10 + static_cast<uint64_t>(*s - '0');
    ++s;
  }
  int digits = static_cast<int>(s - int_begin);
  int64_t exponent = 0;
  if (s < end && *s == '.') {
    ++s;
    const char* frac_begin = s;
    while (s < end && IsDigit(*s)) {
      mantissa = mantissa * 10 + static_cast<uint64_t>(*s - '0');
      ++s;
      if (s - frac_begin + digits > 19) return nullptr;
    }
    const int frac_digits = static_cast<int>(s - frac_begin);
    digits += frac_digits;
    exponent = -frac_digits;
  }
  if (digits == 0 || digits > 19) return nullptr;
  if (s < end && (*s == 'e' || *s == 'E')) {
    const char* e = s + 1;
    bool exp_negative = false;
    if (e < end && (*e == '-' || *e == '+')) {
      exp_negative = *e == '-';
      ++e;
    }
    const char* exp_begin = e;
    int64_t exp_value = 0;
    while (e < end && IsDigit(*e) && e - exp_begin < 5) {
      exp_value = exp_value * 10 + (*e - '0');
      ++e;
    }
    if (e == exp_begin || (e < end && IsDigit(*e))) return nullptr;
    exponent += exp_negative ? -exp_value : exp_value;
    s = e;
  }
  double value;
  if (mantissa == 0) {
    value = 0;
  } else {
    if (mantissa > (uint64_t{1} << 53) || exponent < -22 || exponent > 22) return nullptr;
    value = static_cast<double>(mantissa);
    value = exponent < 0 ? value / kExactPowersOf10[-exponent] : value * kExactPowersOf10[exponent];
  }
  *out = negative ? -value : value;
  return s;
}

// Parses a number at [p, end). Returns the end of the number and sets *out, or returns nullptr
// when the text is not handled by the fast path (see above); *out is then unspecified.
// With 40 bytes or more available (every field but the last ones of a line), the fraction is
// read eight digits at a time; the dataset's values have 13-16 fraction digits.
inline const char* FastParseDouble(const char* p, const char* end, double* out) {
  if (end - p < 40) return FastParseDoubleScalar(p, end, out);
  const char* s = p;
  const bool negative = *s == '-';
  s += negative;
  // Integer part: usually one digit; at most 8 here (reads stay below p + 40).
  uint64_t mantissa = 0;
  const char* const int_begin = s;
  while (s < int_begin + 9 && IsDigit(*s)) {
    mantissa = mantissa * 10 + static_cast<uint64_t>(*s - '0');
    ++s;
  }
  const int int_digits = static_cast<int>(s - int_begin);
  if (int_digits > 8) return FastParseDoubleScalar(p, end, out);
  int frac_digits = 0;
  if (*s == '.') {
    ++s;
    // Bytes read: at most 1 + 8 + 1 + 24 + 1 = 35 < 40.
    const uint64_t c1 = Load8(s);
    const int n1 = LeadingDigits(c1);
    mantissa = mantissa * kPowersOf10U[n1] + ParseLeadingDigits(c1, n1);
    frac_digits = n1;
    if (n1 == 8) {
      const uint64_t c2 = Load8(s + 8);
      const int n2 = LeadingDigits(c2);
      mantissa = mantissa * kPowersOf10U[n2] + ParseLeadingDigits(c2, n2);
      frac_digits += n2;
      if (n2 == 8) {
        const uint64_t c3 = Load8(s + 16);
        const int n3 = LeadingDigits(c3);
        mantissa = mantissa * kPowersOf10U[n3] + ParseLeadingDigits(c3, n3);
        frac_digits += n3;
      }
    }
    s += frac_digits;
  }
  const int digits = int_digits + frac_digits;
  if (digits == 0 || digits > 19 || IsDigit(*s) || (*s | 0x20) == 'e') {
    return FastParseDoubleScalar(p, end, out);
  }
  // digits <= 19 implies frac_digits <= 19: an exact power of ten. 0 / 10^k is +0.
  if (mantissa > (uint64_t{1} << 53)) return nullptr;
  const double value = static_cast<double>(mantissa) / kExactPowersOf10[frac_digits];
  // The sign is applied by multiplying with +-1 (exact, and 0 * -1 = -0): a branch on it would
  // mispredict half the time.
  *out = value * kSigns[negative];
  return s;
}

}  // namespace fraud::csv::internal
