#include "services/storage/feedback_store.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "services/common/core/status_macros.h"
#include "services/storage/label_overlay.h"
#include "services/storage/pg_copy.h"
#include "services/storage/pg_errors.h"
#include "services/storage/pg_util.h"
#include "services/storage/realised_metrics.h"
#include "services/storage/storage_metrics.h"
#include "services/storage/validation.h"

namespace fraud::storage {
namespace {

namespace v1 = ::fraud::storage::v1;

// Invalid rows named in the error message, and unknown rows returned in the response.
constexpr size_t kMaxProblemsInMessage = 10;
constexpr int kMaxUnknownRows = 1000;
// Second key of the advisory lock that serializes feedback streams (first: schema name hash).
constexpr int kFeedbackLockKey = 0x6c61626c;  // "labl"
constexpr char kDefaultSource[] = "import";
// `at` not given: the stream's recording time (label_batches.recorded_at; the view's int64 min).
constexpr int64_t kNoTime = INT64_MIN;

// History (migration 0009): records of 8 bytes, and 16 bytes of attrs a change where some change
// of the chunk has another source, note or `at` than the stream's defaults (source 0, note 0, no
// at). The overlay's layout is label_overlay.h's.
using overlay::kChunkLines;
using overlay::kChunkShift;
// A record's "previous label" when the row had none.
constexpr char kRecordNoLabel = static_cast<char>(255);

// Every read of a stream is one upload's rows in primary-key order (its lines, its overlay
// chunks, its predictions). On a table holding few uploads the planner prefers a sequential scan
// of every upload (measured with two uploads of 284,807 rows: 134 ms against 75 ms for the
// index scan of the one named), so the stream's transaction plans index scans only.
constexpr char kIndexScansOnly[] =
    "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off";
// transaction_id rows to (upload_id, line), with the 1-based position in $1.
constexpr char kResolveIds[] =
    "SELECT u.i, t.upload_id, t.line FROM unnest($1::text[]) WITH ORDINALITY AS u(tid, i)"
    " JOIN transactions t ON t.transaction_id = u.tid";
constexpr char kCommittedUploads[] =
    "SELECT id, line_map FROM uploads WHERE status = 1 AND id = ANY($1::bigint[])";
constexpr char kInsertBatch[] =
    "INSERT INTO label_batches (actor, sources, notes) VALUES ($1, $2::text[], $3::text[])"
    " RETURNING id";
constexpr char kCopyChanges[] =
    "COPY label_changes (upload_id, chunk, batch_id, changes, attrs) FROM STDIN (FORMAT binary)";
// labelled_rows counts rows that had no label; frauds moves by label - previous.
constexpr char kCounters[] =
    "UPDATE uploads SET labelled_rows = labelled_rows + $2, frauds = frauds + $3 WHERE id = $1";
// The versions whose predictions of the upload the realised summary counts.
constexpr char kScoredVersions[] =
    "SELECT DISTINCT model_version FROM realised_bins WHERE upload_id = $1 ORDER BY 1";

constexpr char kCurrentClass[] =
    "SELECT COALESCE(class, -1) FROM current_transactions WHERE upload_id = $1 AND line = $2";
constexpr char kHistory[] =
    "SELECT id, label, COALESCE(previous_label, -1), source, note, actor, " FRAUD_EPOCH_US(
        "at") ", " FRAUD_EPOCH_US("recorded_at")
    " FROM label_events WHERE upload_id = $1 AND chunk = $2::bigint >> 10 AND line = $2"
    " ORDER BY id";

std::string RowProblem(int64_t row, absl::string_view field, absl::string_view reason) {
  return absl::StrCat("row ", row, ", field ", field, ": ", reason);
}

// Why a row names no stored transaction: the field it names it by, and the reason reported.
struct Unknown {
  const char* field;
  const char* reason;
};
constexpr Unknown kUnknownTransactionId{"transaction_id",
                                        "no stored transaction has this transaction_id"};
constexpr Unknown kUnknownUpload{"upload_id", "no such upload"};
constexpr Unknown kUnknownLine{"line", "the upload has no row at this line"};

// SQL condition on `line` selecting `lines` (sorted, unique): their range when it is dense (one
// index range scan), else the list.
std::string LinesFilter(const std::vector<int64_t>& lines) {
  const int64_t lo = lines.front();
  const int64_t hi = lines.back();
  if (hi - lo < 4 * static_cast<int64_t>(lines.size()) + kChunkLines) {
    return absl::StrCat("line BETWEEN ", lo, " AND ", hi);
  }
  return absl::StrCat("line = ANY('",
                      BigintArrayLiteral(lines),
                      "'::bigint[])");
}

void PutBigEndian(uint64_t v, int bytes, std::string* out) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

int32_t FeedbackWriter::StringTable::Intern(const std::string& s) {
  // Rows of a stream mostly repeat the previous row's source and note.
  if (last >= 0 && values[last] == s) return last;
  auto [it, inserted] = index.try_emplace(s, static_cast<int32_t>(values.size()));
  if (inserted) values.push_back(s);
  last = it->second;
  return last;
}

// One Finish: the reads, checks and writes of migration 0009's model, upload by upload, in the
// stream's database transaction.
class FeedbackWriter::Apply {
 public:
  Apply(FeedbackWriter& w, pqxx::work& txn, bool* connection_unusable)
      : w_(w), txn_(txn), unusable_(connection_unusable) {}

  absl::StatusOr<v1::RecordFeedbackResponse> Run(const BeforeCommit& before_commit);

 private:
  void ResolveIds();
  absl::Status ApplyUpload(int64_t upload_id, bool line_map, const int32_t* begin,
                           const int32_t* end);
  absl::Status WriteChanges(int64_t upload_id, const std::vector<int32_t>& changed,
                            absl::flat_hash_map<int64_t, std::string>& chunks);
  absl::Status MoveRealised(int64_t upload_id, bool need_times,
                            const std::vector<int32_t>& changed);
  absl::Status Copy(const std::string& sql, const CopyDecoder::TupleFn& fn) {
    return CopyOut(txn_, sql, fn, unusable_);
  }

  FeedbackWriter& w_;
  pqxx::work& txn_;
  bool* unusable_;
  // (pending index, why) of rows naming no stored transaction.
  std::vector<std::pair<int32_t, Unknown>> unknown_;
  // (pending index, pending index of the first row naming the same transaction).
  std::vector<std::pair<int32_t, int32_t>> repeats_;
  int64_t batch_id_ = 0;
  int64_t applied_ = 0;
  int64_t conflicts_ = 0;
  int64_t unchanged_ = 0;
};

void FeedbackWriter::Apply::ResolveIds() {
  for (const pqxx::row& row : txn_.exec_params(kResolveIds, QuotedArrayLiteral(w_.tids_))) {
    const int64_t i = row[0].as<int64_t>() - 1;
    if (i < 0 || i >= static_cast<int64_t>(w_.tids_.size())) continue;
    w_.tid_rows_[i]->upload_id = row[1].as<int64_t>();
    w_.tid_rows_[i]->line = row[2].as<int64_t>();
  }
}

absl::StatusOr<v1::RecordFeedbackResponse> FeedbackWriter::Apply::Run(
    const BeforeCommit& before_commit) {
  PendingRows& pending = w_.pending_;
  txn_.exec_params(kSchemaAdvisoryXactLock, kFeedbackLockKey);
  txn_.exec(kIndexScansOnly);
  if (!w_.tids_.empty()) ResolveIds();
  std::vector<int32_t> order;
  order.reserve(pending.size());
  for (size_t i = 0; i < pending.size(); ++i) {
    if (pending[i].upload_id > 0) {
      order.push_back(static_cast<int32_t>(i));
    } else {
      unknown_.emplace_back(static_cast<int32_t>(i), kUnknownTransactionId);
    }
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const Pending& x = pending[a];
    const Pending& y = pending[b];
    return std::tie(x.upload_id, x.line, x.row) < std::tie(y.upload_id, y.line, y.row);
  });
  std::vector<int64_t> uploads;
  for (int32_t i : order) {
    if (uploads.empty() || uploads.back() != pending[i].upload_id) {
      uploads.push_back(pending[i].upload_id);
    }
  }
  // Committed upload -> whether it has a line map.
  absl::flat_hash_map<int64_t, bool> committed;
  if (!uploads.empty()) {
    for (const pqxx::row& row : txn_.exec_params(
             kCommittedUploads,
             BigintArrayLiteral(uploads))) {
      committed.emplace(row[0].as<int64_t>(), row[1].as<bool>());
    }
  }
  for (size_t b = 0; b < order.size();) {
    const int64_t upload_id = pending[order[b]].upload_id;
    size_t e = b;
    while (e < order.size() && pending[order[e]].upload_id == upload_id) ++e;
    if (const auto it = committed.find(upload_id); it != committed.end()) {
      FRAUD_RETURN_IF_ERROR(ApplyUpload(upload_id, it->second, order.data() + b, order.data() + e));
    } else {
      for (size_t k = b; k < e; ++k) unknown_.emplace_back(order[k], kUnknownUpload);
    }
    b = e;
  }
  if (!repeats_.empty()) {
    std::sort(repeats_.begin(), repeats_.end(), [&](const auto& x, const auto& y) {
      return pending[x.first].row < pending[y.first].row;
    });
    std::vector<std::string> problems;
    for (const auto& [i, first] : repeats_) {
      if (problems.size() == kMaxProblemsInMessage) break;
      const Pending& p = pending[i];
      problems.push_back(RowProblem(
          p.row, "upload_id",
          absl::StrCat("names the same transaction (upload ", p.upload_id, " line ", p.line,
                       ") as row ", pending[first].row)));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("feedback names a transaction more than once; nothing was stored: ",
                     absl::StrJoin(problems, "; ")));
  }
  v1::RecordFeedbackResponse out;
  out.set_received(w_.rows_);
  out.set_applied(applied_);
  out.set_conflicts(conflicts_);
  out.set_unchanged(unchanged_);
  out.set_unknown(static_cast<int64_t>(unknown_.size()));
  std::sort(unknown_.begin(), unknown_.end(), [&](const auto& x, const auto& y) {
    return pending[x.first].row < pending[y.first].row;
  });
  for (const auto& [i, why] : unknown_) {
    if (out.unknown_rows_size() == kMaxUnknownRows) break;
    const Pending& p = pending[i];
    v1::FeedbackProblem* problem = out.add_unknown_rows();
    problem->set_row(p.row);
    if (p.tid >= 0) {
      problem->set_transaction_id(w_.tids_[p.tid]);
    } else {
      problem->set_upload_id(p.upload_id);
      problem->set_line(p.line);
    }
    problem->set_field(why.field);
    problem->set_reason(why.reason);
  }
  if (before_commit) FRAUD_RETURN_IF_ERROR(before_commit(txn_, out));
  txn_.commit();
  return out;
}

absl::Status FeedbackWriter::Apply::ApplyUpload(int64_t upload_id, bool line_map,
                                                const int32_t* begin, const int32_t* end) {
  PendingRows& pending = w_.pending_;
  std::vector<int64_t> lines;
  for (const int32_t* i = begin; i != end; ++i) {
    if (lines.empty() || lines.back() != pending[*i].line) lines.push_back(pending[*i].line);
  }
  // The overlay chunks of the range. With a line map they say which lines exist and their
  // labels; without one, only the labels feedback set.
  absl::flat_hash_map<int64_t, std::string> chunks;
  FRAUD_RETURN_IF_ERROR(Copy(
      absl::StrCat("COPY (SELECT chunk, labels FROM label_overlay WHERE upload_id = ", upload_id,
                   " AND chunk BETWEEN ", overlay::ChunkOf(lines.front()), " AND ",
                   overlay::ChunkOf(lines.back()), ") TO STDOUT (FORMAT binary)"),
      [&](const std::vector<CopyField>& f) -> absl::Status {
        if (f.size() != 2 || f[0].size != 8 || f[1].size != kChunkLines) {
          return absl::InternalError("unexpected label_overlay row");
        }
        chunks.emplace(ReadInt64(f[0].data), std::string(f[1].data, kChunkLines));
        return absl::OkStatus();
      }));
  // Without a line map: the stored rows among the requested lines (line, upload-time label,
  // Time), by one index range scan.
  struct Stored {
    int64_t line;
    int8_t label;
    double time;
  };
  std::vector<Stored> stored;
  if (!line_map) {
    stored.reserve(lines.size());
    FRAUD_RETURN_IF_ERROR(Copy(
        absl::StrCat("COPY (SELECT line, class, time FROM transactions WHERE upload_id = ",
                     upload_id, " AND ", LinesFilter(lines), ") TO STDOUT (FORMAT binary)"),
        [&](const std::vector<CopyField>& f) -> absl::Status {
          if (f.size() != 3 || f[0].size != 8 || (!f[1].is_null() && f[1].size != 2) ||
              f[2].size != 8) {
            return absl::InternalError("unexpected transactions row in feedback");
          }
          stored.push_back({ReadInt64(f[0].data),
                            static_cast<int8_t>(f[1].is_null() ? -1 : ReadInt16(f[1].data)),
                            ReadFloat8(f[2].data)});
          return absl::OkStatus();
        }));
    if (!std::is_sorted(stored.begin(), stored.end(),
                        [](const Stored& a, const Stored& b) { return a.line < b.line; })) {
      std::sort(stored.begin(), stored.end(),
                [](const Stored& a, const Stored& b) { return a.line < b.line; });
    }
  }
  // Each request against its row, in (line, row) order.
  std::vector<int32_t> changed;
  size_t s = 0;
  int32_t first_of_line = -1;
  for (const int32_t* it = begin; it != end; ++it) {
    Pending& p = pending[*it];
    const auto chunk = chunks.find(overlay::ChunkOf(p.line));
    const char byte =
        chunk == chunks.end() ? overlay::kNothing : chunk->second[overlay::OffsetOf(p.line)];
    int8_t upload_label = -1;
    if (line_map) {
      if (byte == overlay::kNothing) {
        unknown_.emplace_back(*it, kUnknownLine);
        continue;
      }
    } else {
      while (s < stored.size() && stored[s].line < p.line) ++s;
      if (s == stored.size() || stored[s].line != p.line) {
        unknown_.emplace_back(*it, kUnknownLine);
        continue;
      }
      upload_label = stored[s].label;
      p.time = stored[s].time;
    }
    if (first_of_line >= 0 && pending[first_of_line].line == p.line) {
      repeats_.emplace_back(*it, first_of_line);
      continue;
    }
    first_of_line = *it;
    p.previous = byte == overlay::kNothing     ? upload_label
                 : byte == overlay::kUnlabelled ? int8_t{-1}
                                                : static_cast<int8_t>(byte);
    if (p.label == p.previous) {
      ++unchanged_;
    } else {
      changed.push_back(*it);
    }
  }
  // Once the stream is known to be rejected nothing more is written (it rolls back anyway).
  if (!repeats_.empty() || changed.empty()) return absl::OkStatus();
  FRAUD_RETURN_IF_ERROR(WriteChanges(upload_id, changed, chunks));
  return MoveRealised(upload_id, /*need_times=*/line_map, changed);
}

absl::Status FeedbackWriter::Apply::WriteChanges(
    int64_t upload_id, const std::vector<int32_t>& changed,
    absl::flat_hash_map<int64_t, std::string>& chunks) {
  PendingRows& pending = w_.pending_;
  if (batch_id_ == 0) {
    batch_id_ = txn_.exec_params1(kInsertBatch, w_.actor_, QuotedArrayLiteral(w_.sources_.values),
                                  QuotedArrayLiteral(w_.notes_.values))[0]
                    .as<int64_t>();
  }
  // History: one label_changes row per chunk, its records in line order; the overlay bytes of
  // the same chunks change with it.
  std::vector<int64_t> touched;
  std::string records;
  std::string attrs;
  bool defaults_only = true;
  int64_t newly = 0;
  int64_t fraud_delta = 0;
  CopyIn copy(txn_);
  absl::Status s = copy.Start(kCopyChanges);
  auto put_chunk = [&]() -> absl::Status {
    CopyEncoder& e = copy.encoder();
    e.BeginTuple(5);
    e.Int64(upload_id);
    e.Int64(touched.back());
    e.Int64(batch_id_);
    e.Bytes(records);
    if (defaults_only) {
      e.Null();
    } else {
      e.Bytes(attrs);
    }
    records.clear();
    attrs.clear();
    defaults_only = true;
    return copy.MaybeFlush();
  };
  for (size_t k = 0; s.ok() && k < changed.size(); ++k) {
    const Pending& p = pending[changed[k]];
    const int64_t chunk = p.line >> kChunkShift;
    if (!touched.empty() && touched.back() != chunk) s = put_chunk();
    if (touched.empty() || touched.back() != chunk) touched.push_back(chunk);
    const int64_t offset = p.line & (kChunkLines - 1);
    PutBigEndian(static_cast<uint64_t>(offset), 2, &records);
    records.push_back(static_cast<char>(p.label));
    records.push_back(p.previous < 0 ? kRecordNoLabel : static_cast<char>(p.previous));
    PutBigEndian(static_cast<uint32_t>(p.row), 4, &records);
    PutBigEndian(static_cast<uint32_t>(p.source), 4, &attrs);
    PutBigEndian(static_cast<uint32_t>(p.note), 4, &attrs);
    PutBigEndian(static_cast<uint64_t>(p.at_us), 8, &attrs);
    defaults_only = defaults_only && p.source == 0 && p.note == 0 && p.at_us == kNoTime;
    std::string& bytes = chunks.try_emplace(chunk, kChunkLines, overlay::kNothing).first->second;
    bytes[offset] = static_cast<char>(p.label);
    if (p.previous < 0) {
      ++applied_;
      ++newly;
    } else {
      ++conflicts_;
    }
    fraud_delta += p.label - std::max<int>(p.previous, 0);
  }
  if (s.ok()) s = put_chunk();
  if (s.ok()) s = copy.Finish();
  if (!s.ok()) {
    *unusable_ = true;
    return s;
  }
  std::vector<const std::string*> bytes;
  bytes.reserve(touched.size());
  for (int64_t chunk : touched) bytes.push_back(&chunks[chunk]);
  overlay::WriteChunks(txn_, upload_id, touched, bytes);
  txn_.exec_params(kCounters, upload_id, newly, fraud_delta);
  return absl::OkStatus();
}

absl::Status FeedbackWriter::Apply::MoveRealised(int64_t upload_id, bool need_times,
                                                 const std::vector<int32_t>& changed) {
  PendingRows& pending = w_.pending_;
  std::vector<int64_t> versions;
  for (const pqxx::row& row : txn_.exec_params(kScoredVersions, upload_id)) {
    versions.push_back(row[0].as<int64_t>());
  }
  if (versions.empty()) return absl::OkStatus();
  std::vector<int64_t> lines;
  lines.reserve(changed.size());
  for (int32_t i : changed) lines.push_back(pending[i].line);
  if (need_times) {
    // The changed rows' Time (their day is part of the bin's key).
    size_t k = 0;
    FRAUD_RETURN_IF_ERROR(Copy(
        absl::StrCat("COPY (SELECT line, time FROM transactions WHERE upload_id = ", upload_id,
                     " AND ", LinesFilter(lines), " ORDER BY line) TO STDOUT (FORMAT binary)"),
        [&](const std::vector<CopyField>& f) -> absl::Status {
          if (f.size() != 2 || f[0].size != 8 || f[1].size != 8) {
            return absl::InternalError("unexpected transactions row in feedback");
          }
          const int64_t line = ReadInt64(f[0].data);
          while (k < lines.size() && lines[k] < line) ++k;
          if (k < lines.size() && lines[k] == line) {
            pending[changed[k]].time = ReadFloat8(f[1].data);
          }
          return absl::OkStatus();
        }));
  }
  RealisedBinsBuilder moves;
  FRAUD_RETURN_IF_ERROR(Copy(
      absl::StrCat("COPY (SELECT line, model_version, score, decision FROM predictions"
                   " WHERE upload_id = ", upload_id, " AND model_version = ANY('",
                   BigintArrayLiteral(versions),
                   "'::bigint[]) AND ", LinesFilter(lines), ") TO STDOUT (FORMAT binary)"),
      [&](const std::vector<CopyField>& f) -> absl::Status {
        if (f.size() != 4 || f[0].size != 8 || f[1].size != 8 || f[2].size != 4 ||
            f[3].size != 1) {
          return absl::InternalError("unexpected predictions row in feedback");
        }
        const int64_t line = ReadInt64(f[0].data);
        const auto it = std::lower_bound(lines.begin(), lines.end(), line);
        if (it == lines.end() || *it != line) return absl::OkStatus();
        const Pending& p = pending[changed[it - lines.begin()]];
        const int64_t version = ReadInt64(f[1].data);
        const float score = ReadFloat4(f[2].data);
        const bool decision = f[3].data[0] != 0;
        moves.Move(version, p.time, score, decision, p.previous, p.label);
        return absl::OkStatus();
      }));
  moves.AddTo(txn_, upload_id);
  return absl::OkStatus();
}

FeedbackWriter::FeedbackWriter(PgPool* pool, absl::Time deadline, int64_t max_rows)
    : pool_(pool), deadline_(deadline), max_rows_(max_rows) {}

FeedbackWriter::~FeedbackWriter() { Rollback(); }

void FeedbackWriter::Rollback() {
  finished_ = true;
  pending_.clear();
  std::vector<Pending*>().swap(tid_rows_);
  std::vector<std::string>().swap(tids_);
}

absl::Status FeedbackWriter::Add(const v1::RecordFeedbackRequest& request) {
  if (finished_) return absl::FailedPreconditionError("feedback stream already ended");
  if (actor_.empty()) actor_ = request.actor().substr(0, 256);
  if (rows_ + request.labels_size() > max_rows_) {
    Rollback();
    return absl::InvalidArgumentError(absl::StrCat(
        "row ", max_rows_ + 1, ": a feedback stream carries at most ", max_rows_,
        " labels; nothing was stored (send larger label sets in several streams)"));
  }
  for (const v1::LabelFeedback& f : request.labels()) {
    ++rows_;
    if (std::optional<FieldProblem> p = CheckLabelFeedback(f); p.has_value()) {
      ++invalid_rows_;
      if (problems_.size() < kMaxProblemsInMessage) {
        problems_.push_back(RowProblem(rows_, p->field, p->reason));
      }
      continue;
    }
    // An invalid row rejects the stream anyway: stop keeping rows, keep validating for the report.
    if (invalid_rows_ > 0) continue;
    Pending p;
    p.row = static_cast<int32_t>(rows_);
    p.label = static_cast<int8_t>(f.label());
    p.source = sources_.Intern(f.source().empty() ? kDefaultSource : f.source());
    p.note = notes_.Intern(f.note());
    p.at_us = f.has_at() ? TimestampToUs(f.at()) : kNoTime;
    if (f.transaction_id().empty()) {
      p.upload_id = f.upload_id();
      p.line = f.line();
    } else {
      p.tid = static_cast<int32_t>(tids_.size());
      tids_.push_back(f.transaction_id());
    }
    pending_.push_back(p);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::RecordFeedbackResponse> FeedbackWriter::Finish(
    const BeforeCommit& before_commit) {
  if (finished_) return absl::FailedPreconditionError("feedback stream already ended");
  if (invalid_rows_ > 0) {
    Rollback();
    return absl::InvalidArgumentError(absl::StrCat(
        invalid_rows_, " invalid feedback row(s); nothing was stored: ",
        absl::StrJoin(problems_, "; "), invalid_rows_ > static_cast<int64_t>(problems_.size())
                                            ? "; ..."
                                            : ""));
  }
  if (pending_.empty()) {
    Rollback();
    v1::RecordFeedbackResponse out;
    out.set_received(rows_);
    return out;
  }
  // transaction_id rows by their index in tids_ (pending_ no longer grows).
  tid_rows_.assign(tids_.size(), nullptr);
  for (size_t i = 0; i < pending_.size(); ++i) {
    if (pending_[i].tid >= 0) tid_rows_[pending_[i].tid] = &pending_[i];
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<PgPool::Lease> lease = pool_->Acquire(deadline_);
  if (!lease.ok()) {
    Rollback();
    return lease.status();
  }
  bool unusable = false;
  absl::StatusOr<v1::RecordFeedbackResponse> r;
  try {
    pqxx::work txn(lease->conn());
    Apply apply(*this, txn, &unusable);
    r = apply.Run(before_commit);
  } catch (const std::exception& e) {
    r = StatusFromException(e);
  }
  Rollback();
  if (!r.ok()) {
    // The caller's mistakes (not database failures) are not counted as database errors.
    if (r.status().code() != absl::StatusCode::kInvalidArgument &&
        r.status().code() != absl::StatusCode::kNotFound) {
      Metrics().DbError(r.status());
    }
    if (unusable || IsConnectionLoss(r.status())) lease->Discard();
    return r.status();
  }
  r->set_apply_seconds(absl::ToDoubleSeconds(absl::Now() - start));
  return r;
}

absl::StatusOr<v1::ListLabelHistoryResponse> ListLabelHistory(
    PgPool& pool, const v1::ListLabelHistoryRequest& request) {
  if (request.upload_id() <= 0 || request.line() <= 0) {
    return absl::InvalidArgumentError("upload_id and line must be > 0");
  }
  v1::ListLabelHistoryResponse out;
  FRAUD_RETURN_IF_ERROR(Transact(pool, [&](pqxx::work& txn) -> absl::Status {
    out.Clear();
    pqxx::result cls = txn.exec_params(kCurrentClass, request.upload_id(), request.line());
    if (cls.empty()) {
      return absl::NotFoundError(absl::StrCat("no stored transaction at upload ",
                                              request.upload_id(), " line ", request.line()));
    }
    out.set_current_label(cls[0][0].as<int>());
    for (const pqxx::row& row :
         txn.exec_params(kHistory, request.upload_id(), request.line())) {
      v1::LabelEvent* e = out.add_events();
      e->set_id(row[0].as<int64_t>());
      e->set_upload_id(request.upload_id());
      e->set_line(request.line());
      e->set_label(row[1].as<int>());
      e->set_previous_label(row[2].as<int>());
      e->set_source(row[3].c_str());
      e->set_note(row[4].c_str());
      e->set_actor(row[5].c_str());
      SetTimestampUs(row[6].as<int64_t>(), e->mutable_at());
      SetTimestampUs(row[7].as<int64_t>(), e->mutable_recorded_at());
    }
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace fraud::storage
