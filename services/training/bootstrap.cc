#include "services/training/bootstrap.h"

#include <algorithm>
#include <fstream>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/core/log.h"
#include "services/common/core/sha256.h"
#include "services/common/core/status_macros.h"
#include "services/common/csv/csv_reader.h"
#include "services/common/csv/synthetic_generator.h"

namespace fraud::training {
namespace {

constexpr size_t kChunkBytes = 64 << 10;

// Produces a CSV file's bytes chunk by chunk.
class ChunkSource {
 public:
  virtual ~ChunkSource() = default;
  // Fills *chunk and returns true, or returns false at the end.
  virtual absl::StatusOr<bool> Next(std::string* chunk) = 0;
};

class FileChunks final : public ChunkSource {
 public:
  explicit FileChunks(std::ifstream in) : in_(std::move(in)) {}
  absl::StatusOr<bool> Next(std::string* chunk) override {
    chunk->resize(kChunkBytes);
    in_.read(chunk->data(), static_cast<std::streamsize>(chunk->size()));
    chunk->resize(static_cast<size_t>(in_.gcount()));
    if (in_.bad()) return absl::DataLossError("reading the bootstrap CSV failed");
    return !chunk->empty();
  }

 private:
  std::ifstream in_;
};

// The bytes `fraudctl generate` would write, produced on the fly.
class SyntheticChunks final : public ChunkSource {
 public:
  explicit SyntheticChunks(const csv::GeneratorOptions& options)
      : options_(options), generator_(options) {}
  absl::StatusOr<bool> Next(std::string* chunk) override {
    chunk->clear();
    if (!header_done_) {
      *chunk = csv::SyntheticCsvHeader(options_);
      header_done_ = true;
    }
    double features[csv::kNumFeatures];
    int32_t label = 0;
    while (chunk->size() < kChunkBytes && generator_.Next(features, &label)) {
      csv::AppendCsvRow(features, label, options_.with_labels, options_.quote, chunk);
    }
    return !chunk->empty();
  }

 private:
  csv::GeneratorOptions options_;
  csv::SyntheticGenerator generator_;
  bool header_done_ = false;
};

absl::StatusOr<storage_pb::Upload> StoreFromSource(StorageApi& storage, const std::string& file_name,
                                                   ChunkSource& source, int batch_rows) {
  csv::CsvReaderOptions reader_options;
  reader_options.mode = csv::Mode::kStrict;
  reader_options.batch_rows = batch_rows;
  csv::CsvReader reader(reader_options);
  Sha256 sha;
  int64_t bytes = 0;
  bool finished = false;
  std::string chunk;
  csv::RowBatch batch;
  auto next = [&](storage_pb::UploadRows* out) -> absl::StatusOr<bool> {
    while (!reader.NextBatch(&batch)) {
      if (finished) return false;
      FRAUD_ASSIGN_OR_RETURN(bool more, source.Next(&chunk));
      if (!more) {
        FRAUD_RETURN_IF_ERROR(Annotate(reader.Finish(), file_name));
        finished = true;
        continue;
      }
      sha.Update(chunk);
      bytes += static_cast<int64_t>(chunk.size());
      FRAUD_RETURN_IF_ERROR(Annotate(reader.Feed(chunk), file_name));
    }
    if (!batch.has_labels()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file_name, " has no Class column: the initial training set must be labelled"));
    }
    common::v1::TransactionBatch* rows = out->mutable_rows();
    rows->set_num_rows(static_cast<uint32_t>(batch.num_rows()));
    rows->mutable_features()->Add(batch.features.begin(), batch.features.end());
    rows->mutable_labels()->Add(batch.labels.begin(), batch.labels.end());
    rows->mutable_line_numbers()->Add(batch.line_numbers.begin(), batch.line_numbers.end());
    return true;
  };
  auto commit = [&]() {
    storage_pb::UploadCommit c;
    c.set_sha256(sha.HexDigest());
    c.set_bytes(bytes);
    c.set_rows_rejected(0);
    c.set_summary_json(R"({"source":"training bootstrap"})");
    return c;
  };
  storage_pb::UploadBegin begin;
  begin.set_file_name(file_name);
  begin.set_mode(storage_pb::UPLOAD_MODE_STRICT);
  FRAUD_ASSIGN_OR_RETURN(storage_pb::StoreUploadResponse response,
                         storage.StoreUpload(begin, next, commit));
  return response.upload();
}

}  // namespace

absl::StatusOr<storage_pb::Upload> StoreInitialData(StorageApi& storage,
                                                    const BootstrapOptions& options) {
  if (!options.csv_path.empty()) {
    std::ifstream in(options.csv_path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", options.csv_path));
    FileChunks source(std::move(in));
    const size_t slash = options.csv_path.find_last_of('/');
    const std::string name =
        slash == std::string::npos ? options.csv_path : options.csv_path.substr(slash + 1);
    return StoreFromSource(storage, name, source, options.batch_rows);
  }
  if (options.rows <= 0) return absl::InvalidArgumentError("bootstrap rows must be positive");
  csv::GeneratorOptions gen;
  gen.rows = options.rows;
  gen.seed = options.seed;
  SyntheticChunks source(gen);
  return StoreFromSource(
      storage, absl::StrCat("synthetic-", options.rows, "-seed", options.seed, ".csv"), source,
      options.batch_rows);
}

absl::StatusOr<int64_t> MaybeBootstrap(StorageApi& storage, const BootstrapOptions& options,
                                       const SubmitRunFn& submit,
                                       const std::map<std::string, std::string>& run_params) {
  FRAUD_ASSIGN_OR_RETURN(std::vector<storage_pb::ModelVersion> models, storage.ListModels());
  if (!models.empty()) return 0;
  FRAUD_ASSIGN_OR_RETURN(storage_pb::GetDataStatsResponse stats, storage.GetDataStats(0));
  std::string description;
  if (stats.labelled_rows() == 0) {
    FRAUD_LOG(INFO) << "bootstrap: storing the initial training set"
                    << Kv("source", options.csv_path.empty() ? "synthetic" : options.csv_path)
                    << Kv("rows", options.csv_path.empty() ? options.rows : 0);
    FRAUD_ASSIGN_OR_RETURN(storage_pb::Upload upload, StoreInitialData(storage, options));
    description = absl::StrCat("bootstrap: ", upload.file_name(), " (upload ", upload.id(), ", ",
                               upload.rows(), " rows, ", upload.frauds(), " frauds)");
  } else {
    description = absl::StrCat("bootstrap: ", stats.labelled_rows(), " labelled rows in storage");
  }
  training::v1::StartRunRequest request;
  request.set_trigger("bootstrap");
  request.set_description(description);
  for (const auto& [k, v] : run_params) (*request.mutable_params())[k] = v;
  FRAUD_ASSIGN_OR_RETURN(storage_pb::TrainingRun run, submit(request));
  FRAUD_LOG(INFO) << "bootstrap run submitted" << Kv("run_id", run.id());
  return run.id();
}

absl::StatusOr<int64_t> BootstrapWithRetry(StorageApi& storage, const BootstrapOptions& options,
                                           const SubmitRunFn& submit,
                                           const absl::Notification& stopping,
                                           absl::Duration first_backoff,
                                           absl::Duration max_backoff) {
  absl::StatusOr<int64_t> started = absl::CancelledError("stopped before the bootstrap");
  absl::Duration backoff = first_backoff;
  while (!stopping.HasBeenNotified()) {
    started = MaybeBootstrap(storage, options, submit);
    if (started.ok()) return started;
    const absl::StatusCode code = started.status().code();
    if (code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kNotFound) {
      FRAUD_LOG(ERROR) << "bootstrap failed" << Kv("error", started.status().message());
      return started;
    }
    FRAUD_LOG(WARNING) << "bootstrap failed; retrying" << Kv("error", started.status().message())
                       << Kv("in_seconds", absl::ToDoubleSeconds(backoff));
    stopping.WaitForNotificationWithTimeout(backoff);
    backoff = std::min(backoff * 2, max_backoff);
  }
  return started;
}

}  // namespace fraud::training
