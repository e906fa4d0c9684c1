#include "clients/replay/replay.h"

#include <grpcpp/client_context.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "clients/replay/label_delay.h"
#include "nlohmann/json.hpp"
#include "services/common/core/status_macros.h"
#include "services/common/csv/csv_reader.h"
#include "services/common/csv/synthetic_generator.h"
#include "services/common/rpc/auth.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/feedback_transfer.h"
#include "services/common/rpc/grpc_status.h"
#include "services/common/rpc/upload_chunk.h"

namespace fraud::replay {
namespace {

constexpr size_t kChunkBytes = rpc::kUploadChunkBytes;
constexpr int kParts = 5;
const char* const kPartNames[kParts] = {"initial", "P1", "P2", "P3", "P4"};

// Feeds the file through the CSV validator, calling `on_row` for every row.
absl::Status ForEachRow(const std::string& path,
                        const std::function<absl::Status(const double*, int32_t)>& on_row) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  csv::CsvReaderOptions options;
  options.mode = csv::Mode::kStrict;
  options.batch_rows = 8192;
  bool labelled = true;
  csv::CsvReader reader(options, [&](csv::RowBatch& batch) -> absl::Status {
    if (!batch.has_labels()) {
      labelled = false;
      return absl::InvalidArgumentError(
          absl::StrCat(path, " has no Class column: a replay needs labelled data"));
    }
    for (size_t i = 0; i < batch.num_rows(); ++i) {
      FRAUD_RETURN_IF_ERROR(on_row(batch.row(i), batch.labels[i]));
    }
    return absl::OkStatus();
  });
  std::string chunk(kChunkBytes, '\0');
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const std::streamsize n = in.gcount();
    if (n <= 0) break;
    FRAUD_RETURN_IF_ERROR(Annotate(reader.Feed(std::string_view(chunk.data(), n)), path));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat("reading ", path, " failed"));
  FRAUD_RETURN_IF_ERROR(Annotate(reader.Finish(), path));
  if (!labelled) return absl::InvalidArgumentError(absl::StrCat(path, " is not labelled"));
  return absl::OkStatus();
}

std::string Fixed(double v, int digits = 4) { return absl::StrFormat("%.*f", digits, v); }

std::string MetricWithCi(const common::v1::ClassificationMetrics& m) {
  if (m.single_class()) return "n/a";
  if (m.auprc_ci_high() > 0) {
    return absl::StrCat(Fixed(m.auprc()), " [", Fixed(m.auprc_ci_low(), 3), ", ",
                        Fixed(m.auprc_ci_high(), 3), "]");
  }
  return Fixed(m.auprc());
}

std::string Pad(std::string s, size_t width) {
  if (s.size() < width) s.resize(width, ' ');
  return s + " ";
}

nlohmann::json MetricsJson(const common::v1::ClassificationMetrics& m) {
  nlohmann::json j;
  j["rows"] = m.rows();
  j["positives"] = m.positives();
  j["auprc"] = m.single_class() ? nlohmann::json(nullptr) : nlohmann::json(m.auprc());
  j["auprc_ci_low"] = m.auprc_ci_low();
  j["auprc_ci_high"] = m.auprc_ci_high();
  j["roc_auc"] = m.single_class() ? nlohmann::json(nullptr) : nlohmann::json(m.roc_auc());
  j["threshold"] = m.threshold();
  j["precision"] = m.precision();
  j["recall"] = m.recall();
  j["f1"] = m.f1();
  j["weighted"] = m.weighted();
  return j;
}

class IngestUploader final : public Uploader {
 public:
  IngestUploader(std::shared_ptr<grpc::ChannelInterface> channel, std::string token,
                 absl::Duration timeout)
      : stub_(ingest::v1::IngestService::NewStub(std::move(channel))),
        token_(std::move(token)),
        timeout_(timeout) {}

  absl::StatusOr<ingest::v1::UploadSummary> Upload(const std::string& path,
                                                   const std::string& file_name) override {
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, timeout_);
    rpc::AddBearerToken(&ctx, token_);
    ingest::v1::UploadResponse response;
    auto writer = stub_->Upload(&ctx, &response);
    ingest::v1::UploadRequest request;
    request.mutable_options()->set_file_name(file_name);
    request.mutable_options()->set_mode(storage::v1::UPLOAD_MODE_STRICT);
    bool open = writer->Write(request);
    std::string chunk(kChunkBytes, '\0');
    while (open && in) {
      in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      const std::streamsize n = in.gcount();
      if (n <= 0) break;
      request.set_data(chunk.data(), static_cast<size_t>(n));
      open = writer->Write(request);
    }
    if (open) writer->WritesDone();
    const grpc::Status s = writer->Finish();
    FRAUD_RETURN_IF_ERROR(
        Annotate(rpc::FromGrpcStatus(s), absl::StrCat("uploading ", file_name)));
    return response.summary();
  }

 private:
  std::unique_ptr<ingest::v1::IngestService::Stub> stub_;
  std::string token_;
  absl::Duration timeout_;
};

void Log(const ReplayOptions& options, const std::string& line) {
  if (options.log) options.log(line);
}

absl::Status UploadPart(const ReplayOptions& options, Uploader& uploader, Part* part) {
  const std::string stem = std::filesystem::path(options.csv_path).stem().string();
  FRAUD_ASSIGN_OR_RETURN(ingest::v1::UploadSummary summary,
                         uploader.Upload(part->path, absl::StrCat(stem, "-", part->name, ".csv")));
  part->upload_id = summary.duplicate_of() != 0 ? summary.duplicate_of() : summary.upload_id();
  part->duplicate = summary.duplicate_of() != 0;
  part->scored = summary.scored();
  part->scored_by = summary.model_version();
  if (summary.has_metrics()) part->live_metrics = summary.metrics();
  std::string line = absl::StrCat("uploaded ", part->name, " (", part->rows, " rows, ",
                                  part->frauds, " frauds) as upload ", part->upload_id,
                                  part->duplicate ? " (already stored)" : "");
  if (part->scored && summary.has_metrics()) {
    absl::StrAppend(&line, "; scored by v", part->scored_by, ": AUPRC ",
                    MetricWithCi(summary.metrics()));
  }
  Log(options, line);
  return absl::OkStatus();
}

// Starts a run and follows it to its end; returns the final record.
absl::StatusOr<storage::v1::TrainingRun> TrainAndWait(
    const ReplayOptions& options, training::v1::TrainingService::StubInterface& training,
    const training::v1::StartRunRequest& request) {
  training::v1::StartRunResponse started;
  {
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(60));
    rpc::AddBearerToken(&ctx, options.token);
    FRAUD_RETURN_IF_ERROR(Annotate(rpc::FromGrpcStatus(training.StartRun(&ctx, request, &started)),
                                   "starting a training run"));
  }
  const int64_t run_id = started.run().id();
  Log(options, absl::StrCat("run ", run_id, " started (", request.description(), ")",
                            started.run().progress().message() == "starting"
                                ? ""
                                : absl::StrCat(": ", started.run().progress().message())));
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, options.run_timeout);
  training::v1::WatchRunRequest watch;
  watch.set_run_id(run_id);
  auto reader = training.WatchRun(&ctx, watch);
  training::v1::WatchRunResponse message;
  storage::v1::TrainingRun last = started.run();
  std::string last_line;
  while (reader->Read(&message)) {
    last = message.run();
    const std::string line =
        absl::StrCat("run ", run_id, " ", last.progress().phase(), ": ", last.progress().message());
    if (line != last_line && last.progress().epoch() == 0) {
      Log(options, line);
      last_line = line;
    }
  }
  FRAUD_RETURN_IF_ERROR(Annotate(rpc::FromGrpcStatus(reader->Finish()),
                                 absl::StrCat("watching run ", run_id)));
  if (last.status() != storage::v1::RUN_STATUS_SUCCEEDED) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, " did not succeed: ", last.message()));
  }
  return last;
}


// Writes `part`'s rows without the Class column beside its file; returns the rows' truth (upload
// id still 0) and the new file's path.
absl::StatusOr<std::vector<PendingRow>> WriteUnlabelled(const Part& part, std::string* path) {
  *path = absl::StrCat(part.path.substr(0, part.path.size() - 4), "-unlabelled.csv");
  std::ofstream out(*path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", *path));
  csv::GeneratorOptions header_options;
  header_options.quote = false;
  header_options.with_labels = false;
  out << csv::SyntheticCsvHeader(header_options);
  std::vector<PendingRow> rows;
  rows.reserve(static_cast<size_t>(part.rows));
  std::string line;
  FRAUD_RETURN_IF_ERROR(ForEachRow(part.path, [&](const double* row, int32_t label) {
    PendingRow r;
    r.line = static_cast<int64_t>(rows.size()) + 2;  // the header is line 1
    r.time = row[csv::kTimeIndex];
    r.label = label;
    rows.push_back(r);
    line.clear();
    csv::AppendCsvRow(row, label, /*with_label=*/false, /*quote=*/false, &line);
    out << line;
    return absl::OkStatus();
  }));
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("writing ", *path, " failed"));
  return rows;
}

// Reads the scores of every prediction of `upload_id` (by its scoring model) into `clock`.
absl::Status FetchScores(storage::v1::StorageService::StubInterface& storage, int64_t upload_id,
                         LabelClock* clock) {
  constexpr int kPage = 1000;
  for (int64_t offset = 0;;) {
    storage::v1::ListPredictionsRequest request;
    request.set_upload_id(upload_id);
    request.set_order(storage::v1::PREDICTION_ORDER_LINE);
    request.set_page_size(kPage);
    request.set_offset(offset);
    storage::v1::ListPredictionsResponse response;
    grpc::ClientContext ctx;
    rpc::SetDeadline(&ctx, absl::Seconds(60));
    FRAUD_RETURN_IF_ERROR(Annotate(
        rpc::FromGrpcStatus(storage.ListPredictions(&ctx, request, &response)),
        absl::StrCat("reading the scores of upload ", upload_id)));
    for (const storage::v1::Prediction& p : response.predictions()) {
      if (!clock->SetScore(upload_id, p.line(), p.score())) {
        return absl::InternalError(absl::StrCat("upload ", upload_id, " has a prediction for line ",
                                                p.line(), ", which the replay did not upload"));
      }
    }
    offset += response.predictions_size();
    if (response.predictions_size() == 0 || offset >= response.total()) return absl::OkStatus();
  }
}

// Sends the labels of `rows` (indexes into clock.rows()) as one RecordFeedback stream.
absl::Status SendLabels(storage::v1::StorageService::StubInterface& storage,
                        const LabelClock& clock, const std::vector<size_t>& rows,
                        const std::string& source) {
  if (rows.empty()) return absl::OkStatus();
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, absl::Minutes(10));
  storage::v1::RecordFeedbackResponse response;
  auto writer = storage.RecordFeedback(&ctx, &response);
  storage::v1::RecordFeedbackRequest request;
  request.set_actor("replay");
  bool open = true;
  for (size_t i = 0; i < rows.size() && open; ++i) {
    const PendingRow& r = clock.rows()[rows[i]];
    storage::v1::LabelFeedback* f = request.add_labels();
    f->set_upload_id(r.upload_id);
    f->set_line(r.line);
    f->set_label(r.label);
    f->set_source(source);
    if (request.labels_size() == rpc::kFeedbackBatchRows || i + 1 == rows.size()) {
      open = writer->Write(request);
      request.clear_labels();
    }
  }
  if (open) writer->WritesDone();
  FRAUD_RETURN_IF_ERROR(Annotate(rpc::FromGrpcStatus(writer->Finish()),
                                 absl::StrCat("sending ", rows.size(), " ", source, " labels")));
  if (response.unknown() != 0 || response.applied() != static_cast<int64_t>(rows.size())) {
    return absl::InternalError(absl::StrCat(
        "storage applied ", response.applied(), " of ", rows.size(), " ", source, " labels (",
        response.unknown(), " unknown, ", response.unchanged(), " unchanged, ",
        response.conflicts(), " conflicting)"));
  }
  return absl::OkStatus();
}

// The delayed-label state of a replay: uploads parts without labels and sends the labels as
// they arrive.
class DelayedLabels {
 public:
  DelayedLabels(const LabelDelayOptions& options, storage::v1::StorageService::StubInterface& storage)
      : storage_(storage), clock_(options.days, options.review_budget) {}

  // Uploads `part` without its labels and reads back its scores.
  absl::Status Upload(const ReplayOptions& options, Uploader& uploader, Part* part) {
    std::string path;
    FRAUD_ASSIGN_OR_RETURN(std::vector<PendingRow> rows, WriteUnlabelled(*part, &path));
    Part unlabelled = *part;
    unlabelled.path = path;
    FRAUD_RETURN_IF_ERROR(UploadPart(options, uploader, &unlabelled));
    if (unlabelled.duplicate) {
      return absl::FailedPreconditionError(absl::StrCat(
          part->name, " without labels is already stored (upload ", unlabelled.upload_id,
          "): a delayed-label replay needs a fresh database"));
    }
    *part = unlabelled;
    part->path = path;
    for (PendingRow& r : rows) r.upload_id = part->upload_id;
    clock_.AddRows(std::move(rows));
    return part->scored ? FetchScores(storage_, part->upload_id, &clock_) : absl::OkStatus();
  }

  // The labels that have arrived once `part` is in, sent to storage.
  absl::StatusOr<LabelStep> Advance(const Part& part) {
    LabelStep step;
    step.after = part.name;
    step.now = part.time_max;
    const Arrivals arrived = clock_.AdvanceTo(step.now);
    FRAUD_RETURN_IF_ERROR(SendLabels(storage_, clock_, arrived.reviewed, "review"));
    FRAUD_RETURN_IF_ERROR(SendLabels(storage_, clock_, arrived.delayed, "chargeback"));
    step.reviewed = static_cast<int64_t>(arrived.reviewed.size());
    for (size_t i : arrived.reviewed) step.reviewed_frauds += clock_.rows()[i].label;
    step.delayed = static_cast<int64_t>(arrived.delayed.size());
    step.known = clock_.known();
    step.pending = clock_.pending();
    return step;
  }

  // Every label not yet known, sent to storage; returns how many.
  absl::StatusOr<int64_t> ArriveAll() {
    const std::vector<size_t> rest = clock_.ArriveAll();
    FRAUD_RETURN_IF_ERROR(SendLabels(storage_, clock_, rest, "chargeback"));
    return static_cast<int64_t>(rest.size());
  }

 private:
  storage::v1::StorageService::StubInterface& storage_;
  LabelClock clock_;
};

absl::StatusOr<std::vector<storage::v1::RealisedMetrics>> RealisedByDay(
    storage::v1::StorageService::StubInterface& storage, int64_t k) {
  storage::v1::GetRealisedMetricsRequest request;
  request.set_by(storage::v1::REALISED_PERIOD_DAY);
  request.set_k(static_cast<int32_t>(k));
  storage::v1::GetRealisedMetricsResponse response;
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, absl::Minutes(5));
  FRAUD_RETURN_IF_ERROR(
      Annotate(rpc::FromGrpcStatus(storage.GetRealisedMetrics(&ctx, request, &response)),
               "reading the realised metrics"));
  return std::vector<storage::v1::RealisedMetrics>(response.metrics().begin(),
                                                   response.metrics().end());
}

}  // namespace

absl::StatusOr<std::vector<double>> ParseBoundaries(const std::string& text) {
  std::vector<double> out;
  for (absl::string_view piece : absl::StrSplit(text, ',')) {
    double v = 0;
    if (!absl::SimpleAtod(piece, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("boundary '", std::string(piece), "' is not a number"));
    }
    out.push_back(v);
  }
  if (out.size() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("need exactly four Time boundaries t1,t2,t3,t4; got ", out.size()));
  }
  for (size_t i = 1; i < out.size(); ++i) {
    if (!(out[i] > out[i - 1])) {
      return absl::InvalidArgumentError("Time boundaries must be strictly ascending");
    }
  }
  return out;
}

absl::StatusOr<std::vector<Part>> SplitCsv(const std::string& csv_path,
                                           const std::vector<double>& boundaries,
                                           int64_t initial_rows, const std::string& out_dir) {
  if (!boundaries.empty()) {
    if (boundaries.size() != 4 || !std::is_sorted(boundaries.begin(), boundaries.end())) {
      return absl::InvalidArgumentError("need four ascending Time boundaries");
    }
  } else if (initial_rows <= 0) {
    return absl::InvalidArgumentError("initial_rows must be positive");
  }
  int64_t total = 0;
  if (boundaries.empty()) {
    FRAUD_RETURN_IF_ERROR(ForEachRow(csv_path, [&](const double*, int32_t) {
      ++total;
      return absl::OkStatus();
    }));
    if (total < initial_rows + 4) {
      return absl::InvalidArgumentError(absl::StrCat(
          csv_path, " has ", total, " rows: fewer than the ", initial_rows,
          " initial rows plus four parts; pass --boundaries t1,t2,t3,t4 to split by Time"));
    }
  }
  // Row-count limits of each part (split by rows): the rest divided in four, larger parts first.
  int64_t limits[kParts] = {initial_rows, 0, 0, 0, 0};
  if (boundaries.empty()) {
    const int64_t rest = total - initial_rows;
    for (int p = 1; p < kParts; ++p) limits[p] = rest / 4 + (p - 1 < rest % 4 ? 1 : 0);
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", out_dir, ": ", ec.message()));
  const std::string stem = std::filesystem::path(csv_path).stem().string();
  std::vector<Part> parts(kParts);
  std::vector<std::ofstream> files(kParts);
  csv::GeneratorOptions header_options;
  header_options.quote = false;
  const std::string header = csv::SyntheticCsvHeader(header_options);
  for (int p = 0; p < kParts; ++p) {
    parts[p].name = kPartNames[p];
    parts[p].path = (std::filesystem::path(out_dir) / absl::StrCat(stem, "-", kPartNames[p], ".csv"))
                        .string();
    files[p].open(parts[p].path, std::ios::binary | std::ios::trunc);
    if (!files[p]) return absl::InternalError(absl::StrCat("cannot write ", parts[p].path));
    files[p] << header;
  }
  int current = 0;
  int64_t in_current = 0;
  std::string line;
  FRAUD_RETURN_IF_ERROR(ForEachRow(csv_path, [&](const double* row, int32_t label) {
    int p = 0;
    const double time = row[csv::kTimeIndex];
    if (!boundaries.empty()) {
      while (p < 4 && time >= boundaries[p]) ++p;
    } else {
      while (current < kParts - 1 && in_current >= limits[current]) {
        ++current;
        in_current = 0;
      }
      p = current;
      ++in_current;
    }
    Part& part = parts[p];
    if (part.rows == 0) {
      part.time_min = part.time_max = time;
    } else {
      part.time_min = std::min(part.time_min, time);
      part.time_max = std::max(part.time_max, time);
    }
    ++part.rows;
    part.frauds += label == 1;
    line.clear();
    csv::AppendCsvRow(row, label, true, false, &line);
    files[p] << line;
    return absl::OkStatus();
  }));
  for (int p = 0; p < kParts; ++p) {
    files[p].close();
    if (!files[p]) return absl::DataLossError(absl::StrCat("writing ", parts[p].path, " failed"));
    if (parts[p].rows == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("part ", parts[p].name, " of ", csv_path, " is empty"));
    }
  }
  return parts;
}

std::unique_ptr<Uploader> MakeIngestUploader(std::shared_ptr<grpc::ChannelInterface> channel,
                                             std::string token, absl::Duration timeout) {
  return std::make_unique<IngestUploader>(std::move(channel), std::move(token), timeout);
}

absl::Status EvaluateOnComparison(const ReplayOptions& options,
                                  training::v1::TrainingService::StubInterface& training,
                                  ReplayResult* result) {
  const Part& p4 = result->parts.at(kParts - 1);
  training::v1::EvaluateRequest request;
  for (const VersionResult& v : result->versions) request.add_versions(v.version);
  request.add_upload_ids(p4.upload_id);
  request.set_weight_to_rate(options.weight_to_rate);
  request.set_bootstrap_resamples(options.bootstrap_resamples);
  training::v1::EvaluateResponse response;
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, absl::Minutes(30));
  FRAUD_RETURN_IF_ERROR(Annotate(rpc::FromGrpcStatus(training.Evaluate(&ctx, request, &response)),
                                 "evaluating the versions on P4"));
  result->comparison_rows = response.rows();
  result->comparison_frauds = response.frauds();
  result->weight_to_rate = options.weight_to_rate;
  for (const training::v1::VersionEvaluation& e : response.evaluations()) {
    for (VersionResult& v : result->versions) {
      if (v.version != e.version()) continue;
      v.metrics = e.metrics();
      v.has_weighted = e.has_weighted_metrics();
      if (v.has_weighted) v.weighted = e.weighted_metrics();
      v.error = e.error();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplayResult> RunReplay(const ReplayOptions& options, Uploader& uploader,
                                       training::v1::TrainingService::StubInterface& training,
                                       storage::v1::StorageService::StubInterface* storage) {
  ReplayResult result;
  const LabelDelayOptions& delay = options.label_delay;
  std::unique_ptr<DelayedLabels> delayed;
  if (delay.enabled) {
    if (storage == nullptr) {
      return absl::InvalidArgumentError("a delayed-label replay needs the storage service");
    }
    if (!(delay.days >= 0) || delay.review_budget < 0 || delay.review_budget > 100000) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label delay must be >= 0 days (got ", delay.days,
          ") and the review budget in [0, 100000] per day (got ", delay.review_budget, ")"));
    }
    delayed = std::make_unique<DelayedLabels>(delay, *storage);
    result.label_delay.enabled = true;
    result.label_delay.days = delay.days;
    result.label_delay.review_budget = delay.review_budget;
  }
  std::string work_dir = options.work_dir;
  if (work_dir.empty()) {
    work_dir = (std::filesystem::temp_directory_path() /
                absl::StrCat("fraud-replay-", std::filesystem::path(options.csv_path).stem().string()))
                   .string();
  }
  FRAUD_ASSIGN_OR_RETURN(result.parts,
                         SplitCsv(options.csv_path, options.boundaries, options.initial_rows, work_dir));
  for (const Part& p : result.parts) {
    Log(options, absl::StrCat("split ", p.name, ": ", p.rows, " rows, ", p.frauds,
                              " frauds, Time ", Fixed(p.time_min, 0), "..", Fixed(p.time_max, 0)));
  }
  Part& initial = result.parts[0];
  Part& comparison = result.parts[kParts - 1];
  FRAUD_RETURN_IF_ERROR(UploadPart(options, uploader, &initial));
  FRAUD_RETURN_IF_ERROR(UploadPart(options, uploader, &comparison));

  std::vector<int64_t> train_uploads;
  std::string trained_on;
  for (int step = 0; step < kParts - 1; ++step) {
    Part& part = result.parts[step];
    if (step > 0 && delayed != nullptr) {
      FRAUD_RETURN_IF_ERROR(delayed->Upload(options, uploader, &part));
      FRAUD_ASSIGN_OR_RETURN(LabelStep labels, delayed->Advance(part));
      Log(options, absl::StrCat("labels known after ", part.name, " (clock at Time ",
                                Fixed(labels.now, 0), "): ", labels.reviewed, " reviewed (",
                                labels.reviewed_frauds, " frauds) and ", labels.delayed,
                                " delayed arrived; ", labels.known, " known, ", labels.pending,
                                " still unlabelled"));
      result.label_delay.steps.push_back(labels);
    } else if (step > 0) {
      FRAUD_RETURN_IF_ERROR(UploadPart(options, uploader, &part));
    }
    train_uploads.push_back(part.upload_id);
    trained_on = step == 0 ? "initial" : absl::StrCat(trained_on, "+", part.name);
    training::v1::StartRunRequest request;
    for (const std::string& f : options.families) request.add_families(f);
    for (int64_t id : train_uploads) request.add_train_upload_ids(id);
    request.add_comparison_upload_ids(comparison.upload_id);
    request.set_promotion_margin(options.promotion_margin);
    for (const auto& [k, v] : options.params) (*request.mutable_params())[k] = v;
    request.set_trigger("replay");
    request.set_description(absl::StrCat("replay: trained on ", trained_on));
    FRAUD_ASSIGN_OR_RETURN(storage::v1::TrainingRun run, TrainAndWait(options, training, request));
    VersionResult v;
    v.version = run.model_version();
    v.run_id = run.id();
    v.trained_on = trained_on;
    v.promoted = run.promoted();
    v.run_message = run.message();
    v.labelled_rows = run.lineage().train_rows() + run.lineage().validation_rows();
    v.has_difference = run.has_comparison_difference();
    v.compared_with = run.champion_version_before();
    v.difference = run.comparison_difference();
    for (const storage::v1::Candidate& c : run.candidates()) {
      if (!c.selected()) continue;
      v.candidate = c.name();
      v.family = c.name().substr(0, c.name().find(' '));
    }
    Log(options, absl::StrCat("run ", run.id(), " -> v", v.version, " (", v.candidate, "): ",
                              run.message()));
    result.versions.push_back(std::move(v));
  }
  if (delayed != nullptr) {
    FRAUD_ASSIGN_OR_RETURN(result.label_delay.final_arrivals, delayed->ArriveAll());
    Log(options, absl::StrCat("the remaining ", result.label_delay.final_arrivals,
                              " labels arrived after the last run"));
    FRAUD_ASSIGN_OR_RETURN(result.label_delay.realised,
                           RealisedByDay(*storage, std::max<int64_t>(1, delay.review_budget)));
  }
  FRAUD_RETURN_IF_ERROR(EvaluateOnComparison(options, training, &result));
  return result;
}

namespace {

// "v2 +0.0163 [-0.0113, +0.0590]": the gate's paired comparison, or "-" without a champion.
std::string DifferenceText(const VersionResult& v) {
  if (!v.has_difference) return "-";
  auto signed_fixed = [](double x) { return absl::StrCat(x >= 0 ? "+" : "", Fixed(x, 4)); };
  return absl::StrCat("v", v.compared_with, " ", signed_fixed(v.difference.difference()), " [",
                      signed_fixed(v.difference.ci_low()), ", ",
                      signed_fixed(v.difference.ci_high()), "]");
}

const VersionResult* FindVersion(const ReplayResult& result, int64_t version) {
  for (const VersionResult& v : result.versions) {
    if (v.version == version) return &v;
  }
  return nullptr;
}

// The delayed-label protocol's tables: labels known at each run, then the realised figures.
void AppendDelayedLabelTables(const ReplayResult& result, std::string* out) {
  const DelayedLabelResult& d = result.label_delay;
  absl::StrAppend(out, "\nDelayed labels: P1..P3 uploaded without labels; a label arrives ",
                  Fixed(d.days, 2), " day(s) after its Time; analysts review ", d.review_budget,
                  " rows per day at a steady rate, the day's highest-scored first (labels known "
                  "at once).\n");
  absl::StrAppend(out, Pad("after", 7), Pad("clock", 8), Pad("reviewed (frauds)", 18),
                  Pad("delayed", 8), Pad("known", 8), Pad("unlabelled", 11),
                  "next run trained on (labelled rows)\n");
  for (size_t i = 0; i < d.steps.size(); ++i) {
    const LabelStep& s = d.steps[i];
    // Step i (after P(i+1)) is followed by the run of version i+1 (version 0 is the initial run).
    const VersionResult* next = i + 1 < result.versions.size() ? &result.versions[i + 1] : nullptr;
    absl::StrAppend(out, Pad(s.after, 7), Pad(Fixed(s.now, 0), 8),
                    Pad(absl::StrCat(s.reviewed, " (", s.reviewed_frauds, ")"), 18),
                    Pad(absl::StrCat(s.delayed), 8), Pad(absl::StrCat(s.known), 8),
                    Pad(absl::StrCat(s.pending), 11),
                    next == nullptr ? "-"
                                    : absl::StrCat("v", next->version, ": ", next->labelled_rows),
                    "\n");
  }
  absl::StrAppend(out, "The remaining ", d.final_arrivals,
                  " labels arrived after the last run.\n");
  absl::StrAppend(out, "\nRealised per day of Time once every label is in (storage's realised "
                       "metrics, k = ", d.review_budget, "), beside the version's offline AUPRC on P4:\n");
  absl::StrAppend(out, Pad("version", 8), Pad("day", 4), Pad("rows", 7), Pad("alerts", 7),
                  Pad("precision", 10), Pad("recall", 8),
                  Pad(absl::StrCat("precision@", d.review_budget), 14), Pad("day AUPRC", 10),
                  result.weight_to_rate > 0 ? "offline AUPRC on P4 (weighted)\n"
                                            : "offline AUPRC on P4\n");
  for (const storage::v1::RealisedMetrics& m : d.realised) {
    const VersionResult* v = FindVersion(result, m.model_version());
    std::string offline = "-";
    if (v != nullptr && v->error.empty()) {
      offline = result.weight_to_rate > 0 && v->has_weighted
                    ? absl::StrCat(Fixed(v->metrics.auprc()), " (", Fixed(v->weighted.auprc()), ")")
                    : Fixed(v->metrics.auprc());
    }
    absl::StrAppend(out, Pad(absl::StrCat("v", m.model_version()), 8),
                    Pad(absl::StrCat(m.period()), 4), Pad(absl::StrCat(m.rows_scored()), 7),
                    Pad(absl::StrCat(m.alerts()), 7), Pad(Fixed(m.precision()), 10),
                    Pad(Fixed(m.recall()), 8),
                    Pad(absl::StrCat(Fixed(m.precision_at_k()), " of ", m.top_k_labelled()), 14),
                    Pad(Fixed(m.auprc()), 10), offline, "\n");
  }
}

}  // namespace

std::string FormatTable(const ReplayResult& result) {
  std::string out;
  absl::StrAppend(&out, "Parts (split by Time):\n");
  absl::StrAppend(&out, Pad("part", 8), Pad("rows", 8), Pad("frauds", 7), Pad("Time range", 18),
                  Pad("upload", 7), "scored on upload by the champion of the moment\n");
  for (const Part& p : result.parts) {
    std::string live = "-";
    if (p.scored) {
      live = p.live_metrics.rows() > 0
                 ? absl::StrCat("v", p.scored_by, ": AUPRC ", MetricWithCi(p.live_metrics))
                 : absl::StrCat("v", p.scored_by, " (uploaded without labels)");
    }
    absl::StrAppend(&out, Pad(p.name, 8), Pad(absl::StrCat(p.rows), 8),
                    Pad(absl::StrCat(p.frauds), 7),
                    Pad(absl::StrCat(Fixed(p.time_min, 0), "-", Fixed(p.time_max, 0)), 18),
                    Pad(absl::StrCat(p.upload_id), 7), live, "\n");
  }
  absl::StrAppend(&out, "\nEvery version on P4 (", result.comparison_rows, " rows, ",
                  result.comparison_frauds, " frauds; never trained on). AUPRC [bootstrap 95% CI]");
  if (result.weight_to_rate > 0) {
    absl::StrAppend(&out, "; weighted: normal rows re-weighted so frauds are ",
                    Fixed(result.weight_to_rate * 100, 4), "%");
  }
  absl::StrAppend(&out, "\n");
  absl::StrAppend(&out, Pad("version", 8), Pad("run", 5), Pad("trained on", 18), Pad("family", 14),
                  Pad("AUPRC on P4", 26), result.weight_to_rate > 0 ? Pad("weighted AUPRC", 26) : "",
                  Pad("promoted", 10), "vs champion of the moment (paired 95% CI)\n");
  for (const VersionResult& v : result.versions) {
    absl::StrAppend(&out, Pad(absl::StrCat("v", v.version), 8), Pad(absl::StrCat(v.run_id), 5),
                    Pad(v.trained_on, 18), Pad(v.family, 14),
                    Pad(v.error.empty() ? MetricWithCi(v.metrics) : "error", 26),
                    result.weight_to_rate > 0
                        ? Pad(v.has_weighted ? MetricWithCi(v.weighted) : "n/a", 26)
                        : "",
                    Pad(v.promoted ? "yes" : "no", 10), DifferenceText(v), "\n");
    if (!v.error.empty()) absl::StrAppend(&out, "    ", v.error, "\n");
  }
  if (result.label_delay.enabled) AppendDelayedLabelTables(result, &out);
  return out;
}

std::string ToJson(const ReplayResult& result) {
  nlohmann::json j;
  j["comparison"] = {{"part", "P4"},
                     {"rows", result.comparison_rows},
                     {"frauds", result.comparison_frauds},
                     {"weight_to_rate", result.weight_to_rate}};
  j["parts"] = nlohmann::json::array();
  for (const Part& p : result.parts) {
    nlohmann::json pj = {{"name", p.name},         {"rows", p.rows},
                         {"frauds", p.frauds},     {"time_min", p.time_min},
                         {"time_max", p.time_max}, {"upload_id", p.upload_id},
                         {"duplicate", p.duplicate}, {"scored", p.scored},
                         {"scored_by", p.scored_by}};
    if (p.scored) pj["live_metrics"] = MetricsJson(p.live_metrics);
    j["parts"].push_back(pj);
  }
  j["versions"] = nlohmann::json::array();
  for (const VersionResult& v : result.versions) {
    nlohmann::json vj = {{"version", v.version},     {"run_id", v.run_id},
                         {"trained_on", v.trained_on}, {"family", v.family},
                         {"candidate", v.candidate}, {"promoted", v.promoted},
                         {"run_message", v.run_message}};
    vj["metrics"] = MetricsJson(v.metrics);
    if (v.has_weighted) vj["weighted_metrics"] = MetricsJson(v.weighted);
    if (v.has_difference) {
      vj["vs_champion"] = {{"version", v.compared_with},
                           {"difference", v.difference.difference()},
                           {"ci_low", v.difference.ci_low()},
                           {"ci_high", v.difference.ci_high()},
                           {"share_better", v.difference.share_better()},
                           {"resamples", v.difference.resamples()}};
    }
    if (!v.error.empty()) vj["error"] = v.error;
    vj["labelled_rows"] = v.labelled_rows;
    j["versions"].push_back(vj);
  }
  if (result.label_delay.enabled) {
    const DelayedLabelResult& d = result.label_delay;
    nlohmann::json dj = {{"days", d.days},
                         {"review_budget", d.review_budget},
                         {"final_arrivals", d.final_arrivals}};
    dj["steps"] = nlohmann::json::array();
    for (const LabelStep& st : d.steps) {
      dj["steps"].push_back({{"after", st.after},
                             {"now", st.now},
                             {"reviewed", st.reviewed},
                             {"reviewed_frauds", st.reviewed_frauds},
                             {"delayed", st.delayed},
                             {"known", st.known},
                             {"pending", st.pending}});
    }
    dj["realised"] = nlohmann::json::array();
    for (const storage::v1::RealisedMetrics& m : d.realised) {
      dj["realised"].push_back({{"model_version", m.model_version()},
                                {"day", m.period()},
                                {"rows_scored", m.rows_scored()},
                                {"rows_labelled", m.rows_labelled()},
                                {"alerts", m.alerts()},
                                {"true_alerts", m.true_alerts()},
                                {"frauds", m.frauds()},
                                {"precision", m.precision()},
                                {"recall", m.recall()},
                                {"auprc", m.auprc()},
                                {"precision_at_k", m.precision_at_k()},
                                {"top_k_labelled", m.top_k_labelled()}});
    }
    j["label_delay"] = dj;
  }
  return j.dump(2);
}

}  // namespace fraud::replay
