#include "services/training/run_params.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/common/core/status_macros.h"
#include "services/common/model/families.h"

namespace fraud::training {
namespace {

std::vector<ModelFamily> AllFamilies() {
  std::vector<ModelFamily> out;
  for (const model::Family& f : model::Families()) out.push_back(f.id);
  return out;
}

absl::StatusOr<int> PositiveInt(const std::string& key, const std::string& value) {
  int v = 0;
  if (!absl::SimpleAtoi(value, &v) || v <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter ", key, "='", value, "' is not a positive integer"));
  }
  return v;
}

absl::StatusOr<double> Fraction(const std::string& key, const std::string& value, bool allow_zero) {
  double v = 0;
  if (!absl::SimpleAtod(value, &v) || !(allow_zero ? v >= 0 : v > 0) || !(v < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("parameter ", key, "='", value,
                                                   "' is not a fraction in ",
                                                   allow_zero ? "[0, 1)" : "(0, 1)"));
  }
  return v;
}

const std::string* FindParam(const training::v1::StartRunRequest& request, const std::string& key) {
  auto it = request.params().find(key);
  return it == request.params().end() ? nullptr : &it->second;
}

absl::StatusOr<double> ValidationFraction(const training::v1::StartRunRequest& request,
                                          const PipelineOptions& options) {
  if (request.validation_fraction() != 0) {
    return Fraction("validation_fraction", absl::StrCat(request.validation_fraction()), false);
  }
  if (const std::string* v = FindParam(request, "validation_fraction")) {
    return Fraction("validation_fraction", *v, false);
  }
  return options.validation_fraction;
}

absl::StatusOr<double> HoldoutFraction(const training::v1::StartRunRequest& request,
                                       const PipelineOptions& options) {
  if (const std::string* v = FindParam(request, "holdout_fraction")) {
    return Fraction("holdout_fraction", *v, true);
  }
  return options.holdout_fraction;
}

bool IsRunLevelParam(const std::string& key) {
  return key == "validation_fraction" || key == "holdout_fraction" || key == "backtest_blocks" ||
         key == "backtest_min_frauds" || key == "backtest_max_fold_rows" ||
         key == "backtest_preference_margin" || key == "backtest_refit_on_newest" ||
         key == "backtest_gate";
}

absl::StatusOr<int64_t> NonNegativeInt(const std::string& key, const std::string& value,
                                       int64_t max) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(value, &v) || v < 0 || v > max) {
    return absl::InvalidArgumentError(absl::StrCat("parameter ", key, "='", value,
                                                   "' is not an integer in [0, ", max, "]"));
  }
  return v;
}

// The backtest settings: the server's, overridden by the request's backtest_* params.
absl::StatusOr<BacktestOptions> Backtest(const training::v1::StartRunRequest& request,
                                         const PipelineOptions& options) {
  BacktestOptions b = options.backtest;
  if (const std::string* v = FindParam(request, "backtest_blocks")) {
    FRAUD_ASSIGN_OR_RETURN(int64_t blocks, NonNegativeInt("backtest_blocks", *v, 10));
    b.blocks = static_cast<int>(blocks);
  }
  if (const std::string* v = FindParam(request, "backtest_min_frauds")) {
    FRAUD_ASSIGN_OR_RETURN(b.min_block_frauds, NonNegativeInt("backtest_min_frauds", *v, 100000));
  }
  if (const std::string* v = FindParam(request, "backtest_max_fold_rows")) {
    FRAUD_ASSIGN_OR_RETURN(int64_t rows,
                           NonNegativeInt("backtest_max_fold_rows", *v, int64_t{1} << 40));
    b.max_fold_rows = static_cast<size_t>(rows);
  }
  if (const std::string* v = FindParam(request, "backtest_preference_margin")) {
    double margin = 0;
    if (!absl::SimpleAtod(*v, &margin) || !(margin >= 0 && margin <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter backtest_preference_margin='", *v, "' is not a number in [0, 1]"));
    }
    b.preference_margin = margin;
  }
  if (const std::string* v = FindParam(request, "backtest_refit_on_newest")) {
    if (!absl::SimpleAtob(*v, &b.refit_on_newest)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter backtest_refit_on_newest='", *v, "' is not a boolean"));
    }
  }
  if (const std::string* v = FindParam(request, "backtest_gate")) {
    if (*v != "better" && *v != "not_worse") {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter backtest_gate='", *v, "' is not better or not_worse"));
    }
    b.gate_not_worse = *v == "not_worse";
  }
  return b;
}

double PromotionMargin(const training::v1::StartRunRequest& request,
                       const PipelineOptions& options) {
  return request.promotion_margin() != 0 ? request.promotion_margin() : options.promotion_margin;
}

}  // namespace

absl::Status ValidatePipelineOptions(const PipelineOptions& o) {
  if (o.max_train_rows < 0) return absl::InvalidArgumentError("--max_train_rows must be >= 0");
  if (!(o.validation_fraction > 0 && o.validation_fraction < 1)) {
    return absl::InvalidArgumentError("--validation_fraction must be in (0, 1)");
  }
  if (!(o.holdout_fraction >= 0 && o.holdout_fraction < 1)) {
    return absl::InvalidArgumentError("--holdout_fraction must be in [0, 1)");
  }
  if (o.backtest.blocks < 0 || o.backtest.blocks > 10) {
    return absl::InvalidArgumentError("--backtest_blocks must be in [0, 10]");
  }
  if (o.backtest.min_block_frauds < 0) {
    return absl::InvalidArgumentError("--backtest_min_frauds must be >= 0");
  }
  if (!(o.backtest.preference_margin >= 0 && o.backtest.preference_margin <= 1)) {
    return absl::InvalidArgumentError("--backtest_preference_margin must be in [0, 1]");
  }
  return absl::OkStatus();
}

absl::StatusOr<RunSettings> ResolveRun(const training::v1::StartRunRequest& request,
                                       const PipelineOptions& options) {
  RunSettings s;
  FRAUD_ASSIGN_OR_RETURN(s.candidates, BuildCandidates(request, options));
  FRAUD_ASSIGN_OR_RETURN(s.validation_fraction, ValidationFraction(request, options));
  FRAUD_ASSIGN_OR_RETURN(s.holdout_fraction, HoldoutFraction(request, options));
  s.promotion_margin = PromotionMargin(request, options);
  FRAUD_ASSIGN_OR_RETURN(s.backtest, Backtest(request, options));
  return s;
}

absl::StatusOr<std::vector<ModelFamily>> ParseFamilies(const std::vector<std::string>& names) {
  std::vector<ModelFamily> out;
  std::set<int> seen;
  for (const std::string& raw : names) {
    for (absl::string_view piece : absl::StrSplit(raw, ',', absl::SkipWhitespace())) {
      const std::string name(absl::StripAsciiWhitespace(piece));
      if (name == "all") {
        for (ModelFamily f : AllFamilies()) {
          if (seen.insert(f).second) out.push_back(f);
        }
        continue;
      }
      FRAUD_ASSIGN_OR_RETURN(ModelFamily f, model::ParseFamily(name));
      if (seen.insert(f).second) out.push_back(f);
    }
  }
  return out;
}

absl::StatusOr<std::vector<model::CandidateSpec>> BuildCandidates(
    const training::v1::StartRunRequest& request, const PipelineOptions& options) {
  std::vector<ModelFamily> families;
  if (!request.families().empty()) {
    FRAUD_ASSIGN_OR_RETURN(families, ParseFamilies(std::vector<std::string>(
                                         request.families().begin(), request.families().end())));
  }
  if (families.empty()) families = options.families;
  if (families.empty()) families = AllFamilies();

  bool small_grid = false;
  int max_epochs = options.max_epochs;
  int threads = options.threads;
  std::map<ModelFamily, std::map<std::string, std::string>> overrides;
  for (const auto& [key, value] : request.params()) {
    if (key == "grid") {
      if (value != "default" && value != "small") {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter grid='", value, "' is not 'default' or 'small'"));
      }
      small_grid = value == "small";
    } else if (key == "max_epochs") {
      FRAUD_ASSIGN_OR_RETURN(max_epochs, PositiveInt(key, value));
    } else if (key == "threads") {
      FRAUD_ASSIGN_OR_RETURN(threads, PositiveInt(key, value));
    } else if (IsRunLevelParam(key)) {
      // Run-level settings, validated by ResolveRunParams.
    } else {
      const size_t dot = key.find('.');
      if (dot == std::string::npos || dot + 1 == key.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unknown parameter '", key,
            "' (expected grid, max_epochs, threads, validation_fraction, holdout_fraction, "
            "backtest_blocks, backtest_min_frauds, backtest_max_fold_rows, "
            "backtest_preference_margin, backtest_refit_on_newest, backtest_gate or "
            "<family>.<param>, "
            "for example mlp.epochs)"));
      }
      absl::StatusOr<ModelFamily> f = model::ParseFamily(key.substr(0, dot));
      if (!f.ok() || *f == common::v1::MODEL_FAMILY_UNSPECIFIED) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter '", key, "' names no model family"));
      }
      overrides[*f][key.substr(dot + 1)] = value;
    }
  }

  std::vector<model::CandidateSpec> out;
  for (ModelFamily family : families) {
    std::vector<model::CandidateSpec> grid = model::DefaultGrid(family);
    if (small_grid && grid.size() > 1) grid.resize(1);
    for (model::CandidateSpec& spec : grid) {
      spec.threads = threads;
      if (const model::Family* row = model::FindFamily(family)) {
        model::CapEpochs(*row, max_epochs, &spec.params);
      }
      for (const auto& [k, v] : overrides[family]) spec.params[k] = v;
      out.push_back(std::move(spec));
    }
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> ResolveRunParams(
    const training::v1::StartRunRequest& request, const PipelineOptions& options) {
  FRAUD_ASSIGN_OR_RETURN(RunSettings settings, ResolveRun(request, options));
  if (request.comparison_time_max() < request.comparison_time_min()) {
    return absl::InvalidArgumentError("comparison_time_max is below comparison_time_min");
  }
  const std::vector<model::CandidateSpec>& specs = settings.candidates;
  std::map<std::string, std::string> out(request.params().begin(), request.params().end());
  std::vector<std::string> families;
  for (const model::CandidateSpec& s : specs) {
    const std::string name = model::FamilyName(s.family);
    if (std::find(families.begin(), families.end(), name) == families.end()) {
      families.push_back(name);
    }
  }
  out["families"] = absl::StrJoin(families, ",");
  out["candidates"] = absl::StrCat(specs.size());
  out["validation_fraction"] = absl::StrCat(settings.validation_fraction);
  out["promotion_margin"] = absl::StrCat(settings.promotion_margin);
  out["backtest_blocks"] = absl::StrCat(settings.backtest.blocks);
  out["backtest_min_frauds"] = absl::StrCat(settings.backtest.min_block_frauds);
  out["backtest_max_fold_rows"] = absl::StrCat(settings.backtest.max_fold_rows);
  out["backtest_preference_margin"] = absl::StrCat(settings.backtest.preference_margin);
  out["backtest_refit_on_newest"] = settings.backtest.refit_on_newest ? "1" : "0";
  out["backtest_gate"] = settings.backtest.gate_not_worse ? "not_worse" : "better";
  if (request.no_promote()) out["no_promote"] = "true";
  const bool named_comparison = !request.comparison_upload_ids().empty() ||
                                request.comparison_time_max() > request.comparison_time_min();
  if (!request.comparison_upload_ids().empty()) {
    out["comparison_upload_ids"] = absl::StrJoin(request.comparison_upload_ids(), ",");
  }
  if (request.comparison_time_max() > request.comparison_time_min()) {
    out["comparison_time"] =
        absl::StrCat(request.comparison_time_min(), "..", request.comparison_time_max());
  }
  if (!named_comparison) out["holdout_fraction"] = absl::StrCat(settings.holdout_fraction);
  if (!request.train_upload_ids().empty()) {
    out["train_upload_ids"] = absl::StrJoin(request.train_upload_ids(), ",");
  }
  if (request.train_time_max() > 0) out["train_time_max"] = absl::StrCat(request.train_time_max());
  if (!request.description().empty()) out["description"] = request.description();
  return out;
}

}  // namespace fraud::training
