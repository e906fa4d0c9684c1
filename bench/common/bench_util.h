// Helpers shared by every benchmark: timing, medians, process memory, and the one JSON line per
// figure that `./fraud bench` prints.
//
// Each figure is measured beside its physical floor in the same run and printed as
//   {"bench":"csv","name":"parse_validate","value":812.4,"unit":"MB/s","floor_name":"read",
//    "floor_value":5230.1,"ratio":0.155,"runs":5,"spread":0.03,...extra}
// `ratio` is always value / floor_value; the target states which direction is good.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fraud::bench {

// The value of flag `name` ("--rows") at argv[*i], given as "--rows=N" or "--rows N" (then *i
// moves past the value); null when argv[*i] is another flag.
inline const char* FlagValue(int argc, char** argv, int* i, const std::string& name) {
  const std::string arg = argv[*i];
  if (arg.rfind(name + "=", 0) == 0) return argv[*i] + name.size() + 1;
  if (arg == name && *i + 1 < argc) return argv[++*i];
  return nullptr;
}

inline double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Relative spread of the runs: (max - min) / median.
inline double Spread(const std::vector<double>& v) {
  if (v.empty()) return 0;
  const double med = Median(v);
  const auto [mn, mx] = std::minmax_element(v.begin(), v.end());
  return med == 0 ? 0 : (*mx - *mn) / med;
}

inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t idx = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5));
  return v[idx];
}

// Resident set size of a process (self by default), bytes; from /proc/<pid>/status VmRSS.
inline long RssBytes(int pid = 0, const char* field = "VmRSS:") {
  const std::string path = pid == 0 ? "/proc/self/status" : "/proc/" + std::to_string(pid) + "/status";
  std::ifstream in(path);
  std::string key;
  long kb = 0;
  while (in >> key) {
    if (key == field) {
      in >> kb;
      return kb * 1024;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0;
}
// Peak resident set size (VmHWM), bytes.
inline long PeakRssBytes(int pid = 0) { return RssBytes(pid, "VmHWM:"); }

// Single-quoted for /bin/sh.
inline std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

// A libpq URI whose connections use `schema` first (options=-csearch_path=<schema>).
inline std::string WithSearchPath(const std::string& uri, const std::string& schema) {
  const char sep = uri.find('?') == std::string::npos ? '?' : '&';
  return uri + sep + "options=-csearch_path%3D" + schema;
}

struct Figure {
  std::string bench;
  std::string name;
  double value = 0;
  std::string unit;
  std::string floor_name;
  double floor_value = 0;
  int runs = 1;
  double spread = 0;  // relative spread of the value's runs
  // Extra numeric and text fields appended to the JSON line.
  std::map<std::string, double> extra;
  std::map<std::string, std::string> notes;
};

inline std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out.push_back(c);
  }
  return out;
}

inline std::string FormatNumber(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

inline std::string ToJson(const Figure& f) {
  std::ostringstream os;
  const double ratio = f.floor_value == 0 ? 0 : f.value / f.floor_value;
  os << "{\"bench\":\"" << JsonEscape(f.bench) << "\",\"name\":\"" << JsonEscape(f.name)
     << "\",\"value\":" << FormatNumber(f.value) << ",\"unit\":\"" << JsonEscape(f.unit)
     << "\",\"floor_name\":\"" << JsonEscape(f.floor_name)
     << "\",\"floor_value\":" << FormatNumber(f.floor_value) << ",\"ratio\":" << FormatNumber(ratio)
     << ",\"runs\":" << f.runs << ",\"spread\":" << FormatNumber(f.spread);
  for (const auto& [k, v] : f.extra) os << ",\"" << JsonEscape(k) << "\":" << FormatNumber(v);
  for (const auto& [k, v] : f.notes) os << ",\"" << JsonEscape(k) << "\":\"" << JsonEscape(v) << "\"";
  os << "}";
  return os.str();
}

// Prints one figure as a JSON line on stdout (flushed, so partial runs still report).
inline void Print(const Figure& f) {
  std::printf("%s\n", ToJson(f).c_str());
  std::fflush(stdout);
}

}  // namespace fraud::bench
