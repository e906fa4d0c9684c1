// Schema migrations of the storage service: numbered SQL files (services/storage/migrations/
// NNNN_name.sql) embedded into the binary at build time and applied in order at start-up.
//
// Each migration runs in its own transaction that first takes a transaction-scoped advisory lock
// keyed on the current schema, then checks schema_migrations, so running the migrations twice, or
// from two processes at once, applies each exactly once (the second waits, then finds it recorded).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "services/storage/pg_pool.h"

namespace fraud::storage {

struct Migration {
  int version;       // NNNN from the file name
  const char* name;  // file name without ".sql"
  const char* sql;   // the file's content
};

// Every migration compiled into this binary, ascending by version (generated source).
const std::vector<Migration>& EmbeddedMigrations();

// Applies `migrations` not yet recorded in schema_migrations, in order; returns how many it applied
// in *applied (may be null). Errors: Unavailable when the database is unreachable; FailedPrecondition
// when the database records a version newer than any known here (a newer binary migrated it) or
// the list is not strictly ascending; the SQL error of a failing migration otherwise (that
// migration is rolled back, earlier ones stay).
absl::Status ApplyMigrations(PgPool& pool, const std::vector<Migration>& migrations,
                             int* applied = nullptr);

}  // namespace fraud::storage
