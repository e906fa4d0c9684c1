// A fixed-size pool of PostgreSQL connections (libpqxx 6.4), one per concurrent call, lent as RAII
// leases.
//
//   FRAUD_ASSIGN_OR_RETURN(PgPool::Lease lease, pool.Acquire(deadline));
//   pqxx::work txn(lease.conn());   // the lease returns the connection when it goes out of scope
//
// Connections are opened lazily on first use and re-opened after a failure: a lease whose
// connection broke (or that was Discard()ed) closes it on return, and the next Acquire of that
// slot connects again. So when PostgreSQL goes away calls fail fast with UNAVAILABLE ("database
// unavailable: ..."), and when it comes back calls succeed again without a restart.
//
// Configuration: `conninfo` is anything libpq accepts — a URI such as
// postgresql://user:pass@db.xxx.supabase.co:5432/postgres?sslmode=require (libpq does TLS itself),
// a key=value string, or "" to use only libpq's environment variables (PGHOST, PGPORT, PGUSER,
// PGPASSWORD, PGDATABASE, PGSSLMODE, ...). Every connection gets statement_timeout and
// extra_float_digits=3 (exact float text output). The password is never logged: Describe() shows
// host, port, database and user only.
//
// Thread-safety: Acquire/Ping/Describe are thread-safe; a Lease and its connection belong to one
// thread at a time (pqxx::connection is not thread-safe).
#pragma once

#include <pqxx/connection>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fraud::storage {

struct PgPoolOptions {
  // libpq URI or key=value string; "" = libpq environment variables only.
  std::string conninfo;
  // Maximum open connections (= concurrent database calls).
  int size = 8;
  // statement_timeout of every connection; 0 = none.
  int statement_timeout_ms = 30000;
  // How long Acquire waits for a free connection before RESOURCE_EXHAUSTED (also bounded by the
  // caller's deadline).
  absl::Duration acquire_timeout = absl::Seconds(10);
  // libpq connect_timeout added to conninfo unless it sets one.
  int connect_timeout_seconds = 5;
  // application_name shown in pg_stat_activity.
  std::string application_name = "fraud-storage";
};

class PgPool {
 public:
  // A borrowed connection. Movable, not copyable; returns the connection on destruction.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease();

    pqxx::connection& conn() const { return *conn_; }
    // True when the connection was opened by an earlier lease: it may have gone stale (for
    // example after a database restart) without anyone noticing yet.
    bool reused() const { return reused_; }
    // Closes the connection when the lease ends instead of returning it (call after a connection
    // loss or when the protocol state is unknown, e.g. an interrupted COPY).
    void Discard() { discard_ = true; }

   private:
    friend class PgPool;
    Lease(PgPool* pool, int slot, pqxx::connection* conn, bool reused)
        : pool_(pool), slot_(slot), conn_(conn), reused_(reused) {}
    PgPool* pool_;
    int slot_;
    pqxx::connection* conn_;
    bool reused_;
    bool discard_ = false;
  };

  explicit PgPool(PgPoolOptions options);
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  // Lends a connection, connecting first when the slot has none. Errors: ResourceExhausted when no
  // connection frees up before min(deadline, now + acquire_timeout); Unavailable ("database
  // unavailable: ...") when connecting fails; ResourceExhausted when the server refuses more
  // clients.
  absl::StatusOr<Lease> Acquire(absl::Time deadline = absl::InfiniteFuture());

  // Runs SELECT 1. OK also when every connection is busy (a busy pool means a live database).
  absl::Status Ping(absl::Duration timeout = absl::Seconds(2));

  // "host=127.0.0.1 port=5432 dbname=fraud user=fraud" from the conninfo and libpq defaults;
  // never the password.
  std::string Describe() const;

  int size() const { return static_cast<int>(slots_.size()); }
  int in_use() const;
  int open_connections() const;

 private:
  struct Slot {
    std::unique_ptr<pqxx::connection> conn;
    bool busy = false;
  };
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Connect() const;
  void Release(int slot, bool discard);

  const PgPoolOptions options_;
  const std::string conninfo_;  // options_.conninfo plus connect_timeout
  mutable absl::Mutex mu_;
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fraud::storage
