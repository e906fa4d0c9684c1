// Delayed labels to storage (fraud.storage.v1 RecordFeedback): the client side shared by the
// gateway (POST /api/v1/feedback with a CSV body) and `fraudctl feedback FILE.csv`. Reads the CSV
// incrementally (services/common/csv/feedback_csv.h) and streams it as batches, so memory holds
// one batch plus the map from stream rows to file lines (8 bytes a row).
#pragma once

#include <grpcpp/client_context.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "services/common/csv/feedback_csv.h"

namespace fraud::rpc {

// Rows per RecordFeedback message.
inline constexpr int kFeedbackBatchRows = 8192;

// Fills *out (a fresh or cleared message, reused across batches) with one parsed CSV row.
void ToLabelFeedback(const csv::FeedbackRow& row, storage::v1::LabelFeedback* out);

struct FeedbackSent {
  storage::v1::RecordFeedbackResponse response;
  // The file line of each stream row: row r (1-based, as in the response) is file_lines[r - 1].
  std::vector<int64_t> file_lines;
};

// Streams the CSV that `next_chunk` yields (it fills *chunk and returns false at the end) on one
// RecordFeedback call with `ctx` (deadline and credentials set by the caller). A CSV error
// cancels the call (nothing is stored) and is returned as InvalidArgument "line N, column C:
// reason"; storage's status otherwise (see storage.proto: invalid rows reject the stream,
// unknown ids are reported in the response).
absl::StatusOr<FeedbackSent> SendFeedbackCsv(storage::v1::StorageService::StubInterface& stub,
                                             grpc::ClientContext* ctx,
                                             const std::function<bool(std::string*)>& next_chunk,
                                             const std::string& actor);

}  // namespace fraud::rpc
