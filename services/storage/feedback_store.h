// Delayed labels: the database side of the RecordFeedback stream (FeedbackWriter) and the label
// history of a transaction. Independent of gRPC. The data model is migration 0009's: the label
// each line has now lives in label_overlay (one byte per line, chunks of 1024 lines; layout in
// label_overlay.h) over the upload-time label in transactions.class; current_transactions reads
// both; history is label_batches + label_changes (packed records), decoded by the view
// label_events.
//
// FeedbackWriter: every Add validates its rows (CheckLabelFeedback) and keeps the valid ones in
// memory, compactly (~60 bytes a label; at most kMaxFeedbackRows a stream). Finish applies them
// in one database transaction, under an advisory lock that serializes feedback streams (so the
// "previous label" each row compares against cannot change underneath it), upload by upload:
//   1. resolve each row to a stored transaction (by upload_id+line; transaction_id rows are
//      resolved first with one query of the transaction_id index);
//   2. read the upload's overlay chunks in the requested range by binary COPY: with a line map
//      (uploads.line_map, every upload StoreUpload committed) they say which lines exist and
//      their labels; without one, the stored rows' line, upload-time label and Time are read
//      too (one index range scan);
//   3. any invalid row (from Add) or two rows naming the same transaction -> INVALID_ARGUMENT
//      with "row R, field F: reason" for the first problems; nothing is stored;
//   4. rows naming no stored transaction -> reported in unknown/unknown_rows and skipped;
//   5. label == current label -> unchanged (nothing written); otherwise the overlay byte takes
//      the label (latest feedback wins), the change is appended to history (previous label,
//      source, note, time, the stream's actor), the upload's labelled_rows/frauds counters and
//      the realised-metrics summary (realised_bins, migration 0007: the row's predictions move
//      from the previous label state to the new one) follow;
//   6. commit.
// Rollback(), an error, or destruction without Finish stores nothing.
// Errors: InvalidArgument as above (and for a stream over kMaxFeedbackRows); the pg_errors
// mapping for database failures.
// Thread-safety: none; one writer per stream.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/storage/pg_pool.h"

namespace fraud::storage {

// Most labels one feedback stream carries (its rows are held in memory until Finish): 7x the
// 284,807-row dataset in ~100 MB. Larger label sets go in several streams.
inline constexpr int64_t kMaxFeedbackRows = 2000000;

class FeedbackWriter {
 public:
  // `pool` must outlive the writer; `deadline` bounds waiting for a pooled connection; a stream
  // of more than `max_rows` labels is refused (kMaxFeedbackRows unless a test lowers it).
  FeedbackWriter(PgPool* pool, absl::Time deadline, int64_t max_rows = kMaxFeedbackRows);
  ~FeedbackWriter();
  FeedbackWriter(const FeedbackWriter&) = delete;
  FeedbackWriter& operator=(const FeedbackWriter&) = delete;

  // Validates and stages one message's rows. Invalid rows are remembered (reported by Finish),
  // not an error here; a database failure is returned (and the writer rolled back).
  absl::Status Add(const fraud::storage::v1::RecordFeedbackRequest& request);
  // Runs inside the stream's database transaction after the labels are applied, before the
  // commit; a non-OK status rolls everything back and is returned by Finish (SubmitReview records
  // its disposition this way, atomically with the label).
  using BeforeCommit = std::function<absl::Status(
      pqxx::work& txn, const fraud::storage::v1::RecordFeedbackResponse& applied)>;
  // Applies the staged rows, runs `before_commit` (when set) and commits (see above).
  absl::StatusOr<fraud::storage::v1::RecordFeedbackResponse> Finish(
      const BeforeCommit& before_commit = nullptr);
  // Discards everything staged. Idempotent.
  void Rollback();

 private:
  // One valid row of the stream.
  struct Pending {
    int64_t upload_id = 0;  // 0 while a transaction_id row is unresolved
    int64_t line = 0;
    int64_t at_us = 0;      // 0 = the time the stream is recorded
    double time = 0;        // the stored row's Time (once found)
    int32_t row = 0;        // 1-based position in the stream
    int32_t source = 0;     // index into sources_
    int32_t note = 0;       // index into notes_
    int32_t tid = -1;       // index into tids_, -1 for rows given by upload_id + line
    int8_t label = 0;
    int8_t previous = -1;   // the current label before this stream (-1 none)
  };
  // Append-only storage of the rows in fixed blocks: growing never copies what is stored (a
  // doubling vector re-touched ~3x the memory; fresh pages are what costs here).
  class PendingRows {
   public:
    void push_back(const Pending& p) {
      if (size_ % kBlock == 0) blocks_.push_back(std::make_unique<Pending[]>(kBlock));
      blocks_.back()[size_ % kBlock] = p;
      ++size_;
    }
    Pending& operator[](size_t i) { return blocks_[i / kBlock][i % kBlock]; }
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    void clear() {
      blocks_.clear();
      blocks_.shrink_to_fit();
      size_ = 0;
    }

   private:
    static constexpr size_t kBlock = 8192;
    std::vector<std::unique_ptr<Pending[]>> blocks_;
    size_t size_ = 0;
  };
  // Distinct strings of the stream, by first appearance.
  struct StringTable {
    int32_t Intern(const std::string& s);
    std::vector<std::string> values;
    absl::flat_hash_map<std::string, int32_t> index;
    int32_t last = -1;
  };
  class Apply;

  PgPool* pool_;
  absl::Time deadline_;
  int64_t max_rows_;
  bool finished_ = false;
  int64_t rows_ = 0;
  int64_t invalid_rows_ = 0;
  // "row R, field F: reason" of the first invalid rows.
  std::vector<std::string> problems_;
  std::string actor_;
  PendingRows pending_;
  std::vector<std::string> tids_;
  std::vector<Pending*> tid_rows_;  // pending_ row of each tids_ entry (set by Finish)
  StringTable sources_;
  StringTable notes_;
};


// The label history of the transaction (upload_id, line), oldest event first, and its current
// class. InvalidArgument for ids <= 0; NotFound when no such transaction is stored.
absl::StatusOr<fraud::storage::v1::ListLabelHistoryResponse> ListLabelHistory(
    PgPool& pool, const fraud::storage::v1::ListLabelHistoryRequest& request);

}  // namespace fraud::storage
