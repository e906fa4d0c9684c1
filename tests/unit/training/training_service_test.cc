// The gRPC surface: admin auth, StartRun/WatchRun/GetRun/ListRuns/CancelRun, Promote.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <grpcpp/client_context.h>

#include "fraud/training/v1/training.grpc.pb.h"
#include "services/common/rpc/auth.h"
#include "services/training/training_service.h"
#include "tests/testing/in_process_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/unit/training/fakes.h"

namespace fraud::training {
namespace {

using ::fraud::training::testing::FakeInference;
using ::fraud::training::testing::FakeStorage;
using ::testing::HasSubstr;
namespace pb = ::fraud::training::v1;

constexpr char kToken[] = "s3cret";

class TrainingServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    runs_ = std::make_unique<RunManager>(
        &storage_, [this](const pb::StartRunRequest&, int64_t, RunSink& sink,
                          const std::atomic<bool>& cancel) -> absl::Status {
          sink.Update([](storage_pb::TrainingRun& r) { r.mutable_progress()->set_phase("training"); },
                      true);
          while (hold_.load() && !cancel.load()) absl::SleepFor(absl::Milliseconds(5));
          if (cancel.load()) return absl::CancelledError("cancelled");
          sink.Update([](storage_pb::TrainingRun& r) { r.set_message("trained"); }, true);
          return absl::OkStatus();
        });
    FRAUD_ASSERT_OK(runs_->Start());
    TrainingServiceOptions o;
    o.admin_token = kToken;
    service_ = std::make_unique<TrainingService>(runs_.get(), &storage_, &inference_,
                                                 PipelineOptions(), o);
    server_ = std::make_unique<fraud::testing::InProcessServer>(
        std::vector<grpc::Service*>{service_.get()});
    FRAUD_ASSERT_OK(server_->Start());
    stub_ = pb::TrainingService::NewStub(server_->channel());
    for (int64_t v : {1, 2}) {
      storage_pb::ModelVersion m;
      m.set_version(v);
      storage_.AddModel(m);
    }
  }
  void TearDown() override {
    hold_.store(false);
    server_->Shutdown();
    runs_->Stop();
  }
  std::unique_ptr<grpc::ClientContext> Admin() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    rpc::AddBearerToken(ctx.get(), kToken);
    return ctx;
  }

  FakeStorage storage_;
  FakeInference inference_;
  std::atomic<bool> hold_{false};
  std::unique_ptr<RunManager> runs_;
  std::unique_ptr<TrainingService> service_;
  std::unique_ptr<fraud::testing::InProcessServer> server_;
  std::unique_ptr<pb::TrainingService::Stub> stub_;
};

TEST_F(TrainingServiceTest, AdminRpcsRequireTheBearerToken) {
  grpc::ClientContext ctx;
  pb::StartRunResponse response;
  EXPECT_EQ(stub_->StartRun(&ctx, pb::StartRunRequest(), &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext ctx2;
  pb::PromoteRequest promote;
  promote.set_version(2);
  pb::PromoteResponse promote_response;
  EXPECT_EQ(stub_->Promote(&ctx2, promote, &promote_response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext ctx3;
  pb::CancelRunRequest cancel;
  cancel.set_run_id(1);
  pb::CancelRunResponse cancel_response;
  EXPECT_EQ(stub_->CancelRun(&ctx3, cancel, &cancel_response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(storage_.champion(), 0);
}

TEST_F(TrainingServiceTest, StartRunThenWatchUntilItSucceeds) {
  pb::StartRunRequest request;
  request.add_families("logreg");
  request.set_trigger("replay");
  pb::StartRunResponse started;
  grpc::Status s = stub_->StartRun(Admin().get(), request, &started);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(started.run().trigger(), "replay");
  EXPECT_EQ(started.run().params().at("families"), "logreg");

  grpc::ClientContext ctx;
  pb::WatchRunRequest watch;
  watch.set_run_id(started.run().id());
  auto reader = stub_->WatchRun(&ctx, watch);
  pb::WatchRunResponse message;
  storage_pb::TrainingRun last;
  int messages = 0;
  while (reader->Read(&message)) {
    last = message.run();
    ++messages;
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_GE(messages, 1);
  EXPECT_EQ(last.status(), storage_pb::RUN_STATUS_SUCCEEDED);
  EXPECT_EQ(last.message(), "trained");

  grpc::ClientContext get_ctx;
  pb::GetRunRequest get;
  get.set_run_id(started.run().id());
  pb::GetRunResponse got;
  ASSERT_TRUE(stub_->GetRun(&get_ctx, get, &got).ok());
  EXPECT_EQ(got.run().status(), storage_pb::RUN_STATUS_SUCCEEDED);

  grpc::ClientContext list_ctx;
  pb::ListRunsResponse list;
  ASSERT_TRUE(stub_->ListRuns(&list_ctx, pb::ListRunsRequest(), &list).ok());
  ASSERT_EQ(list.runs_size(), 1);
  EXPECT_EQ(list.runs(0).id(), started.run().id());
}

TEST_F(TrainingServiceTest, BadRequestsAreInvalidArgument) {
  pb::StartRunRequest request;
  request.add_families("svm");
  pb::StartRunResponse response;
  grpc::Status s = stub_->StartRun(Admin().get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("svm"));
}

TEST_F(TrainingServiceTest, CancelRunStopsTheRunningRun) {
  hold_.store(true);
  pb::StartRunResponse started;
  ASSERT_TRUE(stub_->StartRun(Admin().get(), pb::StartRunRequest(), &started).ok());
  pb::CancelRunRequest cancel;
  cancel.set_run_id(started.run().id());
  pb::CancelRunResponse cancelled;
  ASSERT_TRUE(stub_->CancelRun(Admin().get(), cancel, &cancelled).ok());
  absl::StatusOr<storage_pb::TrainingRun> done =
      runs_->WaitFor(started.run().id(), absl::Seconds(10));
  FRAUD_ASSERT_OK(done);
  EXPECT_EQ(done->status(), storage_pb::RUN_STATUS_CANCELLED);
}

TEST_F(TrainingServiceTest, PromoteSetsTheChampionAndReloads) {
  pb::PromoteRequest request;
  request.set_version(2);
  request.set_reason("manual check");
  pb::PromoteResponse response;
  grpc::Status s = stub_->Promote(Admin().get(), request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(response.reloaded());
  EXPECT_EQ(response.change().version(), 2);
  EXPECT_EQ(storage_.champion(), 2);
  EXPECT_EQ(storage_.history().back().reason(), "manual check");
  EXPECT_EQ(inference_.serving(), 2);
}

TEST_F(TrainingServiceTest, PromoteWithFailingReloadRollsBack) {
  storage_.set_champion_version(1);
  inference_.set_error(absl::FailedPreconditionError("smoke batch mismatch"));
  pb::PromoteRequest request;
  request.set_version(2);
  pb::PromoteResponse response;
  ASSERT_TRUE(stub_->Promote(Admin().get(), request, &response).ok());
  EXPECT_FALSE(response.reloaded());
  EXPECT_THAT(response.message(), HasSubstr("rolled back to v1"));
  EXPECT_EQ(storage_.champion(), 1);
}

TEST_F(TrainingServiceTest, PromoteUnknownVersionIsNotFound) {
  pb::PromoteRequest request;
  request.set_version(42);
  pb::PromoteResponse response;
  EXPECT_EQ(stub_->Promote(Admin().get(), request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(storage_.champion(), 0);
}

}  // namespace
}  // namespace fraud::training
