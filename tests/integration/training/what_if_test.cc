// Alert budgets through the real services (issue 17 item 4): the what-if curve of the champion on
// the stored labelled rows agrees with Evaluate's independent confusion matrix, is cached after the
// first call, and an admin SetOperatingPoint resolves a budget, records it in the audited history
// and makes inference serve at the new threshold.
#include "clients/cli/commands.h"
#include "services/training/bootstrap.h"
#include "tests/integration/training/training_harness.h"
#include "tests/testing/fraudctl_runner.h"

namespace fraud::training::it {
namespace {

using ::testing::HasSubstr;

class WhatIfIntegrationTest : public TrainingIntegrationTest {
 protected:
  // Publishes version 1 (logistic regression on 20000 synthetic rows) and returns it.
  int64_t Bootstrap() {
    BootstrapOptions b;
    b.rows = 20000;
    b.seed = 42;
    absl::StatusOr<int64_t> run_id = MaybeBootstrap(
        *storage_api_, b,
        [&](const v1::StartRunRequest& r) -> absl::StatusOr<storage::v1::TrainingRun> {
          v1::StartRunRequest request = r;
          request.add_families("logreg");
          (*request.mutable_params())["grid"] = "small";
          (*request.mutable_params())["max_epochs"] = "8";
          (*request.mutable_params())["logreg.batch_size"] = "256";
          absl::StatusOr<std::map<std::string, std::string>> params =
              ResolveRunParams(request, pipeline_);
          if (!params.ok()) return params.status();
          return runs_->Submit(request, *params);
        });
    EXPECT_THAT(run_id, IsOk());
    if (!run_id.ok()) return 0;
    absl::StatusOr<storage::v1::TrainingRun> run = runs_->WaitFor(*run_id, absl::Minutes(5));
    EXPECT_THAT(run, IsOk());
    return run.ok() ? run->model_version() : 0;
  }

  grpc::Status WhatIf(const v1::WhatIfRequest& request, v1::WhatIfResponse* response) {
    grpc::ClientContext ctx;
    return training_stub_->WhatIf(&ctx, request, response);
  }

  grpc::Status SetPoint(const v1::SetOperatingPointRequest& request,
                        v1::SetOperatingPointResponse* response, bool with_token = true) {
    grpc::ClientContext ctx;
    if (with_token) rpc::AddBearerToken(&ctx, kAdminToken);
    return training_stub_->SetOperatingPoint(&ctx, request, response);
  }
};

TEST_F(WhatIfIntegrationTest, CurveMatchesEvaluateAndABudgetChangesTheServedThresholdAudited) {
  const int64_t version = Bootstrap();
  ASSERT_GT(version, 0);
  ASSERT_EQ(ServingVersion(), version);
  const double manifest_threshold = holder_.Get()->manifest().threshold();

  // Every stored day (366 covers the synthetic set), so Evaluate on all rows is the same data.
  v1::WhatIfRequest request;
  request.set_days(366);
  v1::WhatIfResponse first;
  grpc::Status s = WhatIf(request, &first);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(first.version(), version);
  EXPECT_FALSE(first.cached());
  EXPECT_EQ(first.rows(), 20000);
  EXPECT_GE(first.days(), 1);
  EXPECT_EQ(first.current_source(), "manifest");
  EXPECT_EQ(first.current().threshold(), manifest_threshold);
  EXPECT_GE(first.curve_size(), 50);
  EXPECT_GT(first.budgets_size(), 0);

  // Independent count: Evaluate's confusion matrix at the manifest threshold on the same rows.
  grpc::ClientContext ectx;
  v1::EvaluateRequest evaluate;
  evaluate.add_versions(version);
  evaluate.set_bootstrap_resamples(-1);
  v1::EvaluateResponse evaluated;
  ASSERT_TRUE(training_stub_->Evaluate(&ectx, evaluate, &evaluated).ok());
  ASSERT_EQ(evaluated.evaluations_size(), 1);
  const auto& confusion = evaluated.evaluations(0).metrics().confusion();
  EXPECT_EQ(evaluated.rows(), first.rows());
  EXPECT_EQ(evaluated.frauds(), first.frauds());
  EXPECT_EQ(first.manifest().alerts(), confusion.true_positives() + confusion.false_positives());
  EXPECT_EQ(first.manifest().true_alerts(), confusion.true_positives());
  EXPECT_DOUBLE_EQ(first.manifest().recall(), evaluated.evaluations(0).metrics().recall());

  // Moving a slider: cached, no rescan, fast.
  request.set_threshold(0.9);
  v1::WhatIfResponse second;
  ASSERT_TRUE(WhatIf(request, &second).ok());
  EXPECT_TRUE(second.cached());
  EXPECT_LT(second.seconds(), 0.5);
  EXPECT_EQ(training_service_->what_if().computations(), 1);
  EXPECT_EQ(second.candidate().threshold(), 0.9);

  // The admin sets a budget of half today's alerts per day (at least 1).
  const double budget = std::max(1.0, std::floor(first.current().alerts_per_day() / 2));
  v1::SetOperatingPointRequest set;
  set.set_kind(storage::v1::OPERATING_POINT_KIND_ALERTS_PER_DAY);
  set.set_value(budget);
  set.set_days(366);
  set.set_reason("analyst capacity is halved");
  v1::SetOperatingPointResponse refused;
  EXPECT_EQ(SetPoint(set, &refused, /*with_token=*/false).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::SetOperatingPointRequest no_reason = set;
  no_reason.clear_reason();
  grpc::Status bad = SetPoint(no_reason, &refused);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), HasSubstr("reason"));

  v1::SetOperatingPointResponse applied;
  s = SetPoint(set, &applied);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(applied.reloaded()) << applied.message();
  EXPECT_EQ(applied.point().version(), version);
  EXPECT_EQ(applied.point().previous_threshold(), manifest_threshold);
  EXPECT_EQ(applied.point().actor(), "admin");
  EXPECT_LE(applied.point().expected_alerts_per_day(), budget);
  EXPECT_GT(applied.point().threshold(), manifest_threshold);

  // Inference serves at the new threshold, and says so.
  ASSERT_NE(holder_.Get(), nullptr);
  EXPECT_EQ(holder_.Get()->threshold, applied.point().threshold());
  EXPECT_EQ(holder_.Get()->threshold_source, inference::ThresholdSource::kOperatingPoint);

  // The what-if now reports the operating point as current, meeting the budget.
  request.clear_threshold();
  v1::WhatIfResponse after;
  ASSERT_TRUE(WhatIf(request, &after).ok());
  EXPECT_EQ(after.current_source(), "operating_point");
  EXPECT_EQ(after.operating_point().id(), applied.point().id());
  EXPECT_LE(after.current().alerts_per_day(), budget);
  EXPECT_EQ(after.manifest().threshold(), manifest_threshold);

  // Audited in storage.
  absl::StatusOr<storage::v1::GetOperatingPointResponse> stored =
      storage_api_->GetOperatingPoint(version);
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(stored->threshold(), applied.point().threshold());
  EXPECT_EQ(stored->point().reason(), "analyst capacity is halved");

  // fraudctl: show (storage), what-if and set (training).
  using ::fraud::testing::CliResult;
  using ::fraud::testing::RunCli;
  const std::string training = training_server_->target();
  const std::string vtext = absl::StrCat("v", version);
  CliResult show = RunCli({"operating-point", "show", vtext, "--target", storage_->target()});
  ASSERT_EQ(show.code, cli::kExitOk) << show.err;
  EXPECT_THAT(show.out, HasSubstr("(operating point;"));
  EXPECT_THAT(show.out, HasSubstr("analyst capacity is halved"));
  CliResult what_if = RunCli({"operating-point", "what-if", "champion", "--days", "366",
                              "--alerts-per-day", "5", "--target", training});
  ASSERT_EQ(what_if.code, cli::kExitOk) << what_if.err;
  EXPECT_THAT(what_if.out, HasSubstr("current (operating_point)"));
  EXPECT_THAT(what_if.out, HasSubstr("candidate: threshold"));
  CliResult cli_no_reason = RunCli({"operating-point", "set", vtext, "--threshold", "0.5", "--target",
                                training, "--token", kAdminToken});
  EXPECT_EQ(cli_no_reason.code, cli::kExitFailure);
  EXPECT_THAT(cli_no_reason.err, HasSubstr("reason"));
  CliResult set_cli = RunCli({"operating-point", "set", vtext, "--threshold", "0.5", "--reason",
                              "back to 0.5", "--target", training, "--token", kAdminToken});
  ASSERT_EQ(set_cli.code, cli::kExitOk) << set_cli.err;
  EXPECT_THAT(set_cli.out, HasSubstr("threshold 0.5 (was"));
  EXPECT_EQ(holder_.Get()->threshold, 0.5);
  EXPECT_EQ(RunCli({"operating-point", "set", vtext, "--threshold", "0.5", "--fraction", "0.1"}).code,
            cli::kExitUsage);
  EXPECT_EQ(RunCli({"operating-point", "bogus", vtext}).code, cli::kExitUsage);
}

}  // namespace
}  // namespace fraud::training::it
