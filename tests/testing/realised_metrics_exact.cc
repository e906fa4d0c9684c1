#include "tests/testing/realised_metrics_exact.h"

#include <pqxx/pqxx>

#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/core/status_macros.h"
#include "services/storage/pg_util.h"
#include "services/storage/realised_metrics.h"

namespace fraud::testing {
namespace {

namespace v1 = ::fraud::storage::v1;
using storage::ParseDouble;
using storage::Transact;
using storage::realised::CheckRequest;
using storage::realised::Fill;
using storage::realised::GroupTotals;
using storage::realised::Query;

// One pass over the predictions joined to their transactions. Two windows over the same sort
// (score descending within a version and period):
//  - rk, the row's rank among all scored rows (ties broken by upload and line), for precision@k;
//  - cum_tp / cum_n, frauds and labelled rows with a score >= this row's (RANGE includes ties),
//    so each labelled fraud contributes the precision at its score threshold; their mean is the
//    average precision, tie handling as in eval::AveragePrecision (sklearn's step-wise AP).
// The period expression is one of two fixed strings (never caller text). Columns: v, period,
// rows, labelled, alerts, labelled alerts, true alerts, frauds, sum of the precision at each
// labelled fraud, top-k frauds, top-k labelled, time min, time max.
std::string ExactSql(const char* period) {
  return absl::StrCat(
      "WITH s AS (SELECT p.model_version AS v, ", period, " AS period, p.decision, t.class,"
      " t.time,"
      " row_number() OVER (w ORDER BY p.score DESC, p.upload_id, p.line) AS rk,"
      " count(*) FILTER (WHERE t.class = 1) OVER (w ORDER BY p.score DESC"
      "  RANGE UNBOUNDED PRECEDING) AS cum_tp,"
      " count(t.class) OVER (w ORDER BY p.score DESC RANGE UNBOUNDED PRECEDING) AS cum_n"
      " FROM predictions p JOIN current_transactions t ON t.upload_id = p.upload_id"
      " AND t.line = p.line"
      " WHERE cardinality($1::bigint[]) = 0 OR p.model_version = ANY($1::bigint[])"
      " WINDOW w AS (PARTITION BY p.model_version, ", period, "))"
      " SELECT v, period, count(*), count(class), count(*) FILTER (WHERE decision),"
      " count(class) FILTER (WHERE decision), count(*) FILTER (WHERE decision AND class = 1),"
      " count(*) FILTER (WHERE class = 1),"
      " COALESCE(sum(cum_tp::float8 / cum_n) FILTER (WHERE class = 1), 0),"
      " count(*) FILTER (WHERE rk <= $2 AND class = 1)::float8,"
      " count(class) FILTER (WHERE rk <= $2)::float8,"
      " min(time), max(time)"
      " FROM s GROUP BY v, period ORDER BY v, period");
}

}  // namespace

absl::StatusOr<v1::GetRealisedMetricsResponse> GetRealisedMetricsExact(
    storage::PgPool& pool, const v1::GetRealisedMetricsRequest& request) {
  FRAUD_ASSIGN_OR_RETURN(const Query q, CheckRequest(request));
  const std::string sql = ExactSql(q.by == v1::REALISED_PERIOD_UPLOAD
                                       ? "p.upload_id"
                                       : "floor(t.time / 86400)::bigint");
  v1::GetRealisedMetricsResponse out;
  FRAUD_RETURN_IF_ERROR(Transact(pool, [&](pqxx::work& txn) -> absl::Status {
    out.Clear();
    out.set_k(q.k);
    out.set_by(q.by);
    for (const pqxx::row& row : txn.exec_params(sql, q.versions, q.k)) {
      GroupTotals g;
      g.rows = row[2].as<int64_t>();
      g.labelled = row[3].as<int64_t>();
      g.alerts = row[4].as<int64_t>();
      g.alerts_labelled = row[5].as<int64_t>();
      g.true_alerts = row[6].as<int64_t>();
      g.frauds = row[7].as<int64_t>();
      g.precision_sum = row[8].as<double>();
      g.top_frauds = row[9].as<double>();
      g.top_labelled = row[10].as<double>();
      FRAUD_ASSIGN_OR_RETURN(g.time_min, ParseDouble(row[11].c_str()));
      FRAUD_ASSIGN_OR_RETURN(g.time_max, ParseDouble(row[12].c_str()));
      Fill(row[0].as<int64_t>(), row[1].as<int64_t>(), g, out.add_metrics());
    }
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace fraud::testing
