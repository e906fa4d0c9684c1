// fraud-storage: the only process that talks to PostgreSQL (gRPC 50052, /metrics + /healthz 9102).
//
// Database: --database_url takes anything libpq accepts, e.g. a Supabase connection string
//   postgresql://postgres.<ref>:<password>@aws-0-<region>.pooler.supabase.com:5432/postgres?sslmode=require
// (libpq negotiates TLS itself). Prefer passing secrets through libpq's environment variables
// (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE) or FRAUD_DATABASE_URL rather than
// the command line; with --database_url empty, only the PG* variables are used. Logs show host,
// port, database and user, never the password.
//
// Start-up: the gRPC server starts NOT_SERVING, schema migrations are applied (retried every 2 s
// while the database is unreachable), then the service turns SERVING. /healthz is ready when the
// migrations are applied and the database answers a ping. --migrate_only applies the migrations
// and exits (0 on success).
#include <csignal>
#include <ctime>
#include <string>

#include <grpc/grpc.h>

#include "absl/flags/flag.h"
#include "services/common/core/log.h"
#include "services/common/core/shutdown.h"
#include "services/common/core/status_macros.h"
#include "services/common/rpc/server_flags.h"
#include "services/common/rpc/server_runner.h"
#include "services/common/rpc/ports.h"
#include "services/storage/migrations.h"
#include "services/storage/pg_pool.h"
#include "services/storage/pg_store.h"
#include "services/storage/realised_metrics.h"
#include "services/storage/storage_service.h"

ABSL_FLAG(std::string, database_url, "",
          "libpq connection string or URI (e.g. postgresql://user:pass@host:5432/db?sslmode=require"
          "); empty = libpq's PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE environment variables");
ABSL_FLAG(int, pool_size, 16,
          "Database connections (= concurrent database calls; each open upload holds one)");
ABSL_FLAG(int, statement_timeout_ms, 30000,
          "PostgreSQL statement_timeout of every connection (0 = none; scans are exempt)");
ABSL_FLAG(bool, migrate_only, false, "Apply the schema migrations and exit");
ABSL_FLAG(int, realised_refresh_seconds, 300,
          "Refresh the fraud_storage_realised_* gauges (realised precision, recall and unlabelled "
          "share of each version's latest day) this often; 0 = never");

namespace {

constexpr char kServiceName[] = "fraud.storage.v1.StorageService";

bool Retryable(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
      return true;
    default:
      return false;
  }
}

// Sleeps up to `seconds` unless a stop signal arrives first; returns true on a signal.
bool StopRequested(const sigset_t& stop, int seconds) {
  timespec timeout{seconds, 0};
  return sigtimedwait(&stop, nullptr, &timeout) > 0;
}

}  // namespace

int main(int argc, char** argv) {
  fraud::rpc::InitService(argc, argv, "storage",
                          "fraud-storage: uploads, transactions, predictions, model registry and "
                          "training runs in PostgreSQL, over gRPC");
  fraud::rpc::KeepFreedHeapFromFlags();
  const sigset_t stop = fraud::BlockStopSignals();

  fraud::storage::PgPoolOptions pool_options;
  pool_options.conninfo = absl::GetFlag(FLAGS_database_url);
  pool_options.size = absl::GetFlag(FLAGS_pool_size);
  pool_options.statement_timeout_ms = absl::GetFlag(FLAGS_statement_timeout_ms);
  fraud::storage::PgPool pool(pool_options);
  FRAUD_LOG(INFO) << "database" << fraud::Kv("target", pool.Describe())
                  << fraud::Kv("pool_size", pool.size());

  const auto& migrations = fraud::storage::EmbeddedMigrations();
  if (absl::GetFlag(FLAGS_migrate_only)) {
    int applied = 0;
    absl::Status s = fraud::storage::ApplyMigrations(pool, migrations, &applied);
    if (!s.ok()) {
      FRAUD_LOG(ERROR) << "migrations failed" << fraud::Kv("error", s.ToString());
      return 1;
    }
    FRAUD_LOG(INFO) << "migrations up to date" << fraud::Kv("applied", applied)
                    << fraud::Kv("latest", migrations.empty() ? 0 : migrations.back().version);
    return 0;
  }

  fraud::storage::PgStore store(&pool);
  const std::string service_token = fraud::rpc::ServiceTokenFromFlags();
  if (service_token.empty()) {
    FRAUD_LOG(WARNING) << "no --service_token: registry and upload writes are open to anyone who "
                          "can reach this port (set FRAUD_SERVICE_TOKEN on every service)";
  }
  fraud::storage::StorageService service(&pool, &store, service_token);
  fraud::rpc::ServerOptions server_options =
      fraud::rpc::ServerOptionsFromFlags("storage", fraud::rpc::kStoragePorts.grpc,
                                         fraud::rpc::kStoragePorts.metrics);
  // StoreUpload reads one batch at a time and relies on HTTP/2 flow control to hold the sender
  // back. With BDP probing, gRPC grows the receive window on loopback to tens of MB and buffers
  // that much of the stream ahead of the handler (measured: 37 MB of read slices, heaptrack).
  server_options.int_channel_args.push_back({GRPC_ARG_HTTP2_BDP_PROBE, 0});
  fraud::rpc::ServerRunner runner(server_options);
  runner.Register(&service);
  runner.SetReadyCheck([&service, &pool] {
    return service.ready() && pool.Ping(absl::Seconds(1)).ok();
  });
  FRAUD_CHECK_OK(runner.Start());
  runner.SetServing("", false);
  runner.SetServing(kServiceName, false);

  while (true) {
    int applied = 0;
    absl::Status s = fraud::storage::ApplyMigrations(pool, migrations, &applied);
    if (s.ok()) {
      FRAUD_LOG(INFO) << "migrations up to date" << fraud::Kv("applied", applied);
      break;
    }
    if (!Retryable(s)) {
      FRAUD_LOG(ERROR) << "migrations failed" << fraud::Kv("error", s.ToString());
      runner.Shutdown(absl::ZeroDuration());
      return 1;
    }
    FRAUD_LOG(WARNING) << "database not ready; retrying migrations in 2 s"
                       << fraud::Kv("error", s.ToString());
    if (StopRequested(stop, 2)) {
      runner.Shutdown(absl::ZeroDuration());
      return 0;
    }
  }
  service.SetReady(true);
  runner.SetServing("", true);
  runner.SetServing(kServiceName, true);

  // The main thread only waits for the stop signal: it refreshes the realised gauges meanwhile
  // (one grouped query over the stored predictions; no thread of its own).
  const int refresh = absl::GetFlag(FLAGS_realised_refresh_seconds);
  if (refresh > 0) {
    do {
      if (absl::Status s = fraud::storage::UpdateRealisedGauges(pool); !s.ok()) {
        FRAUD_LOG(WARNING) << "realised gauges not refreshed" << fraud::Kv("error", s.ToString());
      }
    } while (!StopRequested(stop, refresh));
  } else {
    fraud::WaitForSignal(stop);
  }
  runner.Shutdown(fraud::rpc::GracePeriodFromFlags());
  return 0;
}
