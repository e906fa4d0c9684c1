#include "services/storage/live_scoring.h"

#include <pqxx/pqxx>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "services/common/core/status_macros.h"
#include "services/storage/explanation_store.h"
#include "services/storage/pg_copy.h"
#include "services/storage/pg_util.h"
#include "services/storage/storage_metrics.h"
#include "services/storage/validation.h"

namespace fraud::storage {
namespace {

namespace v1 = ::fraud::storage::v1;

// The live upload is found (and locked, which serializes live-scoring writes so two requests
// naming the same ids in different orders cannot deadlock on the transaction_id index), or
// created by the first call. ON CONFLICT covers two first calls racing.
constexpr char kLockLiveUpload[] =
    "SELECT id FROM uploads WHERE mode = 3 AND status = 1 FOR UPDATE";
constexpr char kCreateLiveUpload[] =
    "INSERT INTO uploads (sha256, file_name, mode, status, committed_at)"
    " VALUES (repeat('0', 64), 'live scoring', 3, 1, now()) ON CONFLICT DO NOTHING";
// $1 live upload, $2 ids text[], $3 features float8[] (30 per row, row-major). Rows whose id is
// stored already are skipped (checked against their stored features afterwards).
constexpr char kInsertNewRows[] =
    "INSERT INTO transactions (upload_id, line, time, amount, v, transaction_id)"
    " SELECT $1, nextval('live_scoring_line_seq'), a.f[(u.i - 1) * 30 + 1], a.f[u.i * 30],"
    " pack_v(a.f[(u.i - 1) * 30 + 2 : u.i * 30 - 1]), u.tid"
    " FROM unnest($2::text[]) WITH ORDINALITY AS u(tid, i), (SELECT $3::float8[] AS f) a"
    " WHERE NOT EXISTS (SELECT 1 FROM transactions t WHERE t.transaction_id = u.tid)"
    " ORDER BY u.i RETURNING time";
// $1 live upload, $2 rows added, $3/$4 their Time range, $5 the scoring model version.
constexpr char kGrowLiveUpload[] =
    "UPDATE uploads SET rows = rows + $2,"
    " time_min = CASE WHEN $2 = 0 THEN time_min WHEN rows = 0 THEN $3 ELSE least(time_min, $3) END,"
    " time_max = CASE WHEN $2 = 0 THEN time_max WHEN rows = 0 THEN $4"
    " ELSE greatest(time_max, $4) END,"
    " model_version = $5 WHERE id = $1";
// Every requested id's stored row, in request order (1-based ordinality).
constexpr char kStoredRows[] =
    "SELECT u.i, t.line, t.time, t.amount, t.v"
    " FROM unnest($1::text[]) WITH ORDINALITY AS u(tid, i)"
    " JOIN transactions t ON t.transaction_id = u.tid ORDER BY u.i";
// $1 ids, $2 scores, $3 decisions, $4 model version, $5 scored_at in us (0 = now).
constexpr char kUpsertPredictions[] =
    "INSERT INTO predictions (upload_id, line, model_version, score, decision, scored_at)"
    " SELECT t.upload_id, t.line, $4, u.score, u.decision,"
    " COALESCE(" FRAUD_TS_FROM_US("$5") ", now())"
    " FROM unnest($1::text[], $2::real[], $3::boolean[]) AS u(tid, score, decision)"
    " JOIN transactions t ON t.transaction_id = u.tid"
    " ON CONFLICT (upload_id, model_version, line) DO UPDATE SET score = EXCLUDED.score,"
    " decision = EXCLUDED.decision, scored_at = EXCLUDED.scored_at";

// Whether the stored row (time, amount, v as bytea text) holds exactly the features of request row r.
absl::StatusOr<bool> SameFeatures(const pqxx::row& stored, const double* f) {
  FRAUD_ASSIGN_OR_RETURN(const double time, ParseDouble(stored[2].c_str()));
  FRAUD_ASSIGN_OR_RETURN(const double amount, ParseDouble(stored[3].c_str()));
  google::protobuf::RepeatedField<double> v;
  FRAUD_RETURN_IF_ERROR(ParseFloat8Bytes(stored[4].c_str(), kNumV, &v));
  return time == f[0] && amount == f[kNumFeatures - 1] &&
         std::equal(v.begin(), v.end(), f + 1);
}

}  // namespace

absl::Status ValidateRecordScoredTransactions(const v1::RecordScoredTransactionsRequest& req) {
  const int64_t n = req.rows().num_rows();
  if (n > kMaxScoredRowsPerRequest) {
    return absl::InvalidArgumentError(absl::StrCat("rows: ", n, " rows, at most ",
                                                   kMaxScoredRowsPerRequest, " per request"));
  }
  FRAUD_RETURN_IF_ERROR(ValidateTransactionBatch(req.rows()));
  if (req.rows().labels_size() != 0 || req.rows().line_numbers_size() != 0) {
    return absl::InvalidArgumentError(
        "rows: labels and line_numbers must be empty (scored rows are unlabelled; storage "
        "assigns the lines)");
  }
  if (req.transaction_ids_size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("transaction_ids: has ",
                                                   req.transaction_ids_size(), " ids for ", n,
                                                   " rows, want exactly one per row"));
  }
  absl::flat_hash_map<absl::string_view, int> first_row;
  for (int i = 0; i < req.transaction_ids_size(); ++i) {
    const std::string& id = req.transaction_ids(i);
    if (std::optional<std::string> reason = CheckTransactionId(id)) {
      return absl::InvalidArgumentError(absl::StrCat("transaction_ids: row ", i, ": ", *reason));
    }
    auto [it, inserted] = first_row.emplace(id, i);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat("transaction_ids: row ", i,
                                                     " repeats the id of row ", it->second));
    }
  }
  FRAUD_RETURN_IF_ERROR(ValidateScoreBatch(req.scores(), n));
  FRAUD_RETURN_IF_ERROR(ValidateRowExplanations(req.explanations(), req.rows(), &req.scores()));
  if (req.has_scored_at() && (req.scored_at().seconds() < 0 || req.scored_at().nanos() < 0 ||
                              req.scored_at().nanos() > 999999999)) {
    return absl::InvalidArgumentError("scored_at: not a valid time after 1970");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::RecordScoredTransactionsResponse> RecordScoredTransactions(
    PgPool& pool, const v1::RecordScoredTransactionsRequest& req) {
  FRAUD_RETURN_IF_ERROR(ValidateRecordScoredTransactions(req));
  const int n = static_cast<int>(req.rows().num_rows());
  const std::string ids = QuotedArrayLiteral(req.transaction_ids());
  const std::string features = ArrayLiteral(req.rows().features(), DoubleLiteral);
  const std::string scores = ArrayLiteral(req.scores().scores(), FloatLiteral);
  const std::string decisions =
      ArrayLiteral(req.scores().decisions(), [](bool d) { return std::string(d ? "t" : "f"); });
  const int64_t version = req.scores().model_version();
  const int64_t scored_at_us = req.has_scored_at() ? TimestampToUs(req.scored_at()) : 0;

  v1::RecordScoredTransactionsResponse out;
  FRAUD_RETURN_IF_ERROR(Transact(pool, [&](pqxx::work& txn) -> absl::Status {
    out.Clear();
    pqxx::result live = txn.exec(kLockLiveUpload);
    if (live.empty()) {
      txn.exec(kCreateLiveUpload);
      live = txn.exec(kLockLiveUpload);
    }
    const int64_t upload_id = live[0][0].as<int64_t>();
    out.set_upload_id(upload_id);
    if (n == 0) return absl::OkStatus();

    pqxx::result added = txn.exec_params(kInsertNewRows, upload_id, ids, features);
    double time_min = 0;
    double time_max = 0;
    for (size_t i = 0; i < added.size(); ++i) {
      const double t = added[i][0].as<double>();
      time_min = i == 0 ? t : std::min(time_min, t);
      time_max = i == 0 ? t : std::max(time_max, t);
    }
    const auto stored = static_cast<int64_t>(added.size());
    txn.exec_params(kGrowLiveUpload, upload_id, stored, time_min, time_max, version);

    pqxx::result rows = txn.exec_params(kStoredRows, ids);
    if (rows.size() != static_cast<size_t>(n)) {
      return absl::InternalError(absl::StrCat("live scoring: ", rows.size(), " of ", n,
                                              " transaction ids found after storing them"));
    }
    const double* f = req.rows().features().data();
    for (const pqxx::row& row : rows) {
      const int i = row[0].as<int>() - 1;
      FRAUD_ASSIGN_OR_RETURN(const bool same, SameFeatures(row, f + i * kNumFeatures));
      if (!same) {
        return absl::AlreadyExistsError(absl::StrCat(
            "transaction_ids: row ", i, ": transaction_id \"", req.transaction_ids(i),
            "\" is already stored (upload ", upload_id, ", line ", row[1].as<int64_t>(),
            ") with different features; nothing was stored"));
      }
      out.add_lines(row[1].as<int64_t>());
    }
    txn.exec_params(kUpsertPredictions, ids, scores, decisions, version, scored_at_us);
    out.set_explanations_stored(InsertExplanations(
        txn, req.explanations(), upload_id, std::vector<int64_t>(out.lines().begin(), out.lines().end()),
        version, scored_at_us));
    out.set_stored(stored);
    out.set_already_stored(n - stored);
    return absl::OkStatus();
  }));
  Metrics().rows_transactions->Increment(static_cast<double>(out.stored()));
  Metrics().rows_predictions->Increment(static_cast<double>(n));
  return out;
}

}  // namespace fraud::storage
