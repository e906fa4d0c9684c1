#include "tests/fault/processes/fault_util.h"

#include <pqxx/pqxx>

#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "services/common/core/sha256.h"
#include "services/common/csv/synthetic_generator.h"
#include "services/common/csv/transaction_row.h"
#include "services/common/rpc/channel.h"

namespace fraud::fault {

absl::StatusOr<std::vector<std::vector<std::string>>> QueryRows(const std::string& uri,
                                                               const std::string& sql) {
  try {
    pqxx::connection c(uri);
    pqxx::nontransaction tx(c);
    pqxx::result r = tx.exec(sql);
    std::vector<std::vector<std::string>> rows;
    for (const auto& row : r) {
      std::vector<std::string> out;
      for (const auto& field : row) out.push_back(field.is_null() ? "" : field.c_str());
      rows.push_back(std::move(out));
    }
    return rows;
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("query '", sql, "': ", e.what()));
  }
}

absl::StatusOr<int64_t> QueryInt(const std::string& uri, const std::string& sql) {
  absl::StatusOr<std::vector<std::vector<std::string>>> rows = QueryRows(uri, sql);
  if (!rows.ok()) return rows.status();
  if (rows->size() != 1 || rows->front().size() != 1) {
    return absl::InternalError(absl::StrCat("query '", sql, "' did not return one value"));
  }
  const std::string& v = rows->front().front();
  return v.empty() ? 0 : std::stoll(v);
}

std::string SyntheticCsv(int64_t rows, uint64_t seed, int64_t time_offset) {
  csv::GeneratorOptions o;
  o.rows = rows;
  o.seed = seed;
  o.time_offset = time_offset;
  o.fraud_rate = 0.01;
  std::ostringstream out;
  (void)csv::WriteSyntheticCsv(o, out);
  return out.str();
}

std::string Sha256Hex(const std::string& data) { return fraud::Sha256Hex(data); }

absl::Status Env::Start(const std::map<std::string, std::vector<std::string>>& extra,
                        std::vector<std::string> services, const std::string& admin_token) {
  const std::string root = testing::SourceRoot(FRAUD_SOURCE_DIR);
  absl::StatusOr<std::unique_ptr<testing::PgCluster>> cluster =
      testing::PgCluster::Start(root + "/deploy/local/pg.sh");
  if (!cluster.ok()) return cluster.status();
  pg = *std::move(cluster);
  absl::StatusOr<std::string> uri = pg->CreateDatabase("fault");
  if (!uri.ok()) return uri.status();
  db_uri = *uri;

  testing::ConstellationOptions o;
  o.bin_dir = FRAUD_BIN_DIR_DEFAULT;
  o.database_url = db_uri;
  if (!services.empty()) o.services = std::move(services);
  if (!admin_token.empty()) o.admin_token = admin_token;
  // Small, fast and deterministic: version 1 is a logreg trained on 4,000 synthetic rows; nothing
  // trains behind the test's back; inference follows the champion quickly; ingest batches are
  // small so an upload is under way in storage long before its last byte.
  o.extra_flags["training"] = {"--bootstrap_rows=4000", "--families=logreg", "--auto_train=false",
                               "--train_threads=1", "--grace_period_seconds=1"};
  o.extra_flags["inference"] = {"--poll_interval_seconds=1", "--grace_period_seconds=1"};
  o.extra_flags["ingest"] = {"--batch_rows=1000", "--rpc_timeout_seconds=10",
                             "--grace_period_seconds=1"};
  o.extra_flags["storage"] = {"--grace_period_seconds=1"};
  for (const auto& [name, flags] : extra) {
    auto& v = o.extra_flags[name];
    v.insert(v.end(), flags.begin(), flags.end());
  }
  c = std::make_unique<testing::ProcessConstellation>(o);
  return c->Start();
}

absl::Status Env::WaitModelServing(absl::Duration timeout) { return c->WaitModelServing(timeout); }

std::shared_ptr<grpc::Channel> Env::Channel(const std::string& service) const {
  return rpc::MakeChannel({c->target(service)});
}

double Env::Metric(const std::string& service, const std::string& metric,
                   const std::map<std::string, std::string>& labels) {
  return testing::MetricValue(c->process(service).Metrics(), metric, labels);
}

bool Env::WaitMetric(const std::string& service, const std::string& metric,
                     const std::map<std::string, std::string>& labels, double want,
                     absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (Metric(service, metric, labels) == want) return true;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return Metric(service, metric, labels) == want;
}

int64_t Env::CountOrDie(const std::string& sql) {
  absl::StatusOr<int64_t> v = QueryInt(db_uri, sql);
  if (!v.ok()) {
    std::fprintf(stderr, "%s\n", v.status().ToString().c_str());
    return -1;
  }
  return *v;
}

int64_t Env::WritingTransactions() {
  return CountOrDie(
      "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
      "backend_xid IS NOT NULL AND pid <> pg_backend_pid()");
}

bool Env::WaitWritingTransaction(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (WritingTransactions() > 0) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

StreamingUpload::StreamingUpload(std::shared_ptr<grpc::Channel> channel,
                                 const std::string& file_name, absl::Duration deadline)
    : stub_(ingest::v1::IngestService::NewStub(channel)), start_(absl::Now()) {
  rpc::SetDeadline(&ctx_, deadline);
  writer_ = stub_->Upload(&ctx_, &response_);
  ingest::v1::UploadRequest first;
  first.mutable_options()->set_file_name(file_name);
  first.mutable_options()->set_mode(storage::v1::UPLOAD_MODE_STRICT);
  if (!writer_->Write(first)) broken_ = true;
}

bool StreamingUpload::Send(const std::string& bytes) {
  constexpr size_t kChunk = 64 * 1024;
  for (size_t off = 0; off < bytes.size() && !broken_; off += kChunk) {
    ingest::v1::UploadRequest r;
    r.set_data(bytes.substr(off, kChunk));
    if (!writer_->Write(r)) broken_ = true;
  }
  return !broken_;
}

UploadOutcome StreamingUpload::Finish() {
  writer_->WritesDone();
  return AwaitEnd();
}

UploadOutcome StreamingUpload::AwaitEnd() {
  grpc::Status s = writer_->Finish();
  UploadOutcome out;
  out.code = s.error_code();
  out.message = s.error_message();
  out.summary = response_.summary();
  out.elapsed = absl::Now() - start_;
  return out;
}

UploadOutcome UploadGrpc(std::shared_ptr<grpc::Channel> channel, const std::string& file_name,
                         const std::string& csv, absl::Duration deadline) {
  StreamingUpload up(std::move(channel), file_name, deadline);
  up.Send(csv);
  return up.Finish();
}

HttpOutcome UploadRest(int port, const std::string& file_name, const std::string& csv,
                       const std::function<void()>& pause, absl::Duration timeout) {
  httplib::Client client("127.0.0.1", port);
  const int64_t secs = absl::ToInt64Seconds(timeout);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(secs, 0);
  client.set_write_timeout(secs, 0);
  const absl::Time start = absl::Now();
  bool paused = false;
  const size_t half = csv.size() / 2;
  auto provider = [&](size_t offset, size_t length, httplib::DataSink& sink) {
    if (pause && !paused && offset >= half) {
      paused = true;
      pause();
    }
    size_t n = std::min<size_t>(length, 64 * 1024);
    if (pause && !paused && offset < half) n = std::min(n, half - offset);
    return sink.write(csv.data() + offset, n);
  };
  const std::string path = absl::StrCat("/api/v1/uploads?mode=strict&file_name=", file_name);
  auto res = client.Post(path.c_str(), httplib::Headers{}, csv.size(), provider, "text/csv");
  HttpOutcome out;
  out.elapsed = absl::Now() - start;
  if (res) {
    out.status = res->status;
    out.body = res->body;
  } else {
    out.body = httplib::to_string(res.error());
  }
  return out;
}

grpc::Status Predict(inference::v1::InferenceService::Stub* stub, int rows, uint64_t seed,
                     inference::v1::PredictResponse* response, absl::Duration deadline) {
  csv::GeneratorOptions o;
  o.rows = rows;
  o.seed = seed;
  csv::SyntheticGenerator gen(o);
  inference::v1::PredictRequest request;
  auto* batch = request.mutable_rows();
  batch->set_num_rows(rows);
  double f[csv::kNumFeatures];
  int32_t label = 0;
  while (gen.Next(f, &label)) {
    for (double v : f) batch->add_features(v);
  }
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, deadline);
  return stub->Predict(&ctx, request, response);
}

void AddToken(grpc::ClientContext* ctx, const std::string& token) {
  ctx->AddMetadata("authorization", "Bearer " + token);
}

}  // namespace fraud::fault
