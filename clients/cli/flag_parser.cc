#include "clients/cli/flag_parser.h"

#include <charconv>
#include <cmath>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fraud::cli {
namespace {

std::string FormatDouble(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace

FlagSet::FlagSet(std::string command, std::string synopsis)
    : command_(std::move(command)), synopsis_(std::move(synopsis)) {}

void FlagSet::Add(const std::string& name, Type type, void* target, const std::string& help,
                  std::string default_text) {
  flags_.push_back(Flag{name, type, target, help, std::move(default_text)});
}

void FlagSet::String(const std::string& name, std::string* target, const std::string& help) {
  Add(name, Type::kString, target, help, target->empty() ? "" : "\"" + *target + "\"");
}
void FlagSet::Int64(const std::string& name, int64_t* target, const std::string& help) {
  Add(name, Type::kInt64, target, help, std::to_string(*target));
}
void FlagSet::Uint64(const std::string& name, uint64_t* target, const std::string& help) {
  Add(name, Type::kUint64, target, help, std::to_string(*target));
}
void FlagSet::Double(const std::string& name, double* target, const std::string& help) {
  Add(name, Type::kDouble, target, help, FormatDouble(*target));
}
void FlagSet::Bool(const std::string& name, bool* target, const std::string& help) {
  Add(name, Type::kBool, target, help, *target ? "true" : "false");
}

const FlagSet::Flag* FlagSet::Find(const std::string& name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

absl::Status FlagSet::Assign(const Flag& flag, const std::string& value) {
  const char* b = value.data();
  const char* e = b + value.size();
  auto bad = [&](const char* what) {
    return absl::InvalidArgumentError(
        absl::StrCat(command_, ": --", flag.name, " needs ", what, ", got '", value, "'"));
  };
  switch (flag.type) {
    case Type::kString:
      *static_cast<std::string*>(flag.target) = value;
      return absl::OkStatus();
    case Type::kInt64: {
      int64_t v;
      auto [ptr, ec] = std::from_chars(b, e, v);
      if (value.empty() || ec != std::errc() || ptr != e) return bad("an integer");
      *static_cast<int64_t*>(flag.target) = v;
      return absl::OkStatus();
    }
    case Type::kUint64: {
      uint64_t v;
      auto [ptr, ec] = std::from_chars(b, e, v);
      if (value.empty() || ec != std::errc() || ptr != e) return bad("a non-negative integer");
      *static_cast<uint64_t*>(flag.target) = v;
      return absl::OkStatus();
    }
    case Type::kDouble: {
      double v;
      auto [ptr, ec] = std::from_chars(b, e, v);
      if (value.empty() || ec != std::errc() || ptr != e || !std::isfinite(v)) {
        return bad("a number");
      }
      *static_cast<double*>(flag.target) = v;
      return absl::OkStatus();
    }
    case Type::kBool:
      if (value == "true" || value == "1") {
        *static_cast<bool*>(flag.target) = true;
      } else if (value == "false" || value == "0") {
        *static_cast<bool*>(flag.target) = false;
      } else {
        return bad("true or false");
      }
      return absl::OkStatus();
  }
  return absl::InternalError("unhandled flag type");
}

absl::Status FlagSet::Parse(const std::vector<std::string>& args) {
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-' || arg == "-") {
      positional_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      help_requested_ = true;
      continue;
    }
    if (arg[1] != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat(command_, ": unknown option '", arg, "' (flags are spelled --name)"));
    }
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const Flag* flag = Find(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(command_, ": unknown flag --", name));
    }
    if (!set_.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat(command_, ": --", name, " given twice"));
    }
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (flag->type == Type::kBool) {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat(command_, ": --", name, " needs a value"));
    }
    if (absl::Status s = Assign(*flag, value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string FlagSet::Usage() const {
  std::string out = synopsis_;
  if (!out.empty() && out.back() != '\n') out += '\n';
  if (!flags_.empty()) out += "\nFlags:\n";
  for (const Flag& f : flags_) {
    std::string left = absl::StrCat("  --", f.name);
    if (f.type != Type::kBool) absl::StrAppend(&left, " VALUE");
    if (left.size() < 24) left.resize(24, ' ');
    absl::StrAppend(&out, left, " ", f.help);
    if (!f.default_text.empty() && f.default_text != "false") {
      absl::StrAppend(&out, " (default ", f.default_text, ")");
    }
    out += '\n';
  }
  std::string help_left = "  -h, --help";
  help_left.resize(24, ' ');
  absl::StrAppend(&out, help_left, " show this help\n");
  return out;
}

}  // namespace fraud::cli
