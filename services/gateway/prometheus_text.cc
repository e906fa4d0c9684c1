#include "services/gateway/prometheus_text.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace fraud::gateway {
namespace {

bool ParseValue(absl::string_view text, double* out) {
  if (text == "+Inf" || text == "Inf") {
    *out = INFINITY;
    return true;
  }
  if (text == "-Inf") {
    *out = -INFINITY;
    return true;
  }
  if (text == "NaN") {
    *out = NAN;
    return true;
  }
  return absl::SimpleAtod(text, out);
}

// Parses `{a="x",b="y"}` starting at text[0] == '{'; returns the index after '}' or npos.
size_t ParseLabels(absl::string_view text, std::vector<std::pair<std::string, std::string>>* out) {
  size_t i = 1;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',')) ++i;
    if (i < text.size() && text[i] == '}') return i + 1;
    const size_t eq = text.find('=', i);
    if (eq == absl::string_view::npos || eq + 1 >= text.size() || text[eq + 1] != '"') {
      return absl::string_view::npos;
    }
    std::string name(absl::StripAsciiWhitespace(text.substr(i, eq - i)));
    std::string value;
    size_t j = eq + 2;
    for (; j < text.size() && text[j] != '"'; ++j) {
      if (text[j] == '\\' && j + 1 < text.size()) {
        ++j;
        value.push_back(text[j] == 'n' ? '\n' : text[j]);
      } else {
        value.push_back(text[j]);
      }
    }
    if (j >= text.size()) return absl::string_view::npos;
    out->emplace_back(std::move(name), std::move(value));
    i = j + 1;
  }
  return absl::string_view::npos;
}

std::string Label(const PromSample& s, const std::string& name) {
  for (const auto& [k, v] : s.labels) {
    if (k == name) return v;
  }
  return "";
}

bool HasPrefix(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const std::string& p : prefixes) {
    if (absl::StartsWith(name, p)) return true;
  }
  return false;
}

// PromQL histogram_quantile over cumulative (upper bound, count) pairs sorted by bound.
double Quantile(double q, const std::vector<std::pair<double, double>>& buckets) {
  if (buckets.empty()) return NAN;
  const double total = buckets.back().second;
  if (total <= 0) return NAN;
  const double rank = q * total;
  double prev_bound = 0, prev_count = 0;
  for (const auto& [bound, count] : buckets) {
    if (count >= rank) {
      if (std::isinf(bound)) return prev_bound;
      if (count == prev_count) return bound;
      return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count);
    }
    prev_bound = bound;
    prev_count = count;
  }
  return buckets.back().first;
}

}  // namespace

absl::StatusOr<std::vector<PromSample>> ParsePrometheusText(const std::string& text) {
  std::vector<PromSample> out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    PromSample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ' && line[i] != '\t') ++i;
    s.name = std::string(line.substr(0, i));
    absl::string_view rest = line.substr(i);
    if (!rest.empty() && rest[0] == '{') {
      const size_t end = ParseLabels(rest, &s.labels);
      if (end == absl::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat("metrics line ", line_no, ": bad labels"));
      }
      rest = rest.substr(end);
    }
    rest = absl::StripLeadingAsciiWhitespace(rest);
    // An optional timestamp may follow the value.
    const absl::string_view value = rest.substr(0, rest.find_first_of(" \t"));
    if (s.name.empty() || !ParseValue(value, &s.value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics line ", line_no, ": expected 'name value'"));
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::map<std::string, double> SummarizeMetrics(const std::vector<PromSample>& samples,
                                               const std::vector<std::string>& prefixes) {
  std::map<std::string, double> out;
  // Histogram base name -> upper bound -> cumulative count summed over label sets.
  std::map<std::string, std::map<double, double>> buckets;
  std::set<std::string> histograms;
  for (const PromSample& s : samples) {
    if (!HasPrefix(s.name, prefixes) || std::isnan(s.value)) continue;
    if (absl::EndsWith(s.name, "_bucket")) {
      const std::string base = s.name.substr(0, s.name.size() - 7);
      double le = 0;
      if (ParseValue(Label(s, "le"), &le)) buckets[base][le] += s.value;
      histograms.insert(base);
      continue;
    }
    out[s.name] += s.value;
    for (const char* label : {"result", "code", "status"}) {
      const std::string v = Label(s, label);
      if (!v.empty()) out[absl::StrCat(s.name, "{", label, "=\"", v, "\"}")] += s.value;
    }
  }
  for (const std::string& base : histograms) {
    std::vector<std::pair<double, double>> cumulative(buckets[base].begin(), buckets[base].end());
    const double p50 = Quantile(0.5, cumulative);
    const double p99 = Quantile(0.99, cumulative);
    if (!std::isnan(p50)) out[base + "_p50"] = p50;
    if (!std::isnan(p99)) out[base + "_p99"] = p99;
  }
  return out;
}

}  // namespace fraud::gateway
