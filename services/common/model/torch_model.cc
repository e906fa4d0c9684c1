// LibTorch families: logistic regression (one Linear layer) and the multi-layer perceptron
// (Linear-ReLU[-Dropout] blocks, then Linear to one logit). The only file of the project that
// includes <torch/torch.h> (~50 s to compile): keep it that way.
//
// C++ modules cannot be scripted, so an artifact stores the parameters (torch::save of the
// Sequential) and the manifest's params ("hidden", "dropout"); loading rebuilds the same
// Sequential and torch::load()s the parameters into it.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/common/core/status_macros.h"
#include "services/common/model/artifact.h"
#include "services/common/model/attribution.h"
#include "services/common/model/blas.h"
#include "services/common/model/dense_net.h"
#include "services/common/model/family_impl.h"

namespace fraud::model::internal {
namespace {

namespace F = torch::nn::functional;

// Mini-batches between two looks at the cancel flag inside an epoch.
constexpr int kCancelCheckBatches = 16;

struct Architecture {
  std::vector<int> hidden;  // empty: logistic regression
  double dropout = 0;
};

torch::nn::Sequential BuildNet(const Architecture& arch) {
  torch::nn::Sequential net;
  int64_t in = static_cast<int64_t>(kNumFeatures);
  for (int h : arch.hidden) {
    net->push_back(torch::nn::Linear(in, h));
    net->push_back(torch::nn::ReLU());
    if (arch.dropout > 0) net->push_back(torch::nn::Dropout(arch.dropout));
    in = h;
  }
  net->push_back(torch::nn::Linear(in, 1));
  return net;
}

absl::StatusOr<Architecture> ArchitectureFromManifest(const ModelManifest& m) {
  Architecture arch;
  if (m.family() == common::v1::MODEL_FAMILY_LOGREG) return arch;
  auto hidden = m.params().find("hidden");
  if (hidden == m.params().end()) {
    return absl::InvalidArgumentError("mlp manifest lacks params.hidden");
  }
  for (absl::string_view part : absl::StrSplit(hidden->second, ',', absl::SkipWhitespace())) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("mlp manifest has bad params.hidden '", hidden->second, "'"));
    }
    arch.hidden.push_back(v);
  }
  if (arch.hidden.empty()) return absl::InvalidArgumentError("mlp manifest has no hidden layer");
  auto dropout = m.params().find("dropout");
  if (dropout != m.params().end() && (!absl::SimpleAtod(dropout->second, &arch.dropout) ||
                                      arch.dropout < 0 || arch.dropout >= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("mlp manifest has bad params.dropout '", dropout->second, "'"));
  }
  return arch;
}

class TorchRuntime final : public ModelRuntime {
 public:
  TorchRuntime(ModelManifest manifest, Preprocessor preprocessor, torch::nn::Sequential net)
      : ModelRuntime(std::move(manifest), preprocessor),
        net_(std::move(net)),
        layers_(DenseLayers(net_)),
        small_(layers_) {
    net_->eval();
  }

  absl::StatusOr<std::vector<WeightFile>> SerializeWeights() const override {
    std::ostringstream os;
    torch::save(net_, os);
    return std::vector<WeightFile>{{kTorchWeightsFileName, os.str()}};
  }

 protected:
  absl::Status ScorePreprocessed(const float* x, size_t rows, float* out) const override {
    if (rows < kSmallBatchRows) {
      for (size_t r = 0; r < rows; ++r) {
        out[r] = 1.0f / (1.0f + std::exp(-small_.Margin(x + r * kNumFeatures)));
      }
      return absl::OkStatus();
    }
    try {
      c10::InferenceMode guard;
      // from_blob wraps the caller's buffer without copying; forward only reads it.
      torch::Tensor input = torch::from_blob(
          const_cast<float*>(x), {static_cast<int64_t>(rows), static_cast<int64_t>(kNumFeatures)},
          torch::kFloat32);
      torch::Tensor probs = torch::sigmoid(net_->forward(input)).contiguous();
      std::memcpy(out, probs.data_ptr<float>(), rows * sizeof(float));
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("libtorch forward failed: ", e.what()));
    }
    return absl::OkStatus();
  }

  // Exact for both families (attribution.h): logreg is the one-layer case.
  absl::Status ExplainPreprocessed(const float* x, size_t rows,
                                   RowExplanation* out) const override {
    for (size_t r = 0; r < rows; ++r) ExplainReluNetwork(layers_, x + r * kNumFeatures, &out[r]);
    return absl::OkStatus();
  }

 private:
  // The Linear layers' parameters as doubles, for the attribution (Dropout is the identity in
  // eval mode, and ReLU follows every Linear layer but the last).
  static std::vector<DenseLayer> DenseLayers(const torch::nn::Sequential& net) {
    torch::NoGradGuard no_grad;
    std::vector<DenseLayer> layers;
    for (const auto& module : net->children()) {
      const auto* linear = module->as<torch::nn::Linear>();
      if (linear == nullptr) continue;
      const torch::Tensor w = linear->weight.detach().to(torch::kFloat64).contiguous();
      const torch::Tensor b = linear->bias.detach().to(torch::kFloat64).contiguous();
      DenseLayer l;
      l.out = static_cast<size_t>(w.size(0));
      l.in = static_cast<size_t>(w.size(1));
      l.w.assign(w.data_ptr<double>(), w.data_ptr<double>() + w.numel());
      l.b.assign(b.data_ptr<double>(), b.data_ptr<double>() + b.numel());
      layers.push_back(std::move(l));
    }
    return layers;
  }

  // Sequential::forward is not const-qualified but, in eval mode under InferenceMode, only reads
  // the parameters: concurrent calls are safe.
  mutable torch::nn::Sequential net_;
  const std::vector<DenseLayer> layers_;
  // Batches below kSmallBatchRows rows: plain float loops (dense_net.h), no LibTorch call.
  static constexpr size_t kSmallBatchRows = 16;
  const SmallBatchNet small_;
};

// Sets LibTorch's intra-op thread count for the scope and restores the previous one.
class TorchThreadsScope {
 public:
  explicit TorchThreadsScope(int n) : previous_(at::get_num_threads()) { at::set_num_threads(n); }
  ~TorchThreadsScope() { at::set_num_threads(previous_); }

 private:
  int previous_;
};

torch::Tensor Wrap(const std::vector<float>& v, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat32);
}

std::vector<float> PredictAll(torch::nn::Sequential& net, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  torch::Tensor p = torch::sigmoid(net->forward(x)).contiguous();
  const float* d = p.data_ptr<float>();
  return std::vector<float>(d, d + p.numel());
}

absl::StatusOr<FamilyResult> TrainTorchUnsafe(const TrainContext& ctx, Params& params) {
  const bool mlp = ctx.family == common::v1::MODEL_FAMILY_MLP;
  Architecture arch;
  if (mlp) {
    arch.hidden = params.IntList("hidden", "32,16");
    arch.dropout = params.Double("dropout", 0.1);
  }
  const double lr = params.Double("lr", mlp ? 0.003 : 0.01);
  const int epochs = params.Int("epochs", 15);
  const int patience = params.Int("patience", 3);
  const int batch_size = params.Int("batch_size", 2048);
  const double weight_decay = params.Double("weight_decay", mlp ? 0.0 : 1e-4);
  const std::string pos_weight_spec = params.String("pos_weight", "1");
  const std::string stop_on = params.String("stop_on", "auprc");
  FRAUD_RETURN_IF_ERROR(params.Finish());
  if (stop_on != "auprc" && stop_on != "loss") {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter stop_on='", stop_on, "' is not auprc or loss"));
  }
  // Early stopping keeps the epoch with the best validation AUPRC, or the lowest validation log
  // loss: smoother than an AUPRC over a few dozen frauds, which jumps with single rows.
  const bool by_loss = stop_on == "loss";
  if (mlp && arch.hidden.empty()) return absl::InvalidArgumentError("mlp needs hidden layers");
  if (arch.dropout < 0 || arch.dropout >= 1) {
    return absl::InvalidArgumentError("dropout must be in [0, 1)");
  }
  if (!(lr > 0) || epochs < 1 || patience < 1 || batch_size < 1 || weight_decay < 0) {
    return absl::InvalidArgumentError(
        "need lr > 0, epochs >= 1, patience >= 1, batch_size >= 1, weight_decay >= 0");
  }
  FRAUD_ASSIGN_OR_RETURN(double pos_weight, ResolvePositiveWeight(pos_weight_spec, *ctx.train));

  const PreparedSplit& train = *ctx.train;
  const PreparedSplit& val = *ctx.validation;
  const int64_t n = static_cast<int64_t>(train.rows);
  const int64_t cols = static_cast<int64_t>(kNumFeatures);

  TorchThreadsScope threads(ctx.threads);
  torch::manual_seed(ctx.seed);
  torch::nn::Sequential net = BuildNet(arch);
  torch::optim::Adam optimizer(net->parameters(),
                               torch::optim::AdamOptions(lr).weight_decay(weight_decay));
  const torch::Tensor x = Wrap(train.x, {n, cols});
  const torch::Tensor y = Wrap(train.y, {n, 1});
  const torch::Tensor w = train.w.empty() ? torch::Tensor() : Wrap(train.w, {n, 1});
  const torch::Tensor xv = Wrap(val.x, {static_cast<int64_t>(val.rows), cols});
  const torch::Tensor pw = torch::full({1}, pos_weight, torch::kFloat32);

  std::mt19937_64 rng(ctx.seed);
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);

  FamilyResult result;
  std::vector<torch::Tensor> best;
  double best_key = -std::numeric_limits<double>::infinity();
  int since_best = 0;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    if (Cancelled(*ctx.callbacks)) return absl::CancelledError("training cancelled");
    net->train();
    std::shuffle(perm.begin(), perm.end(), rng);
    const torch::Tensor order = torch::from_blob(perm.data(), {n}, torch::kLong);
    double loss_sum = 0;
    int batch_index = 0;
    for (int64_t start = 0; start < n; start += batch_size, ++batch_index) {
      if (batch_index % kCancelCheckBatches == kCancelCheckBatches - 1 &&
          Cancelled(*ctx.callbacks)) {
        return absl::CancelledError("training cancelled");
      }
      const int64_t end = std::min<int64_t>(n, start + batch_size);
      const torch::Tensor idx = order.slice(0, start, end);
      auto options = F::BinaryCrossEntropyWithLogitsFuncOptions().pos_weight(pw);
      if (w.defined()) options.weight(w.index_select(0, idx));
      const torch::Tensor loss = F::binary_cross_entropy_with_logits(
          net->forward(x.index_select(0, idx)), y.index_select(0, idx), options);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>() * static_cast<double>(end - start);
    }
    net->eval();
    const SplitStats va = EvaluateProbabilities(PredictAll(net, xv), val);
    EpochProgress p{epoch, loss_sum / static_cast<double>(n), va.loss, va.auprc};
    result.curve.push_back(p);
    if (ctx.callbacks->on_epoch) ctx.callbacks->on_epoch(p);
    const double key = by_loss ? -va.loss : va.auprc;
    if (best.empty() || key > best_key) {
      best_key = key;
      result.best_epoch = epoch;
      since_best = 0;
      torch::NoGradGuard no_grad;
      best.clear();
      for (const torch::Tensor& t : net->parameters()) best.push_back(t.detach().clone());
    } else if (++since_best >= patience) {
      break;
    }
  }
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> current = net->parameters();
    for (size_t i = 0; i < current.size(); ++i) current[i].copy_(best[i]);
  }
  result.runtime = std::make_unique<TorchRuntime>(ctx.manifest, ctx.preprocessor, net);
  return result;
}

}  // namespace

absl::StatusOr<FamilyResult> TrainTorch(const TrainContext& ctx, Params& params) {
  try {
    return TrainTorchUnsafe(ctx, params);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("libtorch training failed: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<ModelRuntime>> MakeTorchRuntime(
    ModelManifest manifest, Preprocessor preprocessor, const std::vector<WeightFile>& files) {
  FRAUD_ASSIGN_OR_RETURN(Architecture arch, ArchitectureFromManifest(manifest));
  const WeightFile* weights = nullptr;
  for (const WeightFile& f : files) {
    if (f.name == kTorchWeightsFileName) weights = &f;
  }
  if (weights == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("artifact lacks ", kTorchWeightsFileName));
  }
  torch::nn::Sequential net = BuildNet(arch);
  // torch::load replaces each parameter's storage and shape with what the file holds, so a file
  // of another architecture would load silently: compare the shapes the manifest implies.
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected;
  for (const auto& p : net->named_parameters()) {
    expected.emplace_back(p.key(), p.value().sizes().vec());
  }
  try {
    std::istringstream is(weights->bytes);
    torch::load(net, is);
  } catch (const std::exception& e) {
    // c10::Error messages carry a long C++ backtrace; its first line says what went wrong.
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    return absl::DataLossError(
        absl::StrCat(kTorchWeightsFileName, " does not match the manifest's architecture: ", what));
  }
  const auto loaded = net->named_parameters();
  if (loaded.size() != expected.size()) {
    return absl::DataLossError(absl::StrCat(kTorchWeightsFileName, " holds ", loaded.size(),
                                            " parameters, the manifest's architecture has ",
                                            expected.size()));
  }
  try {
    for (const auto& [name, sizes] : expected) {
      const torch::Tensor* t = loaded.find(name);
      if (t == nullptr || t->sizes().vec() != sizes) {
        return absl::DataLossError(absl::StrCat(kTorchWeightsFileName, " parameter ", name,
                                                " does not match the manifest's architecture"));
      }
      // The file also decides dtype, layout, strides and storage: forward() trusts all of them.
      if (t->scalar_type() != torch::kFloat32 || t->layout() != torch::kStrided ||
          !t->device().is_cpu() || !t->is_contiguous() ||
          t->storage().nbytes() <
              static_cast<size_t>(t->storage_offset() + t->numel()) * t->element_size()) {
        return absl::DataLossError(absl::StrCat(kTorchWeightsFileName, " parameter ", name,
                                                " is not a dense float32 CPU tensor"));
      }
      if (!torch::isfinite(*t).all().item<bool>()) {
        return absl::DataLossError(absl::StrCat(kTorchWeightsFileName, " parameter ", name,
                                                " holds NaN or infinite weights"));
      }
    }
  } catch (const std::exception& e) {
    std::string what = e.what();
    return absl::DataLossError(absl::StrCat(kTorchWeightsFileName, " parameters are malformed: ",
                                            what.substr(0, what.find('\n'))));
  }
  return std::unique_ptr<ModelRuntime>(
      new TorchRuntime(std::move(manifest), preprocessor, std::move(net)));
}

void SetTorchThreads(int n) {
  if (n > 0) at::set_num_threads(n);
}

}  // namespace fraud::model::internal

namespace fraud::model {

void MatMul(const float* a, const float* b, int64_t m, int64_t k, int64_t n, float* out) {
  c10::InferenceMode guard;
  torch::Tensor ta = torch::from_blob(const_cast<float*>(a), {m, k}, torch::kFloat32);
  torch::Tensor tb = torch::from_blob(const_cast<float*>(b), {k, n}, torch::kFloat32);
  torch::Tensor tc = torch::matmul(ta, tb).contiguous();
  std::memcpy(out, tc.data_ptr<float>(), static_cast<size_t>(m * n) * sizeof(float));
}

double GemmGflops(int64_t n, int repeats, int threads) {
  internal::TorchThreadsScope scope(threads);
  c10::InferenceMode guard;
  torch::manual_seed(1);
  torch::Tensor a = torch::randn({n, n});
  torch::Tensor b = torch::randn({n, n});
  (void)torch::matmul(a, b);  // warm-up: thread pool, kernel selection
  std::vector<double> seconds;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    torch::Tensor c = torch::matmul(a, b);
    (void)c.data_ptr<float>();
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  return 2.0 * static_cast<double>(n) * n * n / median / 1e9;
}

std::string LoadedBlasLibrary() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if (path.find("libblas.so") != std::string::npos ||
        path.find("libopenblas") != std::string::npos) {
      return path;
    }
  }
  return "";
}

}  // namespace fraud::model
