#include "services/storage/storage_metrics.h"

#include "services/common/core/metrics.h"
#include "services/common/rpc/grpc_status.h"

namespace fraud::storage {

const StorageMetrics& Metrics() {
  static const StorageMetrics* const kMetrics = [] {
    auto* m = new StorageMetrics;
    auto& rows = metrics::Counter("fraud_storage_rows_stored_total",
                                  "Rows stored by committed uploads and RecordPredictions, by table");
    m->rows_transactions = &rows.Add({{"table", "transactions"}});
    m->rows_predictions = &rows.Add({{"table", "predictions"}});
    m->uploads = &metrics::Counter("fraud_storage_uploads_total", "StoreUpload calls by result");
    m->scan_rows = &metrics::Counter("fraud_storage_scan_rows_total",
                                     "Rows streamed by ScanTransactions")
                        .Add({});
    m->pool_in_use = &metrics::Gauge("fraud_storage_pool_connections_in_use",
                                     "Database connections currently leased")
                          .Add({});
    m->pool_open = &metrics::Gauge("fraud_storage_pool_connections_open",
                                   "Database connections currently open")
                        .Add({});
    m->db_errors = &metrics::Counter("fraud_storage_db_errors_total",
                                     "Database errors by mapped status code");
    m->realised_precision = &metrics::Gauge(
        "fraud_storage_realised_precision",
        "Realised precision (true alerts / labelled alerts) of each version's latest day");
    m->realised_recall = &metrics::Gauge(
        "fraud_storage_realised_recall",
        "Realised recall (true alerts / labelled frauds) of each version's latest day");
    m->realised_unlabelled_share = &metrics::Gauge(
        "fraud_storage_realised_unlabelled_share",
        "Share of the rows each version scored on its latest day that have no label yet");
    m->realised_day = &metrics::Gauge("fraud_storage_realised_day",
                                      "The latest day (floor(Time / 86400)) each version scored");
    return m;
  }();
  return *kMetrics;
}

void StorageMetrics::Upload(const char* result) const { uploads->Add({{"result", result}}).Increment(); }

void StorageMetrics::DbError(const absl::Status& s) const {
  if (s.ok()) return;
  db_errors->Add({{"code", rpc::CodeName(s.code())}}).Increment();
}

}  // namespace fraud::storage
