// Writes an upload's rows on a thread of its own, a bounded number of stream messages behind the
// thread that reads them (StorageService::StoreUpload).
//
// Why: PostgreSQL's one backend per upload is the slowest stage, and every 131,072 rows the writer
// stops feeding the transactions COPY to write the pending predictions (UploadWriter). Reading the
// next message only after the last one was written stalled the whole pipeline at each such flush:
// HTTP/2 flow control held ingest, the gateway and the client while one core sat idle (perf,
// bench/README upload). With the reading a few messages ahead, they keep working meanwhile.
#ifndef FRAUD_SERVICES_STORAGE_APPEND_WORKER_H_
#define FRAUD_SERVICES_STORAGE_APPEND_WORKER_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "fraud/storage/v1/storage.pb.h"

namespace fraud::storage {

// Messages read ahead of the writer: ~2.2 MB each at ingest's 8,192-row batches, so ~18 MB more in
// the storage process; they cover a predictions flush (~0.1-0.2 s) at full upload speed. Larger
// messages (a client may send up to the server's 64 MiB limit) are bounded by their bytes: at
// most kUploadReadAheadBytes queued, or one message however large.
inline constexpr size_t kUploadReadAheadMessages = 8;
inline constexpr size_t kUploadReadAheadBytes = size_t{24} << 20;

class AppendWorker {
 public:
  using Write = std::function<absl::Status(const fraud::storage::v1::StoreUploadRequest&)>;
  // `write` runs on the worker's thread, one message at a time in Push order, until it fails;
  // whatever it uses (the UploadWriter) is the worker's until Drain returns.
  explicit AppendWorker(Write write, size_t capacity = kUploadReadAheadMessages,
                        size_t max_bytes = kUploadReadAheadBytes);
  // Stops without writing what is still queued (the caller rolls the upload back) and joins.
  ~AppendWorker();
  AppendWorker(const AppendWorker&) = delete;
  AppendWorker& operator=(const AppendWorker&) = delete;

  // Queues a message, waiting while `capacity` messages are queued or it would take the queued
  // bytes above `max_bytes` (an empty queue takes any message). Returns the error of an earlier
  // message, if one failed (this one is then dropped). One thread pushes (the stream's reader).
  absl::Status Push(fraud::storage::v1::StoreUploadRequest request);
  // Waits until every queued message is written and stops the thread; the first error.
  absl::Status Drain();

 private:
  void Run();

  const Write write_;
  const size_t capacity_;
  const size_t max_bytes_;
  absl::Mutex mu_;
  // Each queued message with its serialized size.
  std::deque<std::pair<fraud::storage::v1::StoreUploadRequest, size_t>> queue_
      ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t incoming_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // the size Push waits to queue
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;     // no more messages (Drain or the destructor)
  bool abandon_ ABSL_GUARDED_BY(mu_) = false;    // the destructor: skip what is queued
  std::thread thread_;
};

}  // namespace fraud::storage

#endif  // FRAUD_SERVICES_STORAGE_APPEND_WORKER_H_
