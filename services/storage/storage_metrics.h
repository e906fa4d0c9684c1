// Prometheus metrics of the storage service (process-wide, created on first use):
//   fraud_storage_rows_stored_total{table="transactions"|"predictions"}
//   fraud_storage_uploads_total{result="committed"|"duplicate"|"rolled_back"|"invalid"|"failed"}
//   fraud_storage_scan_rows_total
//   fraud_storage_pool_connections_in_use, fraud_storage_pool_connections_open
//   fraud_storage_db_errors_total{code="UNAVAILABLE"|...}
//   fraud_storage_realised_{precision,recall,unlabelled_share,day}{model_version}: the latest day
//   (of Time) each served version scored, on the labels known at the last refresh
//   (UpdateRealisedGauges)
// Thread-safe.
#pragma once

#include "absl/status/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"

namespace fraud::storage {

struct StorageMetrics {
  prometheus::Counter* rows_transactions;
  prometheus::Counter* rows_predictions;
  prometheus::Family<prometheus::Counter>* uploads;
  prometheus::Counter* scan_rows;
  prometheus::Gauge* pool_in_use;
  prometheus::Gauge* pool_open;
  prometheus::Family<prometheus::Counter>* db_errors;
  prometheus::Family<prometheus::Gauge>* realised_precision;
  prometheus::Family<prometheus::Gauge>* realised_recall;
  prometheus::Family<prometheus::Gauge>* realised_unlabelled_share;
  prometheus::Family<prometheus::Gauge>* realised_day;

  // Counts one upload outcome.
  void Upload(const char* result) const;
  // Counts a database error by its status code (no-op for OK).
  void DbError(const absl::Status& s) const;
};

const StorageMetrics& Metrics();

}  // namespace fraud::storage
