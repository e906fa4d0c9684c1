// The original time-ordered experiment, replayed through the running system (what
// `fraudctl replay DATA.csv` runs; tests call RunReplay directly):
//
//   1. split DATA.csv by time: the first `initial_rows` rows, then four equal parts P1..P4 (or at
//      four Time boundaries t1..t4: [0,t1), [t1,t2), [t2,t3), [t3,t4), [t4,inf));
//   2. upload the initial part and P4 through ingest; train a version on the initial part with
//      P4 as the fixed comparison set (comparison_upload_ids: uploaded, never trained on);
//   3. upload P1, P2, P3 one by one (each is scored by the champion of the moment: the "live"
//      figures), retraining after each on everything uploaded so far except P4;
//   4. evaluate every version on P4 (training's Evaluate RPC), unweighted and, with
//      weight_to_rate, with normal rows re-weighted to the population fraud rate.
//
// With label_delay enabled (label_delay.h: the handbook's delayed-label protocol), P1..P3 are
// uploaded WITHOUT their labels; after each part, the labels that have arrived by then (K reviews
// per day at once, the rest D days after their Time) are sent to storage as feedback, so each run
// trains only on the labels known at its time; at the end all the truth arrives and the result
// holds storage's realised metrics per (version, day) with precision@K.
//
// Nothing is tuned on P4: runs choose candidates, thresholds and epochs on their own validation
// window; P4 only feeds the promotion gate and the final table.
//
// Thread-safety: none (one replay at a time per caller).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fraud/common/v1/types.pb.h"
#include "fraud/ingest/v1/ingest.grpc.pb.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "fraud/storage/v1/storage.pb.h"
#include "fraud/training/v1/training.grpc.pb.h"

namespace fraud::replay {

// One time segment of the data file.
struct Part {
  // "initial", "P1", ..., "P4".
  std::string name;
  std::string path;
  int64_t rows = 0;
  int64_t frauds = 0;
  double time_min = 0;
  double time_max = 0;
  // Set once uploaded.
  int64_t upload_id = 0;
  bool duplicate = false;
  // The champion's figures on this part when it was uploaded (scored = false when no model
  // served yet).
  bool scored = false;
  int64_t scored_by = 0;
  common::v1::ClassificationMetrics live_metrics;
};

// Splits `csv_path` (labelled, ordered by Time when split by rows) into five CSV files in
// `out_dir`. With four ascending `boundaries`, rows go by Time; otherwise the first
// `initial_rows` rows form the initial part and the rest four equal parts (sizes differ by at
// most one row, larger parts first). InvalidArgument for an invalid/unlabelled file, bad
// boundaries, too few rows or an empty part; NotFound when the file does not exist.
absl::StatusOr<std::vector<Part>> SplitCsv(const std::string& csv_path,
                                           const std::vector<double>& boundaries,
                                           int64_t initial_rows, const std::string& out_dir);

// Uploads a CSV file; returns the ingest summary.
class Uploader {
 public:
  virtual ~Uploader() = default;
  virtual absl::StatusOr<ingest::v1::UploadSummary> Upload(const std::string& path,
                                                           const std::string& file_name) = 0;
};
// Streams the file to ingest's Upload in 256 KiB chunks (strict mode), with `token` as bearer
// token when set.
std::unique_ptr<Uploader> MakeIngestUploader(std::shared_ptr<grpc::ChannelInterface> channel,
                                             std::string token,
                                             absl::Duration timeout = absl::Hours(1));

// The delayed-label protocol (label_delay.h); off unless `enabled`.
struct LabelDelayOptions {
  bool enabled = false;
  // Days from a row's Time until its label arrives (>= 0).
  double days = 7;
  // Reviews per day of Time whose labels are known at once (>= 0); also the k of the realised
  // precision@k.
  int64_t review_budget = 100;
};

struct ReplayOptions {
  std::string csv_path;
  // Four ascending Time boundaries, or empty to split by rows.
  std::vector<double> boundaries;
  int64_t initial_rows = 100000;
  // Where the part files go (created when missing).
  std::string work_dir;
  // Families to train (empty = the server's default).
  std::vector<std::string> families;
  // Extra run params (for example {"grid", "small"}).
  std::map<std::string, std::string> params;
  // Promotion margin of each run (0 = the server's default).
  double promotion_margin = 0;
  // Fraud rate the weighted figures restore (0 = no weighted figures).
  double weight_to_rate = 0;
  int bootstrap_resamples = 200;
  // Bearer token of the admin RPCs (StartRun) and of uploads.
  std::string token;
  // Longest a single run may take.
  absl::Duration run_timeout = absl::Hours(2);
  // Progress lines ("uploaded P1 ..."); may be empty.
  std::function<void(const std::string&)> log;
  LabelDelayOptions label_delay;
};

// One model version of the replay.
struct VersionResult {
  int64_t version = 0;
  int64_t run_id = 0;
  // "initial", "initial+P1", ...
  std::string trained_on;
  std::string family;
  std::string candidate;
  bool promoted = false;
  std::string run_message;
  // Labelled rows the run trained and validated on (its lineage), comparison set excluded.
  int64_t labelled_rows = 0;
  // The run's gate: challenger minus the champion of the moment (`compared_with`) in AUPRC on P4,
  // with its paired bootstrap interval (both scored on the same resampled rows). Unset for the
  // first version (no champion yet).
  bool has_difference = false;
  int64_t compared_with = 0;
  storage::v1::PairedComparison difference;
  // On P4.
  common::v1::ClassificationMetrics metrics;
  common::v1::ClassificationMetrics weighted;
  bool has_weighted = false;
  std::string error;
};

// One step of a delayed-label replay: the labels that had arrived when the part was in.
struct LabelStep {
  // The part just uploaded ("P1"...) and the clock: its newest Time.
  std::string after;
  double now = 0;
  // Labels that arrived at this step, by review (and the frauds among them) and by delay.
  int64_t reviewed = 0;
  int64_t reviewed_frauds = 0;
  int64_t delayed = 0;
  // Over every row uploaded unlabelled so far: labels known and still unknown.
  int64_t known = 0;
  int64_t pending = 0;
};

struct DelayedLabelResult {
  bool enabled = false;
  double days = 0;
  int64_t review_budget = 0;
  std::vector<LabelStep> steps;
  // Labels that arrived only at the end (after the last run).
  int64_t final_arrivals = 0;
  // Storage's realised metrics by day of Time with k = review_budget, once all labels are in.
  std::vector<storage::v1::RealisedMetrics> realised;
};

struct ReplayResult {
  std::vector<Part> parts;
  std::vector<VersionResult> versions;
  int64_t comparison_rows = 0;
  int64_t comparison_frauds = 0;
  double weight_to_rate = 0;
  DelayedLabelResult label_delay;
};

// Runs the whole experiment. `training` needs StartRun/WatchRun/Evaluate; `storage` (its
// channel carrying the service token) ListPredictions, RecordFeedback and GetRealisedMetrics, and
// is needed only with label_delay (InvalidArgument without it). Errors: the first failing step
// (a failed run is FailedPrecondition with the run's message).
absl::StatusOr<ReplayResult> RunReplay(const ReplayOptions& options, Uploader& uploader,
                                       training::v1::TrainingService::StubInterface& training,
                                       storage::v1::StorageService::StubInterface* storage = nullptr);

// Scores already-registered versions on P4 and fills result->versions' metrics (step 4 alone).
absl::Status EvaluateOnComparison(const ReplayOptions& options,
                                  training::v1::TrainingService::StubInterface& training,
                                  ReplayResult* result);

// Human-readable table: one line per version, plus the parts and the live figures.
std::string FormatTable(const ReplayResult& result);
// The same as JSON (one object: parts, versions, comparison set).
std::string ToJson(const ReplayResult& result);

// Parses "t1,t2,t3,t4" into four ascending numbers; InvalidArgument otherwise.
absl::StatusOr<std::vector<double>> ParseBoundaries(const std::string& text);

}  // namespace fraud::replay
