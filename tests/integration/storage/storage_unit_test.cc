// Unit tests of the storage service's database-free parts: the pqxx exception -> status mapping,
// the binary COPY codec, SQL number literals, request validation, the pool's failure path and the
// upload's append worker.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <pqxx/except>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "services/storage/append_worker.h"
#include "services/storage/pg_copy.h"
#include "services/storage/pg_errors.h"
#include "services/storage/pg_pool.h"
#include "services/storage/validation.h"
#include "tests/testing/status_matchers.h"

namespace fraud::storage {
namespace {

namespace v1 = ::fraud::storage::v1;

using ::fraud::testing::IsOk;
using ::fraud::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

v1::StoreUploadRequest RowsMessage(int64_t first_line) {
  v1::StoreUploadRequest r;
  r.mutable_rows()->mutable_rows()->add_line_numbers(first_line);
  return r;
}

// Pushes `request` from another thread and checks that the push still waits 200 ms later (the
// writer is blocked until `release`; the time also lets a message on its way to the writer get
// there); then releases the writer and checks that the push completes.
void ExpectPushWaitsForTheWriter(AppendWorker& worker, v1::StoreUploadRequest request,
                                 absl::Notification& release) {
  absl::Notification queued;
  std::thread pusher([&] {
    EXPECT_THAT(worker.Push(std::move(request)), IsOk());
    queued.Notify();
  });
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_FALSE(queued.HasBeenNotified());
  release.Notify();
  pusher.join();
  EXPECT_TRUE(queued.HasBeenNotified());
}

// The reader gets `capacity` messages ahead of a writer that is busy (here: blocked), then waits;
// the writer sees every message once, in order, and Drain returns after the last.
TEST(AppendWorkerTest, ReadsUpToCapacityAheadAndWritesInOrder) {
  absl::Notification release;
  absl::Mutex mu;
  std::vector<int64_t> written;
  AppendWorker worker(
      [&](const v1::StoreUploadRequest& r) {
        release.WaitForNotification();
        absl::MutexLock lock(&mu);
        written.push_back(r.rows().rows().line_numbers(0));
        return absl::OkStatus();
      },
      3);
  // The first message is taken by the (blocked) writer, three more fill the queue; the fifth
  // waits until the writer moves on.
  for (int i = 0; i < 4; ++i) ASSERT_THAT(worker.Push(RowsMessage(i)), IsOk());
  ExpectPushWaitsForTheWriter(worker, RowsMessage(4), release);
  EXPECT_THAT(worker.Drain(), IsOk());
  EXPECT_THAT(written, ::testing::ElementsAre(0, 1, 2, 3, 4));
}

// Bytes bound the queue too: with room for 100 bytes, a second message of ~60 waits until the
// writer has taken the first; an empty queue takes a message of any size.
TEST(AppendWorkerTest, QueuedBytesAreBoundedButAnEmptyQueueTakesAnySize) {
  absl::Notification release;
  std::atomic<int> writes{0};
  AppendWorker worker(
      [&](const v1::StoreUploadRequest&) {
        release.WaitForNotification();
        ++writes;
        return absl::OkStatus();
      },
      8, 100);
  auto sized = [](int lines) {
    v1::StoreUploadRequest r;
    for (int i = 0; i < lines; ++i) r.mutable_rows()->mutable_rows()->add_line_numbers(1000 + i);
    return r;
  };
  ASSERT_GT(sized(30).ByteSizeLong(), 60u);
  ASSERT_LT(sized(30).ByteSizeLong(), 100u);
  ASSERT_THAT(worker.Push(sized(1)), IsOk());    // taken by the (blocked) writer
  ASSERT_THAT(worker.Push(sized(200)), IsOk());  // over 100 bytes, but the queue was empty
  ExpectPushWaitsForTheWriter(worker, sized(30), release);
  EXPECT_THAT(worker.Drain(), IsOk());
  EXPECT_EQ(writes.load(), 3);
}

// A failed write is reported by the next Push (and Drain); what was queued after it is dropped.
TEST(AppendWorkerTest, FirstErrorStopsTheWriterAndReachesThePusher) {
  absl::Notification release;
  std::vector<int64_t> written;
  AppendWorker worker(
      [&](const v1::StoreUploadRequest& r) {
        release.WaitForNotification();
        const int64_t line = r.rows().rows().line_numbers(0);
        if (line == 1) return absl::InvalidArgumentError("line 1 is bad");
        written.push_back(line);
        return absl::OkStatus();
      },
      8);
  for (int i = 0; i < 4; ++i) ASSERT_THAT(worker.Push(RowsMessage(i)), IsOk());
  release.Notify();
  absl::Status pushed;
  for (int i = 4; i < 1000 && pushed.ok(); ++i) {
    pushed = worker.Push(RowsMessage(i));
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_THAT(pushed, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 1 is bad")));
  EXPECT_THAT(worker.Drain(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(written, ::testing::ElementsAre(0));
}

// Destroying the worker without Drain (the upload failed elsewhere) writes nothing more.
TEST(AppendWorkerTest, DestructionAbandonsWhatIsQueued) {
  absl::Notification first_started;
  absl::Notification release;
  std::atomic<int> writes{0};
  std::thread releaser;
  {
    AppendWorker worker(
        [&](const v1::StoreUploadRequest&) {
          if (!first_started.HasBeenNotified()) first_started.Notify();
          release.WaitForNotification();
          ++writes;
          return absl::OkStatus();
        },
        8);
    for (int i = 0; i < 5; ++i) ASSERT_THAT(worker.Push(RowsMessage(i)), IsOk());
    first_started.WaitForNotification();
    releaser = std::thread([&] {
      absl::SleepFor(absl::Milliseconds(50));
      release.Notify();
    });
  }
  releaser.join();
  EXPECT_EQ(writes.load(), 1);
}

TEST(PgErrorsTest, BrokenConnectionIsUnavailableWithDatabaseUnavailablePrefix) {
  absl::Status s = StatusFromException(pqxx::broken_connection("server closed the connection\n"));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable,
                          StartsWith("database unavailable: server closed")));
  EXPECT_TRUE(IsConnectionLoss(s));
}

TEST(PgErrorsTest, TooManyConnectionsIsResourceExhausted) {
  EXPECT_THAT(StatusFromException(pqxx::too_many_connections("FATAL:  sorry")),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(StatusFromException(
                  pqxx::broken_connection("FATAL:  sorry, too many clients already")),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(PgErrorsTest, ConstraintAndDataErrorsMapToTheirCodes) {
  EXPECT_THAT(StatusFromException(pqxx::unique_violation(
                  "ERROR:  duplicate key value\nDETAIL:  Key (id)=(1) already exists.\n", "q",
                  "23505")),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       "duplicate key value (Key (id)=(1) already exists.)"));
  EXPECT_THAT(StatusFromException(pqxx::foreign_key_violation("fk", "q", "23503")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(StatusFromException(pqxx::check_violation("check", "q", "23514")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(StatusFromException(pqxx::data_exception("out of range", "q", "22003")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Without a SQLSTATE the exception class decides.
  EXPECT_THAT(StatusFromException(pqxx::unique_violation("dup")),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(StatusFromException(pqxx::data_exception("bad")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PgErrorsTest, SerializationFailureAndDeadlockAreAborted) {
  EXPECT_THAT(StatusFromException(pqxx::serialization_failure("could not serialize")),
              StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(StatusFromException(pqxx::deadlock_detected("deadlock")),
              StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(StatusFromException(pqxx::sql_error("x", "q", "40001")),
              StatusIs(absl::StatusCode::kAborted));
}

TEST(PgErrorsTest, EverythingElseIsInternal) {
  EXPECT_THAT(StatusFromException(pqxx::undefined_table("no such table", "q", "42P01")),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("no such table")));
  EXPECT_THAT(StatusFromException(pqxx::usage_error("misuse")),
              StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(StatusFromException(std::runtime_error("boom")),
              StatusIs(absl::StatusCode::kInternal, "boom"));
  EXPECT_THAT(StatusFromException(pqxx::in_doubt_error("lost during commit")),
              StatusIs(absl::StatusCode::kUnknown, HasSubstr("commit outcome unknown")));
}

TEST(PgErrorsTest, SqlStateTableCoversConnectionShutdownAndTimeouts) {
  EXPECT_EQ(CodeForSqlState("08006"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForSqlState("57P01"), absl::StatusCode::kUnavailable);  // admin shutdown
  EXPECT_EQ(CodeForSqlState("57P03"), absl::StatusCode::kUnavailable);  // starting up
  EXPECT_EQ(CodeForSqlState("57014"), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(CodeForSqlState("53300"), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CodeForSqlState("40P01"), absl::StatusCode::kAborted);
  EXPECT_EQ(CodeForSqlState("23502"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeForSqlState(""), absl::StatusCode::kInternal);
  EXPECT_EQ(CodeForSqlState("XX000"), absl::StatusCode::kInternal);
}

std::vector<double> TrickyDoubles() {
  return {0.0,
          -0.0,
          1e-300,
          -1e-300,
          std::numeric_limits<double>::denorm_min(),
          DBL_MIN,
          DBL_MAX,
          -DBL_MAX,
          0.1,
          1.0 / 3.0,
          123456.78901234567,
          -2.5e-17};
}

TEST(CopyCodecTest, EncodedTuplesDecodeBitForBitWhateverTheChunking) {
  const std::vector<double> values = TrickyDoubles();
  std::vector<double> arr(28);
  for (int i = 0; i < 28; ++i) arr[i] = values[i % values.size()] * (i % 2 ? -1 : 1);
  CopyEncoder e;
  e.Header();
  for (int r = 0; r < 3; ++r) {
    e.BeginTuple(6);
    e.Int64(-5 + r);
    e.Int64(int64_t{1} << 40);
    e.Float8(values[r]);
    e.Float4(0.1f * r);
    e.Float8Bytes(arr.data(), 28);
    if (r == 1) {
      e.Null();
    } else {
      e.Int16(static_cast<int16_t>(r));
    }
  }
  e.Trailer();
  const std::string bytes = e.buffer();

  for (size_t chunk : {size_t{1}, size_t{7}, size_t{100}, bytes.size()}) {
    int tuples = 0;
    CopyDecoder d([&](const std::vector<CopyField>& f) -> absl::Status {
      EXPECT_EQ(f.size(), 6u);
      EXPECT_EQ(ReadInt64(f[0].data), -5 + tuples);
      EXPECT_EQ(ReadInt64(f[1].data), int64_t{1} << 40);
      const double d = ReadFloat8(f[2].data);
      EXPECT_EQ(std::memcmp(&d, &values[tuples], 8), 0);
      EXPECT_EQ(ReadFloat4(f[3].data), 0.1f * tuples);
      std::vector<double> got(28);
      EXPECT_THAT(DecodeFloat8Bytes(f[4], 28, got.data()), IsOk());
      EXPECT_EQ(std::memcmp(got.data(), arr.data(), 28 * 8), 0);
      EXPECT_EQ(f[5].is_null(), tuples == 1);
      if (tuples != 1) {
        EXPECT_EQ(ReadInt16(f[5].data), tuples);
      }
      ++tuples;
      return absl::OkStatus();
    });
    for (size_t pos = 0; pos < bytes.size(); pos += chunk) {
      ASSERT_THAT(d.Feed(bytes.data() + pos, std::min(chunk, bytes.size() - pos)), IsOk());
    }
    EXPECT_EQ(tuples, 3) << "chunk " << chunk;
    EXPECT_TRUE(d.finished());
  }
}

TEST(CopyCodecTest, DecoderRejectsDataWithoutSignatureAndPackedDoublesOfTheWrongSize) {
  CopyDecoder d([](const std::vector<CopyField>&) { return absl::OkStatus(); });
  const std::string junk(40, 'x');
  EXPECT_THAT(d.Feed(junk.data(), junk.size()), StatusIs(absl::StatusCode::kInvalidArgument));

  CopyEncoder e;
  const double three[3] = {1, 2, 3};
  e.Float8Bytes(three, 3);
  ASSERT_EQ(e.size(), 4u + 24u);
  CopyField f{e.buffer().data() + 4, static_cast<int32_t>(e.size() - 4)};
  double out[28];
  EXPECT_THAT(DecodeFloat8Bytes(f, 28, out), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DecodeFloat8Bytes(CopyField{}, 3, out), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DecodeFloat8Bytes(f, 3, out), IsOk());
  EXPECT_EQ(out[2], 3.0);
  // float8send's bytes: 3.0 is 0x4008000000000000, big-endian.
  EXPECT_EQ(static_cast<unsigned char>(e.buffer()[4 + 16]), 0x40);
  EXPECT_EQ(static_cast<unsigned char>(e.buffer()[4 + 17]), 0x08);
}

TEST(CopyCodecTest, ConsumerErrorStopsDecoding) {
  CopyEncoder e;
  e.Header();
  for (int i = 0; i < 5; ++i) {
    e.BeginTuple(1);
    e.Int64(i);
  }
  e.Trailer();
  int seen = 0;
  CopyDecoder d([&](const std::vector<CopyField>&) {
    return ++seen == 2 ? absl::CancelledError("stop") : absl::OkStatus();
  });
  EXPECT_THAT(d.Feed(e.buffer().data(), e.size()), StatusIs(absl::StatusCode::kCancelled));
  EXPECT_EQ(seen, 2);
}

TEST(SqlLiteralTest, DoubleAndFloatLiteralsRoundTripExactly) {
  for (double v : TrickyDoubles()) {
    const std::string text = DoubleLiteral(v);
    const double back = std::strtod(text.c_str(), nullptr);
    EXPECT_EQ(std::memcmp(&back, &v, 8), 0) << text;
  }
  for (float v : {0.1f, 1.0f / 3.0f, 1e-45f, 0.99999994f}) {
    const std::string text = FloatLiteral(v);
    EXPECT_EQ(std::strtof(text.c_str(), nullptr), v) << text;
  }
  EXPECT_EQ(DoubleLiteral(1e-300), "1e-300");
}

fraud::common::v1::TransactionBatch GoodBatch(int n) {
  fraud::common::v1::TransactionBatch b;
  b.set_num_rows(n);
  for (int i = 0; i < n * kNumFeatures; ++i) {
    const int col = i % kNumFeatures;
    b.add_features(col == 0 ? i : col == kNumFeatures - 1 ? 10.0 : -0.5);
  }
  for (int i = 0; i < n; ++i) {
    b.add_labels(i % 2);
    b.add_line_numbers(i + 2);
  }
  return b;
}

TEST(ValidationTest, AcceptsAWellFormedBatch) {
  EXPECT_THAT(ValidateTransactionBatch(GoodBatch(3)), IsOk());
  fraud::common::v1::TransactionBatch unlabelled = GoodBatch(2);
  unlabelled.clear_labels();
  unlabelled.clear_line_numbers();
  EXPECT_THAT(ValidateTransactionBatch(unlabelled), IsOk());
}

TEST(ValidationTest, RejectsBatchesThatBreakTheContract) {
  struct Case {
    const char* name;
    std::function<void(fraud::common::v1::TransactionBatch*)> mutate;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"feature count", [](auto* b) { b->add_features(1); }, "want num_rows*30"},
      {"labels size", [](auto* b) { b->add_labels(0); }, "labels has 4"},
      {"lines size", [](auto* b) { b->mutable_line_numbers()->RemoveLast(); }, "line_numbers has 2"},
      {"upload ids", [](auto* b) { b->add_upload_ids(1); }, "upload_ids must be empty"},
      {"infinity", [](auto* b) { b->set_features(5, HUGE_VAL); }, "row 0 V5 is not finite"},
      {"nan", [](auto* b) { b->set_features(31, std::nan("")); }, "row 1 V1 is not finite"},
      {"negative amount", [](auto* b) { b->set_features(29, -1); }, "negative Time or Amount"},
      {"label 2", [](auto* b) { b->set_labels(2, 2); }, "label is 2"},
      {"line 0", [](auto* b) { b->set_line_numbers(0, 0); }, "not positive"},
  };
  for (const Case& c : cases) {
    fraud::common::v1::TransactionBatch b = GoodBatch(3);
    c.mutate(&b);
    EXPECT_THAT(ValidateTransactionBatch(b),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.name;
  }
}

TEST(ValidationTest, ScoresMustMatchTheRowsAndBeProbabilities) {
  fraud::common::v1::ScoreBatch s;
  s.set_model_version(3);
  s.add_scores(0.5f);
  s.add_decisions(true);
  EXPECT_THAT(ValidateScoreBatch(s, 1), IsOk());
  EXPECT_THAT(ValidateScoreBatch(s, 2), StatusIs(absl::StatusCode::kInvalidArgument));
  s.set_scores(0, 1.5f);
  EXPECT_THAT(ValidateScoreBatch(s, 1), StatusIs(absl::StatusCode::kInvalidArgument));
  s.set_scores(0, std::nanf(""));
  EXPECT_THAT(ValidateScoreBatch(s, 1), StatusIs(absl::StatusCode::kInvalidArgument));
  s.set_scores(0, 0.5f);
  s.set_model_version(0);
  EXPECT_THAT(ValidateScoreBatch(s, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("model_version")));
}

TEST(ValidationTest, CommitNeedsAHexSha256AndJsonSummary) {
  fraud::storage::v1::UploadCommit c;
  c.set_sha256(std::string(64, 'A'));
  std::string normalized;
  EXPECT_THAT(ValidateSha256(c.sha256(), &normalized), IsOk());
  EXPECT_EQ(normalized, std::string(64, 'a'));
  EXPECT_THAT(ValidateUploadCommit(c, fraud::storage::v1::UPLOAD_MODE_STRICT), IsOk());
  c.set_summary_json("{\"a\": [1, 2]}");
  EXPECT_THAT(ValidateUploadCommit(c, fraud::storage::v1::UPLOAD_MODE_STRICT), IsOk());
  c.set_summary_json("{not json");
  EXPECT_THAT(ValidateUploadCommit(c, fraud::storage::v1::UPLOAD_MODE_STRICT),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("summary_json")));
  c.clear_summary_json();
  c.set_rows_rejected(2);
  EXPECT_THAT(ValidateUploadCommit(c, fraud::storage::v1::UPLOAD_MODE_STRICT),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lenient")));
  EXPECT_THAT(ValidateUploadCommit(c, fraud::storage::v1::UPLOAD_MODE_LENIENT), IsOk());
  c.set_sha256("xyz");
  EXPECT_THAT(ValidateUploadCommit(c, fraud::storage::v1::UPLOAD_MODE_LENIENT),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sha256")));
  c.set_sha256(std::string(63, 'a') + "g");
  EXPECT_THAT(ValidateUploadCommit(c, fraud::storage::v1::UPLOAD_MODE_LENIENT),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PgPoolTest, UnreachableDatabaseFailsFastWithUnavailable) {
  PgPoolOptions o;
  o.conninfo = "host=127.0.0.1 port=1 dbname=nothing user=nobody password=s3cret";
  o.size = 2;
  PgPool pool(o);
  const absl::Time start = absl::Now();
  auto lease = pool.Acquire();
  EXPECT_THAT(lease.status(), StatusIs(absl::StatusCode::kUnavailable,
                                       StartsWith("database unavailable: ")));
  EXPECT_THAT(std::string(lease.status().message()), ::testing::Not(HasSubstr("s3cret")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(pool.in_use(), 0);
  EXPECT_THAT(pool.Ping(), StatusIs(absl::StatusCode::kUnavailable));
  const std::string described = pool.Describe();
  EXPECT_THAT(described, HasSubstr("host=127.0.0.1"));
  EXPECT_THAT(described, HasSubstr("port=1"));
  EXPECT_THAT(described, ::testing::Not(HasSubstr("s3cret")));
}

}  // namespace
}  // namespace fraud::storage
