// The database a service benchmark runs against: a new database `<prefix>_<pid>` on the server
// named by $FRAUD_BENCH_PG_URI (dropped again at the end), or, when that is unset, a private
// throwaway cluster started with deploy/local/pg.sh (stopped and removed at the end).
// Needs the fraud_process_testing library (tests/testing/process_constellation.h) and libpqxx.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/common/service_bench.h"
#include "tests/testing/process_constellation.h"

namespace fraud::bench {

class BenchDatabase {
 public:
  static absl::StatusOr<std::unique_ptr<BenchDatabase>> Open(const std::string& source_root,
                                                             const std::string& prefix) {
    std::unique_ptr<BenchDatabase> db(new BenchDatabase());
    const char* env = std::getenv("FRAUD_BENCH_PG_URI");
    if (env != nullptr && *env != '\0') {
      db->admin_uri_ = env;
      db->name_ = absl::StrCat(prefix, "_", ::getpid());
      try {
        pqxx::connection c(db->admin_uri_);
        pqxx::nontransaction tx(c);
        tx.exec(absl::StrCat("CREATE DATABASE ", db->name_));
      } catch (const std::exception& e) {
        db->admin_uri_.clear();
        return absl::UnavailableError(absl::StrCat("cannot create database: ", e.what()));
      }
      db->uri_ = WithDatabase(db->admin_uri_, db->name_);
      return db;
    }
    absl::StatusOr<std::unique_ptr<testing::PgCluster>> pg =
        testing::PgCluster::Start(source_root + "/deploy/local/pg.sh");
    if (!pg.ok()) return pg.status();
    db->cluster_ = *std::move(pg);
    db->uri_ = db->cluster_->uri();
    return db;
  }

  ~BenchDatabase() {
    if (admin_uri_.empty()) return;
    try {
      pqxx::connection c(admin_uri_);
      pqxx::nontransaction tx(c);
      tx.exec(absl::StrCat("DROP DATABASE IF EXISTS ", name_, " WITH (FORCE)"));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cannot drop database %s: %s\n", name_.c_str(), e.what());
    }
  }

  const std::string& uri() const { return uri_; }

 private:
  BenchDatabase() = default;

  std::string admin_uri_;  // set when the database lives on $FRAUD_BENCH_PG_URI's server
  std::string name_;
  std::string uri_;
  std::unique_ptr<testing::PgCluster> cluster_;
};

}  // namespace fraud::bench
