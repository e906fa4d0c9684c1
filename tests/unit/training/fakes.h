// In-memory fakes of the training service's downstream APIs, for unit tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "services/common/csv/synthetic_generator.h"
#include "services/training/clients.h"

namespace fraud::training::testing {

struct StoredRow {
  std::vector<double> features;
  int32_t label = -1;
  int64_t upload_id = 0;
};

class FakeStorage final : public StorageApi {
 public:
  // Adds `rows` labelled synthetic rows as one upload; returns its id. Times are shifted by
  // `time_offset`.
  int64_t AddSyntheticUpload(int64_t rows, uint64_t seed, double fraud_rate = 0.02,
                             double time_offset = 0) {
    csv::GeneratorOptions o;
    o.rows = rows;
    o.seed = seed;
    o.fraud_rate = fraud_rate;
    csv::SyntheticGenerator gen(o);
    absl::MutexLock lock(&mu_);
    const int64_t id = ++last_upload_;
    double f[csv::kNumFeatures];
    int32_t y = 0;
    while (gen.Next(f, &y)) {
      StoredRow r;
      r.features.assign(f, f + csv::kNumFeatures);
      r.features[0] += time_offset;
      r.label = y;
      r.upload_id = id;
      rows_.push_back(std::move(r));
    }
    return id;
  }

  // Adds rows with explicit times and labels (features other than Time are label-dependent noise).
  int64_t AddUpload(const std::vector<double>& times, const std::vector<int32_t>& labels) {
    absl::MutexLock lock(&mu_);
    const int64_t id = ++last_upload_;
    for (size_t i = 0; i < times.size(); ++i) {
      StoredRow r;
      r.features.assign(csv::kNumFeatures, 0.0);
      r.features[0] = times[i];
      for (int j = 1; j < csv::kNumFeatures; ++j) {
        r.features[j] = (labels[i] == 1 ? -2.0 : 0.1) * ((i * 7 + j) % 5 + 1) * 0.3;
      }
      r.label = labels[i];
      r.upload_id = id;
      rows_.push_back(std::move(r));
    }
    return id;
  }

  // Labels (or relabels) row `index` (0-based, in insertion order across uploads), as feedback
  // does.
  void SetLabel(size_t index, int32_t label) {
    absl::MutexLock lock(&mu_);
    rows_.at(index).label = label;
  }

  absl::Status ScanTransactions(
      const storage_pb::ScanTransactionsRequest& request,
      const std::function<absl::Status(const common::v1::TransactionBatch&)>& on_batch) override {
    std::vector<const StoredRow*> selected;
    {
      absl::MutexLock lock(&mu_);
      ++scans_;
      if (!scan_error_.ok()) return scan_error_;
      for (const StoredRow& r : rows_) {
        if (request.labelled_only() && r.label < 0) continue;
        if (!request.upload_ids().empty() &&
            std::find(request.upload_ids().begin(), request.upload_ids().end(), r.upload_id) ==
                request.upload_ids().end()) {
          continue;
        }
        if (std::find(request.exclude_upload_ids().begin(), request.exclude_upload_ids().end(),
                      r.upload_id) != request.exclude_upload_ids().end()) {
          continue;
        }
        const double t = r.features[0];
        if ((request.time_min() != 0 || request.time_max() != 0) &&
            (t < request.time_min() || (request.time_max() != 0 && t >= request.time_max()))) {
          continue;
        }
        selected.push_back(&r);
      }
    }
    std::stable_sort(selected.begin(), selected.end(), [](const StoredRow* a, const StoredRow* b) {
      return a->features[0] < b->features[0];
    });
    const size_t batch_rows = request.batch_rows() > 0 ? request.batch_rows() : 8192;
    for (size_t start = 0; start < selected.size(); start += batch_rows) {
      common::v1::TransactionBatch batch;
      const size_t end = std::min(selected.size(), start + batch_rows);
      batch.set_num_rows(static_cast<uint32_t>(end - start));
      for (size_t i = start; i < end; ++i) {
        batch.mutable_features()->Add(selected[i]->features.begin(), selected[i]->features.end());
        batch.add_labels(selected[i]->label);
        batch.add_upload_ids(selected[i]->upload_id);
      }
      absl::Status s = on_batch(batch);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<storage_pb::GetDataStatsResponse> GetDataStats(int64_t after) override {
    absl::MutexLock lock(&mu_);
    storage_pb::GetDataStatsResponse r;
    std::set<int64_t> uploads;
    for (const StoredRow& row : rows_) {
      if (row.upload_id <= after) continue;
      uploads.insert(row.upload_id);
      r.set_rows(r.rows() + 1);
      if (row.label >= 0) r.set_labelled_rows(r.labelled_rows() + 1);
      if (row.label == 1) r.set_frauds(r.frauds() + 1);
    }
    r.set_uploads(static_cast<int64_t>(uploads.size()));
    r.set_max_upload_id(last_upload_);
    return r;
  }

  absl::StatusOr<storage_pb::StoreUploadResponse> StoreUpload(
      const storage_pb::UploadBegin& begin,
      const std::function<absl::StatusOr<bool>(storage_pb::UploadRows*)>& next,
      const std::function<storage_pb::UploadCommit()>& commit) override {
    std::vector<StoredRow> pending;
    while (true) {
      storage_pb::UploadRows rows;
      absl::StatusOr<bool> more = next(&rows);
      if (!more.ok()) return more.status();
      if (!*more) break;
      const auto& b = rows.rows();
      for (uint32_t i = 0; i < b.num_rows(); ++i) {
        StoredRow r;
        r.features.assign(b.features().begin() + i * csv::kNumFeatures,
                          b.features().begin() + (i + 1) * csv::kNumFeatures);
        r.label = b.labels_size() > 0 ? b.labels(i) : -1;
        pending.push_back(std::move(r));
      }
    }
    const storage_pb::UploadCommit c = commit();
    absl::MutexLock lock(&mu_);
    storage_pb::StoreUploadResponse response;
    auto dup = sha_to_upload_.find(c.sha256());
    if (dup != sha_to_upload_.end()) {
      response.set_duplicate_of(dup->second);
      response.mutable_upload()->set_id(dup->second);
      return response;
    }
    const int64_t id = ++last_upload_;
    sha_to_upload_[c.sha256()] = id;
    int64_t frauds = 0;
    for (StoredRow& r : pending) {
      r.upload_id = id;
      frauds += r.label == 1;
      rows_.push_back(std::move(r));
    }
    storage_pb::Upload* u = response.mutable_upload();
    u->set_id(id);
    u->set_sha256(c.sha256());
    u->set_file_name(begin.file_name());
    u->set_rows(static_cast<int64_t>(pending.size()));
    u->set_labelled_rows(static_cast<int64_t>(pending.size()));
    u->set_frauds(frauds);
    return response;
  }

  absl::StatusOr<int64_t> AllocateModelVersion() override {
    absl::MutexLock lock(&mu_);
    return ++last_version_;
  }
  // Artifacts are kept in memory (name -> bytes) per version.
  absl::Status PutModelArtifact(int64_t version, const std::string& dir,
                                const std::vector<std::string>& names) override {
    std::map<std::string, std::string> files;
    for (const std::string& name : names) {
      std::ifstream in(std::filesystem::path(dir) / name, std::ios::binary);
      if (!in) return absl::NotFoundError(absl::StrCat("no file ", name));
      files[name].assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    absl::MutexLock lock(&mu_);
    if (!artifacts_.emplace(version, std::move(files)).second) {
      return absl::AlreadyExistsError(absl::StrCat("version ", version, " has an artifact"));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> FetchModelArtifact(int64_t version,
                                                 const std::string& root) override {
    const std::filesystem::path dir = std::filesystem::path(root) / absl::StrCat(version);
    if (std::filesystem::is_directory(dir)) return dir.string();
    absl::MutexLock lock(&mu_);
    auto it = artifacts_.find(version);
    if (it == artifacts_.end()) return absl::NotFoundError(absl::StrCat("no artifact ", version));
    std::filesystem::create_directories(dir);
    for (const auto& [name, bytes] : it->second) {
      std::ofstream(dir / name, std::ios::binary) << bytes;
    }
    return dir.string();
  }
  int artifact_count() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(artifacts_.size());
  }
  absl::StatusOr<storage_pb::ModelVersion> RegisterModel(
      const storage_pb::ModelVersion& model) override {
    absl::MutexLock lock(&mu_);
    if (!register_error_.ok()) return register_error_;
    if (models_.count(model.version())) return absl::AlreadyExistsError("version exists");
    models_[model.version()] = model;
    return model;
  }
  absl::StatusOr<storage_pb::ModelVersion> GetModel(int64_t version) override {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(version);
    if (it == models_.end()) return absl::NotFoundError(absl::StrCat("no version ", version));
    storage_pb::ModelVersion m = it->second;
    m.set_is_champion(version == champion_);
    return m;
  }
  absl::StatusOr<std::vector<storage_pb::ModelVersion>> ListModels() override {
    absl::MutexLock lock(&mu_);
    std::vector<storage_pb::ModelVersion> out;
    for (const auto& [v, m] : models_) out.push_back(m);
    return out;
  }
  absl::StatusOr<std::optional<storage_pb::ModelVersion>> GetChampion() override {
    absl::MutexLock lock(&mu_);
    if (champion_ == 0) return std::nullopt;
    auto it = models_.find(champion_);
    if (it == models_.end()) return std::nullopt;
    return it->second;
  }
  absl::StatusOr<storage_pb::ChampionChange> SetChampion(
      const storage_pb::SetChampionRequest& request) override {
    absl::MutexLock lock(&mu_);
    ++set_champion_calls_;
    if (!set_champion_error_.ok()) return set_champion_error_;
    if (request.check_current() && request.expected_current() != champion_) {
      return absl::AbortedError(absl::StrCat("champion is ", champion_, ", not ",
                                             request.expected_current()));
    }
    if (!models_.count(request.version())) return absl::NotFoundError("unknown version");
    storage_pb::ChampionChange c;
    c.set_id(static_cast<int64_t>(history_.size()) + 1);
    c.set_version(request.version());
    c.set_previous_version(champion_);
    c.set_reason(request.reason());
    c.set_actor(request.actor());
    champion_ = request.version();
    history_.push_back(c);
    return c;
  }
  absl::StatusOr<std::vector<storage_pb::ChampionChange>> ListChampionHistory() override {
    absl::MutexLock lock(&mu_);
    return history_;
  }
  // Operating points: the latest one per version, in memory (no validation: storage's own tests
  // cover it).
  absl::StatusOr<storage_pb::GetOperatingPointResponse> GetOperatingPoint(
      int64_t version) override {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(version);
    if (it == models_.end()) return absl::NotFoundError(absl::StrCat("no version ", version));
    storage_pb::GetOperatingPointResponse out;
    out.set_manifest_threshold(it->second.manifest().threshold());
    out.set_threshold(out.manifest_threshold());
    for (auto p = operating_points_.rbegin(); p != operating_points_.rend(); ++p) {
      if (p->version() != version) continue;
      *out.mutable_point() = *p;
      out.set_threshold(p->threshold());
      break;
    }
    return out;
  }
  absl::StatusOr<storage_pb::OperatingPoint> SetOperatingPoint(
      const storage_pb::OperatingPoint& point) override {
    absl::MutexLock lock(&mu_);
    if (!models_.count(point.version())) return absl::NotFoundError("unknown version");
    storage_pb::OperatingPoint p = point;
    p.set_id(static_cast<int64_t>(operating_points_.size()) + 1);
    operating_points_.push_back(p);
    return p;
  }

  absl::StatusOr<storage_pb::TrainingRun> CreateRun(const storage_pb::TrainingRun& run) override {
    absl::MutexLock lock(&mu_);
    storage_pb::TrainingRun r = run;
    r.set_id(++last_run_);
    runs_[r.id()] = r;
    return r;
  }
  absl::StatusOr<storage_pb::TrainingRun> UpdateRun(const storage_pb::TrainingRun& run) override {
    absl::MutexLock lock(&mu_);
    if (!runs_.count(run.id())) return absl::NotFoundError("unknown run");
    runs_[run.id()] = run;
    ++run_updates_;
    status_history_[run.id()].push_back(run.status());
    return run;
  }
  absl::StatusOr<storage_pb::TrainingRun> GetRun(int64_t run_id) override {
    absl::MutexLock lock(&mu_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) return absl::NotFoundError(absl::StrCat("no run ", run_id));
    return it->second;
  }
  absl::StatusOr<storage_pb::ListRunsResponse> ListRuns(int32_t page_size,
                                                       int64_t before_id) override {
    absl::MutexLock lock(&mu_);
    storage_pb::ListRunsResponse r;
    const int32_t limit = page_size > 0 ? page_size : 50;
    for (auto it = runs_.rbegin(); it != runs_.rend(); ++it) {
      if (before_id != 0 && it->first >= before_id) continue;
      if (r.runs_size() == limit) {
        r.set_next_before_id(r.runs(r.runs_size() - 1).id());
        break;
      }
      *r.add_runs() = it->second;
    }
    return r;
  }

  // Test controls and inspection.
  void set_register_error(absl::Status s) {
    absl::MutexLock lock(&mu_);
    register_error_ = std::move(s);
  }
  void set_scan_error(absl::Status s) {
    absl::MutexLock lock(&mu_);
    scan_error_ = std::move(s);
  }
  void set_champion_version(int64_t v) {
    absl::MutexLock lock(&mu_);
    champion_ = v;
  }
  void set_set_champion_error(absl::Status s) {
    absl::MutexLock lock(&mu_);
    set_champion_error_ = std::move(s);
  }
  void AddModel(const storage_pb::ModelVersion& m) {
    absl::MutexLock lock(&mu_);
    models_[m.version()] = m;
    last_version_ = std::max(last_version_, m.version());
  }
  int64_t champion() {
    absl::MutexLock lock(&mu_);
    return champion_;
  }
  std::vector<storage_pb::ChampionChange> history() {
    absl::MutexLock lock(&mu_);
    return history_;
  }
  size_t model_count() {
    absl::MutexLock lock(&mu_);
    return models_.size();
  }
  size_t row_count() {
    absl::MutexLock lock(&mu_);
    return rows_.size();
  }
  std::vector<storage_pb::RunStatus> status_history(int64_t run_id) {
    absl::MutexLock lock(&mu_);
    return status_history_[run_id];
  }
  storage_pb::TrainingRun stored_run(int64_t run_id) {
    absl::MutexLock lock(&mu_);
    return runs_[run_id];
  }
  void PutRun(const storage_pb::TrainingRun& run) {
    absl::MutexLock lock(&mu_);
    runs_[run.id()] = run;
    last_run_ = std::max(last_run_, run.id());
  }
  int set_champion_calls() {
    absl::MutexLock lock(&mu_);
    return set_champion_calls_;
  }

 private:
  absl::Mutex mu_;
  std::vector<StoredRow> rows_;
  int64_t last_upload_ = 0;
  std::map<std::string, int64_t> sha_to_upload_;
  int64_t last_version_ = 0;
  std::map<int64_t, storage_pb::ModelVersion> models_;
  std::map<int64_t, std::map<std::string, std::string>> artifacts_;
  int64_t champion_ = 0;
  std::vector<storage_pb::OperatingPoint> operating_points_;
  std::vector<storage_pb::ChampionChange> history_;
  int64_t last_run_ = 0;
  std::map<int64_t, storage_pb::TrainingRun> runs_;
  std::map<int64_t, std::vector<storage_pb::RunStatus>> status_history_;
  int run_updates_ = 0;
  int scans_ = 0;
  int set_champion_calls_ = 0;
  absl::Status register_error_;
  absl::Status scan_error_;
  absl::Status set_champion_error_;
};

class FakeInference final : public InferenceApi {
 public:
  absl::StatusOr<inference::v1::ReloadResponse> Reload(int64_t version) override {
    absl::MutexLock lock(&mu_);
    reloads_.push_back(version);
    if (!error_.ok()) return error_;
    inference::v1::ReloadResponse r;
    r.set_previous_version(serving_);
    r.set_version(version);
    serving_ = version;
    return r;
  }
  void set_error(absl::Status s) {
    absl::MutexLock lock(&mu_);
    error_ = std::move(s);
  }
  std::vector<int64_t> reloads() {
    absl::MutexLock lock(&mu_);
    return reloads_;
  }
  int64_t serving() {
    absl::MutexLock lock(&mu_);
    return serving_;
  }

 private:
  absl::Mutex mu_;
  absl::Status error_;
  std::vector<int64_t> reloads_;
  int64_t serving_ = 0;
};

}  // namespace fraud::training::testing
