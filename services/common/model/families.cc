// The one place that lists model families. A row's trainer and loader live in the family's backend
// file (torch_model.cc, xgb_model.cc, ...), declared in family_impl.h.
#include "services/common/model/families.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/core/status_macros.h"
#include "services/common/model/artifact.h"
#include "services/common/model/family_impl.h"

namespace fraud::model {
namespace {

using P = std::map<std::string, std::string>;

// LibTorch's intra-op thread count is process-wide: set it when a LibTorch model is loaded (the
// rows of the other families leave it alone).
absl::StatusOr<std::unique_ptr<ModelRuntime>> LoadTorch(ModelManifest manifest,
                                                        Preprocessor preprocessor,
                                                        const std::vector<WeightFile>& files,
                                                        const LoadOptions& options) {
  if (options.torch_threads > 0) internal::SetTorchThreads(options.torch_threads);
  return internal::MakeTorchRuntime(std::move(manifest), preprocessor, files);
}

absl::StatusOr<std::unique_ptr<ModelRuntime>> LoadXgboost(ModelManifest manifest,
                                                          Preprocessor preprocessor,
                                                          const std::vector<WeightFile>& files,
                                                          const LoadOptions&) {
  return internal::MakeXgboostRuntime(std::move(manifest), preprocessor, files);
}

std::vector<Family> BuildTable() {
  return {
      {.id = common::v1::MODEL_FAMILY_LOGREG,
       .name = "logreg",
       .display_name = "Logistic regression",
       .required_file = kTorchWeightsFileName,
       .default_grid = {P{{"lr", "0.01"}, {"pos_weight", "sqrt"}}},
       .epoch_param = "epochs",
       .epoch_default = 15,
       .train = internal::TrainTorch,
       .load = LoadTorch},
      // Widths were kept small for Debian's reference BLAS (6.4 GFLOP/s here, 0.40 s per 32-16
      // epoch on 160k rows). With OpenBLAS, which ./fraud and the images install, the same
      // product runs at 67-100 GFLOP/s and an epoch takes 0.21 s (bench/training): room for the
      // wider networks of the model-quality issue.
      {.id = common::v1::MODEL_FAMILY_MLP,
       .name = "mlp",
       .display_name = "Multi-layer perceptron",
       .required_file = kTorchWeightsFileName,
       .default_grid = {P{{"hidden", "32,16"}, {"dropout", "0.1"}, {"lr", "0.003"},
                          {"pos_weight", "1"}},
                        P{{"hidden", "32,16"}, {"dropout", "0.2"}, {"lr", "0.003"},
                          {"pos_weight", "sqrt"}},
                        P{{"hidden", "64"}, {"dropout", "0.1"}, {"lr", "0.003"},
                          {"pos_weight", "sqrt"}}},
       .epoch_param = "epochs",
       .epoch_default = 15,
       .train = internal::TrainTorch,
       .load = LoadTorch},
      {.id = common::v1::MODEL_FAMILY_XGBOOST,
       .name = "xgboost",
       .display_name = "Gradient-boosted trees (XGBoost)",
       .required_file = kXgboostModelFileName,
       .default_grid = {P{{"max_depth", "4"}, {"eta", "0.1"}},
                        P{{"max_depth", "6"}, {"eta", "0.2"}, {"scale_pos_weight", "sqrt"}}},
       .epoch_param = "rounds",
       .epoch_default = 300,
       .train = internal::TrainXgboost,
       .load = LoadXgboost},
      // One round of many trees: nothing for max_epochs to cap.
      {.id = common::v1::MODEL_FAMILY_RANDOM_FOREST,
       .name = "random_forest",
       .display_name = "Random forest",
       .required_file = kXgboostModelFileName,
       .default_grid = {P{{"trees", "100"}, {"max_depth", "8"}}},
       .train = internal::TrainXgboost,
       .load = LoadXgboost},
      // Trains one configuration of every other family and averages the best two (see
      // ensemble_model.cc); max_epochs caps the members' epochs and rounds.
      {.id = common::v1::MODEL_FAMILY_ENSEMBLE,
       .name = "ensemble",
       .display_name = "Ensemble of the best two families",
       .required_file = internal::kEnsembleFirstMemberManifest,
       .default_grid = {P{}},
       .epoch_param = "max_member_epochs",
       .combines_families = true,
       // Selection takes the ensemble unless another candidate's mean block AUPRC is higher by
       // more than --backtest_preference_margin (default 0: a tie goes to the ensemble).
       .preferred = true,
       .train = internal::TrainEnsemble,
       .load = internal::LoadEnsemble},
  };
}

}  // namespace

absl::Span<const Family> Families() {
  static const std::vector<Family>* table = new std::vector<Family>(BuildTable());
  return *table;
}

const Family* FindFamily(ModelFamily family) {
  for (const Family& f : Families()) {
    if (f.id == family) return &f;
  }
  return nullptr;
}

absl::StatusOr<const Family*> FindFamilyByName(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
  for (const Family& f : Families()) {
    if (lower == f.name) return &f;
  }
  const std::vector<std::string> names = FamilyNames();
  std::string want = names.back();
  if (names.size() > 1) {
    want = absl::StrCat(
        absl::StrJoin(std::vector<std::string>(names.begin(), names.end() - 1), ", "), " or ",
        names.back());
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown model family '", lower, "' (want ", want, ")"));
}

std::string FamilyName(ModelFamily family) {
  const Family* f = FindFamily(family);
  return f != nullptr ? f->name : "unspecified";
}

absl::StatusOr<ModelFamily> ParseFamily(std::string_view name) {
  FRAUD_ASSIGN_OR_RETURN(const Family* f, FindFamilyByName(name));
  return f->id;
}

void CapEpochs(const Family& family, int max_epochs, std::map<std::string, std::string>* params) {
  if (max_epochs <= 0 || *family.epoch_param == '\0') return;
  int current = family.epoch_default;
  auto it = params->find(family.epoch_param);
  if (it != params->end() && !absl::SimpleAtoi(it->second, &current)) current = 0;
  (*params)[family.epoch_param] =
      absl::StrCat(current > 0 ? std::min(current, max_epochs) : max_epochs);
}

std::vector<std::string> FamilyNames() {
  std::vector<std::string> out;
  for (const Family& f : Families()) out.push_back(f.name);
  return out;
}

}  // namespace fraud::model
