// fraudctl models: the model registry (storage ListModels) and which version is champion.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "clients/cli/cli_rpc.h"
#include "clients/cli/format.h"
#include "clients/cli/flag_parser.h"
#include "clients/cli/rpc_commands.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "services/common/rpc/artifact_transfer.h"
#include "google/protobuf/util/json_util.h"

namespace fraud::cli {
namespace {

// "logreg", "mlp", ...: the enum's own name without its prefix, which is how the family table
// (services/common/model/families.cc) names every family; this binary does not link that
// library, and needs no change when a family is added.
std::string FamilyName(common::v1::ModelFamily family) {
  const std::string& name = common::v1::ModelFamily_Name(family);
  if (name.empty()) return "?";
  return absl::AsciiStrToLower(absl::StripPrefix(name, "MODEL_FAMILY_"));
}

}  // namespace

int RunModels(const std::vector<std::string>& args, CommandIo& io) {
  bool json = false;
  int64_t download = 0;
  std::string out_dir = ".";
  ConnectionFlags conn;
  FlagSet flags("models",
                "Usage: fraudctl models [--json] [--target host:port]\n"
                "       fraudctl models --download VERSION [--out DIR]\n\n"
                "Lists the registered model versions (oldest first) from the storage service, the\n"
                "champion marked with '*', with their validation and comparison AUPRC.\n"
                "--download fetches a version's artifact (manifest and weights) from the registry\n"
                "into DIR/VERSION, every file checked against the registry's sha256.");
  flags.Bool("json", &json, "print the storage service's ListModels response as JSON");
  flags.Int64("download", &download, "version whose artifact to download");
  flags.String("out", &out_dir, "directory to download into (default .)");
  conn.Register(&flags, Service::kStorage);
  absl::Status parsed = flags.Parse(args);
  if (parsed.ok() && flags.help_requested()) {
    io.out << flags.Usage();
    return kExitOk;
  }
  if (parsed.ok() && !flags.positional().empty()) {
    parsed = absl::InvalidArgumentError("models: unexpected argument '" +
                                        flags.positional().front() + "'");
  }
  if (!parsed.ok()) {
    io.err << parsed.message() << "\n\n" << flags.Usage();
    return kExitUsage;
  }

  auto stub = storage::v1::StorageService::NewStub(conn.Channel());
  if (download != 0) {
    const int64_t version = download;
    if (version < 0) {
      io.err << "models: --download needs a positive version, got " << version << "\n";
      return kExitUsage;
    }
    absl::StatusOr<std::string> dir = rpc::FetchModelArtifact(
        *stub, version, out_dir, absl::Seconds(std::max(conn.timeout_seconds, 1.0)));
    if (!dir.ok()) {
      io.err << "fraudctl models: " << dir.status().message() << "\n";
      return kExitFailure;
    }
    io.out << "model version " << version << " downloaded to " << *dir << "\n";
    return kExitOk;
  }
  storage::v1::ListModelsResponse models;
  {
    std::unique_ptr<grpc::ClientContext> ctx = conn.Context();
    const grpc::Status s = stub->ListModels(ctx.get(), storage::v1::ListModelsRequest(), &models);
    if (!s.ok()) {
      io.err << "fraudctl models: " << DescribeRpcError(s, conn.target) << "\n";
      return kExitFailure;
    }
  }
  storage::v1::GetChampionResponse champion;
  {
    std::unique_ptr<grpc::ClientContext> ctx = conn.Context();
    const grpc::Status s =
        stub->GetChampion(ctx.get(), storage::v1::GetChampionRequest(), &champion);
    if (!s.ok()) {
      io.err << "fraudctl models: " << DescribeRpcError(s, conn.target) << "\n";
      return kExitFailure;
    }
  }
  const int64_t champion_version = champion.has_model() ? champion.model().version() : 0;
  if (json) {
    std::string out;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    (void)google::protobuf::util::MessageToJsonString(models, &out, options);
    io.out << "{\"championVersion\": " << champion_version << ", \"registry\": " << out << "}\n";
    return kExitOk;
  }
  if (models.models_size() == 0) {
    io.out << "no model registered yet\n";
    return kExitOk;
  }
  io.out << absl::StrFormat("  %-8s %-14s %-20s %-10s %-10s %-10s %s\n", "version", "family",
                            "created (UTC)", "val AUPRC", "cmp AUPRC", "threshold", "run");
  std::vector<const storage::v1::ModelVersion*> sorted;
  for (const auto& m : models.models()) sorted.push_back(&m);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->version() < b->version(); });
  for (const storage::v1::ModelVersion* mp : sorted) {
    const storage::v1::ModelVersion& m = *mp;
    const bool is_champion = m.version() == champion_version || m.is_champion();
    io.out << absl::StrFormat(
        "%s %-8d %-14s %-20s %-10s %-10s %-10.4f %d\n", is_champion ? "*" : " ", m.version(),
        FamilyName(m.family()), UtcTime(m.created_at()),
        AuprcText(m.manifest().validation_metrics()), AuprcText(m.manifest().comparison_metrics()),
        m.manifest().threshold(), m.run_id());
  }
  if (champion_version == 0) {
    io.out << "no champion yet\n";
  } else {
    io.out << "champion: v" << champion_version << " since " << UtcTime(champion.since()) << "\n";
  }
  // The operating points of the champion (else the newest version), on its validation rows.
  const storage::v1::ModelVersion* shown = sorted.back();
  for (const storage::v1::ModelVersion* mp : sorted) {
    if (mp->version() == champion_version) shown = mp;
  }
  const common::v1::ModelManifest& man = shown->manifest();
  io.out << "operating points of v" << shown->version() << " (validation rows):\n";
  io.out << absl::StrFormat("  %-22s threshold %-8.4f precision %-7.4f recall %.4f\n",
                            "F1-optimal (serving)", man.threshold(),
                            man.validation_metrics().precision(), man.validation_metrics().recall());
  for (const common::v1::BudgetThreshold& b : man.budget_thresholds()) {
    io.out << absl::StrFormat("  %-22s threshold %-8.4f precision %-7.4f recall %.4f (%d alerts)\n",
                              absl::StrCat("top ", Percent(b.alert_fraction()), " alerts"),
                              b.threshold(), b.precision(), b.recall(), b.alerts());
  }
  return kExitOk;
}

}  // namespace fraud::cli
