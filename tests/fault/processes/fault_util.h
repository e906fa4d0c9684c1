// Helpers of the fault tests: a fresh PostgreSQL cluster + constellation of real service processes
// per test, synthetic CSV files, uploads over gRPC (ingest) and REST (gateway) that can be paused
// in the middle, and direct SQL queries to check what the database holds.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "fraud/inference/v1/inference.grpc.pb.h"
#include "fraud/ingest/v1/ingest.grpc.pb.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "fraud/training/v1/training.grpc.pb.h"
#include "tests/testing/process_constellation.h"

namespace fraud::fault {

// Single values from the database (a new connection per call; errors are returned).
absl::StatusOr<int64_t> QueryInt(const std::string& uri, const std::string& sql);
absl::StatusOr<std::vector<std::vector<std::string>>> QueryRows(const std::string& uri,
                                                               const std::string& sql);

// A labelled synthetic CSV (header + `rows` rows); different seeds give different files.
std::string SyntheticCsv(int64_t rows, uint64_t seed, int64_t time_offset = 0);
std::string Sha256Hex(const std::string& data);

// One dedicated PostgreSQL cluster and a constellation on it, with model version 1 trained by the
// training service's bootstrap (small: logreg on a few thousand synthetic rows) and served.
struct Env {
  std::unique_ptr<testing::PgCluster> pg;
  std::unique_ptr<testing::ProcessConstellation> c;
  std::string db_uri;

  // Starts everything; `extra` adds flags per service; `services` (empty = all) and
  // `admin_token` (empty = the fixture's default) override the defaults.
  absl::Status Start(const std::map<std::string, std::vector<std::string>>& extra = {},
                     std::vector<std::string> services = {}, const std::string& admin_token = "");
  // Waits until inference /healthz answers 200 (a model serves).
  absl::Status WaitModelServing(absl::Duration timeout);

  std::shared_ptr<grpc::Channel> Channel(const std::string& service) const;
  bool has_gateway() const { return c != nullptr && c->has("gateway"); }
  // Sum of `metric` in a service's /metrics.
  double Metric(const std::string& service, const std::string& metric,
                const std::map<std::string, std::string>& labels = {});
  // Polls until the metric equals `want` (true) or the timeout passes (false).
  bool WaitMetric(const std::string& service, const std::string& metric,
                  const std::map<std::string, std::string>& labels, double want,
                  absl::Duration timeout);
  // Counts in the database.
  int64_t CountOrDie(const std::string& sql);
  // Number of backends of the service database that hold a transaction id (have written).
  int64_t WritingTransactions();
  // Waits until some backend holds a write transaction (an upload's COPY is under way).
  bool WaitWritingTransaction(absl::Duration timeout);
};

// Outcome of one upload.
struct UploadOutcome {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
  ingest::v1::UploadSummary summary;
  absl::Duration elapsed;
  bool ok() const { return code == grpc::StatusCode::OK; }
};

// A client-streaming Upload to ingest that the test feeds piece by piece.
class StreamingUpload {
 public:
  StreamingUpload(std::shared_ptr<grpc::Channel> channel, const std::string& file_name,
                  absl::Duration deadline);
  // Sends `bytes` in chunks of 64 KiB. False when the stream broke (the server ended the call).
  bool Send(const std::string& bytes);
  // Half-closes and waits for the answer.
  UploadOutcome Finish();
  // Waits for the server's answer without half-closing (a client that stalls until its deadline).
  UploadOutcome AwaitEnd();
  // Cancels the call (client gone).
  void Cancel() { ctx_.TryCancel(); }

 private:
  std::unique_ptr<ingest::v1::IngestService::Stub> stub_;
  grpc::ClientContext ctx_;
  ingest::v1::UploadResponse response_;
  std::unique_ptr<grpc::ClientWriter<ingest::v1::UploadRequest>> writer_;
  absl::Time start_;
  bool broken_ = false;
};

// Uploads a whole file over gRPC.
UploadOutcome UploadGrpc(std::shared_ptr<grpc::Channel> channel, const std::string& file_name,
                         const std::string& csv, absl::Duration deadline = absl::Seconds(60));

// REST upload through the gateway (raw text/csv body with a Content-Length). When `pause` is set
// it is called once, from the sending thread, after half the body went out; the upload continues
// when it returns.
struct HttpOutcome {
  int status = 0;  // 0 = no HTTP answer
  std::string body;
  absl::Duration elapsed;
};
HttpOutcome UploadRest(int port, const std::string& file_name, const std::string& csv,
                       const std::function<void()>& pause = nullptr,
                       absl::Duration timeout = absl::Seconds(60));

// Blocking Predict of `rows` synthetic rows.
grpc::Status Predict(inference::v1::InferenceService::Stub* stub, int rows, uint64_t seed,
                     inference::v1::PredictResponse* response,
                     absl::Duration deadline = absl::Seconds(5));

// A bearer-token ClientContext helper.
void AddToken(grpc::ClientContext* ctx, const std::string& token);

}  // namespace fraud::fault
