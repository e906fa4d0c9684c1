// Realised performance of the served model versions on the labels known now
// (GetRealisedMetrics), read from the summary realised_bins that every write keeps current
// (migration 0007): counts per (upload, version, day, decision, score bin) by label state. One
// statement sums the bins per (model version, period) and derives counts, precision, recall
// (exact), average precision and precision@k (from the 1024-bin score histogram: scores in one
// bin count as ties) in the database, so only one row per group comes back.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <map>
#include <tuple>

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

// The same figures computed exactly from every stored prediction joined to its transaction
// (scores compared individually; precision@k over exactly the k highest, ties broken by upload
// and line). Seconds at millions of predictions: the reference the tests and the bench compare
// the summary against, not served by the RPC. Same contract as GetRealisedMetrics.
absl::StatusOr<fraud::storage::v1::GetRealisedMetricsResponse> GetRealisedMetricsExact(
    PgPool& pool, const fraud::storage::v1::GetRealisedMetricsRequest& request);

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
  // One prediction: its version, the row's Time, score, decision and label (-1 = none).
  void Add(int64_t model_version, double time, float score, bool decision, int label);
  bool empty() const { return bins_.empty(); }
  // Inserts the bins for `upload_id` (a new upload: no bin of it exists yet) in `txn`. Throws
  // what pqxx throws (the caller maps it with StatusFromException).
  void Insert(pqxx::work& txn, int64_t upload_id) const;

 private:
  struct Counts {
    int64_t frauds = 0;
    int64_t legits = 0;
    int64_t unlabelled = 0;
    double time_min = 0;
    double time_max = 0;
  };
  // (model_version, day, decision, bin)
  std::map<std::tuple<int64_t, int64_t, bool, int>, Counts> bins_;
};

// Sets the fraud_storage_realised_* gauges (storage_metrics.h) from GetRealisedMetrics by day:
// for each model version, its latest day. Versions without predictions keep no gauge. Returns
// the query's status (the gauges are left as they were on error).
absl::Status UpdateRealisedGauges(PgPool& pool);

}  // namespace fraud::storage
