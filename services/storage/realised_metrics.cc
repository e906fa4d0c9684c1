#include "services/storage/realised_metrics.h"

#include <pqxx/pqxx>

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/core/status_macros.h"
#include "services/storage/pg_util.h"
#include "services/storage/storage_metrics.h"

namespace fraud::storage {
namespace {

namespace v1 = ::fraud::storage::v1;

// One pass over the predictions joined to their transactions. Two windows over the same sort
// (score descending within a version and period):
//  - rk, the row's rank among all scored rows (ties broken by upload and line), for precision@k;
//  - cum_tp / cum_n, frauds and labelled rows with a score >= this row's (RANGE includes ties),
//    so each labelled fraud contributes the precision at its score threshold; their mean is the
//    average precision, tie handling as in eval::AveragePrecision (sklearn's step-wise AP).
// The period expression is one of two fixed strings (never caller text).
std::string RealisedSql(const char* period) {
  return absl::StrCat(
      "WITH s AS (SELECT p.model_version AS v, ", period, " AS period, p.decision, t.class,"
      " t.time,"
      " row_number() OVER (w ORDER BY p.score DESC, p.upload_id, p.line) AS rk,"
      " count(*) FILTER (WHERE t.class = 1) OVER (w ORDER BY p.score DESC"
      "  RANGE UNBOUNDED PRECEDING) AS cum_tp,"
      " count(t.class) OVER (w ORDER BY p.score DESC RANGE UNBOUNDED PRECEDING) AS cum_n"
      " FROM predictions p JOIN transactions t ON t.upload_id = p.upload_id AND t.line = p.line"
      " WHERE cardinality($1::bigint[]) = 0 OR p.model_version = ANY($1::bigint[])"
      " WINDOW w AS (PARTITION BY p.model_version, ", period, "))"
      " SELECT v, period, count(*), count(class), count(*) FILTER (WHERE decision),"
      " count(class) FILTER (WHERE decision), count(*) FILTER (WHERE decision AND class = 1),"
      " count(*) FILTER (WHERE class = 1),"
      " COALESCE(sum(cum_tp::float8 / cum_n) FILTER (WHERE class = 1), 0),"
      " count(*) FILTER (WHERE rk <= $2 AND class = 1), count(class) FILTER (WHERE rk <= $2),"
      " min(time), max(time)"
      " FROM s GROUP BY v, period ORDER BY v, period");
}

double Ratio(int64_t num, int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

}  // namespace

absl::StatusOr<v1::GetRealisedMetricsResponse> GetRealisedMetrics(
    PgPool& pool, const v1::GetRealisedMetricsRequest& request) {
  if (!v1::RealisedPeriod_IsValid(request.by())) {
    return absl::InvalidArgumentError(absl::StrCat("by: unknown period ", request.by()));
  }
  if (request.k() < 0 || request.k() > kMaxRealisedK) {
    return absl::InvalidArgumentError(
        absl::StrCat("k must be between 1 and ", kMaxRealisedK, " (0 = ", kDefaultRealisedK, ")"));
  }
  for (int64_t v : request.model_versions()) {
    if (v <= 0) return absl::InvalidArgumentError("model_versions must be > 0");
  }
  const int k = request.k() == 0 ? kDefaultRealisedK : request.k();
  const v1::RealisedPeriod by =
      request.by() == v1::REALISED_PERIOD_UPLOAD ? v1::REALISED_PERIOD_UPLOAD : v1::REALISED_PERIOD_DAY;
  const std::string sql = RealisedSql(by == v1::REALISED_PERIOD_UPLOAD
                                          ? "p.upload_id"
                                          : "floor(t.time / 86400)::bigint");
  const std::string versions =
      absl::StrCat("{", absl::StrJoin(request.model_versions(), ","), "}");
  v1::GetRealisedMetricsResponse out;
  FRAUD_RETURN_IF_ERROR(Transact(pool, [&](pqxx::work& txn) -> absl::Status {
    out.Clear();
    out.set_k(k);
    out.set_by(by);
    for (const pqxx::row& row : txn.exec_params(sql, versions, k)) {
      v1::RealisedMetrics* m = out.add_metrics();
      m->set_model_version(row[0].as<int64_t>());
      m->set_period(row[1].as<int64_t>());
      m->set_rows_scored(row[2].as<int64_t>());
      m->set_rows_labelled(row[3].as<int64_t>());
      m->set_unlabelled_share(1.0 - Ratio(m->rows_labelled(), m->rows_scored()));
      m->set_alerts(row[4].as<int64_t>());
      m->set_alerts_labelled(row[5].as<int64_t>());
      m->set_true_alerts(row[6].as<int64_t>());
      m->set_frauds(row[7].as<int64_t>());
      m->set_precision(Ratio(m->true_alerts(), m->alerts_labelled()));
      m->set_recall(Ratio(m->true_alerts(), m->frauds()));
      m->set_auprc(m->frauds() == 0 ? 0.0 : row[8].as<double>() / m->frauds());
      const int64_t top_frauds = row[9].as<int64_t>();
      m->set_top_k_labelled(row[10].as<int64_t>());
      m->set_precision_at_k(Ratio(top_frauds, m->top_k_labelled()));
      FRAUD_ASSIGN_OR_RETURN(const double tmin, ParseDouble(row[11].c_str()));
      FRAUD_ASSIGN_OR_RETURN(const double tmax, ParseDouble(row[12].c_str()));
      m->set_time_min(tmin);
      m->set_time_max(tmax);
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::Status UpdateRealisedGauges(PgPool& pool) {
  v1::GetRealisedMetricsRequest request;
  request.set_by(v1::REALISED_PERIOD_DAY);
  FRAUD_ASSIGN_OR_RETURN(const v1::GetRealisedMetricsResponse r, GetRealisedMetrics(pool, request));
  const StorageMetrics& m = Metrics();
  // Rows come ordered by version, then period: the last row of a version is its latest day.
  for (int i = 0; i < r.metrics_size(); ++i) {
    const v1::RealisedMetrics& row = r.metrics(i);
    if (i + 1 < r.metrics_size() && r.metrics(i + 1).model_version() == row.model_version()) {
      continue;
    }
    const std::map<std::string, std::string> labels = {
        {"model_version", absl::StrCat(row.model_version())}};
    m.realised_precision->Add(labels).Set(row.precision());
    m.realised_recall->Add(labels).Set(row.recall());
    m.realised_unlabelled_share->Add(labels).Set(row.unlabelled_share());
    m.realised_day->Add(labels).Set(static_cast<double>(row.period()));
  }
  return absl::OkStatus();
}

}  // namespace fraud::storage
