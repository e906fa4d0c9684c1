#include "services/storage/pg_pool.h"

#include <libpq-fe.h>

#include <pqxx/pqxx>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/common/core/log.h"
#include "services/common/core/status_macros.h"
#include "services/storage/pg_errors.h"
#include "services/storage/storage_metrics.h"

namespace fraud::storage {
namespace {

bool IsUri(const std::string& conninfo) {
  return absl::StartsWith(conninfo, "postgresql://") || absl::StartsWith(conninfo, "postgres://");
}

// Value of `key` in a parsed conninfo, or "" when absent.
std::string OptionValue(PQconninfoOption* options, const char* key) {
  if (options == nullptr) return "";
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (std::string(o->keyword) == key && o->val != nullptr) return o->val;
  }
  return "";
}

// Adds connect_timeout unless the caller set one, so an unreachable host fails fast instead of
// waiting for the kernel's TCP timeout.
std::string WithConnectTimeout(const std::string& conninfo, int seconds) {
  if (seconds <= 0) return conninfo;
  char* err = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &err);
  if (err != nullptr) PQfreemem(err);
  const bool has_timeout = !OptionValue(parsed, "connect_timeout").empty();
  if (parsed != nullptr) PQconninfoFree(parsed);
  if (has_timeout || parsed == nullptr) return conninfo;  // malformed: let libpq report it
  if (conninfo.empty()) return absl::StrCat("connect_timeout=", seconds);
  if (IsUri(conninfo)) {
    const char sep = conninfo.find('?') == std::string::npos ? '?' : '&';
    return absl::StrCat(conninfo, std::string(1, sep), "connect_timeout=", seconds);
  }
  return absl::StrCat(conninfo, " connect_timeout=", seconds);
}

}  // namespace

PgPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      slot_(other.slot_),
      conn_(other.conn_),
      reused_(other.reused_),
      discard_(other.discard_) {}

PgPool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Release(slot_, discard_);
}

PgPool::PgPool(PgPoolOptions options)
    : options_(std::move(options)),
      conninfo_(WithConnectTimeout(options_.conninfo, options_.connect_timeout_seconds)) {
  absl::MutexLock lock(&mu_);
  slots_.resize(std::max(1, options_.size));
}

PgPool::~PgPool() {
  absl::MutexLock lock(&mu_);
  FRAUD_CHECK(busy_ == 0) << "PgPool destroyed with " << busy_ << " connections still leased";
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> PgPool::Connect() const {
  try {
    auto conn = std::make_unique<pqxx::connection>(conninfo_);
    // A lost connection must surface as broken_connection so the pool discards it; libpqxx's
    // silent reconnect would also drop the session settings below. (Deprecated in 7.x, where
    // reactivation no longer exists; 6.4 still reactivates by default.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    conn->inhibit_reactivation(true);
#pragma GCC diagnostic pop
    pqxx::nontransaction setup(*conn);
    setup.exec(absl::StrCat("SET statement_timeout = ", std::max(0, options_.statement_timeout_ms),
                            "; SET extra_float_digits = 3; SET application_name = ",
                            setup.quote(options_.application_name)));
    return conn;
  } catch (const std::exception& e) {
    absl::Status s = StatusFromException(e);
    // Any failure to connect means the database is not usable right now.
    if (s.code() == absl::StatusCode::kInternal) {
      s = absl::UnavailableError(absl::StrCat("database unavailable: ", s.message()));
    }
    Metrics().DbError(s);
    return s;
  }
}

absl::StatusOr<PgPool::Lease> PgPool::Acquire(absl::Time deadline) {
  const absl::Time wait_until = std::min(deadline, absl::Now() + options_.acquire_timeout);
  int slot = -1;
  bool reused = false;
  {
    absl::MutexLock lock(&mu_);
    auto has_free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return busy_ < static_cast<int>(slots_.size());
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&has_free), wait_until)) {
      return absl::ResourceExhaustedError(
          absl::StrCat("database connection pool exhausted (", slots_.size(), " in use)"));
    }
    // Prefer a slot with an open connection.
    for (int i = 0; i < static_cast<int>(slots_.size()); ++i) {
      if (slots_[i].busy) continue;
      if (slot < 0 || (slots_[i].conn != nullptr && slots_[slot].conn == nullptr)) slot = i;
    }
    slots_[slot].busy = true;
    ++busy_;
    reused = slots_[slot].conn != nullptr;
    Metrics().pool_in_use->Set(busy_);
  }
  if (!reused) {
    // Connect outside the lock: it takes a network round trip (or the connect timeout).
    absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = Connect();
    absl::MutexLock lock(&mu_);
    if (!conn.ok()) {
      slots_[slot].busy = false;
      --busy_;
      Metrics().pool_in_use->Set(busy_);
      return conn.status();
    }
    slots_[slot].conn = *std::move(conn);
    Metrics().pool_open->Increment();
  }
  absl::MutexLock lock(&mu_);
  return Lease(this, slot, slots_[slot].conn.get(), reused);
}

void PgPool::Release(int slot, bool discard) {
  std::unique_ptr<pqxx::connection> closing;
  {
    absl::MutexLock lock(&mu_);
    Slot& s = slots_[slot];
    // Callers Discard() after an interrupted COPY; pqxx transactions roll back in their
    // destructors, so any other open connection is idle and reusable.
    const bool usable = !discard && s.conn != nullptr && s.conn->is_open();
    if (!usable && s.conn != nullptr) {
      closing = std::move(s.conn);
      Metrics().pool_open->Decrement();
    }
    s.busy = false;
    --busy_;
    Metrics().pool_in_use->Set(busy_);
  }
  // Closing sends a Terminate message; do it outside the lock.
  closing.reset();
}

absl::Status PgPool::Ping(absl::Duration timeout) {
  absl::StatusOr<Lease> lease = Acquire(absl::Now() + timeout);
  if (!lease.ok()) {
    if (lease.status().code() == absl::StatusCode::kResourceExhausted &&
        absl::StrContains(lease.status().message(), "pool exhausted")) {
      return absl::OkStatus();
    }
    return lease.status();
  }
  try {
    pqxx::nontransaction txn(lease->conn());
    txn.exec("SELECT 1");
    return absl::OkStatus();
  } catch (const std::exception& e) {
    lease->Discard();
    absl::Status s = StatusFromException(e);
    Metrics().DbError(s);
    return s;
  }
}

std::string PgPool::Describe() const {
  char* err = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(options_.conninfo.c_str(), &err);
  if (err != nullptr) PQfreemem(err);
  PQconninfoOption* defaults = PQconndefaults();
  std::string out;
  for (const char* key : {"host", "hostaddr", "port", "dbname", "user", "sslmode"}) {
    std::string value = OptionValue(parsed, key);
    if (value.empty()) value = OptionValue(defaults, key);
    if (value.empty()) continue;
    absl::StrAppend(&out, out.empty() ? "" : " ", key, "=", value);
  }
  if (parsed != nullptr) PQconninfoFree(parsed);
  if (defaults != nullptr) PQconninfoFree(defaults);
  return out;
}

int PgPool::in_use() const {
  absl::MutexLock lock(&mu_);
  return busy_;
}

int PgPool::open_connections() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const Slot& s : slots_) n += s.conn != nullptr ? 1 : 0;
  return n;
}

}  // namespace fraud::storage
