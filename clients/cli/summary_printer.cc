#include "clients/cli/summary_printer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "clients/cli/format.h"
#include "google/protobuf/util/json_util.h"

namespace fraud::cli {
namespace {

using ingest::v1::UploadSummary;

const char* ModeName(storage::v1::UploadMode mode) {
  return mode == storage::v1::UPLOAD_MODE_LENIENT ? "lenient" : "strict";
}

void PrintErrors(const UploadSummary& s, std::ostream& out) {
  if (s.errors_size() == 0) return;
  out << "\nErrors";
  if (s.errors_truncated()) out << " (first " << s.errors_size() << ")";
  out << ":\n";
  out << absl::StrFormat("  %-8s %-10s %s\n", "line", "column", "reason");
  for (const auto& e : s.errors()) {
    std::string column = e.column();
    if (column.empty() && e.column_index() > 0) column = absl::StrCat("#", e.column_index());
    if (column.empty()) column = "-";
    out << absl::StrFormat("  %-8s %-10s %s\n", e.line() > 0 ? absl::StrCat(e.line()) : "file",
                           column, e.reason());
  }
}

// The model's alert budgets on this upload, beside their validation figures.
void PrintBudgets(const UploadSummary& s, std::ostream& out) {
  if (s.budgets_size() == 0) return;
  out << "\nAlert budgets of model v" << s.model_version() << " on this upload:\n";
  out << absl::StrFormat("  %-8s %-10s %-16s %-22s %s\n", "budget", "threshold", "alerts here",
                         "here: precision/recall", "validation: precision/recall");
  for (const ingest::v1::BudgetOutcome& b : s.budgets()) {
    const std::string here =
        b.labelled() ? absl::StrFormat("%.3f / %.3f", b.precision(), b.recall()) : "unlabelled";
    out << absl::StrFormat("  %-8s %-10.4f %-16s %-22s %.3f / %.3f\n",
                           Percent(b.alert_fraction()), b.threshold(),
                           absl::StrCat(WithThousands(b.alerts()), " (",
                                        Percent(b.alert_rate()), ")"),
                           here, b.validation_precision(), b.validation_recall());
  }
}

void PrintMetrics(const UploadSummary& s, std::ostream& out) {
  if (!s.has_metrics()) return;
  const auto& m = s.metrics();
  out << absl::StrFormat("\nMetrics on %s labelled rows (%s frauds), threshold %.4f:\n",
                         WithThousands(m.rows()), WithThousands(m.positives()), m.threshold());
  if (m.single_class()) {
    out << "  AUPRC n/a, ROC-AUC n/a (the labels hold one class only)\n";
  } else {
    out << absl::StrFormat("  AUPRC %.4f", m.auprc());
    if (m.auprc_ci_high() > 0) {
      out << absl::StrFormat(" (95%% CI %.4f-%.4f)", m.auprc_ci_low(), m.auprc_ci_high());
    }
    out << absl::StrFormat("   ROC-AUC %.4f\n", m.roc_auc());
  }
  out << absl::StrFormat("  precision %.4f  recall %.4f  F1 %.4f  accuracy %.5f\n", m.precision(),
                         m.recall(), m.f1(), m.accuracy());
  out << absl::StrFormat("  confusion: TP %d  FP %d  TN %d  FN %d\n",
                         m.confusion().true_positives(), m.confusion().false_positives(),
                         m.confusion().true_negatives(), m.confusion().false_negatives());
  if (m.precision_at_k_size() > 0) {
    std::vector<std::string> parts;
    for (const auto& p : m.precision_at_k()) {
      parts.push_back(absl::StrFormat("@%d %.3f", p.k(), p.precision()));
    }
    out << "  precision among the top: " << absl::StrJoin(parts, "  ") << "\n";
  }
}

void PrintTop(const UploadSummary& s, std::ostream& out) {
  if (s.top_suspicious_size() == 0) return;
  out << "\nMost suspicious rows:\n";
  out << absl::StrFormat("  %-8s %-8s %-6s %-10s %s\n", "line", "score", "label", "time", "amount");
  for (const auto& r : s.top_suspicious()) {
    out << absl::StrFormat("  %-8d %-8.4f %-6s %-10.0f %.2f\n", r.line(), r.score(),
                           r.label() < 0 ? "-" : absl::StrCat(r.label()), r.time(), r.amount());
  }
}

void PrintReport(const UploadSummary& s, std::ostream& out) {
  const auto& r = s.report();
  if (r.rows() == 0) return;
  out << "\nData report:\n";
  if (r.labelled_rows() > 0) {
    out << "  frauds " << WithThousands(r.frauds()) << " of " << WithThousands(r.labelled_rows())
        << " (" << Percent(r.fraud_rate()) << ")\n";
  } else {
    out << "  unlabelled (no Class column)\n";
  }
  out << absl::StrFormat("  Time %.0f..%.0f s, %s\n", r.time_min(), r.time_max(),
                         r.time_monotonic()
                             ? "in order"
                             : absl::StrCat("not in order (", r.time_decreases(), " decreases)"));
  out << absl::StrFormat("  Amount mean %.2f, max %.2f\n", r.amount_mean(), r.amount_max());
  if (r.drift_size() > 0) {
    std::vector<const ingest::v1::FeatureDrift*> flagged;
    for (const auto& d : r.drift()) {
      if (d.flagged()) flagged.push_back(&d);
    }
    std::sort(flagged.begin(), flagged.end(),
              [](const auto* a, const auto* b) { return a->psi() > b->psi(); });
    out << "  drift vs the model's training data: " << r.drift_flagged() << " of " << r.drift_size()
        << " features flagged (PSI >= 0.25)";
    std::vector<std::string> names;
    for (const auto* d : flagged)
      names.push_back(absl::StrFormat("%s %.2f", d->feature(), d->psi()));
    if (!names.empty()) out << ": " << absl::StrJoin(names, ", ");
    out << "\n";
  }
}

}  // namespace

void PrintSummary(const UploadSummary& s, SummaryKind kind, std::ostream& out) {
  const std::string name = s.file_name().empty() ? "upload" : s.file_name();
  switch (kind) {
    case SummaryKind::kUpload:
      if (s.duplicate_of() != 0) {
        out << name << ": already uploaded as upload #" << s.duplicate_of()
            << " (same content); nothing new stored\n";
      } else {
        out << name << ": stored as upload #" << s.upload_id() << " ("
            << WithThousands(s.rows_accepted()) << " rows, " << ModeName(s.mode()) << ", "
            << HumanBytes(s.bytes()) << absl::StrFormat(" in %.1f s", s.elapsed_seconds()) << ")\n";
      }
      break;
    case SummaryKind::kValidation:
      out << name << ": " << (s.rows_rejected() == 0 ? "valid" : "invalid rows found") << " ("
          << HumanBytes(s.bytes()) << ", " << ModeName(s.mode()) << ")\n";
      break;
    case SummaryKind::kFailure:
      out << name << ": rejected, nothing stored (" << ModeName(s.mode()) << ", "
          << HumanBytes(s.bytes()) << " read)\n";
      break;
  }
  if (kind == SummaryKind::kFailure) {
    out << "  rows: " << WithThousands(s.rows_total()) << " read before stopping, "
        << WithThousands(s.rows_accepted()) << " valid, " << WithThousands(s.rows_rejected())
        << " rejected\n";
  } else {
    out << "  rows: " << WithThousands(s.rows_total()) << " read, "
        << WithThousands(s.rows_accepted()) << " accepted, " << WithThousands(s.rows_rejected())
        << " rejected\n";
  }
  if (!s.sha256().empty()) out << "  sha256: " << s.sha256() << "\n";
  if (kind == SummaryKind::kUpload && s.duplicate_of() == 0) {
    if (s.scored()) {
      out << "  scored by model v" << s.model_version() << ": "
          << WithThousands(s.predicted_frauds()) << " rows flagged as fraud\n";
      if (!s.scoring_message().empty()) out << "  note: " << s.scoring_message() << "\n";
    } else {
      out << "  not scored: " << s.scoring_message() << "\n";
    }
  }
  PrintErrors(s, out);
  PrintMetrics(s, out);
  PrintBudgets(s, out);
  PrintTop(s, out);
  PrintReport(s, out);
}

std::string SummaryJson(const UploadSummary& summary) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  if (!google::protobuf::util::MessageToJsonString(summary, &json, options).ok()) return "{}\n";
  if (json.empty() || json.back() != '\n') json += '\n';
  return json;
}

}  // namespace fraud::cli
