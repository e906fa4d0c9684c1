#include "tests/testing/pg_fixture.h"

#include <cstdlib>
#include <pqxx/pqxx>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fraud::testing {

bool PgConfigured() {
  const char* uri = std::getenv("FRAUD_TEST_PG_URI");
  return uri != nullptr && *uri != '\0';
}

void PgFixture::SetUp() {
  if (!PgConfigured()) {
    const char* require = std::getenv("FRAUD_REQUIRE_PG");
    if (require != nullptr && std::string(require) == "1") {
      FAIL() << "FRAUD_REQUIRE_PG=1 but FRAUD_TEST_PG_URI is not set";
    }
    GTEST_SKIP() << "FRAUD_TEST_PG_URI not set; skipping database test";
  }
  base_uri_ = std::getenv("FRAUD_TEST_PG_URI");
  std::random_device rd;
  schema_ = absl::StrFormat("t_%08x%08x", rd(), rd());
  Exec(absl::StrCat("CREATE SCHEMA ", schema_));
}

void PgFixture::TearDown() {
  if (schema_.empty()) return;
  try {
    pqxx::connection c(base_uri_);
    pqxx::work w(c);
    w.exec(absl::StrCat("DROP SCHEMA IF EXISTS ", schema_, " CASCADE"));
    w.commit();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "dropping schema " << schema_ << ": " << e.what();
  }
}

std::string PgFixture::conninfo() const {
  // Works for both URI and key=value base strings: libpq accepts "options" in either.
  const bool is_uri = base_uri_.rfind("postgres", 0) == 0;
  if (is_uri) {
    const char sep = base_uri_.find('?') == std::string::npos ? '?' : '&';
    return absl::StrCat(base_uri_, std::string(1, sep), "options=-csearch_path%3D", schema_);
  }
  return absl::StrCat(base_uri_, " options='-csearch_path=", schema_, "'");
}

std::string PgFixture::QueryScalar(const std::string& sql) const {
  pqxx::connection c(conninfo());
  pqxx::work w(c);
  pqxx::result r = w.exec(sql);
  w.commit();
  if (r.empty() || r[0][0].is_null()) return "";
  return r[0][0].c_str();
}

void PgFixture::Exec(const std::string& sql) const {
  pqxx::connection c(schema_.empty() ? base_uri_ : conninfo());
  pqxx::work w(c);
  w.exec(sql);
  w.commit();
}

}  // namespace fraud::testing
