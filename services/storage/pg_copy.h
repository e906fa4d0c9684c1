// PostgreSQL binary COPY: an encoder/decoder for the wire format and raw-libpq COPY FROM STDIN /
// COPY TO STDOUT inside a libpqxx transaction.
//
// Why binary and raw libpq: binary COPY carries doubles as their 8 IEEE bytes, so values survive
// bit-for-bit (including -0.0 and subnormals) with no text formatting on our side and no float
// parsing on the server's; libpqxx 6.4's stream_to only does text COPY, one std::string per row.
// Measured with 284,807 rows into the transactions layout (PK + time index, PostgreSQL 15, 2
// cores): pqxx::stream_to with std::to_chars-formatted arrays 4.2-5.5 s, this binary path
// 1.2-1.5 s.
//
// Format (PostgreSQL docs, "COPY ... Binary Format"): 11-byte signature, int32 flags, int32
// header-extension length; per tuple int16 field count then per field int32 length (-1 = NULL)
// and the value in network byte order; trailer int16 -1. A bytea value is its raw bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fraud::storage {

// Appends binary-COPY data to a buffer. Not thread-safe.
class CopyEncoder {
 public:
  void Header();
  void Trailer() { PutInt16(-1); }
  void BeginTuple(int16_t fields) { PutInt16(fields); }
  void Int64(int64_t v) {
    PutInt32(8);
    PutInt64(v);
  }
  void Int16(int16_t v) {
    PutInt32(2);
    PutInt16(v);
  }
  void Float8(double v) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    PutInt32(8);
    PutInt64(static_cast<int64_t>(bits));
  }
  void Float4(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    PutInt32(4);
    PutInt32(static_cast<int32_t>(bits));
  }
  void Bool(bool v) {
    PutInt32(1);
    buf_.push_back(v ? 1 : 0);
  }
  void Null() { PutInt32(-1); }
  // A text value: its bytes as they are (binary COPY's text format is the raw string; it must be
  // valid UTF-8 without NUL bytes).
  void Text(absl::string_view v) {
    PutInt32(static_cast<int32_t>(v.size()));
    buf_.append(v.data(), v.size());
  }
  // A bytea value: the bytes as they are (binary COPY's bytea format is the raw bytes).
  void Bytes(absl::string_view v) { Text(v); }
  // A bytea of `n` big-endian IEEE doubles (float8send's bytes, one after another): how
  // transactions.v stores V1..V28 (migration 0010).
  void Float8Bytes(const double* values, int n);

  std::string& buffer() { return buf_; }
  size_t size() const { return buf_.size(); }
  void Clear() { buf_.clear(); }

 private:
  void PutInt16(int16_t v);
  void PutInt32(int32_t v);
  void PutInt64(int64_t v);
  std::string buf_;
};

// One field of a decoded tuple: null, or `size` bytes at `data` (valid until the next Feed).
struct CopyField {
  const char* data = nullptr;
  int32_t size = -1;
  bool is_null() const { return size < 0; }
};

// Big-endian field readers; the size must match (callers check with the *Field helpers below).
int64_t ReadInt64(const char* p);
int32_t ReadInt32(const char* p);
int16_t ReadInt16(const char* p);
double ReadFloat8(const char* p);
float ReadFloat4(const char* p);

// Decodes a bytea field of exactly `n` big-endian doubles (see Float8Bytes) into out[0..n).
// InvalidArgument otherwise.
absl::Status DecodeFloat8Bytes(const CopyField& f, int n, double* out);

// Incremental decoder of a binary-COPY byte stream delivered in arbitrary pieces.
class CopyDecoder {
 public:
  // Called once per tuple with its fields; a non-OK status stops decoding and is returned by Feed.
  using TupleFn = std::function<absl::Status(const std::vector<CopyField>& fields)>;
  explicit CopyDecoder(TupleFn on_tuple) : on_tuple_(std::move(on_tuple)) {}

  // Consumes bytes; calls on_tuple for every complete tuple. InvalidArgument on malformed data.
  absl::Status Feed(const char* data, size_t n);
  // True once the trailer was seen.
  bool finished() const { return finished_; }

 private:
  TupleFn on_tuple_;
  std::string pending_;
  size_t pos_ = 0;
  bool header_done_ = false;
  bool finished_ = false;
  std::vector<CopyField> fields_;
};

// COPY ... FROM STDIN (FORMAT binary) inside `txn`. Start() sends the statement and the header;
// Put() sends the encoder's bytes when they exceed `flush_bytes` (and clears them); Finish() sends
// the trailer and checks the result. Any error leaves the transaction aborted (roll it back).
// A failure mid-way may leave the connection in COPY state: the caller must discard it unless
// Finish() or Abort() returned.
class CopyIn {
 public:
  explicit CopyIn(pqxx::dbtransaction& txn, size_t flush_bytes = 256 << 10);
  absl::Status Start(const std::string& copy_sql);
  CopyEncoder& encoder() { return enc_; }
  absl::Status MaybeFlush() { return enc_.size() >= flush_bytes_ ? Flush() : absl::OkStatus(); }
  // Sends everything encoded so far to the server (it processes it while the COPY stays open).
  absl::Status Flush();
  absl::Status Finish();
  // Ends the COPY with an error so the server discards it (the transaction is aborted).
  void Abort(const char* reason);

 private:
  absl::Status CollectResult();
  void* conn_;  // PGconn*
  size_t flush_bytes_;
  CopyEncoder enc_;
  bool active_ = false;
};

// Runs `COPY (query) TO STDOUT (FORMAT binary)` inside `txn` and hands every tuple to on_tuple.
// When on_tuple returns a non-OK status, the server-side query is cancelled, the remaining data is
// drained, and that status is returned. Returns the database error (pg_errors mapping) otherwise.
// *connection_unusable is set when the connection is left in an unknown state (discard it).
absl::Status CopyOut(pqxx::dbtransaction& txn, const std::string& copy_sql,
                     const CopyDecoder::TupleFn& on_tuple, bool* connection_unusable);

// Shortest text that parses back to exactly `v` (std::to_chars), for SQL literals of finite values.
std::string DoubleLiteral(double v);
std::string FloatLiteral(float v);

}  // namespace fraud::storage
