#include "services/storage/validation.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace fraud::storage {
namespace {

using fraud::common::v1::ScoreBatch;
using fraud::common::v1::TransactionBatch;

constexpr size_t kMaxFileNameBytes = 1024;

using ::fraud::layout::FeatureName;

}  // namespace

absl::Status ValidateTransactionBatch(const TransactionBatch& batch) {
  const int64_t n = batch.num_rows();
  if (static_cast<int64_t>(batch.features_size()) != n * kNumFeatures) {
    return absl::InvalidArgumentError(absl::StrCat("rows: features has ", batch.features_size(),
                                                   " values, want num_rows*30 = ",
                                                   n * kNumFeatures));
  }
  if (batch.labels_size() != 0 && batch.labels_size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("rows: labels has ", batch.labels_size(),
                                                   " values, want 0 or num_rows = ", n));
  }
  if (batch.line_numbers_size() != 0 && batch.line_numbers_size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("rows: line_numbers has ",
                                                   batch.line_numbers_size(),
                                                   " values, want 0 or num_rows = ", n));
  }
  if (batch.upload_ids_size() != 0) {
    return absl::InvalidArgumentError("rows: upload_ids must be empty (storage assigns them)");
  }
  const double* f = batch.features().data();
  for (int64_t r = 0; r < n; ++r) {
    for (int c = 0; c < kNumFeatures; ++c) {
      const double v = f[r * kNumFeatures + c];
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("rows: row ", r, " ", FeatureName(c), " is not finite"));
      }
    }
    if (f[r * kNumFeatures] < 0 || f[r * kNumFeatures + kNumFeatures - 1] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("rows: row ", r, " has a negative Time or Amount"));
    }
  }
  for (int i = 0; i < batch.labels_size(); ++i) {
    if (batch.labels(i) != 0 && batch.labels(i) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("rows: row ", i, " label is ", batch.labels(i), ", want 0 or 1"));
    }
  }
  for (int i = 0; i < batch.line_numbers_size(); ++i) {
    if (batch.line_numbers(i) <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("rows: row ", i, " line number ", batch.line_numbers(i), " is not positive"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateScoreBatch(const ScoreBatch& scores, int64_t num_rows) {
  if (scores.scores_size() != num_rows) {
    return absl::InvalidArgumentError(absl::StrCat("scores: has ", scores.scores_size(),
                                                   " scores for ", num_rows, " rows"));
  }
  if (scores.decisions_size() != num_rows) {
    return absl::InvalidArgumentError(absl::StrCat("scores: has ", scores.decisions_size(),
                                                   " decisions for ", num_rows, " rows"));
  }
  if (scores.model_version() <= 0) {
    return absl::InvalidArgumentError("scores: model_version must be positive");
  }
  for (int i = 0; i < scores.scores_size(); ++i) {
    const float s = scores.scores(i);
    if (!std::isfinite(s) || s < 0 || s > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("scores: score of row ", i, " is ", s, ", want a value in [0, 1]"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSha256(const std::string& sha256, std::string* normalized) {
  if (sha256.size() != 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("sha256 must be 64 hex digits, got ", sha256.size(), " characters"));
  }
  std::string out = sha256;
  for (char& c : out) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return absl::InvalidArgumentError("sha256 must be 64 hex digits");
    }
  }
  if (normalized != nullptr) *normalized = std::move(out);
  return absl::OkStatus();
}

absl::Status ValidateUploadBegin(const fraud::storage::v1::UploadBegin& begin) {
  if (!fraud::storage::v1::UploadMode_IsValid(begin.mode())) {
    return absl::InvalidArgumentError(absl::StrCat("begin: unknown mode ", begin.mode()));
  }
  if (begin.mode() == fraud::storage::v1::UPLOAD_MODE_LIVE) {
    return absl::InvalidArgumentError(
        "begin: mode UPLOAD_MODE_LIVE is reserved for live scoring (RecordScoredTransactions)");
  }
  if (begin.file_name().size() > kMaxFileNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("begin: file_name longer than ", kMaxFileNameBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateUploadCommit(const fraud::storage::v1::UploadCommit& commit,
                                  fraud::storage::v1::UploadMode mode) {
  if (absl::Status s = ValidateSha256(commit.sha256(), nullptr); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("commit: ", s.message()));
  }
  if (commit.rows_rejected() < 0 || commit.bytes() < 0) {
    return absl::InvalidArgumentError("commit: rows_rejected and bytes must not be negative");
  }
  if (commit.rows_rejected() > 0 && mode != fraud::storage::v1::UPLOAD_MODE_LENIENT) {
    return absl::InvalidArgumentError("commit: rows_rejected > 0 is only possible in lenient mode");
  }
  if (!commit.summary_json().empty() && !nlohmann::json::accept(commit.summary_json())) {
    return absl::InvalidArgumentError("commit: summary_json is not valid JSON");
  }
  return absl::OkStatus();
}

namespace {
constexpr size_t kMaxSourceChars = 64;
constexpr size_t kMaxNoteBytes = 1000;

bool IsSourceChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}
}  // namespace

std::optional<std::string> CheckTransactionId(const std::string& id) {
  if (id.empty()) return "empty";
  if (id.size() > kMaxTransactionIdBytes) {
    return absl::StrCat("longer than ", kMaxTransactionIdBytes, " bytes");
  }
  if (id.find('\0') != std::string::npos) return "contains a NUL byte";
  return std::nullopt;
}

std::optional<FieldProblem> CheckLabelFeedback(const fraud::storage::v1::LabelFeedback& f) {
  const bool by_id = !f.transaction_id().empty();
  const bool by_line = f.upload_id() != 0 || f.line() != 0;
  if (by_id && by_line) {
    return FieldProblem{"transaction_id", "give either transaction_id or upload_id and line"};
  }
  if (!by_id && !by_line) {
    return FieldProblem{"upload_id", "missing: give upload_id and line, or transaction_id"};
  }
  if (by_id) {
    if (std::optional<std::string> reason = CheckTransactionId(f.transaction_id())) {
      return FieldProblem{"transaction_id", *std::move(reason)};
    }
  } else {
    if (f.upload_id() <= 0) {
      return FieldProblem{"upload_id", absl::StrCat("must be > 0 (got ", f.upload_id(), ")")};
    }
    if (f.line() <= 0) return FieldProblem{"line", absl::StrCat("must be > 0 (got ", f.line(), ")")};
  }
  if (f.label() != 0 && f.label() != 1) {
    return FieldProblem{"label", absl::StrCat("must be 0 or 1 (got ", f.label(), ")")};
  }
  if (f.source().size() > kMaxSourceChars ||
      !std::all_of(f.source().begin(), f.source().end(), IsSourceChar)) {
    return FieldProblem{"source", absl::StrCat("must be 1-", kMaxSourceChars,
                                               " characters of [a-z0-9_-] (or empty)")};
  }
  if (f.note().size() > kMaxNoteBytes) {
    return FieldProblem{"note", absl::StrCat("longer than ", kMaxNoteBytes, " bytes")};
  }
  if (f.note().find('\0') != std::string::npos) return FieldProblem{"note", "contains a NUL byte"};
  if (f.has_at() && (f.at().seconds() < 0 || f.at().nanos() < 0 || f.at().nanos() > 999999999 ||
                     f.at().seconds() > 253402300799)) {
    return FieldProblem{"at", "must be a valid time between 1970 and 9999"};
  }
  return std::nullopt;
}

}  // namespace fraud::storage
