// Realised performance of the served model versions on the labels known now
// (GetRealisedMetrics), read from the summary realised_bins that every write keeps current
// (migration 0007): counts per (upload, version, day, decision, score bin) by label state. One
// statement sums the bins per (model version, period) and derives counts, precision, recall
// (exact), average precision and precision@k (from the 1024-bin score histogram: scores in one
// bin count as ties) in the database, so only one row per group comes back.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <string>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/storage/pg_pool.h"

namespace fraud::storage {

// Default and largest k of precision@k.
inline constexpr int kDefaultRealisedK = 100;
inline constexpr int kMaxRealisedK = 100000;

// InvalidArgument for an unknown period, k < 0 or > kMaxRealisedK, or a version <= 0.
// Thread-safe (one leased connection per call).
absl::StatusOr<fraud::storage::v1::GetRealisedMetricsResponse> GetRealisedMetrics(
    PgPool& pool, const fraud::storage::v1::GetRealisedMetricsRequest& request);

// The parts of GetRealisedMetrics that the exact reference computation
// (tests/testing/realised_metrics_exact.h, used by the tests and the bench) shares with it, so
// that both check and answer a request the same way.
namespace realised {

// A checked request.
struct Query {
  int k = kDefaultRealisedK;
  fraud::storage::v1::RealisedPeriod by = fraud::storage::v1::REALISED_PERIOD_DAY;
  std::string versions;  // bigint[] literal; {} = all
};

// GetRealisedMetrics' validation (see there) and defaults (k 0 = kDefaultRealisedK).
absl::StatusOr<Query> CheckRequest(const fraud::storage::v1::GetRealisedMetricsRequest& request);

// What one (version, period) row of the response is derived from.
struct GroupTotals {
  int64_t rows = 0;
  int64_t labelled = 0;
  int64_t alerts = 0;
  int64_t alerts_labelled = 0;
  int64_t true_alerts = 0;
  int64_t frauds = 0;
  // Sum over labelled frauds of the precision at their score; frauds and labelled rows among
  // the k highest scores (fractional when a tie group straddles the k-th row).
  double precision_sum = 0;
  double top_frauds = 0;
  double top_labelled = 0;
  double time_min = 0;
  double time_max = 0;
};

// One row of the response from its totals (ratios of empty groups are 0).
void Fill(int64_t version, int64_t period, const GroupTotals& g,
          fraud::storage::v1::RealisedMetrics* m);

}  // namespace realised

// The bin of a score in [0, 1], computed exactly as the SQL function realised_bin() of migration
// 0007 (same double operations, so both agree bit for bit): 1024 bins uniform in logit(score)
// over [-16, 16), 32 per unit; scores <= 0 / >= 1 (and beyond the range) in the end bins.
int RealisedBin(float score);

// The realised_bins rows of one new upload, built in memory as its rows are written, so the
// upload's COPYs skip the per-statement trigger (UploadWriter sets fraud.realised_deferred for
// its transaction) and the summary costs one INSERT of a few thousand rows at commit.
// Thread-safety: none.
class RealisedBinsBuilder {
 public:
  // One prediction: its version, the row's Time, score, decision and label (-1 = none), counted
  // `count` times (FeedbackWriter moves a prediction between label states with -1 and +1).
  void Add(int64_t model_version, double time, float score, bool decision, int label,
           int64_t count = 1);
  // One prediction whose row's label changed from `from` to `to` (FeedbackWriter): its bin
  // loses it in the state `from` and gains it in `to`.
  void Move(int64_t model_version, double time, float score, bool decision, int from, int to);
  bool empty() const { return bins_.empty(); }
  // Inserts the bins for `upload_id` (a new upload: no bin of it exists yet) in `txn`. Throws
  // what pqxx throws (the caller maps it with StatusFromException).
  void Insert(pqxx::work& txn, int64_t upload_id) const;
  // Adds the counts to the bins of `upload_id` that exist (and inserts those that do not), in
  // key order. Throws what pqxx throws.
  void AddTo(pqxx::work& txn, int64_t upload_id) const;

 private:
  struct Counts {
    int64_t frauds = 0;
    int64_t legits = 0;
    int64_t unlabelled = 0;
    double time_min = 0;
    double time_max = 0;
  };
  using Key = std::tuple<int64_t, int64_t, bool, int>;  // (model_version, day, decision, bin)
  Counts& Slot(int64_t model_version, double time, float score, bool decision);
  static int64_t& State(Counts& c, int label);
  void Write(pqxx::work& txn, int64_t upload_id, bool add) const;
  // Hashed (a prediction is one probe); written in key order.
  absl::flat_hash_map<Key, Counts> bins_;
};

// Sets the fraud_storage_realised_* gauges (storage_metrics.h) from GetRealisedMetrics by day:
// for each model version, its latest day. Versions without predictions keep no gauge. Returns
// the query's status (the gauges are left as they were on error).
absl::Status UpdateRealisedGauges(PgPool& pool);

}  // namespace fraud::storage
