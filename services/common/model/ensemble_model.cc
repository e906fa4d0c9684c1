// The "ensemble" family: the average of member models of other families, trained on the same rows
// and scored on the same preprocessed input. Each member family trains its first default
// configuration; a family named more than once ("mlp,mlp,mlp,xgboost") trains once per mention,
// each time with its own seed (a bag). members names them; with members=auto (the default) every
// family that is not itself an ensemble trains and the two best by validation AUPRC become the
// members. combine=auto keeps the better (validation AUPRC) of
//   mean  the average of the members' probabilities, and
//   rank  the average of each member's score mapped through the empirical CDF of its validation
//         scores (piecewise linear between stored knots), which puts members with differently
//         calibrated scores on one scale.
// Plain C++: the members' backends (torch_model.cc, xgb_model.cc) stay behind their table rows.
//
// Artifact files (flat names, every one listed with its sha256 in the ensemble's manifest):
//   member<i>.manifest.textproto   the member's family and params (a ModelManifest; the member
//                                  shares the ensemble's feature names and preprocessing)
//   member<i>.<file>               the member's own files ("member0.model.json", "member1.weights.pt")
//   member<i>.rank_reference.bin   combine=rank only: the CDF knots, float32 (score, level) pairs
// The ensemble manifest's params name the members in order ("members" = "xgboost,mlp") and the
// combination ("combine" = "mean" | "rank"). Loading builds each member through its family's
// loader, so a member's checks (XGBoost's structural model check, LibTorch's architecture check)
// apply unchanged.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "absl/container/inlined_vector.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/text_format.h"
#include "services/common/core/status_macros.h"
#include "services/common/model/artifact.h"
#include "services/common/model/attribution.h"
#include "services/common/model/family_impl.h"

namespace fraud::model::internal {
namespace {

constexpr size_t kMembersByDefault = 2;
constexpr size_t kMaxMembers = 8;
// CDF knots per member: evenly spaced quantiles of the body plus the highest validation scores
// one by one (the frauds live in the top tail, where resolution matters for AUPRC).
constexpr size_t kBodyKnots = 2048;
constexpr size_t kTailKnots = 2048;
constexpr size_t kMaxKnots = 65536;

enum class Combine { kMean, kRank };

std::string MemberFile(size_t i, const std::string& name) {
  return absl::StrCat("member", i, ".", name);
}

// A CDF knot: a member's score and the fraction of validation scores at or below it.
struct Knot {
  float score = 0;
  float level = 0;
};

// Sorted validation scores -> knots with strictly increasing scores and levels in (0, 1).
std::vector<Knot> BuildKnots(std::vector<float> scores) {
  std::sort(scores.begin(), scores.end());
  const size_t n = scores.size();
  std::vector<size_t> picks;
  if (n <= kBodyKnots + kTailKnots) {
    for (size_t i = 0; i < n; ++i) picks.push_back(i);
  } else {
    for (size_t k = 0; k < kBodyKnots; ++k) picks.push_back(k * (n - kTailKnots) / kBodyKnots);
    for (size_t i = n - kTailKnots; i < n; ++i) picks.push_back(i);
  }
  std::vector<Knot> knots;
  for (size_t i : picks) {
    // Equal scores share the level of the last of them.
    if (!knots.empty() && scores[i] <= knots.back().score) continue;
    size_t last = i;
    while (last + 1 < n && scores[last + 1] == scores[i]) ++last;
    knots.push_back(
        {scores[i], static_cast<float>((static_cast<double>(last) + 0.5) / static_cast<double>(n))});
  }
  return knots;
}

// Position of `s` on the member's validation CDF, in [0, 1]; linear between knots and towards
// (0, 0) and (1, 1) beyond them, so it is monotone and keeps order between knots.
float Rank(const std::vector<Knot>& knots, float s) {
  const Knot& first = knots.front();
  const Knot& last = knots.back();
  if (s <= first.score) return first.score > 0 ? first.level * (s / first.score) : first.level;
  if (s >= last.score) {
    return last.score < 1 ? last.level + (1 - last.level) * ((s - last.score) / (1 - last.score))
                          : last.level;
  }
  auto hi = std::upper_bound(knots.begin(), knots.end(), s,
                             [](float v, const Knot& k) { return v < k.score; });
  const Knot& b = *hi;
  const Knot& a = *(hi - 1);
  return a.level + (b.level - a.level) * ((s - a.score) / (b.score - a.score));
}

std::string KnotsToBytes(const std::vector<Knot>& knots) {
  // Little-endian float32 pairs (every platform we build for).
  std::string bytes(knots.size() * 2 * sizeof(float), '\0');
  for (size_t i = 0; i < knots.size(); ++i) {
    std::memcpy(&bytes[(2 * i) * sizeof(float)], &knots[i].score, sizeof(float));
    std::memcpy(&bytes[(2 * i + 1) * sizeof(float)], &knots[i].level, sizeof(float));
  }
  return bytes;
}

absl::StatusOr<std::vector<Knot>> KnotsFromBytes(const std::string& name, const std::string& bytes) {
  const size_t pair = 2 * sizeof(float);
  if (bytes.size() % pair != 0 || bytes.size() / pair < 1 || bytes.size() / pair > kMaxKnots) {
    return absl::DataLossError(
        absl::StrCat(name, ": ", bytes.size(), " bytes are not 1..", kMaxKnots, " float pairs"));
  }
  std::vector<Knot> knots(bytes.size() / pair);
  for (size_t i = 0; i < knots.size(); ++i) {
    std::memcpy(&knots[i].score, &bytes[i * pair], sizeof(float));
    std::memcpy(&knots[i].level, &bytes[i * pair + sizeof(float)], sizeof(float));
    const Knot& k = knots[i];
    const bool in_range = k.score >= 0 && k.score <= 1 && k.level > 0 && k.level < 1;
    const bool increasing =
        i == 0 || (k.score > knots[i - 1].score && k.level > knots[i - 1].level);
    if (!in_range || !increasing) {
      return absl::DataLossError(absl::StrCat(
          name, ": knot ", i, " is not an increasing (score, level) pair inside [0, 1]"));
    }
  }
  return knots;
}

struct Member {
  std::unique_ptr<ModelRuntime> runtime;
  std::vector<Knot> knots;  // combine=rank only
};

class EnsembleRuntime final : public ModelRuntime {
 public:
  EnsembleRuntime(ModelManifest manifest, Preprocessor preprocessor, std::vector<Member> members,
                  Combine combine)
      : ModelRuntime(std::move(manifest), preprocessor),
        members_(std::move(members)),
        combine_(combine) {}

  absl::StatusOr<std::vector<WeightFile>> SerializeWeights() const override {
    std::vector<WeightFile> out;
    for (size_t i = 0; i < members_.size(); ++i) {
      const ModelRuntime& m = *members_[i].runtime;
      ModelManifest own;
      own.set_family(m.family());
      *own.mutable_params() = m.manifest().params();
      std::string text;
      if (!google::protobuf::TextFormat::PrintToString(own, &text)) {
        return absl::InternalError("printing a member manifest failed");
      }
      out.push_back({MemberFile(i, kManifestFileName), std::move(text)});
      FRAUD_ASSIGN_OR_RETURN(std::vector<WeightFile> files, m.SerializeWeights());
      for (WeightFile& f : files) out.push_back({MemberFile(i, f.name), std::move(f.bytes)});
      if (combine_ == Combine::kRank) {
        out.push_back({MemberFile(i, "rank_reference.bin"), KnotsToBytes(members_[i].knots)});
      }
    }
    return out;
  }

 protected:
  absl::Status ScorePreprocessed(const float* x, size_t rows, float* out) const override {
    absl::InlinedVector<float, 16> member_scores(rows);
    std::fill(out, out + rows, 0.0f);
    for (size_t i = 0; i < members_.size(); ++i) {
      FRAUD_RETURN_IF_ERROR(
          RuntimeAccess::ScorePreprocessed(*members_[i].runtime, x, rows, member_scores.data()));
      for (size_t r = 0; r < rows; ++r) {
        const float s = member_scores[r];
        if (!(s >= 0.0f && s <= 1.0f)) {
          return absl::InternalError(
              absl::StrCat("row ", r, ": ensemble member ", i, " produced score ", s));
        }
        out[r] += combine_ == Combine::kRank ? Rank(members_[i].knots, s) : s;
      }
    }
    const float n = static_cast<float>(members_.size());
    for (size_t r = 0; r < rows; ++r) out[r] /= n;
    return absl::OkStatus();
  }

  // margin = logit(p), p = mean_i g_i(s_i), where s_i is member i's score (the same float the
  // ensemble's ScorePreprocessed averages, so that margin is the logit of the ensemble's own
  // score: the rank CDF is steep where scores crowd, and a member score recomputed in double
  // would move the rank visibly) and g_i maps it to what the ensemble averages (the score
  // itself, or its rank). bias = logit(mean_i g_i(sigmoid(b_i))), b_i member i's bias. Member
  // i's contributions (which sum to m_i - b_i, its margin minus its bias) are scaled by its
  // secant slope (g_i(s_i) - g_i(sigmoid(b_i))) / (m_i - b_i) / n and then by the logit's secant
  // slope between the two averages, so that they add up to margin - bias (DeepLIFT's rescale
  // rule); a member whose margin equals its bias uses its derivative instead. SpreadResidual
  // removes the rounding.
  absl::Status ExplainPreprocessed(const float* x, size_t rows,
                                   RowExplanation* out) const override {
    const size_t n = members_.size();
    std::vector<RowExplanation> member(n * rows);
    std::vector<float> scores(n * rows);
    for (size_t i = 0; i < n; ++i) {
      FRAUD_RETURN_IF_ERROR(
          RuntimeAccess::ExplainPreprocessed(*members_[i].runtime, x, rows, &member[i * rows]));
      FRAUD_RETURN_IF_ERROR(
          RuntimeAccess::ScorePreprocessed(*members_[i].runtime, x, rows, &scores[i * rows]));
    }
    constexpr double kTiny = 1e-9;
    constexpr double kDerivativeStep = 1e-4;
    std::vector<double> slope(n);
    for (size_t r = 0; r < rows; ++r) {
      double p = 0;
      double p0 = 0;
      for (size_t i = 0; i < n; ++i) {
        const RowExplanation& e = member[i * rows + r];
        const double s = Averaged(i, scores[i * rows + r]);
        const double s0 = Averaged(i, Sigmoid(e.bias));
        p += s / static_cast<double>(n);
        p0 += s0 / static_cast<double>(n);
        const double dm = e.margin - e.bias;
        slope[i] = std::abs(dm) > kTiny ? (s - s0) / dm
                                        : (Averaged(i, Sigmoid(e.bias + kDerivativeStep)) -
                                           Averaged(i, Sigmoid(e.bias - kDerivativeStep))) /
                                              (2 * kDerivativeStep);
        slope[i] /= static_cast<double>(n);
      }
      RowExplanation& o = out[r];
      o.margin = Logit(p);
      o.bias = Logit(p0);
      const double dp = p - p0;
      const double pc = std::clamp(p, kTiny, 1 - kTiny);
      const double logit_slope =
          std::abs(dp) > kTiny ? (o.margin - o.bias) / dp : 1.0 / (pc * (1.0 - pc));
      for (size_t j = 0; j < kNumFeatures; ++j) {
        double c = 0;
        for (size_t i = 0; i < n; ++i) c += slope[i] * member[i * rows + r].contributions[j];
        o.contributions[j] = logit_slope * c;
      }
      SpreadResidual(&o);
    }
    return absl::OkStatus();
  }

 private:
  static double Sigmoid(double margin) { return 1.0 / (1.0 + std::exp(-margin)); }
  // g_i(score): what the ensemble averages for member i's score, computed as ScorePreprocessed
  // does.
  double Averaged(size_t i, double score) const {
    const float s = static_cast<float>(score);
    return combine_ == Combine::kRank ? Rank(members_[i].knots, s) : s;
  }

  std::vector<Member> members_;
  Combine combine_;
};

// One trained member: the model, its validation probabilities and their figures.
struct TrainedMember {
  const Family* family = nullptr;
  std::unique_ptr<ModelRuntime> runtime;
  std::vector<float> validation_scores;
  SplitStats stats;
  double train_loss = 0;
};

absl::StatusOr<std::vector<const Family*>> MemberFamilies(const std::string& spec) {
  std::vector<const Family*> out;
  if (spec == "auto") {
    for (const Family& f : Families()) {
      if (!f.combines_families) out.push_back(&f);
    }
    return out;
  }
  for (absl::string_view name : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    FRAUD_ASSIGN_OR_RETURN(const Family* f, FindFamilyByName(std::string(name)));
    if (f->combines_families) {
      return absl::InvalidArgumentError(absl::StrCat("an ensemble cannot contain ", f->name));
    }
    out.push_back(f);
  }
  if (out.size() > kMaxMembers) {
    return absl::InvalidArgumentError(absl::StrCat("parameter members='", spec, "' names more than ",
                                                   kMaxMembers, " members"));
  }
  if (out.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter members='", spec, "' names fewer than two families"));
  }
  return out;
}

// `repeat` counts the earlier members of the same family: each repeat trains with its own seed
// (a bag of differently initialised and shuffled models of one family).
absl::StatusOr<TrainedMember> TrainMember(const TrainContext& ctx, const Family& family,
                                          int max_epochs, int repeat) {
  std::map<std::string, std::string> raw =
      family.default_grid.empty() ? std::map<std::string, std::string>()
                                  : family.default_grid.front();
  CapEpochs(family, max_epochs, &raw);
  TrainCallbacks callbacks;
  callbacks.cancel = ctx.callbacks->cancel;
  TrainContext member_ctx = ctx;
  member_ctx.seed = ctx.seed + static_cast<uint64_t>(repeat) * 1000003u;
  member_ctx.family = family.id;
  member_ctx.manifest.set_family(family.id);
  member_ctx.callbacks = &callbacks;
  Params params(raw);
  absl::StatusOr<FamilyResult> result = family.train(member_ctx, params);
  if (!result.ok()) return Annotate(result.status(), absl::StrCat("ensemble member ", family.name));
  TrainedMember m;
  m.family = &family;
  m.runtime = std::move(result->runtime);
  ModelManifest& manifest = RuntimeAccess::MutableManifest(*m.runtime);
  for (const auto& [k, v] : params.resolved()) (*manifest.mutable_params())[k] = v;
  (*manifest.mutable_params())["best_epoch"] = absl::StrCat(result->best_epoch);
  if (!result->curve.empty()) {
    const size_t best = static_cast<size_t>(std::max(result->best_epoch, 1)) - 1;
    m.train_loss = result->curve[std::min(best, result->curve.size() - 1)].train_loss;
  }
  const PreparedSplit& val = *ctx.validation;
  m.validation_scores.resize(val.rows);
  FRAUD_RETURN_IF_ERROR(RuntimeAccess::ScorePreprocessed(*m.runtime, val.x.data(), val.rows,
                                                         m.validation_scores.data()));
  m.stats = EvaluateProbabilities(m.validation_scores, val);
  return m;
}

std::vector<float> Combined(const std::vector<TrainedMember>& members,
                            const std::vector<std::vector<Knot>>& knots, Combine combine) {
  std::vector<float> out(members.front().validation_scores.size(), 0.0f);
  for (size_t i = 0; i < members.size(); ++i) {
    for (size_t r = 0; r < out.size(); ++r) {
      const float s = members[i].validation_scores[r];
      out[r] += combine == Combine::kRank ? Rank(knots[i], s) : s;
    }
  }
  for (float& v : out) v /= static_cast<float>(members.size());
  return out;
}

}  // namespace

absl::StatusOr<FamilyResult> TrainEnsemble(const TrainContext& ctx, Params& params) {
  const std::string members_spec = params.String("members", "auto");
  const std::string combine_spec = params.String("combine", "auto");
  const int max_member_epochs = params.Int("max_member_epochs", 0);
  FRAUD_RETURN_IF_ERROR(params.Finish());
  if (combine_spec != "auto" && combine_spec != "mean" && combine_spec != "rank") {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter combine='", combine_spec, "' is not auto, mean or rank"));
  }
  if (max_member_epochs < 0) {
    return absl::InvalidArgumentError("parameter max_member_epochs must be >= 0");
  }
  FRAUD_ASSIGN_OR_RETURN(std::vector<const Family*> families, MemberFamilies(members_spec));

  FamilyResult result;
  std::vector<TrainedMember> members;
  std::map<ModelFamily, int> repeats;
  for (const Family* family : families) {
    if (Cancelled(*ctx.callbacks)) return absl::CancelledError("training cancelled");
    FRAUD_ASSIGN_OR_RETURN(TrainedMember m,
                           TrainMember(ctx, *family, max_member_epochs, repeats[family->id]++));
    // One progress point per member: its validation figures.
    EpochProgress p{static_cast<int>(members.size()) + 1, m.train_loss, m.stats.loss,
                    m.stats.auprc};
    result.curve.push_back(p);
    if (ctx.callbacks->on_epoch) ctx.callbacks->on_epoch(p);
    members.push_back(std::move(m));
  }
  result.best_epoch = static_cast<int>(result.curve.size());
  if (members_spec == "auto") {
    // The best two by validation AUPRC; ties keep table order.
    std::stable_sort(members.begin(), members.end(),
                     [](const TrainedMember& a, const TrainedMember& b) {
                       return a.stats.auprc > b.stats.auprc;
                     });
    members.resize(std::min(members.size(), kMembersByDefault));
  }

  std::vector<std::vector<Knot>> knots;
  for (const TrainedMember& m : members) knots.push_back(BuildKnots(m.validation_scores));
  Combine combine = combine_spec == "rank" ? Combine::kRank : Combine::kMean;
  if (combine_spec == "auto") {
    const double mean = EvaluateProbabilities(Combined(members, knots, Combine::kMean),
                                              *ctx.validation).auprc;
    const double rank = EvaluateProbabilities(Combined(members, knots, Combine::kRank),
                                              *ctx.validation).auprc;
    combine = rank > mean ? Combine::kRank : Combine::kMean;
  }

  std::vector<std::string> names;
  std::vector<Member> runtimes;
  for (size_t i = 0; i < members.size(); ++i) {
    names.push_back(members[i].family->name);
    Member m;
    m.runtime = std::move(members[i].runtime);
    if (combine == Combine::kRank) m.knots = std::move(knots[i]);
    runtimes.push_back(std::move(m));
  }
  // The manifest records what was built, not "auto".
  params.SetResolved("members", absl::StrJoin(names, ","));
  params.SetResolved("combine", combine == Combine::kRank ? "rank" : "mean");
  result.runtime = std::make_unique<EnsembleRuntime>(ctx.manifest, ctx.preprocessor,
                                                     std::move(runtimes), combine);
  return result;
}

absl::StatusOr<std::unique_ptr<ModelRuntime>> LoadEnsemble(ModelManifest manifest,
                                                          Preprocessor preprocessor,
                                                          const std::vector<WeightFile>& files,
                                                          const LoadOptions& options) {
  auto param = [&](const char* key) -> absl::StatusOr<std::string> {
    auto it = manifest.params().find(key);
    if (it == manifest.params().end()) {
      return absl::InvalidArgumentError(absl::StrCat("ensemble manifest lacks params.", key));
    }
    return it->second;
  };
  FRAUD_ASSIGN_OR_RETURN(std::string members_spec, param("members"));
  FRAUD_ASSIGN_OR_RETURN(std::string combine_spec, param("combine"));
  if (combine_spec != "mean" && combine_spec != "rank") {
    return absl::InvalidArgumentError(
        absl::StrCat("ensemble manifest has bad params.combine '", combine_spec, "'"));
  }
  const Combine combine = combine_spec == "rank" ? Combine::kRank : Combine::kMean;
  if (members_spec == "auto") {
    return absl::InvalidArgumentError("ensemble manifest must name its members");
  }
  FRAUD_ASSIGN_OR_RETURN(std::vector<const Family*> families, MemberFamilies(members_spec));

  std::vector<Member> members;
  for (size_t i = 0; i < families.size(); ++i) {
    const std::string prefix = MemberFile(i, "");
    const std::string own_manifest = MemberFile(i, kManifestFileName);
    const std::string reference = MemberFile(i, "rank_reference.bin");
    const WeightFile* manifest_file = nullptr;
    const WeightFile* reference_file = nullptr;
    std::vector<WeightFile> own;
    for (const WeightFile& f : files) {
      if (f.name == own_manifest) {
        manifest_file = &f;
      } else if (f.name == reference) {
        reference_file = &f;
      } else if (absl::StartsWith(f.name, prefix)) {
        own.push_back({f.name.substr(prefix.size()), f.bytes});
      }
    }
    if (manifest_file == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("ensemble artifact lacks ", own_manifest));
    }
    FRAUD_ASSIGN_OR_RETURN(ModelManifest member, ParseManifestText(manifest_file->bytes,
                                                                   own_manifest));
    if (member.family() != families[i]->id) {
      return absl::InvalidArgumentError(absl::StrCat(own_manifest, " is a ",
                                                     FamilyName(member.family()),
                                                     " model, params.members says ",
                                                     families[i]->name));
    }
    // A member scores the ensemble's preprocessed input: it shares features and preprocessing.
    *member.mutable_feature_names() = manifest.feature_names();
    *member.mutable_preprocessing() = manifest.preprocessing();
    Member m;
    absl::StatusOr<std::unique_ptr<ModelRuntime>> runtime =
        families[i]->load(std::move(member), preprocessor, own, options);
    if (!runtime.ok()) {
      return Annotate(runtime.status(),
                      absl::StrCat("ensemble member ", i, " (", families[i]->name, ")"));
    }
    m.runtime = std::move(*runtime);
    if (combine == Combine::kRank) {
      if (reference_file == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("ensemble artifact lacks ", reference));
      }
      FRAUD_ASSIGN_OR_RETURN(m.knots, KnotsFromBytes(reference, reference_file->bytes));
    }
    members.push_back(std::move(m));
  }
  return std::unique_ptr<ModelRuntime>(
      new EnsembleRuntime(std::move(manifest), preprocessor, std::move(members), combine));
}

}  // namespace fraud::model::internal
