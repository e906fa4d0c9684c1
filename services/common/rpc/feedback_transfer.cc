#include "services/common/rpc/feedback_transfer.h"

#include <memory>
#include <utility>

#include "services/common/rpc/grpc_status.h"

namespace fraud::rpc {

namespace storagepb = ::fraud::storage::v1;

void ToLabelFeedback(const csv::FeedbackRow& row, storagepb::LabelFeedback* out) {
  out->set_upload_id(row.upload_id);
  out->set_line(row.line);
  out->set_transaction_id(row.transaction_id);
  out->set_label(row.label);
  out->set_source(row.source);
  out->set_note(row.note);
  if (row.has_at) {
    out->mutable_at()->set_seconds(row.at_seconds);
    out->mutable_at()->set_nanos(row.at_nanos);
  } else {
    out->clear_at();
  }
}

absl::StatusOr<FeedbackSent> SendFeedbackCsv(storagepb::StorageService::StubInterface& stub,
                                             grpc::ClientContext* ctx,
                                             const std::function<bool(std::string*)>& next_chunk,
                                             const std::string& actor) {
  FeedbackSent out;
  std::unique_ptr<grpc::ClientWriterInterface<storagepb::RecordFeedbackRequest>> writer =
      stub.RecordFeedback(ctx, &out.response);
  storagepb::RecordFeedbackRequest batch;
  batch.set_actor(actor);
  bool broken = false;  // the server ended the call early; Finish tells why
  auto flush = [&]() {
    if (batch.labels_size() == 0 || broken) return;
    if (!writer->Write(batch)) broken = true;
    batch.clear_labels();
  };
  csv::FeedbackCsvReader reader([&](csv::FeedbackRow& row) {
    out.file_lines.push_back(row.file_line);
    ToLabelFeedback(row, batch.add_labels());
    if (batch.labels_size() >= kFeedbackBatchRows) flush();
    return absl::OkStatus();
  });
  std::string chunk;
  absl::Status parsed;
  while (parsed.ok() && !broken && next_chunk(&chunk)) parsed = reader.Feed(chunk);
  if (parsed.ok() && !broken) parsed = reader.Finish();
  if (!parsed.ok()) {
    ctx->TryCancel();
    (void)writer->Finish();  // cancelled: the server stores nothing
    return parsed;
  }
  flush();
  writer->WritesDone();
  const grpc::Status s = writer->Finish();
  if (!s.ok()) return FromGrpcStatus(s);
  return out;
}

}  // namespace fraud::rpc
