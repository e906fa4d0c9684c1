// Fixture and helpers of the storage integration tests: a per-test schema (PgFixture) with the
// migrations applied, the storage service on 127.0.0.1:0 backed by a PgPool on it, and helpers to
// build batches and run StoreUpload streams.
#pragma once

#include <grpcpp/client_context.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "services/storage/migrations.h"
#include "services/storage/pg_pool.h"
#include "services/storage/pg_store.h"
#include "services/storage/storage_service.h"
#include "tests/testing/in_process_server.h"
#include "tests/testing/pg_fixture.h"
#include "tests/testing/status_matchers.h"

namespace fraud::storage::testing {

namespace v1 = ::fraud::storage::v1;
using fraud::common::v1::TransactionBatch;

// A deterministic sha256-looking id for test content number `n`.
inline std::string Sha(int n) { return absl::StrFormat("%064x", n); }

// `n` rows with lines first_line.., Time from time0 increasing by 1.5, V ~ N(0, 2), Amount >= 0;
// labels (every 7th row a fraud) when `labelled`.
inline TransactionBatch MakeBatch(int n, uint64_t seed, bool labelled, int64_t first_line = 2,
                                  double time0 = 0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0, 2);
  TransactionBatch b;
  b.set_num_rows(n);
  for (int i = 0; i < n; ++i) {
    b.add_features(time0 + 1.5 * i);
    for (int v = 0; v < 28; ++v) b.add_features(normal(rng));
    b.add_features(std::abs(normal(rng)) * 50);
    if (labelled) b.add_labels(i % 7 == 3 ? 1 : 0);
    b.add_line_numbers(first_line + i);
  }
  return b;
}

inline v1::UploadRows Rows(TransactionBatch batch) {
  v1::UploadRows r;
  *r.mutable_rows() = std::move(batch);
  return r;
}

// Adds scores (row i: (i % 10) / 10 + 0.05, decision score > 0.5) by `model_version`.
inline v1::UploadRows Scored(TransactionBatch batch, int64_t model_version) {
  v1::UploadRows r = Rows(std::move(batch));
  auto* s = r.mutable_scores();
  s->set_model_version(model_version);
  s->set_threshold(0.5);
  for (uint32_t i = 0; i < r.rows().num_rows(); ++i) {
    const float score = static_cast<float>(i % 10) / 10.0f + 0.05f;
    s->add_scores(score);
    s->add_decisions(score > 0.5f);
  }
  return r;
}

struct UploadOutcome {
  grpc::Status status;
  v1::StoreUploadResponse response;
};

// Opens a StoreUpload stream and writes `begin` and the batches (stopping at a broken stream);
// `written` (if given) says whether every message went out. The caller goes on with the stream.
inline std::unique_ptr<grpc::ClientWriter<v1::StoreUploadRequest>> BeginUpload(
    v1::StorageService::Stub* stub, grpc::ClientContext* ctx, v1::StoreUploadResponse* response,
    const std::string& file_name, const std::vector<v1::UploadRows>& batches,
    v1::UploadMode mode = v1::UPLOAD_MODE_STRICT, bool* written = nullptr) {
  auto writer = stub->StoreUpload(ctx, response);
  v1::StoreUploadRequest req;
  req.mutable_begin()->set_file_name(file_name);
  req.mutable_begin()->set_mode(mode);
  bool ok = writer->Write(req);
  for (size_t i = 0; ok && i < batches.size(); ++i) {
    req.Clear();
    *req.mutable_rows() = batches[i];
    ok = writer->Write(req);
  }
  if (written != nullptr) *written = ok;
  return writer;
}

// Runs one StoreUpload stream: begin, every batch, `before_commit` (if any), commit.
inline UploadOutcome Upload(v1::StorageService::Stub* stub, const std::string& file_name,
                            const std::vector<v1::UploadRows>& batches, const std::string& sha,
                            const std::function<void()>& before_commit = nullptr,
                            v1::UploadMode mode = v1::UPLOAD_MODE_STRICT,
                            const std::string& summary_json = "") {
  grpc::ClientContext ctx;
  UploadOutcome out;
  auto writer = BeginUpload(stub, &ctx, &out.response, file_name, batches, mode);
  if (before_commit) before_commit();
  v1::StoreUploadRequest req;
  req.mutable_commit()->set_sha256(sha);
  req.mutable_commit()->set_bytes(1234);
  req.mutable_commit()->set_summary_json(summary_json);
  writer->Write(req);
  writer->WritesDone();
  out.status = writer->Finish();
  return out;
}

// Runs a scan and returns every batch.
inline std::vector<TransactionBatch> Scan(v1::StorageService::Stub* stub,
                                          const v1::ScanTransactionsRequest& request,
                                          grpc::Status* status) {
  grpc::ClientContext ctx;
  auto reader = stub->ScanTransactions(&ctx, request);
  std::vector<TransactionBatch> out;
  v1::ScanTransactionsResponse resp;
  while (reader->Read(&resp)) out.push_back(resp.batch());
  *status = reader->Finish();
  return out;
}

class StorageTest : public fraud::testing::PgFixture {
 protected:
  void SetUp() override {
    PgFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    PgPoolOptions options;
    options.conninfo = conninfo();
    options.size = 8;
    options.acquire_timeout = absl::Seconds(20);
    options.application_name = application_name();
    pool_ = std::make_unique<PgPool>(options);
    FRAUD_ASSERT_OK(ApplyMigrations(*pool_, EmbeddedMigrations()));
    store_ = std::make_unique<PgStore>(pool_.get());
    service_ = std::make_unique<StorageService>(pool_.get(), store_.get(), service_token());
    service_->SetReady(true);
    server_ = std::make_unique<fraud::testing::InProcessServer>(
        std::vector<grpc::Service*>{service_.get()}, "storage", 40);
    FRAUD_ASSERT_OK(server_->Start());
    stub_ = v1::StorageService::NewStub(server_->channel());
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(2));
    stub_.reset();
    server_.reset();
    service_.reset();
    store_.reset();
    pool_.reset();
    PgFixture::TearDown();
  }

  // The service token the storage service requires for writes ("" = none).
  virtual std::string service_token() const { return ""; }

  // Unique per test, so a test can find (and kill) its own pool's backends.
  std::string application_name() const { return "st-" + schema(); }

  int64_t Count(const std::string& table) const {
    return std::stoll(QueryScalar("SELECT count(*) FROM " + table));
  }

  // Options of a one-connection pool on the test schema with this statement_timeout.
  PgPoolOptions OneConnection(int statement_timeout_ms) const {
    PgPoolOptions o;
    o.conninfo = conninfo();
    o.size = 1;
    o.statement_timeout_ms = statement_timeout_ms;
    return o;
  }

  // After a failed or cancelled upload stream: waits for its rollback, then checks that no
  // upload, row or prediction is stored.
  void ExpectNothingStored() const {
    WaitForIdlePool();
    EXPECT_EQ(Count("uploads"), 0);
    EXPECT_EQ(Count("transactions"), 0);
    EXPECT_EQ(Count("predictions"), 0);
  }

  // Waits until no connection is leased (the server finished a cancelled call's rollback).
  void WaitForIdlePool() const {
    const absl::Time until = absl::Now() + absl::Seconds(10);
    while (pool_->in_use() > 0 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(10));
    EXPECT_EQ(pool_->in_use(), 0);
  }

  std::unique_ptr<PgPool> pool_;
  std::unique_ptr<PgStore> store_;
  std::unique_ptr<StorageService> service_;
  std::unique_ptr<fraud::testing::InProcessServer> server_;
  std::unique_ptr<v1::StorageService::Stub> stub_;
};

}  // namespace fraud::storage::testing
