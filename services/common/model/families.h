// The model-family table: one row per fraud.common.v1.ModelFamily value (except UNSPECIFIED)
// with everything the rest of the code needs to know about a family. Nothing else switches on
// the family: names, the candidate grid, the epoch cap of a run, training and loading all look
// the row up here.
//
//   const fraud::model::Family* f = fraud::model::FindFamily(manifest.family());
//   if (f == nullptr) return absl::InvalidArgumentError("unsupported model family");
//   FRAUD_LOG(INFO) << "loading " << f->name;
//
// Adding a family: its enum value in proto/fraud/common/v1/types.proto, one backend file in this
// directory (a trainer and a loader with the signatures below, declared in family_impl.h) and one
// row in families.cc. Clients print enum names themselves (fraudctl strips "MODEL_FAMILY_", the
// web UI does the same), so they show a new family without a change.
//
// Plain C++ + protobuf: neither LibTorch nor XGBoost is visible here. Thread-safe: the table is
// built once and never changes.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/common/model/model_runtime.h"

namespace fraud::model {

namespace internal {
struct TrainContext;
class Params;
struct FamilyResult;
}  // namespace internal

// Trains one model of the family on prepared splits (see family_impl.h); reads its parameters
// from `params` and calls params.Finish() before training.
using FamilyTrainFn = absl::StatusOr<internal::FamilyResult> (*)(const internal::TrainContext&,
                                                                 internal::Params&);
// Builds a runtime from a verified artifact: the manifest (already validated), the preprocessing
// it describes and the artifact's files (checksums verified). DataLoss when the files do not
// deserialize or do not match the manifest, InvalidArgument for inconsistent params.
using FamilyLoadFn = absl::StatusOr<std::unique_ptr<ModelRuntime>> (*)(
    ModelManifest manifest, Preprocessor preprocessor, const std::vector<WeightFile>& files,
    const LoadOptions& options);

struct Family {
  // The proto enum value stored in manifests, the registry and the API.
  ModelFamily id = common::v1::MODEL_FAMILY_UNSPECIFIED;
  // Short lower-case name: flags (--families), request params ("mlp.epochs"), candidate names,
  // logs and metric labels. Equals the enum name without "MODEL_FAMILY_", lower-cased (which is
  // how clients that do not link this library name families).
  const char* name = "";
  // For people: "Multi-layer perceptron".
  const char* display_name = "";
  // A file every artifact of the family must list (checked before any file is read).
  const char* required_file = "";
  // The default candidate grid: one parameter map per candidate (see trainer.h for the keys).
  std::vector<std::map<std::string, std::string>> default_grid;
  // The epoch-like parameter a run's max_epochs caps ("epochs", "rounds") and the library's
  // default for it; empty when the family has none. A default of 0 means "no cap unless set".
  const char* epoch_param = "";
  int epoch_default = 0;
  // Whether the family combines the other families' models (ensembles): such a family is never a
  // member of another one.
  bool combines_families = false;
  // Whether a run's selection prefers the family's candidates: the backtest picks the best
  // preferred candidate unless another one's mean block AUPRC is higher by more than the run's
  // preference margin (services/training/backtest.h).
  bool preferred = false;
  FamilyTrainFn train = nullptr;
  FamilyLoadFn load = nullptr;
};

// Every row, in the canonical order (the order of DefaultCandidates and of "all").
absl::Span<const Family> Families();
// The row of `family`; nullptr for UNSPECIFIED and values without a row.
const Family* FindFamily(ModelFamily family);
// The row named `name` (case-insensitive); InvalidArgument naming the known families otherwise.
absl::StatusOr<const Family*> FindFamilyByName(std::string_view name);

// Family::name of `family`; "unspecified" for values without a row.
std::string FamilyName(ModelFamily family);
// Inverse of FamilyName (case-insensitive); InvalidArgument for anything else.
absl::StatusOr<ModelFamily> ParseFamily(std::string_view name);
// Every Family::name in table order, for example {"logreg", "mlp", ...}.
std::vector<std::string> FamilyNames();

// Caps the family's epoch-like parameter in `params` at max_epochs (the library default applies
// when params leave it unset; a default of 0 means "no cap unless set"). No-op when max_epochs <= 0
// or the family has no such parameter.
void CapEpochs(const Family& family, int max_epochs, std::map<std::string, std::string>* params);

}  // namespace fraud::model
