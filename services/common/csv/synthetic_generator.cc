#include "services/common/csv/synthetic_generator.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace fraud::csv {
namespace {

// Per-class mean and standard deviation of V1..V28 in the genuine sample (STATS.md).
struct ColumnStats {
  double mean0, sd0, mean1, sd1;
};
constexpr ColumnStats kStats[28] = {
    {-0.0538492, 1.87206, -4.49828, 6.58617},       // V1
    {0.033013, 1.61694, 3.40596, 4.11814},          // V2
    {0.184103, 1.42026, -6.7296, 6.90234},          // V3
    {0.0267836, 1.40564, 4.47259, 2.86849},         // V4
    {-0.0222058, 1.34035, -2.9572, 5.27325},        // V5
    {0.030093, 1.33615, -1.43252, 1.71353},         // V6
    {0.000376189, 1.15724, -5.17591, 6.85077},      // V7
    {-0.000560973, 1.15677, 0.953255, 5.58004},     // V8
    {0.0380648, 1.0939, -2.52212, 2.46244},         // V9
    {-0.00350796, 1.04273, -5.45327, 4.70147},      // V10
    {0.0723988, 1.0295, 3.71635, 2.66999},          // V11
    {-0.046988, 1.02989, -6.10325, 4.57748},        // V12
    {0.0456045, 1.02488, -0.0943241, 1.10683},      // V13
    {0.0539188, 0.916909, -6.83595, 4.24871},       // V14
    {0.0487012, 0.921591, -0.0728296, 1.04453},     // V15
    {-0.00337461, 0.841465, -4.00096, 3.82767},     // V16
    {0.0333595, 0.754585, -6.46329, 6.95838},       // V17
    {-0.0170634, 0.820456, -2.15707, 2.89875},      // V18
    {0.0034884, 0.803879, 0.669143, 1.53262},       // V19
    {0.0167278, 0.754922, 0.405043, 1.28805},       // V20
    {-0.0123521, 0.714666, 0.46655, 2.7283},        // V21
    {-0.0335365, 0.704572, 0.0866388, 1.18005},     // V22
    {-0.00878552, 0.56409, -0.0964642, 1.50697},    // V23
    {0.00836652, 0.60708, -0.106643, 0.517352},     // V24
    {0.0306731, 0.499507, 0.0406151, 0.805932},     // V25
    {0.000116319, 0.487678, 0.0504562, 0.462526},   // V26
    {0.00494714, 0.385124, 0.213774, 1.24446},      // V27
    {-0.000694115, 0.303128, 0.0782702, 0.532536},  // V28
};

// Normal rows: a scale mixture gives heavy tails while keeping the variance at sd0^2.
constexpr double kTailProbability = 0.03;
constexpr double kTailScale = 4.0;
// Fraud severity: a share of frauds is camouflaged (severity uniform in [0, kCamouflageMax]); the
// others have a log-normal severity; the mixture has mean 1 so the class mean is mean1.
constexpr double kCamouflageShare = 0.15;
constexpr double kCamouflageMax = 0.1;
constexpr double kMainSeveritySd = 0.4;
// Normal rows that look somewhat like frauds (false positives for any model).
constexpr double kFraudLikeNormalShare = 0.0008;
constexpr double kFraudLikeMin = 0.15;
constexpr double kFraudLikeMax = 0.6;
// Amount: log-normal with the sample's mean and spread; some exact 0.00 and 1.00 amounts.
constexpr double kAmountMax = 25691.16;
constexpr double kNormalZeroAmount = 0.007;
constexpr double kNormalAmountMean = 85.64;
constexpr double kNormalAmountSigma = 1.5;
constexpr double kFraudZeroAmount = 0.05;
constexpr double kFraudOneAmount = 0.2;
constexpr double kFraudAmountMean = 164.9;
constexpr double kFraudAmountSigma = 1.1;

constexpr double kPi = 3.14159265358979323846;

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

inline uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Day/night transaction intensity; Time 0 is taken as midnight, the quietest hour is 04:00.
double Intensity(double t) {
  const double phase = 2 * kPi * (t - 4 * 3600.0) / 86400.0;
  return 0.1 + 0.9 * std::pow((1 - std::cos(phase)) / 2, 1.5);
}

struct SeverityModel {
  double lognormal_mu;
  double lognormal_sigma;
  double variance;  // of the whole mixture
  // Per feature: sd of the extra noise (scaled by s) that brings the class-1 sd to sd1.
  double extra_sd[28];
};

SeverityModel ComputeSeverityModel() {
  const double q = kCamouflageShare;
  const double camo_mean = kCamouflageMax / 2;
  const double camo_var = kCamouflageMax * kCamouflageMax / 12;
  const double main_mean = (1 - q * camo_mean) / (1 - q);
  const double main_var = kMainSeveritySd * kMainSeveritySd;
  SeverityModel m;
  const double sigma2 = std::log(1 + main_var / (main_mean * main_mean));
  m.lognormal_sigma = std::sqrt(sigma2);
  m.lognormal_mu = std::log(main_mean) - sigma2 / 2;
  m.variance = q * (camo_var + (camo_mean - 1) * (camo_mean - 1)) +
               (1 - q) * (main_var + (main_mean - 1) * (main_mean - 1));
  // Var(x | fraud) = sd0^2 + d^2 Var(s) + E[s^2] extra^2, and E[s^2] = Var(s) + 1.
  for (int i = 0; i < 28; ++i) {
    const ColumnStats& c = kStats[i];
    const double d = c.mean1 - c.mean0;
    const double rest = c.sd1 * c.sd1 - c.sd0 * c.sd0 - d * d * m.variance;
    m.extra_sd[i] = rest > 0 ? std::sqrt(rest / (m.variance + 1)) : 0;
  }
  return m;
}

const SeverityModel& Severity() {
  static const SeverityModel model = ComputeSeverityModel();
  return model;
}

// Appends `v` in printf("%.15g") form (what the original file uses for V1..V28).
void AppendG15(double v, std::string* out) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general, 15);
  out->append(buf, r.ptr);
}

// Appends `v` in its shortest round-trip form ("149.62", "15", "0").
void AppendShortest(double v, std::string* out) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

absl::Status CheckOptions(const GeneratorOptions& o) {
  if (o.rows < 0) return absl::InvalidArgumentError("rows must be >= 0");
  if (!(o.fraud_rate >= 0 && o.fraud_rate <= 1)) {
    return absl::InvalidArgumentError("fraud_rate must be in [0, 1]");
  }
  if (o.time_offset < 0) return absl::InvalidArgumentError("time_offset must be >= 0");
  return absl::OkStatus();
}

}  // namespace

SyntheticGenerator::SyntheticGenerator(const GeneratorOptions& options) : options_(options) {
  uint64_t sm = options.seed;
  for (uint64_t& s : s_) s = SplitMix64(&sm);
  if (options_.rows < 0) options_.rows = 0;
  double rate = options_.fraud_rate;
  if (!(rate >= 0)) rate = 0;
  if (rate > 1) rate = 1;
  frauds_total_ = static_cast<int64_t>(std::llround(static_cast<double>(options_.rows) * rate));
  frauds_left_ = frauds_total_;
  cumulative_.resize(kTimeSpanSeconds + 1);
  double sum = 0;
  for (int64_t t = 0; t <= kTimeSpanSeconds; ++t) {
    sum += Intensity(static_cast<double>(t));
    cumulative_[t] = sum;
  }
  for (double& c : cumulative_) c /= sum;
}

uint64_t SyntheticGenerator::NextU64() {
  // xoshiro256** (Blackman & Vigna).
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

double SyntheticGenerator::Uniform() {
  return (static_cast<double>(NextU64() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double SyntheticGenerator::Normal() {
  if (have_spare_normal_) {
    have_spare_normal_ = false;
    return spare_normal_;
  }
  double u, v, s;
  do {
    u = 2 * Uniform() - 1;
    v = 2 * Uniform() - 1;
    s = u * u + v * v;
  } while (s >= 1 || s == 0);
  const double f = std::sqrt(-2 * std::log(s) / s);
  spare_normal_ = v * f;
  have_spare_normal_ = true;
  return u * f;
}

// Rows are the order statistics of `rows` draws from the intensity: the next uniform order
// statistic is the minimum of the remaining draws above the previous one, which needs one
// uniform per row and no storage.
double SyntheticGenerator::NextTime() {
  const double remaining = static_cast<double>(options_.rows - done_);
  const double gap = -std::expm1(std::log(Uniform()) / remaining);
  order_stat_ += (1 - order_stat_) * gap;
  while (time_index_ < kTimeSpanSeconds && cumulative_[time_index_] < order_stat_) ++time_index_;
  return static_cast<double>(time_index_ + options_.time_offset);
}

bool SyntheticGenerator::Next(double* features, int32_t* label) {
  if (done_ >= options_.rows) return false;
  // Selection sampling: exactly frauds_total_ frauds, uniformly placed.
  const int64_t rows_left = options_.rows - done_;
  const bool fraud = frauds_left_ > 0 &&
                     Uniform() * static_cast<double>(rows_left) < static_cast<double>(frauds_left_);
  if (fraud) --frauds_left_;
  features[kTimeIndex] = NextTime();

  // Every row: the class-0 distribution (heavy-tailed), shifted towards the fraud means by a
  // severity s, with extra spread that grows with s. A row with s = 0 is a normal row whatever
  // its label, which is what makes camouflaged frauds undetectable.
  const SeverityModel& sev = Severity();
  double s = 0;
  if (fraud) {
    if (Uniform() < kCamouflageShare) {
      s = kCamouflageMax * Uniform();
    } else {
      s = std::exp(sev.lognormal_mu + sev.lognormal_sigma * Normal());
    }
  } else if (Uniform() < kFraudLikeNormalShare) {
    s = kFraudLikeMin + (kFraudLikeMax - kFraudLikeMin) * Uniform();
  }
  const double a = 1 / std::sqrt(1 - kTailProbability + kTailProbability * kTailScale * kTailScale);
  for (int i = 0; i < 28; ++i) {
    const ColumnStats& c = kStats[i];
    const double scale = Uniform() < kTailProbability ? a * kTailScale : a;
    double x = c.mean0 + c.sd0 * scale * Normal();
    if (s != 0) {
      x += s * (c.mean1 - c.mean0 + sev.extra_sd[i] * Normal());
    }
    features[1 + i] = x;
  }

  double amount;
  const double u = Uniform();
  if (fraud && u < kFraudZeroAmount) {
    amount = 0;
  } else if (fraud && u < kFraudZeroAmount + kFraudOneAmount) {
    amount = 1;
  } else if (!fraud && u < kNormalZeroAmount) {
    amount = 0;
  } else {
    const double mean = fraud ? kFraudAmountMean : kNormalAmountMean;
    const double sigma = fraud ? kFraudAmountSigma : kNormalAmountSigma;
    amount = std::exp(std::log(mean) - sigma * sigma / 2 + sigma * Normal());
    if (amount > kAmountMax) amount = kAmountMax;
    amount = std::round(amount * 100) / 100;
  }
  features[kAmountIndex] = amount;
  *label = fraud ? 1 : 0;
  ++done_;
  return true;
}

std::string SyntheticCsvHeader(const GeneratorOptions& options) {
  std::string out;
  const char* q = options.quote ? "\"" : "";
  for (int i = 0; i < kNumFeatures; ++i) {
    if (i > 0) out += ',';
    out += q;
    out.append(kFeatureNames[i].data(), kFeatureNames[i].size());
    out += q;
  }
  if (options.with_labels) {
    out += ',';
    out += q;
    out.append(kLabelColumn.data(), kLabelColumn.size());
    out += q;
  }
  out += '\n';
  return out;
}

void AppendCsvRow(const double* features, int32_t label, bool with_label, bool quote,
                  std::string* out) {
  const double t = features[kTimeIndex];
  if (t == std::floor(t) && std::fabs(t) < 1e15) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(t));
    out->append(buf, r.ptr);
  } else {
    AppendG15(t, out);
  }
  for (int i = 1; i < kAmountIndex; ++i) {
    out->push_back(',');
    AppendG15(features[i], out);
  }
  out->push_back(',');
  AppendShortest(features[kAmountIndex], out);
  if (with_label) {
    out->append(quote ? ",\"" : ",");
    out->push_back(label ? '1' : '0');
    if (quote) out->push_back('"');
  }
  out->push_back('\n');
}

namespace {

// Generates into a buffer and hands it to `sink` in ~1 MiB pieces.
template <typename Sink>
absl::Status Generate(const GeneratorOptions& options, Sink sink) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  std::string buf;
  constexpr size_t kFlushBytes = 1 << 20;
  buf.reserve(kFlushBytes + 1024);
  if (options.with_header) buf = SyntheticCsvHeader(options);
  SyntheticGenerator gen(options);
  double features[kNumFeatures];
  int32_t label;
  while (gen.Next(features, &label)) {
    AppendCsvRow(features, label, options.with_labels, options.quote, &buf);
    if (buf.size() >= kFlushBytes) {
      if (!sink(buf)) return absl::DataLossError("writing the generated CSV failed");
      buf.clear();
    }
  }
  if (!buf.empty() && !sink(buf)) return absl::DataLossError("writing the generated CSV failed");
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteSyntheticCsv(const GeneratorOptions& options, std::ostream& out) {
  absl::Status s = Generate(options, [&out](const std::string& b) {
    out.write(b.data(), static_cast<std::streamsize>(b.size()));
    return static_cast<bool>(out);
  });
  if (s.ok()) {
    out.flush();
    if (!out) return absl::DataLossError("flushing the generated CSV failed");
  }
  return s;
}

absl::Status WriteSyntheticCsv(const GeneratorOptions& options, std::FILE* out) {
  absl::Status s = Generate(options, [out](const std::string& b) {
    return std::fwrite(b.data(), 1, b.size(), out) == b.size();
  });
  if (s.ok() && std::fflush(out) != 0) {
    return absl::DataLossError("flushing the generated CSV failed");
  }
  return s;
}

}  // namespace fraud::csv
