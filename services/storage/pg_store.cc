#include "services/storage/pg_store.h"

#include <algorithm>
#include <cmath>
#include <pqxx/pqxx>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/core/status_macros.h"
#include "services/storage/explanation_store.h"
#include "services/storage/pg_copy.h"
#include "services/storage/pg_errors.h"
#include "services/storage/pg_util.h"
#include "services/storage/storage_metrics.h"
#include "services/storage/upload_record.h"
#include "services/storage/validation.h"

namespace fraud::storage {
namespace {

using fraud::common::v1::TransactionBatch;

constexpr int kDefaultListPage = 50;
constexpr int kMaxListPage = 500;
constexpr int kDefaultScanBatch = 8192;
constexpr int kMaxScanBatch = 65536;
constexpr int kDefaultPredictionPage = 100;
constexpr int kMaxPredictionPage = 1000;
// Second key of the advisory lock that serializes champion changes (first: schema name hash).
constexpr int kChampionLockKey = 0x63686d70;  // "chmp"

// ---- uploads ----

constexpr char kSelectUpload[] =
    "SELECT " FRAUD_UPLOAD_COLUMNS " FROM uploads WHERE id = $1 AND status = 1";
constexpr char kListUploads[] =
    "SELECT " FRAUD_UPLOAD_COLUMNS " FROM uploads"
    " WHERE status = 1 AND ($1::bigint = 0 OR id < $1::bigint) ORDER BY id DESC LIMIT $2";
constexpr char kDataStats[] =
    "SELECT count(*), COALESCE(sum(rows), 0), COALESCE(sum(labelled_rows), 0),"
    " COALESCE(sum(frauds), 0), (SELECT COALESCE(max(id), 0) FROM uploads WHERE status = 1)"
    " FROM uploads WHERE status = 1 AND id > $1";

// ---- predictions ----

constexpr char kUploadModelVersion[] =
    "SELECT model_version FROM uploads WHERE id = $1 AND status = 1";
constexpr char kUpsertPredictions[] =
    "INSERT INTO predictions (upload_id, line, model_version, score, decision)"
    " SELECT $1, u.line, $2, u.score, u.decision"
    " FROM unnest($3::bigint[], $4::real[], $5::boolean[]) AS u(line, score, decision)"
    " JOIN transactions t ON t.upload_id = $1 AND t.line = u.line"
    " ON CONFLICT (upload_id, model_version, line)"
    " DO UPDATE SET score = EXCLUDED.score, decision = EXCLUDED.decision";
constexpr char kAdoptScoringModel[] =
    "UPDATE uploads SET model_version = $2 WHERE id = $1 AND model_version = 0";
constexpr char kCountPredictions[] =
    "SELECT count(*) FROM predictions WHERE upload_id = $1 AND model_version = $2";
// The page is chosen on the narrow predictions rows first, then joined to its transactions by
// primary key. Joining first made PostgreSQL hash-join every row of the upload before its top-N
// sort: on a 284,807-row upload the by-score page took 1.0 s against 0.21 s this way (EXPLAIN
// ANALYZE, loaded 2-core machine), and over 5 s in the 512 MB images test, past the gateway's
// deadline.
#define FRAUD_PREDICTIONS_PAGE(order)                                                          \
  "SELECT p.line, p.score, p.decision, t.class, t.time, t.amount, t.v, "                      \
  FRAUD_EXPLANATION_COLUMNS                                                                    \
  " FROM (SELECT line, score, decision FROM predictions"                                       \
  "       WHERE upload_id = $1 AND model_version = $2 ORDER BY " order " LIMIT $3 OFFSET $4) p" \
  " JOIN current_transactions t ON t.upload_id = $1 AND t.line = p.line"                       \
  " LEFT JOIN alert_explanations e ON e.upload_id = $1 AND e.model_version = $2"               \
  "  AND e.line = p.line ORDER BY " order
constexpr char kPredictionsByLine[] = FRAUD_PREDICTIONS_PAGE("line");
constexpr char kPredictionsByScore[] = FRAUD_PREDICTIONS_PAGE("score DESC, line");
#undef FRAUD_PREDICTIONS_PAGE

// ---- registry ----

#define FRAUD_CURRENT_CHAMPION "(SELECT version FROM champion_history ORDER BY id DESC LIMIT 1)"
#define FRAUD_MODEL_COLUMNS                                                                 \
  "version, family, manifest::text, artifact_uri, artifact_sha256, " FRAUD_EPOCH_US(       \
      "created_at") ", run_id, version IS NOT DISTINCT FROM " FRAUD_CURRENT_CHAMPION

constexpr char kNextModelVersion[] = "SELECT nextval('model_version_seq')";
constexpr char kInsertModel[] =
    "INSERT INTO model_versions"
    " (version, family, manifest, artifact_uri, artifact_sha256, run_id, lineage)"
    " VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7::jsonb)";
// Keeps AllocateModelVersion ahead of explicitly registered numbers.
constexpr char kBumpModelSequence[] =
    "SELECT setval('model_version_seq', $1) FROM model_version_seq"
    " WHERE $1 > CASE WHEN is_called THEN last_value ELSE 0 END";
constexpr char kSelectModel[] =
    "SELECT " FRAUD_MODEL_COLUMNS " FROM model_versions WHERE version = $1";
constexpr char kListModels[] =
    "SELECT " FRAUD_MODEL_COLUMNS " FROM model_versions ORDER BY version DESC";
constexpr char kCurrentChampion[] = "SELECT COALESCE(" FRAUD_CURRENT_CHAMPION ", 0)";
constexpr char kModelExists[] = "SELECT 1 FROM model_versions WHERE version = $1";
#define FRAUD_CHANGE_COLUMNS \
  "id, version, previous_version, reason, actor, " FRAUD_EPOCH_US("changed_at")
constexpr char kInsertChampion[] =
    "INSERT INTO champion_history (version, previous_version, reason, actor)"
    " VALUES ($1, $2, $3, $4) RETURNING " FRAUD_CHANGE_COLUMNS;
constexpr char kChampionHistory[] =
    "SELECT " FRAUD_CHANGE_COLUMNS " FROM champion_history ORDER BY id DESC";
constexpr char kGetChampion[] =
    "SELECT h.version, " FRAUD_EPOCH_US("h.changed_at")
    " FROM champion_history h ORDER BY h.id DESC LIMIT 1";

// ---- training runs ----

constexpr char kInsertRun[] =
    "INSERT INTO training_runs (status, trigger, created_at, started_at, finished_at, detail)"
    " VALUES ($1, $2, COALESCE(" FRAUD_TS_FROM_US("$3") ", now()), " FRAUD_TS_FROM_US("$4") ", "
    FRAUD_TS_FROM_US("$5") ", '{}'::jsonb) RETURNING id, " FRAUD_EPOCH_US("created_at");
constexpr char kSetRunDetail[] = "UPDATE training_runs SET detail = $2::jsonb WHERE id = $1";
constexpr char kLockRun[] =
    "SELECT " FRAUD_EPOCH_US("created_at") " FROM training_runs WHERE id = $1 FOR UPDATE";
constexpr char kUpdateRun[] =
    "UPDATE training_runs SET status = $2, trigger = $3, created_at = " FRAUD_TS_FROM_US("$4")
    ", started_at = " FRAUD_TS_FROM_US("$5") ", finished_at = " FRAUD_TS_FROM_US("$6")
    ", detail = $7::jsonb WHERE id = $1";
constexpr char kSelectRun[] = "SELECT detail::text FROM training_runs WHERE id = $1";
constexpr char kListRuns[] =
    "SELECT detail::text, id FROM training_runs"
    " WHERE ($1::bigint = 0 OR id < $1::bigint) ORDER BY id DESC LIMIT $2";

absl::StatusOr<int> PageSize(int32_t requested, int def, int max) {
  if (requested < 0) return absl::InvalidArgumentError("page_size must not be negative");
  if (requested == 0) return def;
  return std::min<int>(requested, max);
}

absl::StatusOr<v1::ModelVersion> RowToModel(const pqxx::row& row) {
  v1::ModelVersion m;
  m.set_version(row[0].as<int64_t>());
  m.set_family(static_cast<fraud::common::v1::ModelFamily>(row[1].as<int>()));
  FRAUD_RETURN_IF_ERROR(FromJson(row[2].c_str(), m.mutable_manifest()));
  m.set_artifact_uri(row[3].c_str());
  m.set_artifact_sha256(row[4].c_str());
  SetTimestampUs(row[5].as<int64_t>(), m.mutable_created_at());
  m.set_run_id(row[6].as<int64_t>());
  m.set_is_champion(row[7].as<bool>());
  return m;
}

v1::ChampionChange RowToChange(const pqxx::row& row) {
  v1::ChampionChange c;
  c.set_id(row[0].as<int64_t>());
  c.set_version(row[1].as<int64_t>());
  c.set_previous_version(row[2].as<int64_t>());
  c.set_reason(row[3].c_str());
  c.set_actor(row[4].c_str());
  SetTimestampUs(row[5].as<int64_t>(), c.mutable_changed_at());
  return c;
}

// Accumulates scanned rows into one response batch at a time.
class ScanBatcher {
 public:
  ScanBatcher(int batch_rows, const std::function<bool(v1::ScanTransactionsResponse&)>* emit)
      : batch_rows_(batch_rows), emit_(emit) {}

  absl::Status Add(const std::vector<CopyField>& f) {
    if (f.size() != 6 || f[0].size != 8 || f[1].size != 8 || f[2].size != 8 || f[3].size != 8) {
      return absl::InternalError("unexpected row shape from the transactions scan");
    }
    TransactionBatch* b = response_.mutable_batch();
    auto* features = b->mutable_features();
    const int old = features->size();
    features->Resize(old + kNumFeatures, 0.0);
    double* row = features->mutable_data() + old;
    row[0] = ReadFloat8(f[2].data);
    FRAUD_RETURN_IF_ERROR(DecodeFloat8Bytes(f[4], kNumV, row + 1));
    row[kNumFeatures - 1] = ReadFloat8(f[3].data);
    b->add_upload_ids(ReadInt64(f[0].data));
    b->add_line_numbers(ReadInt64(f[1].data));
    if (f[5].is_null()) {
      b->add_labels(-1);
    } else {
      if (f[5].size != 2) return absl::InternalError("unexpected class field from the scan");
      b->add_labels(ReadInt16(f[5].data));
      any_label_ = true;
    }
    b->set_num_rows(b->num_rows() + 1);
    if (static_cast<int>(b->num_rows()) >= batch_rows_) return Flush();
    return absl::OkStatus();
  }

  absl::Status Flush() {
    TransactionBatch* b = response_.mutable_batch();
    if (b->num_rows() == 0) return absl::OkStatus();
    if (!any_label_) b->clear_labels();
    const int64_t rows = b->num_rows();
    if (!(*emit_)(response_)) {
      return absl::CancelledError("scan consumer went away");
    }
    emitted_ += rows;
    Metrics().scan_rows->Increment(static_cast<double>(rows));
    b->clear_features();
    b->clear_labels();
    b->clear_line_numbers();
    b->clear_upload_ids();
    b->set_num_rows(0);
    any_label_ = false;
    return absl::OkStatus();
  }

  int64_t emitted() const { return emitted_; }

 private:
  const int batch_rows_;
  const std::function<bool(v1::ScanTransactionsResponse&)>* emit_;
  v1::ScanTransactionsResponse response_;
  bool any_label_ = false;
  int64_t emitted_ = 0;
};

}  // namespace

// COPY cannot take bind parameters, so the filter values are inlined; they are integers and
// finite doubles formatted here (never caller text).
std::string ScanTransactionsQuery(pqxx::transaction_base& txn,
                                  const v1::ScanTransactionsRequest& r) {
  std::string where = "TRUE";
  if (r.upload_ids_size() > 0) {
    absl::StrAppend(&where, " AND upload_id = ANY('",
                    BigintArrayLiteral(r.upload_ids()), "'::bigint[])");
  }
  if (r.exclude_upload_ids_size() > 0) {
    absl::StrAppend(&where, " AND upload_id <> ALL('",
                    BigintArrayLiteral(r.exclude_upload_ids()),
                    "'::bigint[])");
  }
  // A Time range reaches its rows through the committed uploads whose Time range overlaps it
  // (uploads.time_min / time_max; migration 0012), found first and named by id, so the planner
  // knows how few rows they hold and reads them by the primary key: there is no index on
  // transactions.time.
  std::string overlap;
  if (r.time_min() != 0) {
    const std::string min = absl::StrCat("'", DoubleLiteral(r.time_min()), "'::float8");
    absl::StrAppend(&where, " AND time >= ", min);
    absl::StrAppend(&overlap, " AND time_max >= ", min);
  }
  if (r.time_max() != 0) {
    const std::string max = absl::StrCat("'", DoubleLiteral(r.time_max()), "'::float8");
    absl::StrAppend(&where, " AND time < ", max);
    absl::StrAppend(&overlap, " AND time_min < ", max);
  }
  if (!overlap.empty()) {
    std::vector<int64_t> ids;
    for (const auto& row : txn.exec(absl::StrCat("SELECT id FROM uploads WHERE status = 1",
                                                 overlap, " ORDER BY id"))) {
      ids.push_back(row[0].as<int64_t>());
    }
    absl::StrAppend(&where, " AND upload_id = ANY('", BigintArrayLiteral(ids), "'::bigint[])");
  }
  if (r.labelled_only()) absl::StrAppend(&where, " AND class IS NOT NULL");
  return absl::StrCat(
      "SELECT upload_id, line, time, amount, v, class FROM current_transactions WHERE ", where,
      " ORDER BY time, upload_id, line");
}

// ---------------------------------------------------------------------------------------------
// Uploads

absl::StatusOr<v1::Upload> PgStore::GetUpload(int64_t upload_id) {
  v1::Upload upload;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    pqxx::result r = txn.exec_params(kSelectUpload, upload_id);
    if (r.empty()) return absl::NotFoundError(absl::StrCat("upload ", upload_id, " not found"));
    return RowToUpload(r[0], &upload);
  }));
  return upload;
}

absl::StatusOr<v1::ListUploadsResponse> PgStore::ListUploads(const v1::ListUploadsRequest& req) {
  FRAUD_ASSIGN_OR_RETURN(const int page, PageSize(req.page_size(), kDefaultListPage, kMaxListPage));
  if (req.before_id() < 0) return absl::InvalidArgumentError("before_id must not be negative");
  v1::ListUploadsResponse out;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    out.Clear();
    pqxx::result r = txn.exec_params(kListUploads, req.before_id(), page + 1);
    for (int i = 0; i < static_cast<int>(r.size()) && i < page; ++i) {
      FRAUD_RETURN_IF_ERROR(RowToUpload(r[i], out.add_uploads()));
    }
    if (static_cast<int>(r.size()) > page) {
      out.set_next_before_id(out.uploads(page - 1).id());
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::Status PgStore::ScanTransactions(
    const v1::ScanTransactionsRequest& req,
    const std::function<bool(v1::ScanTransactionsResponse&)>& emit) {
  if (req.batch_rows() < 0) return absl::InvalidArgumentError("batch_rows must not be negative");
  if (!std::isfinite(req.time_min()) || !std::isfinite(req.time_max())) {
    return absl::InvalidArgumentError("time_min and time_max must be finite");
  }
  if (req.time_max() != 0 && req.time_max() <= req.time_min()) {
    return absl::InvalidArgumentError("time_max must be greater than time_min (or 0)");
  }
  const int batch_rows =
      req.batch_rows() == 0 ? kDefaultScanBatch : std::min<int>(req.batch_rows(), kMaxScanBatch);

  for (int attempt = 0;; ++attempt) {
    FRAUD_ASSIGN_OR_RETURN(PgPool::Lease lease, pool_->Acquire());
    ScanBatcher batcher(batch_rows, &emit);
    absl::Status status;
    bool unusable = false;
    try {
      // One snapshot for the uploads lookup of a Time range and the COPY (ScanTransactionsQuery):
      // an upload committing between the two is in both or in neither.
      pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> txn(lease.conn());
      txn.exec("SET LOCAL statement_timeout = 0");
      const std::string sql =
          absl::StrCat("COPY (", ScanTransactionsQuery(txn, req), ") TO STDOUT (FORMAT binary)");
      status = CopyOut(
          txn, sql, [&](const std::vector<CopyField>& f) { return batcher.Add(f); }, &unusable);
      if (status.ok()) status = batcher.Flush();
      if (unusable) {
        lease.Discard();
      } else if (status.ok()) {
        txn.commit();
      }
    } catch (const std::exception& e) {
      status = StatusFromException(e);
    }
    if (status.ok() || status.code() == absl::StatusCode::kCancelled) return status;
    Metrics().DbError(status);
    if (IsConnectionLoss(status)) lease.Discard();
    if (status.code() == absl::StatusCode::kUnavailable && lease.reused() && attempt == 0 &&
        batcher.emitted() == 0) {
      continue;
    }
    return status;
  }
}

absl::StatusOr<v1::GetDataStatsResponse> PgStore::GetDataStats(
    const v1::GetDataStatsRequest& req) {
  v1::GetDataStatsResponse out;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    pqxx::row r = txn.exec_params1(kDataStats, req.after_upload_id());
    out.set_uploads(r[0].as<int64_t>());
    out.set_rows(r[1].as<int64_t>());
    out.set_labelled_rows(r[2].as<int64_t>());
    out.set_frauds(r[3].as<int64_t>());
    out.set_max_upload_id(r[4].as<int64_t>());
    return absl::OkStatus();
  }));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Predictions

absl::StatusOr<int64_t> PgStore::RecordPredictions(const v1::RecordPredictionsRequest& req) {
  const int n = req.line_numbers_size();
  FRAUD_RETURN_IF_ERROR(ValidateScoreBatch(req.scores(), n));
  std::vector<int64_t> lines(req.line_numbers().begin(), req.line_numbers().end());
  std::sort(lines.begin(), lines.end());
  if (std::adjacent_find(lines.begin(), lines.end()) != lines.end()) {
    return absl::InvalidArgumentError("line_numbers must not repeat");
  }
  if (n > 0 && lines.front() <= 0) return absl::InvalidArgumentError("line numbers must be > 0");

  std::string line_array = BigintArrayLiteral(req.line_numbers());
  std::string score_array = "{";
  std::string decision_array = "{";
  for (int i = 0; i < n; ++i) {
    if (i > 0) {
      score_array.push_back(',');
      decision_array.push_back(',');
    }
    score_array += FloatLiteral(req.scores().scores(i));
    decision_array.push_back(req.scores().decisions(i) ? 't' : 'f');
  }
  score_array.push_back('}');
  decision_array.push_back('}');

  int64_t recorded = 0;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    if (txn.exec_params(kUploadModelVersion, req.upload_id()).empty()) {
      return absl::NotFoundError(absl::StrCat("upload ", req.upload_id(), " not found"));
    }
    if (n == 0) return absl::OkStatus();
    const int64_t version = req.scores().model_version();
    pqxx::result r = txn.exec_params(kUpsertPredictions, req.upload_id(), version, line_array,
                                     score_array, decision_array);
    if (r.affected_rows() != static_cast<size_t>(n)) {
      return absl::InvalidArgumentError(absl::StrCat(
          n - static_cast<int64_t>(r.affected_rows()), " of ", n,
          " line numbers are not rows of upload ", req.upload_id(), "; nothing was recorded"));
    }
    txn.exec_params(kAdoptScoringModel, req.upload_id(), version);
    recorded = n;
    return absl::OkStatus();
  }));
  Metrics().rows_predictions->Increment(static_cast<double>(recorded));
  return recorded;
}

absl::StatusOr<v1::ListPredictionsResponse> PgStore::ListPredictions(
    const v1::ListPredictionsRequest& req) {
  FRAUD_ASSIGN_OR_RETURN(const int page,
                         PageSize(req.page_size(), kDefaultPredictionPage, kMaxPredictionPage));
  if (req.offset() < 0) return absl::InvalidArgumentError("offset must not be negative");
  if (req.model_version() < 0) {
    return absl::InvalidArgumentError("model_version must not be negative");
  }
  if (!v1::PredictionOrder_IsValid(req.order())) {
    return absl::InvalidArgumentError(absl::StrCat("unknown order ", req.order()));
  }
  const char* sql = req.order() == v1::PREDICTION_ORDER_SCORE_DESC ? kPredictionsByScore
                                                                   : kPredictionsByLine;
  v1::ListPredictionsResponse out;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    out.Clear();
    pqxx::result u = txn.exec_params(kUploadModelVersion, req.upload_id());
    if (u.empty()) return absl::NotFoundError(absl::StrCat("upload ", req.upload_id(), " not found"));
    const int64_t version = req.model_version() != 0 ? req.model_version() : u[0][0].as<int64_t>();
    if (version == 0) return absl::OkStatus();  // never scored
    out.set_total(txn.exec_params1(kCountPredictions, req.upload_id(), version)[0].as<int64_t>());
    pqxx::result r = txn.exec_params(sql, req.upload_id(), version, page, req.offset());
    for (const pqxx::row& row : r) {
      v1::Prediction* p = out.add_predictions();
      p->set_upload_id(req.upload_id());
      p->set_line(row[0].as<int64_t>());
      p->set_model_version(version);
      FRAUD_ASSIGN_OR_RETURN(const float score, ParseFloat(row[1].c_str()));
      p->set_score(score);
      p->set_decision(row[2].as<bool>());
      p->set_label(row[3].is_null() ? -1 : row[3].as<int>());
      auto* f = p->mutable_features();
      f->Reserve(kNumFeatures);
      FRAUD_ASSIGN_OR_RETURN(const double time, ParseDouble(row[4].c_str()));
      FRAUD_ASSIGN_OR_RETURN(const double amount, ParseDouble(row[5].c_str()));
      f->Add(time);
      FRAUD_RETURN_IF_ERROR(ParseFloat8Bytes(row[6].c_str(), kNumV, f));
      f->Add(amount);
      if (f->size() != kNumFeatures) return absl::InternalError("stored row has a bad V array");
      FRAUD_ASSIGN_OR_RETURN(const bool explained,
                             ReadStoredExplanation(row, 7, *f, p->mutable_explanation(),
                                                   p->mutable_explanation_computed_at()));
      if (!explained) {
        p->clear_explanation();
        p->clear_explanation_computed_at();
      }
    }
    return absl::OkStatus();
  }));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Model registry

absl::StatusOr<v1::ModelVersion> PgStore::RegisterModel(const v1::ModelVersion& model) {
  v1::ModelVersion m = model;
  fraud::common::v1::ModelManifest* manifest = m.mutable_manifest();
  if (m.version() < 0 || manifest->version() < 0) {
    return absl::InvalidArgumentError("version must not be negative");
  }
  if (m.version() != 0 && manifest->version() != 0 && m.version() != manifest->version()) {
    return absl::InvalidArgumentError(absl::StrCat("version ", m.version(),
                                                   " contradicts the manifest's version ",
                                                   manifest->version()));
  }
  if (m.family() == 0) m.set_family(manifest->family());
  if (manifest->family() != 0 && manifest->family() != m.family()) {
    return absl::InvalidArgumentError("family contradicts the manifest's family");
  }
  if (m.family() == fraud::common::v1::MODEL_FAMILY_UNSPECIFIED ||
      !fraud::common::v1::ModelFamily_IsValid(m.family())) {
    return absl::InvalidArgumentError(absl::StrCat("unknown model family ", m.family()));
  }
  if (m.run_id() == 0) m.set_run_id(manifest->run_id());
  if (manifest->run_id() != 0 && manifest->run_id() != m.run_id()) {
    return absl::InvalidArgumentError("run_id contradicts the manifest's run_id");
  }
  manifest->set_family(m.family());
  manifest->set_run_id(m.run_id());
  const int64_t requested = m.version() != 0 ? m.version() : manifest->version();

  v1::ModelVersion out;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    const int64_t version =
        requested != 0 ? requested : txn.exec1(kNextModelVersion)[0].as<int64_t>();
    manifest->set_version(version);
    FRAUD_ASSIGN_OR_RETURN(const std::string manifest_json, ToJson(*manifest));
    FRAUD_ASSIGN_OR_RETURN(const std::string lineage_json, ToJson(manifest->lineage()));
    try {
      // A savepoint-free check: the primary key decides, mapped to AlreadyExists below.
      txn.exec_params(kInsertModel, version, static_cast<int>(m.family()), manifest_json,
                      m.artifact_uri(), m.artifact_sha256(), m.run_id(), lineage_json);
    } catch (const pqxx::unique_violation&) {
      return absl::AlreadyExistsError(absl::StrCat("model version ", version,
                                                   " is already registered"));
    }
    if (requested != 0) txn.exec_params(kBumpModelSequence, version);
    pqxx::result r = txn.exec_params(kSelectModel, version);
    FRAUD_ASSIGN_OR_RETURN(out, RowToModel(r[0]));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<v1::ModelVersion> PgStore::GetModel(int64_t version) {
  v1::ModelVersion out;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    pqxx::result r = txn.exec_params(kSelectModel, version);
    if (r.empty()) return absl::NotFoundError(absl::StrCat("model version ", version, " not found"));
    FRAUD_ASSIGN_OR_RETURN(out, RowToModel(r[0]));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<v1::ModelVersion>> PgStore::ListModels() {
  std::vector<v1::ModelVersion> out;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    out.clear();
    for (const pqxx::row& row : txn.exec(kListModels)) {
      FRAUD_ASSIGN_OR_RETURN(v1::ModelVersion m, RowToModel(row));
      out.push_back(std::move(m));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<v1::ChampionChange> PgStore::SetChampion(const v1::SetChampionRequest& req) {
  if (req.version() <= 0) return absl::InvalidArgumentError("version must be positive");
  if (req.expected_current() < 0) {
    return absl::InvalidArgumentError("expected_current must not be negative");
  }
  v1::ChampionChange out;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    // Serializes concurrent promotions: the second one sees the first one's row.
    txn.exec_params(kSchemaAdvisoryXactLock, kChampionLockKey);
    const int64_t current = txn.exec1(kCurrentChampion)[0].as<int64_t>();
    if (req.check_current() && current != req.expected_current()) {
      return absl::AbortedError(absl::StrCat("champion changed: expected version ",
                                             req.expected_current(), ", current is ", current));
    }
    if (txn.exec_params(kModelExists, req.version()).empty()) {
      return absl::NotFoundError(absl::StrCat("model version ", req.version(), " not found"));
    }
    pqxx::row r =
        txn.exec_params1(kInsertChampion, req.version(), current, req.reason(), req.actor());
    out = RowToChange(r);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<v1::GetChampionResponse> PgStore::GetChampion() {
  v1::GetChampionResponse out;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    out.Clear();
    pqxx::result h = txn.exec(kGetChampion);
    if (h.empty()) return absl::OkStatus();
    pqxx::result r = txn.exec_params(kSelectModel, h[0][0].as<int64_t>());
    if (r.empty()) return absl::InternalError("champion version missing from the registry");
    FRAUD_ASSIGN_OR_RETURN(*out.mutable_model(), RowToModel(r[0]));
    SetTimestampUs(h[0][1].as<int64_t>(), out.mutable_since());
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<v1::ChampionChange>> PgStore::ListChampionHistory() {
  std::vector<v1::ChampionChange> out;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    out.clear();
    for (const pqxx::row& row : txn.exec(kChampionHistory)) out.push_back(RowToChange(row));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<int64_t> PgStore::AllocateModelVersion() {
  int64_t version = 0;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    version = txn.exec1(kNextModelVersion)[0].as<int64_t>();
    return absl::OkStatus();
  }));
  return version;
}

// ---------------------------------------------------------------------------------------------
// Training runs

absl::StatusOr<v1::TrainingRun> PgStore::CreateRun(const v1::TrainingRun& run) {
  if (run.id() != 0) return absl::InvalidArgumentError("CreateRun assigns the id; leave it 0");
  if (!v1::RunStatus_IsValid(run.status())) {
    return absl::InvalidArgumentError(absl::StrCat("unknown run status ", run.status()));
  }
  v1::TrainingRun out = run;
  if (out.status() == v1::RUN_STATUS_UNSPECIFIED) out.set_status(v1::RUN_STATUS_QUEUED);
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    pqxx::row r = txn.exec_params1(
        kInsertRun, static_cast<int>(out.status()), out.trigger(),
        out.has_created_at() ? TimestampToUs(out.created_at()) : 0,
        out.has_started_at() ? TimestampToUs(out.started_at()) : 0,
        out.has_finished_at() ? TimestampToUs(out.finished_at()) : 0);
    out.set_id(r[0].as<int64_t>());
    if (!out.has_created_at()) SetTimestampUs(r[1].as<int64_t>(), out.mutable_created_at());
    FRAUD_ASSIGN_OR_RETURN(const std::string json, ToJson(out));
    txn.exec_params(kSetRunDetail, out.id(), json);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<v1::TrainingRun> PgStore::UpdateRun(const v1::TrainingRun& run) {
  if (run.id() <= 0) return absl::InvalidArgumentError("run.id must be positive");
  if (!v1::RunStatus_IsValid(run.status())) {
    return absl::InvalidArgumentError(absl::StrCat("unknown run status ", run.status()));
  }
  v1::TrainingRun out;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    out = run;
    pqxx::result r = txn.exec_params(kLockRun, run.id());
    if (r.empty()) return absl::NotFoundError(absl::StrCat("run ", run.id(), " not found"));
    if (!out.has_created_at()) SetTimestampUs(r[0][0].as<int64_t>(), out.mutable_created_at());
    FRAUD_ASSIGN_OR_RETURN(const std::string json, ToJson(out));
    txn.exec_params(kUpdateRun, out.id(), static_cast<int>(out.status()), out.trigger(),
                    TimestampToUs(out.created_at()),
                    out.has_started_at() ? TimestampToUs(out.started_at()) : 0,
                    out.has_finished_at() ? TimestampToUs(out.finished_at()) : 0, json);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<v1::TrainingRun> PgStore::GetRun(int64_t run_id) {
  v1::TrainingRun out;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    pqxx::result r = txn.exec_params(kSelectRun, run_id);
    if (r.empty()) return absl::NotFoundError(absl::StrCat("run ", run_id, " not found"));
    out.Clear();
    return FromJson(r[0][0].c_str(), &out);
  }));
  return out;
}

absl::StatusOr<v1::ListRunsResponse> PgStore::ListRuns(const v1::ListRunsRequest& req) {
  FRAUD_ASSIGN_OR_RETURN(const int page, PageSize(req.page_size(), kDefaultListPage, kMaxListPage));
  if (req.before_id() < 0) return absl::InvalidArgumentError("before_id must not be negative");
  v1::ListRunsResponse out;
  FRAUD_RETURN_IF_ERROR(Transact(*pool_, [&](pqxx::work& txn) -> absl::Status {
    out.Clear();
    pqxx::result r = txn.exec_params(kListRuns, req.before_id(), page + 1);
    for (int i = 0; i < static_cast<int>(r.size()) && i < page; ++i) {
      FRAUD_RETURN_IF_ERROR(FromJson(r[i][0].c_str(), out.add_runs()));
    }
    if (static_cast<int>(r.size()) > page) out.set_next_before_id(r[page - 1][1].as<int64_t>());
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace fraud::storage
