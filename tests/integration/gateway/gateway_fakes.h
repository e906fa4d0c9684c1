// In-process fakes of the four services behind the gateway, a fake /metrics endpoint, and a
// fixture that starts them (each on its own 127.0.0.1:0 server, so each has its own health) plus
// the gateway on port 0 with an HTTP client pointed at it.
#pragma once

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "fraud/inference/v1/inference.grpc.pb.h"
#include "fraud/ingest/v1/ingest.grpc.pb.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "fraud/training/v1/training.grpc.pb.h"
#include "services/common/core/sha256.h"
#include "services/gateway/gateway_server.h"
#include "tests/testing/in_process_server.h"
#include "tests/testing/status_matchers.h"

namespace fraud::gateway::testing {

namespace ingestpb = ::fraud::ingest::v1;
namespace storagepb = ::fraud::storage::v1;
namespace inferencepb = ::fraud::inference::v1;
namespace trainingpb = ::fraud::training::v1;

// Metadata of the last call a fake saw.
struct SeenCall {
  std::string method;
  std::string request_id;
  std::string authorization;
};

class Recorder {
 public:
  void Record(const std::string& method, grpc::ServerContext* ctx) {
    SeenCall c;
    c.method = method;
    const auto& md = ctx->client_metadata();
    if (auto it = md.find("x-request-id"); it != md.end()) {
      c.request_id.assign(it->second.data(), it->second.size());
    }
    if (auto it = md.find("authorization"); it != md.end()) {
      c.authorization.assign(it->second.data(), it->second.size());
    }
    absl::MutexLock l(&mu_);
    calls_.push_back(c);
  }
  SeenCall Last() {
    absl::MutexLock l(&mu_);
    return calls_.empty() ? SeenCall{} : calls_.back();
  }
  int Count(const std::string& method) {
    absl::MutexLock l(&mu_);
    int n = 0;
    for (const auto& c : calls_) n += c.method == method;
    return n;
  }

 private:
  absl::Mutex mu_;
  std::vector<SeenCall> calls_;
};

// Ingest: reads the stream, remembers what arrived, answers as configured.
class FakeIngest final : public ingestpb::IngestService::Service, public Recorder {
 public:
  struct Received {
    ingestpb::UploadOptions options;
    std::vector<size_t> chunk_sizes;
    int64_t bytes = 0;
    std::string data;  // only when keep_data
    std::string sha256;
    bool cancelled = false;  // the client cancelled (no clean end of stream)
    bool completed = false;  // the stream ended with WritesDone
    bool validate_only = false;
  };

  grpc::Status Upload(grpc::ServerContext* ctx, grpc::ServerReader<ingestpb::UploadRequest>* r,
                      ingestpb::UploadResponse* resp) override {
    return Run(ctx, r, resp, false);
  }
  grpc::Status ValidateOnly(grpc::ServerContext* ctx,
                            grpc::ServerReader<ingestpb::UploadRequest>* r,
                            ingestpb::UploadResponse* resp) override {
    return Run(ctx, r, resp, true);
  }

  // Behaviour knobs (set before the call).
  std::atomic<bool> keep_data{true};
  // Reject with INVALID_ARGUMENT (+ summary trailer) after this many bytes (-1 = never).
  std::atomic<int64_t> reject_after_bytes{-1};
  // Answer RESOURCE_EXHAUSTED + trailer at the end (ingest's own size limit).
  std::atomic<bool> too_large_at_end{false};
  // Sleep per chunk (slow consumer: backpressure).
  std::atomic<int> per_chunk_delay_ms{0};
  // When set, every call waits for it before reading (to hold uploads in flight).
  absl::Notification* gate = nullptr;
  std::atomic<int> in_flight{0};

  Received last() {
    absl::MutexLock l(&mu_);
    return last_;
  }
  // Waits until `n` uploads have finished on the server side.
  bool WaitFinished(int n, absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock l(&mu_);
    auto done = [this, n]() { return finished_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }

 private:
  grpc::Status Run(grpc::ServerContext* ctx, grpc::ServerReader<ingestpb::UploadRequest>* reader,
                   ingestpb::UploadResponse* resp, bool validate_only) {
    Record(validate_only ? "ValidateOnly" : "Upload", ctx);
    ++in_flight;
    if (gate != nullptr) gate->WaitForNotification();
    Received rec;
    rec.validate_only = validate_only;
    Sha256 hash;
    ingestpb::UploadRequest req;
    grpc::Status status = grpc::Status::OK;
    bool first = true;
    while (reader->Read(&req)) {
      if (first) {
        rec.options = req.options();
        first = false;
        continue;
      }
      rec.chunk_sizes.push_back(req.data().size());
      rec.bytes += static_cast<int64_t>(req.data().size());
      hash.Update(req.data());
      if (keep_data) rec.data += req.data();
      if (per_chunk_delay_ms > 0) absl::SleepFor(absl::Milliseconds(per_chunk_delay_ms.load()));
      if (reject_after_bytes >= 0 && rec.bytes >= reject_after_bytes) {
        ingestpb::UploadSummary s;
        s.set_rows_total(7);
        s.set_rows_rejected(1);
        s.set_bytes(rec.bytes);
        auto* e = s.add_errors();
        e->set_line(5);
        e->set_column("Amount");
        e->set_column_index(30);
        e->set_reason("not a number: 'abc'");
        ctx->AddTrailingMetadata("fraud-upload-summary-bin", s.SerializeAsString());
        status = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "line 5, column Amount: not a number: 'abc'; nothing was stored");
        break;
      }
    }
    rec.cancelled = ctx->IsCancelled();
    rec.completed = status.ok() && !rec.cancelled;
    rec.sha256 = hash.HexDigest();
    if (status.ok() && too_large_at_end) {
      ingestpb::UploadSummary s;
      s.set_bytes(rec.bytes);
      ctx->AddTrailingMetadata("fraud-upload-summary-bin", s.SerializeAsString());
      status = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "upload exceeds the 1 MiB limit");
    }
    if (status.ok()) {
      ingestpb::UploadSummary* s = resp->mutable_summary();
      s->set_upload_id(validate_only ? 0 : 42);
      s->set_bytes(rec.bytes);
      s->set_sha256(rec.sha256);
      s->set_file_name(rec.options.file_name());
      s->set_mode(rec.options.mode());
      s->set_rows_total(1234567890123);
      s->set_scored(!validate_only);
    }
    {
      absl::MutexLock l(&mu_);
      last_ = rec;
      ++finished_;
    }
    --in_flight;
    return status;
  }

  absl::Mutex mu_;
  Received last_;
  int finished_ = 0;
};

// Storage: canned answers; GetUpload(id >= 1000) fails with gRPC code (id - 1000).
class FakeStorage final : public storagepb::StorageService::Service, public Recorder {
 public:
  grpc::Status GetUpload(grpc::ServerContext* ctx, const storagepb::GetUploadRequest* req,
                         storagepb::GetUploadResponse* resp) override {
    Record("GetUpload", ctx);
    if (req->upload_id() >= 1000) {
      return grpc::Status(static_cast<grpc::StatusCode>(req->upload_id() - 1000),
                          absl::StrCat("fake failure ", req->upload_id() - 1000));
    }
    *resp->mutable_upload() = MakeUpload(req->upload_id());
    return grpc::Status::OK;
  }
  grpc::Status GetOperatingPoint(grpc::ServerContext* ctx,
                                 const storagepb::GetOperatingPointRequest* req,
                                 storagepb::GetOperatingPointResponse* resp) override {
    Record("GetOperatingPoint", ctx);
    last_operating_point = *req;
    resp->set_threshold(0.42);
    resp->set_manifest_threshold(0.42);
    return grpc::Status::OK;
  }
  storagepb::GetOperatingPointRequest last_operating_point;
  grpc::Status ListUploads(grpc::ServerContext* ctx, const storagepb::ListUploadsRequest* req,
                           storagepb::ListUploadsResponse* resp) override {
    Record("ListUploads", ctx);
    last_list = *req;
    for (int64_t id : {3, 2}) *resp->add_uploads() = MakeUpload(id);
    resp->set_next_before_id(2);
    return grpc::Status::OK;
  }
  grpc::Status ListPredictions(grpc::ServerContext* ctx,
                               const storagepb::ListPredictionsRequest* req,
                               storagepb::ListPredictionsResponse* resp) override {
    Record("ListPredictions", ctx);
    last_predictions = *req;
    auto* p = resp->add_predictions();
    p->set_upload_id(req->upload_id());
    p->set_line(2);
    p->set_score(0.5f);
    p->set_label(-1);
    resp->set_total(1);
    return grpc::Status::OK;
  }
  grpc::Status GetDataStats(grpc::ServerContext* ctx, const storagepb::GetDataStatsRequest*,
                            storagepb::GetDataStatsResponse* resp) override {
    Record("GetDataStats", ctx);
    resp->set_rows(10);
    return grpc::Status::OK;
  }
  grpc::Status ListModels(grpc::ServerContext* ctx, const storagepb::ListModelsRequest*,
                          storagepb::ListModelsResponse* resp) override {
    Record("ListModels", ctx);
    *resp->add_models() = Model(4);
    return grpc::Status::OK;
  }
  grpc::Status GetModel(grpc::ServerContext* ctx, const storagepb::GetModelRequest* req,
                        storagepb::GetModelResponse* resp) override {
    Record("GetModel", ctx);
    if (req->version() != 4) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such version");
    *resp->mutable_model() = Model(4);
    return grpc::Status::OK;
  }
  grpc::Status GetChampion(grpc::ServerContext* ctx, const storagepb::GetChampionRequest*,
                           storagepb::GetChampionResponse* resp) override {
    Record("GetChampion", ctx);
    *resp->mutable_model() = Model(4);
    resp->mutable_since()->set_seconds(1700000000);
    return grpc::Status::OK;
  }
  grpc::Status ListChampionHistory(grpc::ServerContext* ctx,
                                   const storagepb::ListChampionHistoryRequest*,
                                   storagepb::ListChampionHistoryResponse* resp) override {
    Record("ListChampionHistory", ctx);
    resp->add_changes()->set_version(4);
    return grpc::Status::OK;
  }

  static storagepb::Upload MakeUpload(int64_t id) {
    storagepb::Upload u;
    u.set_id(id);
    u.set_file_name(absl::StrCat("file", id, ".csv"));
    u.set_mode(storagepb::UPLOAD_MODE_LENIENT);
    u.set_status(storagepb::UPLOAD_STATUS_COMMITTED);
    u.set_rows(123456789012);
    u.set_frauds(5);
    u.mutable_received_at()->set_seconds(1700000000 + id);
    u.set_summary_json(absl::StrCat("{\"predictedFrauds\":\"", 10 + id, "\",\"scored\":true}"));
    return u;
  }
  static storagepb::ModelVersion Model(int64_t v) {
    storagepb::ModelVersion m;
    m.set_version(v);
    m.set_family(common::v1::MODEL_FAMILY_MLP);
    m.set_is_champion(true);
    return m;
  }

  storagepb::ListUploadsRequest last_list;
  storagepb::ListPredictionsRequest last_predictions;
};

class FakeInference final : public inferencepb::InferenceService::Service, public Recorder {
 public:
  grpc::Status Predict(grpc::ServerContext* ctx, const inferencepb::PredictRequest* req,
                       inferencepb::PredictResponse* resp) override {
    Record("Predict", ctx);
    last_predict = *req;
    for (uint32_t i = 0; i < req->rows().num_rows(); ++i) {
      resp->mutable_scores()->add_scores(0.25f);
      resp->mutable_scores()->add_decisions(false);
      if (req->explain()) {
        // One fixed reason per row: V14 pushed towards fraud.
        common::v1::Explanation* e = resp->add_explanations();
        common::v1::FeatureContribution* c = e->add_top();
        c->set_feature("V14");
        c->set_index(14);
        c->set_value(req->rows().features(static_cast<int>(i * 30 + 14)));
        c->set_contribution(0.75);
        e->set_bias(-2.0);
        e->set_margin(-1.0);
        e->set_rest(0.25);
      }
    }
    resp->mutable_scores()->set_model_version(4);
    return grpc::Status::OK;
  }
  grpc::Status GetModel(grpc::ServerContext* ctx, const inferencepb::GetModelRequest*,
                        inferencepb::GetModelResponse* resp) override {
    Record("GetModel", ctx);
    resp->set_version(4);
    return grpc::Status::OK;
  }
  grpc::Status Reload(grpc::ServerContext* ctx, const inferencepb::ReloadRequest* req,
                      inferencepb::ReloadResponse* resp) override {
    Record("Reload", ctx);
    resp->set_previous_version(3);
    resp->set_version(req->version() == 0 ? 4 : req->version());
    return grpc::Status::OK;
  }
  inferencepb::PredictRequest last_predict;
};

// Training: WatchRun sends `watch_updates` updates `watch_interval` apart, the last SUCCEEDED.
class FakeTraining final : public trainingpb::TrainingService::Service, public Recorder {
 public:
  grpc::Status StartRun(grpc::ServerContext* ctx, const trainingpb::StartRunRequest* req,
                        trainingpb::StartRunResponse* resp) override {
    Record("StartRun", ctx);
    last_start = *req;
    resp->mutable_run()->set_id(9);
    resp->mutable_run()->set_status(storagepb::RUN_STATUS_QUEUED);
    return grpc::Status::OK;
  }
  grpc::Status WatchRun(grpc::ServerContext* ctx, const trainingpb::WatchRunRequest* req,
                        grpc::ServerWriter<trainingpb::WatchRunResponse>* writer) override {
    Record("WatchRun", ctx);
    ++watches;
    for (int i = 0; i < watch_updates; ++i) {
      if (i > 0) {
        const absl::Time until = absl::Now() + watch_interval;
        while (absl::Now() < until && !ctx->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
      }
      if (ctx->IsCancelled()) {
        ++watch_cancelled;
        return grpc::Status::CANCELLED;
      }
      trainingpb::WatchRunResponse r;
      r.mutable_run()->set_id(req->run_id());
      r.mutable_run()->set_status(i + 1 == watch_updates ? storagepb::RUN_STATUS_SUCCEEDED
                                                         : storagepb::RUN_STATUS_RUNNING);
      r.mutable_run()->mutable_progress()->set_candidates_done(i);
      if (!writer->Write(r)) return grpc::Status::CANCELLED;
    }
    return grpc::Status::OK;
  }
  grpc::Status GetRun(grpc::ServerContext* ctx, const trainingpb::GetRunRequest* req,
                      trainingpb::GetRunResponse* resp) override {
    Record("GetRun", ctx);
    if (req->run_id() != 9) return grpc::Status(grpc::StatusCode::NOT_FOUND, "run not found");
    resp->mutable_run()->set_id(9);
    return grpc::Status::OK;
  }
  grpc::Status ListRuns(grpc::ServerContext* ctx, const trainingpb::ListRunsRequest*,
                        trainingpb::ListRunsResponse* resp) override {
    Record("ListRuns", ctx);
    resp->add_runs()->set_id(9);
    return grpc::Status::OK;
  }
  grpc::Status CancelRun(grpc::ServerContext* ctx, const trainingpb::CancelRunRequest* req,
                         trainingpb::CancelRunResponse* resp) override {
    Record("CancelRun", ctx);
    resp->mutable_run()->set_id(req->run_id());
    resp->mutable_run()->set_status(storagepb::RUN_STATUS_CANCELLED);
    return grpc::Status::OK;
  }
  grpc::Status Promote(grpc::ServerContext* ctx, const trainingpb::PromoteRequest* req,
                       trainingpb::PromoteResponse* resp) override {
    Record("Promote", ctx);
    last_promote = *req;
    resp->mutable_change()->set_version(req->version());
    resp->set_reloaded(true);
    return grpc::Status::OK;
  }
  grpc::Status Evaluate(grpc::ServerContext* ctx, const trainingpb::EvaluateRequest*,
                        trainingpb::EvaluateResponse* resp) override {
    Record("Evaluate", ctx);
    resp->set_rows(100);
    return grpc::Status::OK;
  }
  grpc::Status WhatIf(grpc::ServerContext* ctx, const trainingpb::WhatIfRequest* req,
                      trainingpb::WhatIfResponse* resp) override {
    Record("WhatIf", ctx);
    last_what_if = *req;
    resp->set_version(req->version() == 0 ? 7 : req->version());
    resp->add_curve()->set_threshold(0.5);
    return grpc::Status::OK;
  }
  grpc::Status SetOperatingPoint(grpc::ServerContext* ctx,
                                 const trainingpb::SetOperatingPointRequest* req,
                                 trainingpb::SetOperatingPointResponse* resp) override {
    Record("SetOperatingPoint", ctx);
    last_set_point = *req;
    resp->mutable_point()->set_version(req->version());
    resp->mutable_point()->set_threshold(req->value());
    resp->set_reloaded(true);
    return grpc::Status::OK;
  }

  std::atomic<int> watch_updates{3};
  absl::Duration watch_interval = absl::Milliseconds(20);
  std::atomic<int> watches{0};
  std::atomic<int> watch_cancelled{0};
  trainingpb::StartRunRequest last_start;
  trainingpb::PromoteRequest last_promote;
  trainingpb::WhatIfRequest last_what_if;
  trainingpb::SetOperatingPointRequest last_set_point;
};

// A /metrics endpoint on 127.0.0.1:0 serving a fixed text.
class FakeMetricsEndpoint {
 public:
  explicit FakeMetricsEndpoint(std::string text) : text_(std::move(text)) {
    server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(text_, "text/plain; version=0.0.4");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FakeMetricsEndpoint() {
    server_.stop();
    thread_.join();
  }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  std::string text_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

// Fakes on four servers + the gateway under test.
class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ingest_server_ = Start(&ingest_, "fake_ingest");
    storage_server_ = Start(&storage_, "fake_storage");
    inference_server_ = Start(&inference_, "fake_inference");
    training_server_ = Start(&training_, "fake_training");
  }
  void TearDown() override {
    if (gateway_) gateway_->Shutdown(absl::Seconds(1));
    gateway_.reset();
    for (auto* s : {&ingest_server_, &storage_server_, &inference_server_, &training_server_}) {
      if (*s) (*s)->Shutdown(absl::Milliseconds(200));
    }
  }

  static std::unique_ptr<fraud::testing::InProcessServer> Start(grpc::Service* s,
                                                                const std::string& name) {
    auto server =
        std::make_unique<fraud::testing::InProcessServer>(std::vector<grpc::Service*>{s}, name, 24);
    EXPECT_THAT(server->Start(), fraud::testing::IsOk());
    return server;
  }

  GatewayOptions DefaultOptions() {
    GatewayOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.rate_limit_rps = 0;
    o.max_connections = 16;
    return o;
  }

  void StartGateway(GatewayOptions o) {
    Backends b;
    b.ingest = ingest_server_->channel();
    b.storage = storage_server_->channel();
    b.inference = inference_server_->channel();
    b.training = training_server_->channel();
    gateway_ = std::make_unique<GatewayServer>(b, std::move(o));
    ASSERT_THAT(gateway_->Start(), fraud::testing::IsOk());
  }
  void StartGateway() { StartGateway(DefaultOptions()); }

  std::unique_ptr<httplib::Client> Client() {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", gateway_->port());
    c->set_read_timeout(30, 0);
    c->set_write_timeout(30, 0);
    return c;
  }

  FakeIngest ingest_;
  FakeStorage storage_;
  FakeInference inference_;
  FakeTraining training_;
  std::unique_ptr<fraud::testing::InProcessServer> ingest_server_, storage_server_,
      inference_server_, training_server_;
  std::unique_ptr<GatewayServer> gateway_;
};

}  // namespace fraud::gateway::testing
