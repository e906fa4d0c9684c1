// Operating points (SetOperatingPoint, GetOperatingPoint, ListOperatingPointHistory) against a real
// PostgreSQL: the manifest fallback, the audited append-only history with previous thresholds,
// exact doubles, and argument validation naming the field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/storage/operating_point_store.h"
#include "tests/integration/storage/storage_test_util.h"

namespace fraud::storage::testing {
namespace {

using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::HasSubstr;

constexpr double kManifestThreshold = 0.123456789012345678;

void Register(PgStore& store, int64_t version) {
  v1::ModelVersion m;
  m.set_version(version);
  m.set_family(fraud::common::v1::MODEL_FAMILY_LOGREG);
  m.set_artifact_uri(absl::StrCat("models/", version));
  m.mutable_manifest()->set_threshold(kManifestThreshold);
  ASSERT_THAT(store.RegisterModel(m), IsOk());
}

v1::OperatingPoint Point(int64_t version, v1::OperatingPointKind kind, double value,
                         double threshold) {
  v1::OperatingPoint p;
  p.set_version(version);
  p.set_kind(kind);
  p.set_requested_value(value);
  p.set_threshold(threshold);
  p.set_reason("budget review");
  p.set_actor("admin");
  return p;
}

grpc::Status Set(v1::StorageService::Stub* stub, const v1::OperatingPoint& p,
                 v1::SetOperatingPointResponse* out) {
  grpc::ClientContext ctx;
  v1::SetOperatingPointRequest req;
  *req.mutable_point() = p;
  return stub->SetOperatingPoint(&ctx, req, out);
}

using OperatingPointTest = StorageTest;

TEST_F(OperatingPointTest, WithoutAChangeTheManifestThresholdApplies) {
  Register(*store_, 1);
  grpc::ClientContext ctx;
  v1::GetOperatingPointRequest req;
  req.set_version(1);
  v1::GetOperatingPointResponse resp;
  ASSERT_TRUE(stub_->GetOperatingPoint(&ctx, req, &resp).ok());
  EXPECT_FALSE(resp.has_point());
  EXPECT_EQ(resp.manifest_threshold(), kManifestThreshold);
  EXPECT_EQ(resp.threshold(), kManifestThreshold);

  EXPECT_THAT(GetOperatingPoint(*pool_, 7), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(GetOperatingPoint(*pool_, 0), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(OperatingPointTest, ChangesAreAuditedWithThePreviousThresholdAndCannotBeRewritten) {
  Register(*store_, 1);
  Register(*store_, 2);
  v1::SetOperatingPointResponse first;
  v1::OperatingPoint p = Point(1, v1::OPERATING_POINT_KIND_ALERTS_PER_DAY, 40, 0.8765432109876543);
  p.set_expected_alerts_per_day(39.5);
  p.set_expected_precision(0.75);
  p.set_expected_recall(0.5);
  p.set_evaluated_rows(1000);
  p.set_evaluated_days(2);
  ASSERT_TRUE(Set(stub_.get(), p, &first).ok());
  EXPECT_GT(first.point().id(), 0);
  EXPECT_EQ(first.point().threshold(), 0.8765432109876543);  // exact round trip
  EXPECT_EQ(first.point().previous_threshold(), kManifestThreshold);
  EXPECT_EQ(first.point().kind(), v1::OPERATING_POINT_KIND_ALERTS_PER_DAY);
  EXPECT_EQ(first.point().requested_value(), 40);
  EXPECT_EQ(first.point().expected_alerts_per_day(), 39.5);
  EXPECT_EQ(first.point().evaluated_rows(), 1000);
  EXPECT_GT(first.point().changed_at().seconds(), 0);

  v1::SetOperatingPointResponse second;
  ASSERT_TRUE(
      Set(stub_.get(), Point(1, v1::OPERATING_POINT_KIND_THRESHOLD, 0.5, 0.5), &second).ok());
  EXPECT_EQ(second.point().previous_threshold(), 0.8765432109876543);
  // Another version's history is its own.
  v1::SetOperatingPointResponse other;
  ASSERT_TRUE(
      Set(stub_.get(), Point(2, v1::OPERATING_POINT_KIND_FRACTION, 0.01, 0.9), &other).ok());
  EXPECT_EQ(other.point().previous_threshold(), kManifestThreshold);

  absl::StatusOr<v1::GetOperatingPointResponse> current = GetOperatingPoint(*pool_, 1);
  ASSERT_THAT(current, IsOk());
  EXPECT_EQ(current->threshold(), 0.5);
  EXPECT_EQ(current->point().id(), second.point().id());
  EXPECT_EQ(current->manifest_threshold(), kManifestThreshold);

  grpc::ClientContext hctx;
  v1::ListOperatingPointHistoryRequest hreq;
  hreq.set_version(1);
  v1::ListOperatingPointHistoryResponse history;
  ASSERT_TRUE(stub_->ListOperatingPointHistory(&hctx, hreq, &history).ok());
  ASSERT_EQ(history.points_size(), 2);
  EXPECT_EQ(history.points(0).id(), second.point().id());  // newest first
  EXPECT_EQ(history.points(1).id(), first.point().id());
  EXPECT_EQ(history.points(1).reason(), "budget review");
  EXPECT_EQ(history.points(1).actor(), "admin");
  absl::StatusOr<v1::GetOperatingPointResponse> with_history = GetOperatingPoint(*pool_, 1, true);
  ASSERT_THAT(with_history, IsOk());
  ASSERT_EQ(with_history->history_size(), 2);
  EXPECT_EQ(with_history->history(0).id(), second.point().id());
  absl::StatusOr<std::vector<v1::OperatingPoint>> all = ListOperatingPointHistory(*pool_, 0);
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->size(), 3u);

  // The audit trail cannot be rewritten.
  EXPECT_ANY_THROW(Exec("UPDATE operating_point_history SET threshold = 0.1"));
  EXPECT_ANY_THROW(Exec("DELETE FROM operating_point_history"));
  EXPECT_ANY_THROW(Exec("TRUNCATE operating_point_history"));
  EXPECT_EQ(Count("operating_point_history"), 3);
}

TEST_F(OperatingPointTest, InvalidRequestsNameTheFieldAndStoreNothing) {
  Register(*store_, 1);
  struct Case {
    const char* field;
    v1::OperatingPoint point;
  };
  std::vector<Case> cases;
  cases.push_back({"point.version", Point(0, v1::OPERATING_POINT_KIND_THRESHOLD, 0.5, 0.5)});
  cases.push_back({"point.kind", Point(1, v1::OPERATING_POINT_KIND_UNSPECIFIED, 0.5, 0.5)});
  cases.push_back({"point.requested_value", Point(1, v1::OPERATING_POINT_KIND_THRESHOLD, 1.5, 0.5)});
  cases.push_back({"point.requested_value", Point(1, v1::OPERATING_POINT_KIND_ALERTS_PER_DAY, 0, 0.5)});
  cases.push_back({"point.requested_value", Point(1, v1::OPERATING_POINT_KIND_FRACTION, 2, 0.5)});
  cases.push_back({"point.threshold", Point(1, v1::OPERATING_POINT_KIND_FRACTION, 0.1, -0.1)});
  cases.push_back({"point.threshold", Point(1, v1::OPERATING_POINT_KIND_FRACTION, 0.1, NAN)});
  v1::OperatingPoint no_reason = Point(1, v1::OPERATING_POINT_KIND_THRESHOLD, 0.5, 0.5);
  no_reason.clear_reason();
  cases.push_back({"point.reason", no_reason});
  v1::OperatingPoint no_actor = Point(1, v1::OPERATING_POINT_KIND_THRESHOLD, 0.5, 0.5);
  no_actor.clear_actor();
  cases.push_back({"point.actor", no_actor});
  v1::OperatingPoint bad_precision = Point(1, v1::OPERATING_POINT_KIND_THRESHOLD, 0.5, 0.5);
  bad_precision.set_expected_precision(1.5);
  cases.push_back({"point.expected_precision", bad_precision});
  for (const Case& c : cases) {
    v1::SetOperatingPointResponse resp;
    grpc::Status s = Set(stub_.get(), c.point, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(s.error_message(), HasSubstr(c.field));
  }
  v1::SetOperatingPointResponse resp;
  grpc::Status unknown = Set(stub_.get(), Point(9, v1::OPERATING_POINT_KIND_THRESHOLD, 0.5, 0.5), &resp);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(unknown.error_message(), HasSubstr("model version 9"));
  EXPECT_EQ(Count("operating_point_history"), 0);
}

class OperatingPointAuthTest : public StorageTest {
 protected:
  std::string service_token() const override { return "storage-secret"; }
};

TEST_F(OperatingPointAuthTest, SettingNeedsTheServiceTokenReadingDoesNot) {
  Register(*store_, 1);
  v1::SetOperatingPointResponse resp;
  grpc::Status s = Set(stub_.get(), Point(1, v1::OPERATING_POINT_KIND_THRESHOLD, 0.5, 0.5), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext ctx;
  v1::GetOperatingPointRequest req;
  req.set_version(1);
  v1::GetOperatingPointResponse got;
  EXPECT_TRUE(stub_->GetOperatingPoint(&ctx, req, &got).ok());
  EXPECT_EQ(Count("operating_point_history"), 0);
}

}  // namespace
}  // namespace fraud::storage::testing
