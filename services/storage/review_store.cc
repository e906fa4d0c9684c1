#include "services/storage/review_store.h"

#include <pqxx/pqxx>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/common/core/status_macros.h"
#include "services/storage/explanation_store.h"
#include "services/storage/feedback_store.h"
#include "services/storage/pg_util.h"
#include "services/storage/validation.h"

namespace fraud::storage {
namespace {

namespace v1 = ::fraud::storage::v1;

constexpr size_t kMaxActorChars = 256;

// One queue page. $1 model_version filter (0 = any), $2 upload filter (0 = any), $3 true on the
// first page, else $4..$7 the last item of the previous page (upload, score, line, version), $8
// the page size. Every ORDER BY key is descending, so the keyset is one row comparison and the
// planner reads the partial index predictions_alerts backwards; the filters with $n = 0 fold
// away because unnamed statements are planned with their parameter values. The second NOT
// EXISTS (only without a version filter) keeps one alert per row: a row's other alerts are
// probed in the same index (upload_id equal, score >= this one). The stored explanation of the
// alert (if any) is one primary-key probe of alert_explanations per item.
}  // namespace

const char kReviewQueuePageSql[] =
    "SELECT p.upload_id, p.line, COALESCE(t.transaction_id, ''), p.model_version, p.score,"
    " t.time, t.amount, t.v, COALESCE(t.class, -1), " FRAUD_EXPLANATION_COLUMNS
    " FROM predictions p JOIN current_transactions t ON t.upload_id = p.upload_id"
    " AND t.line = p.line"
    " LEFT JOIN alert_explanations e ON e.upload_id = p.upload_id"
    "  AND e.model_version = p.model_version AND e.line = p.line"
    " WHERE p.decision"
    " AND ($1::bigint = 0 OR p.model_version = $1::bigint)"
    " AND ($2::bigint = 0 OR p.upload_id = $2::bigint)"
    " AND ($3::boolean OR (p.upload_id, p.score, p.line, p.model_version)"
    "  < ($4::bigint, $5::real, $6::bigint, $7::bigint))"
    " AND NOT EXISTS (SELECT 1 FROM review_dispositions r"
    "  WHERE r.upload_id = p.upload_id AND r.line = p.line)"
    " AND ($1::bigint <> 0 OR NOT EXISTS (SELECT 1 FROM predictions q"
    "  WHERE q.decision AND q.upload_id = p.upload_id AND q.line = p.line"
    "  AND q.score >= p.score AND (q.score, q.model_version) > (p.score, p.model_version)))"
    " ORDER BY p.upload_id DESC, p.score DESC, p.line DESC, p.model_version DESC"
    " LIMIT $8";

namespace {

// The reviewed transaction, by (upload_id, line) ($3 NULL) or by transaction_id ($3).
constexpr char kResolveRow[] =
    "SELECT upload_id, line FROM transactions"
    " WHERE ($3::text IS NULL AND upload_id = $1 AND line = $2)"
    " OR ($3::text IS NOT NULL AND transaction_id = $3::text)";
constexpr char kLatestLabelEvent[] =
    "SELECT max(id) FROM label_events WHERE upload_id = $1 AND chunk = $2::bigint >> 10"
    " AND line = $2";
constexpr char kInsertDisposition[] =
    "INSERT INTO review_dispositions (upload_id, line, disposition, note, actor, label_event_id)"
    " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
constexpr char kCurrentClass[] =
    "SELECT COALESCE(class, -1) FROM current_transactions WHERE upload_id = $1 AND line = $2";

// Page token: "upload:score:line:version" of the last item, the score with 9 significant digits
// (which round-trips a float exactly).
std::string PageToken(const v1::ReviewItem& last) {
  char score[32];
  std::snprintf(score, sizeof(score), "%.9g", static_cast<double>(last.score()));
  return absl::StrCat(last.upload_id(), ":", score, ":", last.line(), ":", last.model_version());
}

struct Cursor {
  int64_t upload_id = 0;
  std::string score;
  int64_t line = 0;
  int64_t model_version = 0;
};

absl::StatusOr<Cursor> ParsePageToken(const std::string& token) {
  const std::vector<std::string> parts = absl::StrSplit(token, ':');
  Cursor c;
  float score = 0;
  if (parts.size() != 4 || !absl::SimpleAtoi(parts[0], &c.upload_id) ||
      !absl::SimpleAtof(parts[1], &score) || !absl::SimpleAtoi(parts[2], &c.line) ||
      !absl::SimpleAtoi(parts[3], &c.model_version) || c.upload_id <= 0 || c.line <= 0 ||
      c.model_version <= 0 || !(score >= 0 && score <= 1)) {
    return absl::InvalidArgumentError(
        "page_token: not a token returned by ListReviewQueue (pass next_page_token as is)");
  }
  c.score = parts[1];
  return c;
}

v1::LabelFeedback ToLabelFeedback(const v1::SubmitReviewRequest& r) {
  v1::LabelFeedback f;
  f.set_upload_id(r.upload_id());
  f.set_line(r.line());
  f.set_transaction_id(r.transaction_id());
  f.set_label(r.disposition() == v1::REVIEW_DISPOSITION_FRAUD ? 1 : 0);
  f.set_source(kReviewLabelSource);
  f.set_note(r.note());
  return f;
}

// Resolves the transaction and inserts the disposition (with the label event the review just
// appended, when `label_outcome` says it changed the label); fills *out.
absl::Status RecordDisposition(pqxx::work& txn, const v1::SubmitReviewRequest& request,
                               const std::string& label_outcome, v1::SubmitReviewResponse* out) {
  const bool by_id = !request.transaction_id().empty();
  const pqxx::result row =
      by_id ? txn.exec_params(kResolveRow, 0, 0, request.transaction_id())
            : txn.exec_params(kResolveRow, request.upload_id(), request.line(), nullptr);
  if (row.empty()) {
    return absl::NotFoundError(
        by_id ? absl::StrCat("transaction_id: no stored transaction has the id '",
                             request.transaction_id(), "'")
              : absl::StrCat("no stored transaction at upload ", request.upload_id(), " line ",
                             request.line()));
  }
  const int64_t upload_id = row[0][0].as<int64_t>();
  const int64_t line = row[0][1].as<int64_t>();
  std::optional<int64_t> event_id;
  if (label_outcome == "applied" || label_outcome == "conflict") {
    event_id = txn.exec_params1(kLatestLabelEvent, upload_id, line)[0].as<int64_t>();
  }
  out->set_upload_id(upload_id);
  out->set_line(line);
  out->set_label_outcome(label_outcome);
  out->set_review_id(
      txn.exec_params1(kInsertDisposition, upload_id, line, static_cast<int>(request.disposition()),
                       request.note(), request.actor().substr(0, kMaxActorChars), event_id)[0]
          .as<int64_t>());
  out->set_current_label(txn.exec_params1(kCurrentClass, upload_id, line)[0].as<int>());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::ListReviewQueueResponse> ListReviewQueue(
    PgPool& pool, const v1::ListReviewQueueRequest& request) {
  if (request.page_size() < 0 || request.page_size() > kMaxReviewPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be 0..", kMaxReviewPageSize,
                                                   " (0 = ", kDefaultReviewPageSize, "), got ",
                                                   request.page_size()));
  }
  if (request.model_version() < 0) {
    return absl::InvalidArgumentError("model_version: must be > 0 (or 0 = every version)");
  }
  if (request.upload_id() < 0) {
    return absl::InvalidArgumentError("upload_id: must be > 0 (or 0 = every upload)");
  }
  Cursor after;
  after.score = "0";
  const bool first = request.page_token().empty();
  if (!first) {
    FRAUD_ASSIGN_OR_RETURN(after, ParsePageToken(request.page_token()));
  }
  const int page_size = request.page_size() == 0 ? kDefaultReviewPageSize : request.page_size();
  v1::ListReviewQueueResponse out;
  FRAUD_RETURN_IF_ERROR(Transact(pool, [&](pqxx::work& txn) -> absl::Status {
    out.Clear();
    // One extra row says whether there is a next page.
    const pqxx::result rows =
        txn.exec_params(kReviewQueuePageSql, request.model_version(), request.upload_id(), first,
                        after.upload_id, after.score, after.line, after.model_version,
                        page_size + 1);
    for (const pqxx::row& row : rows) {
      if (out.items_size() == page_size) {
        out.set_next_page_token(PageToken(out.items(page_size - 1)));
        break;
      }
      v1::ReviewItem* item = out.add_items();
      item->set_upload_id(row[0].as<int64_t>());
      item->set_line(row[1].as<int64_t>());
      item->set_transaction_id(row[2].c_str());
      item->set_model_version(row[3].as<int64_t>());
      FRAUD_ASSIGN_OR_RETURN(const float score, ParseFloat(row[4].c_str()));
      item->set_score(score);
      FRAUD_ASSIGN_OR_RETURN(const double time, ParseDouble(row[5].c_str()));
      FRAUD_ASSIGN_OR_RETURN(const double amount, ParseDouble(row[6].c_str()));
      item->set_time(time);
      item->set_amount(amount);
      item->mutable_features()->Reserve(kNumFeatures);
      item->add_features(time);
      FRAUD_RETURN_IF_ERROR(ParseFloat8Bytes(row[7].c_str(), kNumV, item->mutable_features()));
      item->add_features(amount);
      item->set_current_label(row[8].as<int>());
      FRAUD_ASSIGN_OR_RETURN(const bool explained,
                             ReadStoredExplanation(row, 9, item->features(),
                                                   item->mutable_explanation(),
                                                   item->mutable_explanation_computed_at()));
      if (!explained) {
        item->clear_explanation();
        item->clear_explanation_computed_at();
      }
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::Status ValidateSubmitReview(const v1::SubmitReviewRequest& request) {
  if (std::optional<FieldProblem> p = CheckLabelFeedback(ToLabelFeedback(request))) {
    return absl::InvalidArgumentError(absl::StrCat("field ", p->field, ": ", p->reason));
  }
  if (request.disposition() != v1::REVIEW_DISPOSITION_FRAUD &&
      request.disposition() != v1::REVIEW_DISPOSITION_NOT_FRAUD &&
      request.disposition() != v1::REVIEW_DISPOSITION_UNSURE) {
    return absl::InvalidArgumentError(
        absl::StrCat("field disposition: must be FRAUD, NOT_FRAUD or UNSURE (got ",
                     static_cast<int>(request.disposition()), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::SubmitReviewResponse> SubmitReview(PgPool& pool, absl::Time deadline,
                                                      const v1::SubmitReviewRequest& request) {
  FRAUD_RETURN_IF_ERROR(ValidateSubmitReview(request));
  v1::SubmitReviewResponse out;
  if (request.disposition() == v1::REVIEW_DISPOSITION_UNSURE) {
    FRAUD_RETURN_IF_ERROR(Transact(pool, [&](pqxx::work& txn) {
      out.Clear();
      return RecordDisposition(txn, request, "", &out);
    }));
    return out;
  }
  // The label goes the way every feedback label goes (validation, history, counters).
  FeedbackWriter writer(&pool, deadline);
  v1::RecordFeedbackRequest feedback;
  feedback.set_actor(request.actor());
  *feedback.add_labels() = ToLabelFeedback(request);
  FRAUD_RETURN_IF_ERROR(writer.Add(feedback));
  FRAUD_RETURN_IF_ERROR(
      writer
          .Finish([&](pqxx::work& txn, const v1::RecordFeedbackResponse& applied) {
            const char* outcome = applied.applied() > 0     ? "applied"
                                  : applied.conflicts() > 0 ? "conflict"
                                                            : "unchanged";
            return RecordDisposition(txn, request, outcome, &out);
          })
          .status());
  return out;
}

}  // namespace fraud::storage
