#include "services/storage/feedback_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "services/common/core/status_macros.h"
#include "services/storage/pg_errors.h"
#include "services/storage/pg_util.h"
#include "services/storage/storage_metrics.h"
#include "services/storage/validation.h"

namespace fraud::storage {
namespace {

namespace v1 = ::fraud::storage::v1;

// Invalid rows named in the error message, and unknown rows returned in the response.
constexpr size_t kMaxProblemsInMessage = 10;
constexpr int kMaxUnknownRows = 1000;
// Second key of the advisory lock that serializes feedback streams (first: schema name hash).
constexpr int kFeedbackLockKey = 0x6c61626c;  // "labl"
constexpr char kDefaultSource[] = "import";

// Staging table of one stream, dropped with its transaction. at_us NULL = now().
constexpr char kCreateStaging[] =
    "CREATE TEMP TABLE feedback_in (row bigint NOT NULL, upload_id bigint, line bigint,"
    " tid text, label smallint NOT NULL, source text NOT NULL, note text NOT NULL, at_us bigint)"
    " ON COMMIT DROP";
constexpr char kCopyStaging[] =
    "COPY feedback_in (row, upload_id, line, tid, label, source, note, at_us)"
    " FROM STDIN (FORMAT binary)";
// Statistics let the planner choose between index lookups and a hash join by the stream's size.
constexpr char kAnalyzeStaging[] = "ANALYZE feedback_in";
// Each staged row resolved to its stored transaction (rows with no match are absent), with the
// class it has now. Two branches so each uses its own index.
constexpr char kResolve[] =
    "CREATE TEMP TABLE feedback_rows ON COMMIT DROP AS"
    " SELECT f.row, t.upload_id, t.line, t.class AS previous, f.label, f.source, f.note, f.at_us,"
    " t.time"
    " FROM feedback_in f JOIN transactions t ON t.upload_id = f.upload_id AND t.line = f.line"
    " WHERE f.tid IS NULL"
    " UNION ALL"
    " SELECT f.row, t.upload_id, t.line, t.class, f.label, f.source, f.note, f.at_us, t.time"
    " FROM feedback_in f JOIN transactions t ON t.transaction_id = f.tid"
    " WHERE f.tid IS NOT NULL";
constexpr char kCountResolved[] = "SELECT count(*) FROM feedback_rows";
constexpr char kCountRepeated[] =
    "SELECT count(*) FROM (SELECT 1 FROM feedback_rows GROUP BY upload_id, line"
    " HAVING count(*) > 1) d";
constexpr char kRepeatedRows[] =
    "SELECT row, first_row, upload_id, line FROM (SELECT row, upload_id, line,"
    " min(row) OVER (PARTITION BY upload_id, line) AS first_row FROM feedback_rows) d"
    " WHERE row <> first_row ORDER BY row LIMIT $1";
constexpr char kUnknownRows[] =
    "SELECT f.row, COALESCE(f.upload_id, 0), COALESCE(f.line, 0), COALESCE(f.tid, ''),"
    " CASE WHEN f.tid IS NOT NULL THEN 'transaction_id'"
    "  WHEN NOT EXISTS (SELECT 1 FROM uploads u WHERE u.id = f.upload_id AND u.status = 1)"
    "  THEN 'upload_id' ELSE 'line' END"
    " FROM feedback_in f WHERE NOT EXISTS (SELECT 1 FROM feedback_rows r WHERE r.row = f.row)"
    " ORDER BY f.row LIMIT $1";
// The rows that change a class: one event each, the new class, and the uploads' counters
// (labelled_rows counts rows that had no class; frauds moves by label - previous). Events are not
// sorted by row (a sort of every row measured ~15% of the statement): a transaction appears at
// most once per stream, so the id order of each transaction's own history is still its order of
// arrival.
constexpr char kApply[] =
    "WITH changed AS (SELECT * FROM feedback_rows WHERE previous IS DISTINCT FROM label),"
    " events AS (INSERT INTO label_events"
    "  (upload_id, line, label, previous_label, source, note, actor, at)"
    "  SELECT upload_id, line, label, previous, source, note, $1,"
    "  COALESCE(timestamptz 'epoch' + at_us * interval '1 microsecond', now())"
    "  FROM changed),"
    " labels AS (UPDATE transactions t SET class = c.label FROM changed c"
    "  WHERE t.upload_id = c.upload_id AND t.line = c.line),"
    " counters AS (UPDATE uploads u SET labelled_rows = u.labelled_rows + d.newly,"
    "  frauds = u.frauds + d.fraud_delta"
    "  FROM (SELECT upload_id, count(*) FILTER (WHERE previous IS NULL) AS newly,"
    "   sum(label - COALESCE(previous, 0)) AS fraud_delta FROM changed GROUP BY upload_id) d"
    "  WHERE u.id = d.upload_id)"
    " SELECT count(*) FILTER (WHERE previous IS NULL), count(*) FILTER (WHERE previous IS NOT NULL)"
    " FROM changed";
// The realised-metrics summary (migration 0007) follows the changed classes: every prediction of
// a changed row moves from its previous label state (-1) to the new one (+1). The predictions
// are grouped by (version, upload, day, decision, bin, previous, label) first, so the rows
// realised_apply() sorts are two per group instead of two per prediction (sorting 570k rows
// for 284,807 labels took 3-4 s); a group's min(time) and min(score) stand for its day and bin
// (its rows are counted already, so the time range does not move). Predictions are reached
// through the versions the summary knows for the row's upload, so a small stream probes the
// primary key (upload_id, model_version, line).
constexpr char kApplyToSummary[] =
    "SELECT realised_apply('SELECT g.model_version, g.upload_id, g.time, g.score, g.decision,"
    " x.class, x.sign * g.n AS sign FROM (SELECT p.model_version, p.upload_id,"
    " min(c.time) AS time, min(p.score) AS score, p.decision, c.previous, c.label,"
    " count(*) AS n FROM feedback_rows c"
    " JOIN (SELECT DISTINCT upload_id, model_version FROM realised_bins"
    "  WHERE upload_id IN (SELECT upload_id FROM feedback_rows)) uv ON uv.upload_id = c.upload_id"
    " JOIN predictions p ON p.upload_id = c.upload_id AND p.model_version = uv.model_version"
    "  AND p.line = c.line"
    " WHERE c.previous IS DISTINCT FROM c.label"
    " GROUP BY p.model_version, p.upload_id, floor(c.time / 86400), p.decision,"
    "  realised_bin(p.score), c.previous, c.label) g"
    " CROSS JOIN LATERAL (VALUES (g.previous, -1), (g.label, 1)) x(class, sign)')";

constexpr char kCurrentClass[] =
    "SELECT COALESCE(class, -1) FROM transactions WHERE upload_id = $1 AND line = $2";
constexpr char kHistory[] =
    "SELECT id, label, COALESCE(previous_label, -1), source, note, actor, " FRAUD_EPOCH_US(
        "at") ", " FRAUD_EPOCH_US("recorded_at")
    " FROM label_events WHERE upload_id = $1 AND line = $2 ORDER BY id";

std::string RowProblem(int64_t row, absl::string_view field, absl::string_view reason) {
  return absl::StrCat("row ", row, ", field ", field, ": ", reason);
}

const char* UnknownReason(absl::string_view field) {
  if (field == "transaction_id") return "no stored transaction has this transaction_id";
  if (field == "upload_id") return "no such upload";
  return "the upload has no row at this line";
}

}  // namespace

FeedbackWriter::FeedbackWriter(PgPool* pool, absl::Time deadline)
    : pool_(pool), deadline_(deadline) {}

FeedbackWriter::~FeedbackWriter() { Rollback(); }

void FeedbackWriter::Rollback() {
  finished_ = true;
  if (copy_ != nullptr) {
    // A COPY still open leaves the connection in COPY state: end it so the rollback can run.
    try {
      copy_->Abort("feedback aborted");
    } catch (const std::exception&) {
      if (lease_.has_value()) lease_->Discard();
    }
    copy_.reset();
  }
  AbortStreamTransaction(txn_, lease_);
}

absl::Status FeedbackWriter::Fail(absl::Status s) {
  Metrics().DbError(s);
  if (lease_.has_value() && (IsConnectionLoss(s) || copy_ != nullptr)) lease_->Discard();
  Rollback();
  return s;
}

absl::Status FeedbackWriter::Open() {
  absl::StatusOr<PgPool::Lease> lease = pool_->Acquire(deadline_);
  if (!lease.ok()) return lease.status();
  lease_.emplace(*std::move(lease));
  try {
    txn_ = std::make_unique<pqxx::work>(lease_->conn());
    txn_->exec(kCreateStaging);
    copy_ = std::make_unique<CopyIn>(*txn_);
    absl::Status s = copy_->Start(kCopyStaging);
    if (!s.ok()) {
      copy_.reset();
      return Fail(s);
    }
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return Fail(StatusFromException(e));
  }
}

absl::Status FeedbackWriter::Add(const v1::RecordFeedbackRequest& request) {
  if (finished_) return absl::FailedPreconditionError("feedback stream already ended");
  if (actor_.empty()) actor_ = request.actor().substr(0, 256);
  if (txn_ == nullptr) FRAUD_RETURN_IF_ERROR(Open());
  CopyEncoder& e = copy_->encoder();
  for (const v1::LabelFeedback& f : request.labels()) {
    ++rows_;
    if (std::optional<FieldProblem> p = CheckLabelFeedback(f); p.has_value()) {
      ++invalid_rows_;
      if (problems_.size() < kMaxProblemsInMessage) {
        problems_.push_back(RowProblem(rows_, p->field, p->reason));
      }
      continue;
    }
    // An invalid row rejects the stream anyway: stop staging, keep validating for the report.
    if (invalid_rows_ > 0) continue;
    e.BeginTuple(8);
    e.Int64(rows_);
    if (f.transaction_id().empty()) {
      e.Int64(f.upload_id());
      e.Int64(f.line());
      e.Null();
    } else {
      e.Null();
      e.Null();
      e.Text(f.transaction_id());
    }
    e.Int16(static_cast<int16_t>(f.label()));
    e.Text(f.source().empty() ? kDefaultSource : f.source());
    e.Text(f.note());
    if (f.has_at()) {
      e.Int64(TimestampToUs(f.at()));
    } else {
      e.Null();
    }
  }
  absl::Status s;
  try {
    s = copy_->MaybeFlush();
  } catch (const std::exception& ex) {
    s = StatusFromException(ex);
  }
  return s.ok() ? s : Fail(s);
}

absl::StatusOr<v1::RecordFeedbackResponse> FeedbackWriter::Finish(
    const BeforeCommit& before_commit) {
  if (finished_) return absl::FailedPreconditionError("feedback stream already ended");
  if (invalid_rows_ > 0) {
    Rollback();
    return absl::InvalidArgumentError(absl::StrCat(
        invalid_rows_, " invalid feedback row(s); nothing was stored: ",
        absl::StrJoin(problems_, "; "), invalid_rows_ > static_cast<int64_t>(problems_.size())
                                            ? "; ..."
                                            : ""));
  }
  if (txn_ == nullptr) {
    finished_ = true;
    return v1::RecordFeedbackResponse();
  }
  absl::StatusOr<v1::RecordFeedbackResponse> r = Apply(before_commit);
  if (!r.ok()) {
    // The caller's mistakes (not database failures): roll back without counting a DB error.
    if (r.status().code() == absl::StatusCode::kInvalidArgument ||
        r.status().code() == absl::StatusCode::kNotFound) {
      Rollback();
      return r.status();
    }
    return Fail(r.status());
  }
  finished_ = true;
  return r;
}

absl::StatusOr<v1::RecordFeedbackResponse> FeedbackWriter::Apply(
    const BeforeCommit& before_commit) {
  v1::RecordFeedbackResponse out;
  out.set_received(rows_);
  try {
    FRAUD_RETURN_IF_ERROR(copy_->Finish());
    copy_.reset();
    const absl::Time start = absl::Now();
    txn_->exec_params(kSchemaAdvisoryXactLock, kFeedbackLockKey);
    txn_->exec(kAnalyzeStaging);
    txn_->exec(kResolve);
    const int64_t resolved = txn_->exec1(kCountResolved)[0].as<int64_t>();
    if (txn_->exec1(kCountRepeated)[0].as<int64_t>() > 0) {
      std::vector<std::string> problems;
      for (const pqxx::row& row :
           txn_->exec_params(kRepeatedRows, static_cast<int>(kMaxProblemsInMessage))) {
        problems.push_back(RowProblem(
            row[0].as<int64_t>(), "upload_id",
            absl::StrCat("names the same transaction (upload ", row[2].as<int64_t>(), " line ",
                         row[3].as<int64_t>(), ") as row ", row[1].as<int64_t>())));
      }
      return absl::InvalidArgumentError(
          absl::StrCat("feedback names a transaction more than once; nothing was stored: ",
                       absl::StrJoin(problems, "; ")));
    }
    out.set_unknown(rows_ - resolved);
    if (out.unknown() > 0) {
      for (const pqxx::row& row : txn_->exec_params(kUnknownRows, kMaxUnknownRows)) {
        v1::FeedbackProblem* p = out.add_unknown_rows();
        p->set_row(row[0].as<int64_t>());
        p->set_upload_id(row[1].as<int64_t>());
        p->set_line(row[2].as<int64_t>());
        p->set_transaction_id(row[3].c_str());
        p->set_field(row[4].c_str());
        p->set_reason(UnknownReason(p->field()));
      }
    }
    const pqxx::row applied = txn_->exec_params1(kApply, actor_);
    out.set_applied(applied[0].as<int64_t>());
    out.set_conflicts(applied[1].as<int64_t>());
    out.set_unchanged(resolved - out.applied() - out.conflicts());
    if (out.applied() + out.conflicts() > 0) txn_->exec(kApplyToSummary);
    if (before_commit) FRAUD_RETURN_IF_ERROR(before_commit(*txn_, out));
    txn_->commit();
    out.set_apply_seconds(absl::ToDoubleSeconds(absl::Now() - start));
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
  txn_.reset();
  lease_.reset();
  return out;
}

absl::StatusOr<v1::ListLabelHistoryResponse> ListLabelHistory(
    PgPool& pool, const v1::ListLabelHistoryRequest& request) {
  if (request.upload_id() <= 0 || request.line() <= 0) {
    return absl::InvalidArgumentError("upload_id and line must be > 0");
  }
  v1::ListLabelHistoryResponse out;
  FRAUD_RETURN_IF_ERROR(Transact(pool, [&](pqxx::work& txn) -> absl::Status {
    out.Clear();
    pqxx::result cls = txn.exec_params(kCurrentClass, request.upload_id(), request.line());
    if (cls.empty()) {
      return absl::NotFoundError(absl::StrCat("no stored transaction at upload ",
                                              request.upload_id(), " line ", request.line()));
    }
    out.set_current_label(cls[0][0].as<int>());
    for (const pqxx::row& row :
         txn.exec_params(kHistory, request.upload_id(), request.line())) {
      v1::LabelEvent* e = out.add_events();
      e->set_id(row[0].as<int64_t>());
      e->set_upload_id(request.upload_id());
      e->set_line(request.line());
      e->set_label(row[1].as<int>());
      e->set_previous_label(row[2].as<int>());
      e->set_source(row[3].c_str());
      e->set_note(row[4].c_str());
      e->set_actor(row[5].c_str());
      SetTimestampUs(row[6].as<int64_t>(), e->mutable_at());
      SetTimestampUs(row[7].as<int64_t>(), e->mutable_recorded_at());
    }
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace fraud::storage
