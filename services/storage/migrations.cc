#include "services/storage/migrations.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "services/common/core/log.h"
#include "services/common/core/status_macros.h"
#include "services/storage/pg_errors.h"
#include "services/storage/pg_util.h"

namespace fraud::storage {
namespace {

// Second key of the advisory lock (the first is the hash of the schema name): an arbitrary
// constant that names "storage migrations" among other advisory locks.
constexpr int kMigrationLockKey = 0x6d696772;  // "migr"

constexpr char kCreateTable[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";
constexpr char kIsApplied[] = "SELECT 1 FROM schema_migrations WHERE version = $1";
constexpr char kMaxApplied[] = "SELECT COALESCE(max(version), 0) FROM schema_migrations";
constexpr char kRecord[] = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)";

// Applies one migration in its own transaction. Returns true in *did_apply when it ran.
absl::Status ApplyOne(pqxx::connection& conn, const Migration& m, int latest_known,
                      bool* did_apply) {
  *did_apply = false;
  try {
    pqxx::work txn(conn);
    // DDL on a large table may take longer than the per-statement limit of ordinary calls, and
    // waiting for another instance's migration counts as statement time too.
    txn.exec("SET LOCAL statement_timeout = 0");
    txn.exec_params(kSchemaAdvisoryXactLock, kMigrationLockKey);
    txn.exec(kCreateTable);
    const int max_applied = txn.exec(kMaxApplied)[0][0].as<int>();
    if (max_applied > latest_known) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database schema is at migration ", max_applied,
          ", newer than this binary knows (", latest_known, "); upgrade fraud-storage"));
    }
    if (!txn.exec_params(kIsApplied, m.version).empty()) return absl::OkStatus();
    txn.exec(m.sql);
    txn.exec_params(kRecord, m.version, std::string(m.name));
    txn.commit();
    *did_apply = true;
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return Annotate(StatusFromException(e), absl::StrCat("migration ", m.name));
  }
}

}  // namespace

absl::Status ApplyMigrations(PgPool& pool, const std::vector<Migration>& migrations,
                             int* applied) {
  if (applied != nullptr) *applied = 0;
  for (size_t i = 1; i < migrations.size(); ++i) {
    if (migrations[i].version <= migrations[i - 1].version) {
      return absl::FailedPreconditionError(
          absl::StrCat("migrations are not strictly ascending at ", migrations[i].name));
    }
  }
  if (migrations.empty()) return absl::OkStatus();
  const int latest_known = migrations.back().version;
  FRAUD_ASSIGN_OR_RETURN(PgPool::Lease lease, pool.Acquire());
  for (const Migration& m : migrations) {
    bool did_apply = false;
    absl::Status s = ApplyOne(lease.conn(), m, latest_known, &did_apply);
    if (!s.ok()) {
      if (s.code() == absl::StatusCode::kUnavailable) lease.Discard();
      return s;
    }
    if (did_apply) {
      if (applied != nullptr) ++*applied;
      FRAUD_LOG(INFO) << "applied migration" << Kv("version", m.version) << Kv("name", m.name);
    }
  }
  return absl::OkStatus();
}

}  // namespace fraud::storage
