// Streams an HTTP upload body (raw text/csv or the `file` field of multipart/form-data) to a
// ChunkSink in fixed-size chunks as it arrives, enforcing the size limit on the way. Holds at most
// one chunk (256 KiB by default) of the body at any time: memory is flat whatever the file's size.
//
//   UploadForwarder f(&sink, request);        // request: query-level mode/file_name
//   content_reader([&](const char* d, size_t n) { return f.OnData(d, n); });   // raw body
//   absl::Status s = f.Finish(read_ok);
//
// The sink is opened lazily, when the first byte of the file arrives (or at Finish for an empty
// file), so a multipart part's filename and the form fields `mode` / `file_name` sent before the
// file can still fill the options. Query parameters win over form fields.
//
// Finish returns OK when every byte reached the sink (the caller then half-closes the stream),
// PayloadTooLarge past max_bytes, InvalidArgument for a bad request (no `file` field, two of them,
// unknown mode, a body that could not be read), and Unavailable "sink closed" when the sink
// stopped accepting (the server ended the call early: its status says why). On anything but OK the
// caller must cancel the stream, never half-close it: a cut-off file must not be committed.
//
// Thread-safety: one forwarder per request, used from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fraud/ingest/v1/ingest.pb.h"
#include "services/common/rpc/upload_chunk.h"

namespace fraud::gateway {

// Receiver of the chunks: the ingest client stream in production, a recorder in tests.
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  // Opens the stream and sends the options; false when the stream could not be opened.
  virtual bool Open(const ingest::v1::UploadOptions& options) = 0;
  // Sends one chunk (blocks under flow control); false when the stream is broken.
  virtual bool Write(absl::string_view chunk) = 0;
};

struct UploadRequestParams {
  // Query parameters; empty = not given.
  std::string mode;
  std::string file_name;
  int64_t max_bytes = int64_t{2} << 30;
  size_t chunk_bytes = rpc::kUploadChunkBytes;
  // After the sink closed early or the body overflowed max_bytes, keep reading (and discarding)
  // at most this many bytes so the client finishes sending and reads the answer instead of a
  // connection reset.
  int64_t drain_bytes = 32 << 20;
  // The body is multipart/form-data (a body without a `file` part is then an error).
  bool multipart = false;
};

// "strict" | "lenient" (or the enum names), case-insensitive; "" = strict.
absl::Status ParseUploadMode(const std::string& text, storage::v1::UploadMode* mode);

class UploadForwarder {
 public:
  UploadForwarder(ChunkSink* sink, UploadRequestParams params);

  // Raw body bytes. Returns false when reading should stop.
  bool OnData(const char* data, size_t size);
  // Multipart: the header of the next part, then its data.
  bool OnPartHeader(const std::string& name, const std::string& filename);
  bool OnPartData(const char* data, size_t size);

  // Ends the body. `read_ok` is false when the body could not be read to its end (client gone,
  // malformed multipart). Flushes the last chunk when everything is fine.
  absl::Status Finish(bool read_ok);

  // File bytes seen so far (forwarded or not).
  int64_t bytes() const { return bytes_; }
  int64_t chunks_written() const { return chunks_; }
  bool sink_opened() const { return opened_; }
  // True when the sink stopped accepting (could not open, or broke mid-stream): the server's own
  // status then says why.
  bool sink_closed() const { return state_ == State::kSinkClosed; }

 private:
  enum class State { kOk, kTooLarge, kSinkClosed, kBadRequest };
  enum class Part { kNone, kFile, kField, kIgnored };

  bool Forward(const char* data, size_t size);
  bool EnsureOpen();
  bool Flush();
  bool Fail(State state, absl::Status status);
  bool Draining(size_t size);

  ChunkSink* sink_;
  UploadRequestParams params_;
  State state_ = State::kOk;
  absl::Status error_;
  std::string buffer_;
  bool opened_ = false;
  int64_t bytes_ = 0;
  int64_t chunks_ = 0;
  int64_t drained_ = 0;
  // Multipart state.
  Part part_ = Part::kNone;
  std::string field_name_;
  std::string field_value_;
  std::string form_mode_;
  std::string form_file_name_;
  std::string part_file_name_;
  int file_parts_ = 0;
};

}  // namespace fraud::gateway
