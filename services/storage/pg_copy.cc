#include "services/storage/pg_copy.h"

#include <libpq-fe.h>

#include <charconv>
#include <pqxx/largeobject>

#include "absl/strings/str_cat.h"
#include "services/storage/pg_errors.h"

namespace fraud::storage {
namespace {

constexpr char kSignature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};

// libpqxx 6.4 exposes a transaction's PGconn only to large-object code (a protected static of
// pqxx::largeobject); this subclass makes it reachable for COPY. The pointer stays owned by the
// connection.
struct RawConnection : pqxx::largeobject {
  static PGconn* Of(const pqxx::dbtransaction& txn) { return largeobject::raw_connection(txn); }
};

absl::Status ResultStatus(PGresult* res, PGconn* conn) {
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  const char* msg = res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn);
  if (state == nullptr && PQstatus(conn) != CONNECTION_OK) {
    return StatusFromSqlState("08006", msg);  // connection_failure
  }
  return StatusFromSqlState(state != nullptr ? state : "", msg);
}

// Reads results until libpq returns NULL; the first error wins.
absl::Status DrainResults(PGconn* conn) {
  absl::Status status;
  while (PGresult* res = PQgetResult(conn)) {
    const ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && status.ok()) {
      status = ResultStatus(res, conn);
    }
    PQclear(res);
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
      return absl::InternalError("unexpected COPY state while draining results");
    }
  }
  if (status.ok() && PQstatus(conn) != CONNECTION_OK) {
    status = StatusFromSqlState("08006", PQerrorMessage(conn));
  }
  return status;
}

inline uint16_t Bswap16(uint16_t v) { return __builtin_bswap16(v); }
inline uint32_t Bswap32(uint32_t v) { return __builtin_bswap32(v); }
inline uint64_t Bswap64(uint64_t v) { return __builtin_bswap64(v); }

}  // namespace

// ---- encoder ----

void CopyEncoder::Header() {
  buf_.append(kSignature, sizeof(kSignature));
  PutInt32(0);  // flags: no OIDs
  PutInt32(0);  // header extension length
}

void CopyEncoder::PutInt16(int16_t v) {
  const uint16_t be = Bswap16(static_cast<uint16_t>(v));
  buf_.append(reinterpret_cast<const char*>(&be), 2);
}
void CopyEncoder::PutInt32(int32_t v) {
  const uint32_t be = Bswap32(static_cast<uint32_t>(v));
  buf_.append(reinterpret_cast<const char*>(&be), 4);
}
void CopyEncoder::PutInt64(int64_t v) {
  const uint64_t be = Bswap64(static_cast<uint64_t>(v));
  buf_.append(reinterpret_cast<const char*>(&be), 8);
}

void CopyEncoder::Float8Bytes(const double* values, int n) {
  const size_t start = buf_.size();
  buf_.resize(start + 4 + 8 * static_cast<size_t>(n));
  char* p = buf_.data() + start;
  const uint32_t size = Bswap32(static_cast<uint32_t>(8 * n));
  std::memcpy(p, &size, 4);
  p += 4;
  for (int i = 0; i < n; ++i, p += 8) {
    uint64_t bits;
    std::memcpy(&bits, &values[i], 8);
    bits = Bswap64(bits);
    std::memcpy(p, &bits, 8);
  }
}

// ---- field readers ----

int64_t ReadInt64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return static_cast<int64_t>(Bswap64(v));
}
int32_t ReadInt32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return static_cast<int32_t>(Bswap32(v));
}
int16_t ReadInt16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return static_cast<int16_t>(Bswap16(v));
}
double ReadFloat8(const char* p) {
  const uint64_t bits = static_cast<uint64_t>(ReadInt64(p));
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}
float ReadFloat4(const char* p) {
  const uint32_t bits = static_cast<uint32_t>(ReadInt32(p));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

absl::Status DecodeFloat8Bytes(const CopyField& f, int n, double* out) {
  if (f.is_null() || f.size != 8 * n) {
    return absl::InvalidArgumentError(
        absl::StrCat("packed float8 field has ", f.size, " bytes, want ", 8 * n));
  }
  for (int i = 0; i < n; ++i) out[i] = ReadFloat8(f.data + 8 * i);
  return absl::OkStatus();
}

// ---- decoder ----

absl::Status CopyDecoder::Feed(const char* data, size_t n) {
  if (finished_) return absl::OkStatus();
  const char* buf = data;
  size_t size = n;
  size_t pos = 0;
  const bool use_pending = pos_ < pending_.size();
  if (use_pending) {
    pending_.append(data, n);
    buf = pending_.data();
    size = pending_.size();
    pos = pos_;
  }
  absl::Status status;
  while (true) {
    if (!header_done_) {
      if (size - pos < 19) break;
      if (std::memcmp(buf + pos, kSignature, sizeof(kSignature)) != 0) {
        return absl::InvalidArgumentError("COPY data does not start with the binary signature");
      }
      const int32_t ext = ReadInt32(buf + pos + 15);
      if (ext < 0) return absl::InvalidArgumentError("negative COPY header extension");
      if (size - pos < 19 + static_cast<size_t>(ext)) break;
      pos += 19 + ext;
      header_done_ = true;
      continue;
    }
    if (size - pos < 2) break;
    const int16_t count = ReadInt16(buf + pos);
    if (count == -1) {
      finished_ = true;
      pos += 2;
      break;
    }
    if (count < 0) return absl::InvalidArgumentError("negative COPY field count");
    size_t p = pos + 2;
    fields_.resize(count);
    bool complete = true;
    for (int i = 0; i < count; ++i) {
      if (size - p < 4) {
        complete = false;
        break;
      }
      const int32_t len = ReadInt32(buf + p);
      p += 4;
      if (len < 0) {
        fields_[i] = CopyField{};
        continue;
      }
      if (size - p < static_cast<size_t>(len)) {
        complete = false;
        break;
      }
      fields_[i] = CopyField{buf + p, len};
      p += len;
    }
    if (!complete) break;
    status = on_tuple_(fields_);
    pos = p;
    if (!status.ok()) break;
  }
  // Keep the unconsumed tail for the next call.
  if (use_pending) {
    pos_ = pos;
    if (pos_ == pending_.size()) {
      pending_.clear();
      pos_ = 0;
    } else if (pos_ > (1 << 20) && pos_ * 2 > pending_.size()) {
      pending_.erase(0, pos_);
      pos_ = 0;
    }
  } else if (pos < size) {
    pending_.assign(buf + pos, size - pos);
    pos_ = 0;
  }
  return status;
}

// ---- COPY FROM STDIN ----

CopyIn::CopyIn(pqxx::dbtransaction& txn, size_t flush_bytes)
    : conn_(RawConnection::Of(txn)), flush_bytes_(flush_bytes) {}

absl::Status CopyIn::Start(const std::string& copy_sql) {
  PGconn* conn = static_cast<PGconn*>(conn_);
  PGresult* res = PQexec(conn, copy_sql.c_str());
  const ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COPY_IN) {
    absl::Status s = ResultStatus(res, conn);
    PQclear(res);
    if (s.ok()) s = absl::InternalError("COPY did not enter COPY IN state");
    DrainResults(conn).IgnoreError();
    return s;
  }
  PQclear(res);
  active_ = true;
  enc_.Clear();
  enc_.Header();
  return absl::OkStatus();
}

absl::Status CopyIn::Flush() {
  PGconn* conn = static_cast<PGconn*>(conn_);
  if (enc_.size() == 0) return absl::OkStatus();
  if (PQputCopyData(conn, enc_.buffer().data(), static_cast<int>(enc_.size())) != 1 ||
      PQflush(conn) != 0) {
    return StatusFromSqlState("08006", PQerrorMessage(conn));
  }
  enc_.Clear();
  return absl::OkStatus();
}

absl::Status CopyIn::Finish() {
  PGconn* conn = static_cast<PGconn*>(conn_);
  enc_.Trailer();
  if (absl::Status s = Flush(); !s.ok()) return s;
  active_ = false;
  if (PQputCopyEnd(conn, nullptr) != 1) return StatusFromSqlState("08006", PQerrorMessage(conn));
  return DrainResults(conn);
}

void CopyIn::Abort(const char* reason) {
  if (!active_) return;
  active_ = false;
  PGconn* conn = static_cast<PGconn*>(conn_);
  enc_.Clear();
  if (PQputCopyEnd(conn, reason) == 1) DrainResults(conn).IgnoreError();
}

// ---- COPY TO STDOUT ----

absl::Status CopyOut(pqxx::dbtransaction& txn, const std::string& copy_sql,
                     const CopyDecoder::TupleFn& on_tuple, bool* connection_unusable) {
  *connection_unusable = false;
  PGconn* conn = RawConnection::Of(txn);
  PGresult* res = PQexec(conn, copy_sql.c_str());
  if (PQresultStatus(res) != PGRES_COPY_OUT) {
    absl::Status s = ResultStatus(res, conn);
    PQclear(res);
    if (s.ok()) s = absl::InternalError("COPY did not enter COPY OUT state");
    DrainResults(conn).IgnoreError();
    if (PQstatus(conn) != CONNECTION_OK) *connection_unusable = true;
    return s;
  }
  PQclear(res);

  CopyDecoder decoder(on_tuple);
  absl::Status consumer_status;  // set when on_tuple stops the scan
  while (true) {
    char* buf = nullptr;
    const int n = PQgetCopyData(conn, &buf, 0);
    if (n > 0) {
      if (consumer_status.ok()) {
        absl::Status s = decoder.Feed(buf, static_cast<size_t>(n));
        if (!s.ok()) {
          consumer_status = s;
          // Stop the server from producing the rest; the remaining bytes are drained below.
          if (PGcancel* cancel = PQgetCancel(conn)) {
            char err[256];
            if (PQcancel(cancel, err, sizeof(err)) != 1) *connection_unusable = true;
            PQfreeCancel(cancel);
          } else {
            *connection_unusable = true;
          }
        }
      }
      PQfreemem(buf);
      if (*connection_unusable) break;
      continue;
    }
    if (buf != nullptr) PQfreemem(buf);
    if (n == -1) break;  // end of COPY; the final result follows
    *connection_unusable = true;  // -2: connection error
    return StatusFromSqlState("08006", PQerrorMessage(conn));
  }
  if (*connection_unusable) return consumer_status;
  absl::Status db_status = DrainResults(conn);
  if (PQstatus(conn) != CONNECTION_OK) *connection_unusable = true;
  if (!consumer_status.ok()) return consumer_status;  // the cancel's 57014 is expected
  if (db_status.ok() && !decoder.finished()) {
    return absl::InternalError("COPY ended without its trailer");
  }
  return db_status;
}

std::string DoubleLiteral(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

std::string FloatLiteral(float v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

}  // namespace fraud::storage
