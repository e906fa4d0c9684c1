// XGBoost families: gradient-boosted trees ("xgboost") and XGBoost's random-forest mode
// ("random_forest": one round of num_parallel_tree trees with row/column subsampling, eta 1).
// Only this file includes <xgboost/c_api.h>.
#include <xgboost/c_api.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/common/core/status_macros.h"
#include "services/common/model/artifact.h"
#include "services/common/model/family_impl.h"
#include "services/common/model/tree_forest.h"
#include "services/common/model/xgb_model_check.h"

namespace fraud::model::internal {
namespace {

// Training-time prediction config (the per-round metrics on the cached DMatrices): probabilities
// (type 0) from every tree. "missing" never matches: inputs are validated finite.
constexpr char kPredictConfig[] =
    R"({"type": 0, "training": false, "iteration_begin": 0, "iteration_end": 0,)"
    R"( "strict_shape": false, "cache_id": 0, "missing": NaN})";

absl::Status XgbError(const char* what) {
  return absl::InternalError(absl::StrCat("xgboost ", what, ": ", XGBGetLastError()));
}

#define FRAUD_XGB(call, what)               \
  do {                                      \
    if ((call) != 0) return XgbError(what); \
  } while (0)

void QuietXgboostOnce() {
  static std::once_flag once;
  std::call_once(once, [] { XGBSetGlobalConfig(R"({"verbosity": 0})"); });
}

// Owns a BoosterHandle.
class Booster {
 public:
  Booster() = default;
  explicit Booster(BoosterHandle h) : h_(h) {}
  ~Booster() { Reset(nullptr); }
  Booster(Booster&& o) noexcept : h_(o.h_) { o.h_ = nullptr; }
  Booster& operator=(Booster&& o) noexcept {
    if (this != &o) {
      Reset(o.h_);
      o.h_ = nullptr;
    }
    return *this;
  }
  BoosterHandle get() const { return h_; }
  BoosterHandle* out() {
    Reset(nullptr);
    return &h_;
  }
  void Reset(BoosterHandle h) {
    if (h_ != nullptr) XGBoosterFree(h_);
    h_ = h;
  }

 private:
  BoosterHandle h_ = nullptr;
};

// Owns a DMatrixHandle.
class DMatrix {
 public:
  DMatrix() = default;
  ~DMatrix() {
    if (h_ != nullptr) XGDMatrixFree(h_);
  }
  DMatrix(const DMatrix&) = delete;
  DMatrix& operator=(const DMatrix&) = delete;
  DMatrixHandle get() const { return h_; }
  DMatrixHandle* out() { return &h_; }

 private:
  DMatrixHandle h_ = nullptr;
};

// Scores and explains with a TreeForest built from the model's JSON (tree_forest.h): the C
// API's in-place prediction costs 25-40 us of set-up per call, the trees themselves ~1 us. No
// booster stays loaded: the runtime keeps the JSON it was built from (XGBoost's JSON is the
// artifact format), so SerializeWeights returns exactly the bytes that were trained or loaded.
class XgboostRuntime final : public ModelRuntime {
 public:
  XgboostRuntime(ModelManifest manifest, Preprocessor preprocessor, std::string model_json,
                 TreeForest forest)
      : ModelRuntime(std::move(manifest), preprocessor),
        model_json_(std::move(model_json)),
        forest_(std::move(forest)) {}

  absl::StatusOr<std::vector<WeightFile>> SerializeWeights() const override {
    return std::vector<WeightFile>{{kXgboostModelFileName, model_json_}};
  }

 protected:
  absl::Status ScorePreprocessed(const float* x, size_t rows, float* out) const override {
    forest_.Predict(x, rows, out);
    return absl::OkStatus();
  }

  absl::Status ExplainPreprocessed(const float* x, size_t rows,
                                   RowExplanation* out) const override {
    for (size_t r = 0; r < rows; ++r) forest_.Explain(x + r * kNumFeatures, &out[r]);
    return absl::OkStatus();
  }

 private:
  std::string model_json_;
  TreeForest forest_;
};

absl::StatusOr<std::string> ModelJson(const Booster& booster) {
  bst_ulong len = 0;
  const char* data = nullptr;
  FRAUD_XGB(XGBoosterSaveModelToBuffer(booster.get(), R"({"format": "json"})", &len, &data),
            "saving the model");
  return std::string(data, len);
}

absl::Status SetParam(const Booster& b, const char* name, const std::string& value) {
  if (XGBoosterSetParam(b.get(), name, value.c_str()) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("xgboost parameter ", name, "=", value, ": ", XGBGetLastError()));
  }
  return absl::OkStatus();
}

absl::Status MakeDMatrix(const PreparedSplit& s, DMatrix* m) {
  FRAUD_XGB(XGDMatrixCreateFromMat(s.x.data(), s.rows, kNumFeatures, std::nanf(""), m->out()),
            "creating a DMatrix");
  FRAUD_XGB(XGDMatrixSetFloatInfo(m->get(), "label", s.y.data(), s.rows), "setting labels");
  if (!s.w.empty()) {
    FRAUD_XGB(XGDMatrixSetFloatInfo(m->get(), "weight", s.w.data(), s.rows), "setting weights");
  }
  return absl::OkStatus();
}

// The training matrix as a QuantileDMatrix: XGBoost's hist method keeps only the quantised
// matrix (1 byte per value with max_bin <= 256) instead of a CSR copy of the floats (8 bytes per
// value: index + value) beside it. On 205k training rows that is 6 MB instead of ~55 MB, the
// largest allocation of a tree candidate. The rows are handed over as one dense batch.
struct OneDenseBatch {
  const PreparedSplit* split = nullptr;
  DMatrixHandle proxy = nullptr;
  std::string array_interface;
  bool served = false;
};

int OneDenseBatchNext(DataIterHandle handle) {
  auto* it = static_cast<OneDenseBatch*>(handle);
  if (it->served) return 0;
  it->served = true;
  const PreparedSplit& s = *it->split;
  if (XGProxyDMatrixSetDataDense(it->proxy, it->array_interface.c_str()) != 0 ||
      XGDMatrixSetFloatInfo(it->proxy, "label", s.y.data(), s.rows) != 0 ||
      (!s.w.empty() && XGDMatrixSetFloatInfo(it->proxy, "weight", s.w.data(), s.rows) != 0)) {
    return -1;
  }
  return 1;
}

void OneDenseBatchReset(DataIterHandle handle) { static_cast<OneDenseBatch*>(handle)->served = false; }

absl::Status MakeQuantileDMatrix(const PreparedSplit& s, int max_bin, int threads, DMatrix* m) {
  DMatrix proxy;
  FRAUD_XGB(XGProxyDMatrixCreate(proxy.out()), "creating a proxy DMatrix");
  OneDenseBatch batch;
  batch.split = &s;
  batch.proxy = proxy.get();
  batch.array_interface = absl::StrCat(
      R"({"data": [)", reinterpret_cast<uintptr_t>(s.x.data()), R"(, true], "shape": [)", s.rows,
      ", ", kNumFeatures, R"(], "typestr": "<f4", "version": 3})");
  const std::string config =
      absl::StrCat(R"({"missing": NaN, "nthread": )", threads, R"(, "max_bin": )", max_bin, "}");
  FRAUD_XGB(XGQuantileDMatrixCreateFromCallback(&batch, proxy.get(), nullptr, OneDenseBatchReset,
                                                OneDenseBatchNext, config.c_str(), m->out()),
            "creating the training QuantileDMatrix");
  return absl::OkStatus();
}

// Probabilities of the whole model on a DMatrix the booster caches (incremental per round).
absl::StatusOr<std::vector<float>> PredictCached(const Booster& b, const DMatrix& m, size_t rows) {
  const bst_ulong* shape = nullptr;
  bst_ulong dim = 0;
  const float* result = nullptr;
  FRAUD_XGB(XGBoosterPredictFromDMatrix(b.get(), m.get(), kPredictConfig, &shape, &dim, &result),
            "predicting");
  return std::vector<float>(result, result + rows);
}

absl::Status CheckRange(const char* name, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi)) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter ", name, "=", v, " is outside [", lo, ", ", hi, "]"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FamilyResult> TrainXgboost(const TrainContext& ctx, Params& params) {
  QuietXgboostOnce();
  const bool forest = ctx.family == common::v1::MODEL_FAMILY_RANDOM_FOREST;
  std::vector<std::pair<const char*, std::string>> xgb = {
      {"objective", "binary:logistic"},
      {"tree_method", "hist"},
      {"nthread", absl::StrCat(ctx.threads)},
      {"seed", absl::StrCat(ctx.seed)},
      {"verbosity", "0"},
  };
  int rounds = 1;
  int patience = 1;
  const int max_depth = params.Int("max_depth", forest ? 8 : 5);
  const double subsample = params.Double("subsample", 0.8);
  const double min_child_weight = params.Double("min_child_weight", 1.0);
  const int max_bin = params.Int("max_bin", 256);
  FRAUD_RETURN_IF_ERROR(CheckRange("max_depth", max_depth, 1, 16));
  FRAUD_RETURN_IF_ERROR(CheckRange("subsample", subsample, 1e-3, 1));
  FRAUD_RETURN_IF_ERROR(CheckRange("min_child_weight", min_child_weight, 0, 1e6));
  FRAUD_RETURN_IF_ERROR(CheckRange("max_bin", max_bin, 2, 4096));
  xgb.push_back({"max_depth", absl::StrCat(max_depth)});
  xgb.push_back({"subsample", absl::StrCat(subsample)});
  xgb.push_back({"min_child_weight", absl::StrCat(min_child_weight)});
  xgb.push_back({"max_bin", absl::StrCat(max_bin)});
  if (forest) {
    const int trees = params.Int("trees", 100);
    const double colsample = params.Double("colsample_bynode", 0.5);
    FRAUD_RETURN_IF_ERROR(CheckRange("trees", trees, 1, 2000));
    FRAUD_RETURN_IF_ERROR(CheckRange("colsample_bynode", colsample, 1e-3, 1));
    xgb.push_back({"num_parallel_tree", absl::StrCat(trees)});
    xgb.push_back({"colsample_bynode", absl::StrCat(colsample)});
    xgb.push_back({"eta", "1"});
  } else {
    const double eta = params.Double("eta", 0.1);
    rounds = params.Int("rounds", 300);
    patience = params.Int("early_stopping_rounds", 20);
    const double colsample = params.Double("colsample_bytree", 0.8);
    const std::string spw = params.String("scale_pos_weight", "1");
    FRAUD_RETURN_IF_ERROR(CheckRange("eta", eta, 1e-4, 1));
    FRAUD_RETURN_IF_ERROR(CheckRange("rounds", rounds, 1, 5000));
    FRAUD_RETURN_IF_ERROR(CheckRange("early_stopping_rounds", patience, 1, 5000));
    FRAUD_RETURN_IF_ERROR(CheckRange("colsample_bytree", colsample, 1e-3, 1));
    FRAUD_ASSIGN_OR_RETURN(double pos_weight, ResolvePositiveWeight(spw, *ctx.train));
    xgb.push_back({"eta", absl::StrCat(eta)});
    xgb.push_back({"colsample_bytree", absl::StrCat(colsample)});
    xgb.push_back({"scale_pos_weight", absl::StrCat(pos_weight)});
  }
  FRAUD_RETURN_IF_ERROR(params.Finish());

  DMatrix dtrain;
  DMatrix dval;
  FRAUD_RETURN_IF_ERROR(MakeQuantileDMatrix(*ctx.train, max_bin, ctx.threads, &dtrain));
  FRAUD_RETURN_IF_ERROR(MakeDMatrix(*ctx.validation, &dval));
  DMatrixHandle cache[] = {dtrain.get(), dval.get()};
  Booster booster;
  FRAUD_XGB(XGBoosterCreate(cache, 2, booster.out()), "creating a booster");
  for (const auto& [name, value] : xgb) FRAUD_RETURN_IF_ERROR(SetParam(booster, name, value));

  FamilyResult result;
  double best_auprc = -1;
  int best_round = 0;
  int since_best = 0;
  for (int round = 0; round < rounds; ++round) {
    if (Cancelled(*ctx.callbacks)) return absl::CancelledError("training cancelled");
    FRAUD_XGB(XGBoosterUpdateOneIter(booster.get(), round, dtrain.get()), "boosting");
    FRAUD_ASSIGN_OR_RETURN(std::vector<float> train_p,
                           PredictCached(booster, dtrain, ctx.train->rows));
    FRAUD_ASSIGN_OR_RETURN(std::vector<float> val_p,
                           PredictCached(booster, dval, ctx.validation->rows));
    const SplitStats tr = EvaluateProbabilities(train_p, *ctx.train);
    const SplitStats va = EvaluateProbabilities(val_p, *ctx.validation);
    EpochProgress p{round + 1, tr.loss, va.loss, va.auprc};
    result.curve.push_back(p);
    if (ctx.callbacks->on_epoch) ctx.callbacks->on_epoch(p);
    if (va.auprc > best_auprc) {
      best_auprc = va.auprc;
      best_round = round;
      since_best = 0;
    } else if (++since_best >= patience) {
      break;
    }
  }
  result.best_epoch = best_round + 1;
  int boosted = 0;
  FRAUD_XGB(XGBoosterBoostedRounds(booster.get(), &boosted), "counting rounds");
  if (best_round + 1 < boosted) {
    Booster sliced;
    FRAUD_XGB(XGBoosterSlice(booster.get(), 0, best_round + 1, 1, sliced.out()),
              "keeping the best rounds");
    booster = std::move(sliced);
  }
  // Serialised once: the forest is built from these bytes and the artifact's model.json is
  // them. The booster (and its cached matrices) is freed on return.
  FRAUD_ASSIGN_OR_RETURN(std::string json, ModelJson(booster));
  FRAUD_ASSIGN_OR_RETURN(TreeForest trees, TreeForest::FromXgboostJson(json));
  result.runtime = std::make_unique<XgboostRuntime>(ctx.manifest, ctx.preprocessor,
                                                    std::move(json), std::move(trees));
  return result;
}

absl::StatusOr<std::unique_ptr<ModelRuntime>> MakeXgboostRuntime(
    ModelManifest manifest, Preprocessor preprocessor, const std::vector<WeightFile>& files) {
  QuietXgboostOnce();
  const WeightFile* model = nullptr;
  for (const WeightFile& f : files) {
    if (f.name == kXgboostModelFileName) model = &f;
  }
  if (model == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("artifact lacks ", kXgboostModelFileName));
  }
  // XGBoost trusts the model it loads (a malformed tree reads out of bounds while predicting), so
  // it only ever sees a document that passed our structural check, re-serialised so that it
  // parses exactly what was checked. That also keeps every non-JSON byte string away from
  // XGBoost's legacy binary reader, which trusts length fields (a fuzzed artifact made it
  // allocate 2.4e18 bytes).
  // XGBoost still loads the checked document once, so an artifact XGBoost itself would refuse
  // is refused here too; the booster is freed right after (scoring runs on the TreeForest).
  FRAUD_ASSIGN_OR_RETURN(std::string canonical, CanonicalXgboostModel(model->bytes, kNumFeatures));
  {
    Booster booster;
    FRAUD_XGB(XGBoosterCreate(nullptr, 0, booster.out()), "creating a booster");
    if (XGBoosterLoadModelFromBuffer(booster.get(), canonical.data(), canonical.size()) != 0) {
      return absl::DataLossError(
          absl::StrCat(kXgboostModelFileName, " does not load: ", XGBGetLastError()));
    }
  }
  FRAUD_ASSIGN_OR_RETURN(TreeForest forest, TreeForest::FromXgboostJson(canonical));
  // The runtime keeps the artifact's bytes as they are (they passed the check above), so writing
  // the model again gives the same file and checksum.
  return std::unique_ptr<ModelRuntime>(new XgboostRuntime(
      std::move(manifest), preprocessor, model->bytes, std::move(forest)));
}

}  // namespace fraud::model::internal
