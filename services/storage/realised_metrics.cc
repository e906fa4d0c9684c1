#include "services/storage/realised_metrics.h"

#include <pqxx/pqxx>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/core/day.h"
#include "services/common/core/status_macros.h"
#include "services/storage/pg_copy.h"
#include "services/storage/pg_util.h"
#include "services/storage/storage_metrics.h"

namespace fraud::storage {
namespace {

namespace v1 = ::fraud::storage::v1;
using realised::CheckRequest;
using realised::Fill;
using realised::GroupTotals;
using realised::Query;

// Bins of realised_bin() (migration 0007).
constexpr int kNumBins = 1024;

// The bins of the summary (migration 0007) in the versions asked for; the period column is one
// of two fixed strings. The rows are few (versions x uploads x days x bins in use, e.g. 65k for
// 30 days x 5 versions) and are summed in memory: a GROUP BY plus a window in SQL measured
// several times slower (hash aggregate and sort of every bin row).
std::string BinsSql(const char* period) {
  return absl::StrCat(
      "SELECT model_version, ", period, ", bin, decision, frauds, legits, unlabelled,"
      " time_min, time_max FROM realised_bins"
      " WHERE cardinality($1::bigint[]) = 0 OR model_version = ANY($1::bigint[])");
}

// One (version, period)'s histogram, summed over its uploads / days and decisions.
struct Histogram {
  std::vector<int64_t> frauds = std::vector<int64_t>(kNumBins);
  std::vector<int64_t> legits = std::vector<int64_t>(kNumBins);
  std::vector<int64_t> rows = std::vector<int64_t>(kNumBins);
  GroupTotals totals;
  bool has_time = false;
};

// Bins in descending score order, a bin's scores counted as ties: each bin's frauds contribute
// the precision over all bins >= it (as the exact query does per distinct score); bins wholly
// inside the top k count fully, the bin holding the k-th row in proportion.
void Derive(int k, Histogram* h) {
  GroupTotals& g = h->totals;
  double cum_frauds = 0;
  double cum_labelled = 0;
  int64_t cum_rows = 0;
  for (int b = kNumBins - 1; b >= 0; --b) {
    const int64_t n = h->rows[b];
    if (n == 0) continue;
    const auto f = static_cast<double>(h->frauds[b]);
    const auto lab = static_cast<double>(h->frauds[b] + h->legits[b]);
    cum_frauds += f;
    cum_labelled += lab;
    if (f > 0) g.precision_sum += f * cum_frauds / cum_labelled;
    const int64_t before = cum_rows;
    cum_rows += n;
    if (cum_rows <= k) {
      g.top_frauds += f;
      g.top_labelled += lab;
    } else if (before < k) {
      const double share = static_cast<double>(k - before) / static_cast<double>(n);
      g.top_frauds += f * share;
      g.top_labelled += lab * share;
    }
  }
}

double Ratio(int64_t num, int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

}  // namespace

namespace realised {

absl::StatusOr<Query> CheckRequest(const v1::GetRealisedMetricsRequest& request) {
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
  Query q;
  q.k = request.k() == 0 ? kDefaultRealisedK : request.k();
  q.by = request.by() == v1::REALISED_PERIOD_UPLOAD ? v1::REALISED_PERIOD_UPLOAD
                                                    : v1::REALISED_PERIOD_DAY;
  q.versions = absl::StrCat("{", absl::StrJoin(request.model_versions(), ","), "}");
  return q;
}

void Fill(int64_t version, int64_t period, const GroupTotals& g, v1::RealisedMetrics* m) {
  m->set_model_version(version);
  m->set_period(period);
  m->set_rows_scored(g.rows);
  m->set_rows_labelled(g.labelled);
  m->set_unlabelled_share(1.0 - Ratio(g.labelled, g.rows));
  m->set_alerts(g.alerts);
  m->set_alerts_labelled(g.alerts_labelled);
  m->set_true_alerts(g.true_alerts);
  m->set_frauds(g.frauds);
  m->set_precision(Ratio(g.true_alerts, g.alerts_labelled));
  m->set_recall(Ratio(g.true_alerts, g.frauds));
  m->set_auprc(g.frauds == 0 ? 0.0 : g.precision_sum / static_cast<double>(g.frauds));
  m->set_top_k_labelled(std::llround(g.top_labelled));
  m->set_precision_at_k(g.top_labelled <= 0 ? 0.0 : g.top_frauds / g.top_labelled);
  m->set_time_min(g.time_min);
  m->set_time_max(g.time_max);
}

}  // namespace realised

absl::StatusOr<v1::GetRealisedMetricsResponse> GetRealisedMetrics(
    PgPool& pool, const v1::GetRealisedMetricsRequest& request) {
  FRAUD_ASSIGN_OR_RETURN(const Query q, CheckRequest(request));
  const std::string sql = BinsSql(q.by == v1::REALISED_PERIOD_UPLOAD ? "upload_id" : "day");
  // Ordered by (version, period): the response order.
  std::map<std::pair<int64_t, int64_t>, Histogram> groups;
  FRAUD_RETURN_IF_ERROR(Transact(pool, [&](pqxx::work& txn) -> absl::Status {
    groups.clear();
    for (const pqxx::row& row : txn.exec_params(sql, q.versions)) {
      const int bin = row[2].as<int>();
      if (bin < 0 || bin >= kNumBins) {
        return absl::InternalError(absl::StrCat("realised_bins holds bin ", bin));
      }
      Histogram& h = groups[{row[0].as<int64_t>(), row[1].as<int64_t>()}];
      const bool decision = row[3].as<bool>();
      const auto f = row[4].as<int64_t>();
      const auto l = row[5].as<int64_t>();
      const int64_t n = f + l + row[6].as<int64_t>();
      h.frauds[bin] += f;
      h.legits[bin] += l;
      h.rows[bin] += n;
      GroupTotals& g = h.totals;
      g.rows += n;
      g.labelled += f + l;
      g.frauds += f;
      if (decision) {
        g.alerts += n;
        g.alerts_labelled += f + l;
        g.true_alerts += f;
      }
      FRAUD_ASSIGN_OR_RETURN(const double tmin, ParseDouble(row[7].c_str()));
      FRAUD_ASSIGN_OR_RETURN(const double tmax, ParseDouble(row[8].c_str()));
      g.time_min = h.has_time ? std::min(g.time_min, tmin) : tmin;
      g.time_max = h.has_time ? std::max(g.time_max, tmax) : tmax;
      h.has_time = true;
    }
    return absl::OkStatus();
  }));
  v1::GetRealisedMetricsResponse out;
  out.set_k(q.k);
  out.set_by(q.by);
  for (auto& [key, h] : groups) {
    if (h.totals.rows == 0) continue;  // every prediction of the group was deleted
    Derive(q.k, &h);
    Fill(key.first, key.second, h.totals, out.add_metrics());
  }
  return out;
}

int RealisedBin(float score) {
  if (!(score > 0)) return 0;
  if (score >= 1) return kNumBins - 1;
  const double s = score;
  const double bin = std::floor(32 * std::log(s / (1 - s))) + kNumBins / 2;
  return static_cast<int>(std::min<double>(kNumBins - 1, std::max<double>(0, bin)));
}

RealisedBinsBuilder::Counts& RealisedBinsBuilder::Slot(int64_t model_version, double time,
                                                       float score, bool decision) {
  auto [it, inserted] =
      bins_.try_emplace(Key{model_version, layout::DayOf(time), decision, RealisedBin(score)});
  Counts& c = it->second;
  c.time_min = inserted ? time : std::min(c.time_min, time);
  c.time_max = inserted ? time : std::max(c.time_max, time);
  return c;
}

int64_t& RealisedBinsBuilder::State(Counts& c, int label) {
  return label == 1 ? c.frauds : label == 0 ? c.legits : c.unlabelled;
}

void RealisedBinsBuilder::Add(int64_t model_version, double time, float score, bool decision,
                              int label, int64_t count) {
  State(Slot(model_version, time, score, decision), label) += count;
}

void RealisedBinsBuilder::Move(int64_t model_version, double time, float score, bool decision,
                               int from, int to) {
  Counts& c = Slot(model_version, time, score, decision);
  --State(c, from);
  ++State(c, to);
}

void RealisedBinsBuilder::Insert(pqxx::work& txn, int64_t upload_id) const {
  Write(txn, upload_id, /*add=*/false);
}

void RealisedBinsBuilder::AddTo(pqxx::work& txn, int64_t upload_id) const {
  Write(txn, upload_id, /*add=*/true);
}

void RealisedBinsBuilder::Write(pqxx::work& txn, int64_t upload_id, bool add) const {
  if (bins_.empty()) return;
  std::string cols[9];
  for (std::string& c : cols) c = "{";
  std::vector<const std::pair<const Key, Counts>*> sorted;
  sorted.reserve(bins_.size());
  for (const auto& bin : bins_) sorted.push_back(&bin);
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
    return a->first < b->first;
  });
  bool first = true;
  for (const auto* bin : sorted) {
    const auto& [key, c] = *bin;
    const char* sep = first ? "" : ",";
    first = false;
    absl::StrAppend(&cols[0], sep, std::get<0>(key));
    absl::StrAppend(&cols[1], sep, std::get<1>(key));
    absl::StrAppend(&cols[2], sep, std::get<2>(key) ? "t" : "f");
    absl::StrAppend(&cols[3], sep, std::get<3>(key));
    absl::StrAppend(&cols[4], sep, c.frauds);
    absl::StrAppend(&cols[5], sep, c.legits);
    absl::StrAppend(&cols[6], sep, c.unlabelled);
    absl::StrAppend(&cols[7], sep, DoubleLiteral(c.time_min));
    absl::StrAppend(&cols[8], sep, DoubleLiteral(c.time_max));
  }
  for (std::string& c : cols) c.push_back('}');
  txn.exec_params(
      "INSERT INTO realised_bins (upload_id, model_version, day, decision, bin, frauds, legits,"
      " unlabelled, time_min, time_max) SELECT $1, * FROM unnest($2::bigint[], $3::bigint[],"
      " $4::boolean[], $5::smallint[], $6::bigint[], $7::bigint[], $8::bigint[],"
      " $9::float8[], $10::float8[])" +
          std::string(add ? " ON CONFLICT (upload_id, model_version, day, decision, bin) DO UPDATE"
                            " SET frauds = realised_bins.frauds + EXCLUDED.frauds,"
                            " legits = realised_bins.legits + EXCLUDED.legits,"
                            " unlabelled = realised_bins.unlabelled + EXCLUDED.unlabelled,"
                            " time_min = least(realised_bins.time_min, EXCLUDED.time_min),"
                            " time_max = greatest(realised_bins.time_max, EXCLUDED.time_max)"
                          : ""),
      upload_id, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8]);
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
