// A real PostgreSQL for integration tests, one fresh schema per test.
//
// Reads FRAUD_TEST_PG_URI (a libpq URI of a throwaway cluster, started by `./fraud test`). When it
// is unset the test is skipped, unless FRAUD_REQUIRE_PG=1 (set by `./fraud test` and CI), which
// turns the skip into a failure. SetUp creates schema t_<random>; TearDown drops it (CASCADE).
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace fraud::testing {

class PgFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // The cluster URI as given.
  const std::string& base_uri() const { return base_uri_; }
  // The per-test schema name.
  const std::string& schema() const { return schema_; }
  // libpq connection string whose search_path is the per-test schema.
  std::string conninfo() const;

  // Runs SQL on a fresh connection (for assertions: counts etc.). Fails the test on error.
  std::string QueryScalar(const std::string& sql) const;
  void Exec(const std::string& sql) const;

 private:
  std::string base_uri_;
  std::string schema_;
};

// True when a test database is configured.
bool PgConfigured();

}  // namespace fraud::testing
