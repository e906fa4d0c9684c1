// Shared fixture of the ingest integration tests: the real storage service on a real PostgreSQL
// (one schema per test, via PgFixture), the real inference handlers (Predictor + ModelHolder)
// serving a deterministic logistic model, and the ingest service, all on 127.0.0.1:0.
#pragma once

#include <gmock/gmock.h>
#include <grpcpp/client_context.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "services/common/core/metrics.h"
#include "services/common/core/sha256.h"
#include "services/common/csv/synthetic_generator.h"
#include "services/common/eval/drift.h"
#include "services/common/rpc/channel.h"
#include "services/inference/inference_service.h"
#include "services/inference/model_holder.h"
#include "services/inference/predictor.h"
#include "services/ingest/ingest_service.h"
#include "services/common/rpc/summary_trailer.h"
#include "services/ingest/upload_session.h"
#include "services/storage/pg_pool.h"
#include "tests/testing/in_process_server.h"
#include "tests/testing/in_process_storage.h"
#include "tests/testing/logistic_model.h"
#include "tests/testing/pg_fixture.h"
#include "tests/testing/reference_metrics.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/synthetic_csv.h"

namespace fraud::ingest::it {

using ::fraud::testing::InProcessServer;
using ::fraud::testing::InProcessStorage;
using ::fraud::testing::IsOk;
using ::fraud::testing::LoadedLogisticModel;
using ::fraud::testing::Logistic;
using ::fraud::testing::NaiveAveragePrecision;
using ::fraud::testing::NaiveRocAuc;
using ::fraud::testing::ReadStoredPredictions;
using ::fraud::testing::ReplaceLine;
using ::fraud::testing::StoredPredictions;
using ::fraud::testing::SyntheticCsv;
using ::testing::HasSubstr;
using v1::UploadSummary;

constexpr int kF = csv::kNumFeatures;
constexpr int64_t kModelVersion = 3;
constexpr double kThreshold = 0.35;

// Forwards to the real inference handlers and records what ingest sent.
class RecordingInference final : public inference::v1::InferenceService::Service {
 public:
  explicit RecordingInference(inference::InferenceService* real) : real_(real) {}
  grpc::Status Predict(grpc::ServerContext* ctx, const inference::v1::PredictRequest* request,
                       inference::v1::PredictResponse* response) override {
    if (request->rows().labels_size() > 0) ++requests_with_labels;
    Record(ctx);
    if (Shed()) return Busy();
    (request->explain() ? explained_rows : rows) += request->rows().num_rows();
    return real_->Predict(ctx, request, response);
  }
  grpc::Status GetModel(grpc::ServerContext* ctx, const inference::v1::GetModelRequest* request,
                        inference::v1::GetModelResponse* response) override {
    Record(ctx);
    if (Shed()) return Busy();
    return real_->GetModel(ctx, request, response);
  }
  std::set<std::string> request_ids() {
    absl::MutexLock l(&mu_);
    return ids_;
  }
  std::atomic<int64_t> requests_with_labels{0};
  // The next this-many Predict/GetModel calls answer RESOURCE_EXHAUSTED; shed_calls counts them.
  std::atomic<int64_t> busy_calls{0};
  std::atomic<int64_t> shed_calls{0};
  std::atomic<int64_t> rows{0};
  // Rows of Predict calls with explain (the alerts' reasons).
  std::atomic<int64_t> explained_rows{0};

 private:
  // Shedding as a real inference does when all its threads are busy.
  bool Shed() {
    int64_t busy = busy_calls.load();
    while (busy > 0 && !busy_calls.compare_exchange_weak(busy, busy - 1)) {
    }
    if (busy > 0) ++shed_calls;
    return busy > 0;
  }
  static grpc::Status Busy() {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "Server Threadpool Exhausted");
  }
  void Record(grpc::ServerContext* ctx) {
    absl::MutexLock l(&mu_);
    ids_.insert(rpc::RequestId(ctx));
  }
  inference::InferenceService* real_;
  absl::Mutex mu_;
  std::set<std::string> ids_;
};

inline std::string Header(bool with_class = true) {
  std::string h = "Time";
  for (int i = 1; i <= 28; ++i) absl::StrAppend(&h, ",V", i);
  h += with_class ? ",Amount,Class\n" : ",Amount\n";
  return h;
}

// A valid data row with one field replaced: position 0 = Time, 1..28 = V1..V28, 29 = Amount,
// 30 = Class.
inline std::string Row(int position = -1, const std::string& value = "") {
  std::vector<std::string> fields = {"100"};
  for (int i = 1; i <= 28; ++i) fields.push_back(absl::StrCat("0.", i));
  fields.push_back("12.5");
  fields.push_back("0");
  if (position >= 0) fields[position] = value;
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out += ',';
    out += fields[i];
  }
  return out + "\n";
}

// The value of a counter/histogram-count sample in the process's metrics text, 0 when absent.
inline double MetricValue(const std::string& prefix) {
  std::istringstream text(metrics::RenderText());
  std::string line;
  while (std::getline(text, line)) {
    if (absl::StartsWith(line, prefix)) return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return 0;
}

struct UploadResult {
  grpc::Status status;
  UploadSummary summary;
  std::optional<UploadSummary> trailer;
};

class IngestServiceTest : public fraud::testing::PgFixture {
 protected:
  void SetUp() override {
    PgFixture::SetUp();
    if (IsSkipped() || HasFailure()) return;
    absl::StatusOr<std::unique_ptr<InProcessStorage>> storage = InProcessStorage::Start(
        {conninfo(), /*pool_size=*/24, /*server_name=*/"storage_it", /*max_threads=*/40});
    ASSERT_THAT(storage, IsOk());
    storage_ = std::move(*storage);

    inference::BatcherOptions batching;
    batching.enabled = false;
    predictor_ = std::make_unique<inference::Predictor>(&holder_, batching);
    inference_ =
        std::make_unique<inference::InferenceService>(predictor_.get(), nullptr, &holder_, "");
    recording_ = std::make_unique<RecordingInference>(inference_.get());
    inference_server_ = std::make_unique<InProcessServer>(
        std::vector<grpc::Service*>{recording_.get()}, "inference_it", 40);
    ASSERT_THAT(inference_server_->Start(), IsOk());

    IngestOptions options;
    options.batch_rows = 1000;
    StartIngest(options);
  }

  void TearDown() override {
    if (ingest_server_) ingest_server_->Shutdown();
    if (inference_server_) inference_server_->Shutdown();
    if (storage_) storage_->Shutdown();
    ingest_server_.reset();
    ingest_.reset();
    storage_.reset();
    PgFixture::TearDown();
  }

  void StartIngest(const IngestOptions& options, std::string storage_target = "",
                   std::string inference_target = "") {
    if (ingest_server_) ingest_server_->Shutdown();
    ingest_server_.reset();
    if (storage_target.empty()) storage_target = storage_->target();
    if (inference_target.empty()) inference_target = inference_server_->target();
    ingest_ = std::make_unique<IngestService>(rpc::MakeChannel({storage_target}),
                                              rpc::MakeChannel({inference_target}), options);
    ingest_server_ = std::make_unique<InProcessServer>(std::vector<grpc::Service*>{ingest_.get()},
                                                       "ingest_it", 40);
    ASSERT_THAT(ingest_server_->Start(), IsOk());
    stub_ = v1::IngestService::NewStub(ingest_server_->channel());
  }

  // Serves the logistic model, with a drift reference built from a synthetic period.
  void ServeModel() {
    common::v1::ModelManifest manifest;
    manifest.set_version(kModelVersion);
    manifest.set_threshold(kThreshold);
    csv::GeneratorOptions g;
    g.rows = 5000;
    g.seed = 100;
    csv::SyntheticGenerator gen(g);
    std::vector<double> features(static_cast<size_t>(g.rows) * kF);
    int32_t y = 0;
    for (int64_t r = 0; r < g.rows; ++r) gen.Next(features.data() + r * kF, &y);
    auto refs = eval::BuildFeatureReferences(
        features.data(), static_cast<size_t>(g.rows),
        std::vector<std::string>(csv::kFeatureNames.begin(), csv::kFeatureNames.end()));
    ASSERT_THAT(refs, IsOk());
    for (auto& r : *refs) *manifest.add_reference() = r;
    holder_.Swap(LoadedLogisticModel(manifest));
  }

  UploadResult Upload(const std::string& data,
                      storage::v1::UploadMode mode = storage::v1::UPLOAD_MODE_STRICT,
                      bool validate_only = false, size_t chunk = 64 * 1024,
                      const std::string& file_name = "upload.csv", const std::string& token = "") {
    UploadResult result;
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(120));
    ctx.AddMetadata("x-request-id", "it-request-1");
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::UploadResponse response;
    auto writer =
        validate_only ? stub_->ValidateOnly(&ctx, &response) : stub_->Upload(&ctx, &response);
    v1::UploadRequest request;
    request.mutable_options()->set_file_name(file_name);
    request.mutable_options()->set_mode(mode);
    bool open = writer->Write(request);
    for (size_t pos = 0; open && pos < data.size(); pos += chunk) {
      request.set_data(data.substr(pos, chunk));
      open = writer->Write(request);
    }
    if (open) writer->WritesDone();
    result.status = writer->Finish();
    result.summary = response.summary();
    result.trailer = rpc::SummaryFromTrailers(ctx);
    return result;
  }

  int64_t Count(const std::string& table) {
    return std::stoll(QueryScalar("SELECT count(*) FROM " + table));
  }
  struct DbCounts {
    int64_t uploads, transactions, predictions;
    bool operator==(const DbCounts& o) const {
      return uploads == o.uploads && transactions == o.transactions && predictions == o.predictions;
    }
  };
  DbCounts Counts() { return {Count("uploads"), Count("transactions"), Count("predictions")}; }

  // Waits until storage has no upload stream holding a connection (the aborted stream's rollback
  // happens on storage's thread, after the client already saw its status).
  void WaitForStorageIdle() {
    storage::PgPool& pool = storage_->pool();
    for (int i = 0; i < 200 && pool.in_use() > 0; ++i) absl::SleepFor(absl::Milliseconds(10));
    EXPECT_EQ(pool.in_use(), 0);
  }

  std::unique_ptr<InProcessStorage> storage_;
  inference::ModelHolder holder_;
  std::unique_ptr<inference::Predictor> predictor_;
  std::unique_ptr<inference::InferenceService> inference_;
  std::unique_ptr<RecordingInference> recording_;
  std::unique_ptr<InProcessServer> inference_server_;
  std::unique_ptr<IngestService> ingest_;
  std::unique_ptr<InProcessServer> ingest_server_;
  std::unique_ptr<v1::IngestService::Stub> stub_;
};

}  // namespace fraud::ingest::it
