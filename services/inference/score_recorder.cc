#include "services/inference/score_recorder.h"

#include <grpcpp/client_context.h>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/grpc_status.h"

namespace fraud::inference {

absl::Status StorageScoreRecorder::Record(
    const common::v1::TransactionBatch& rows,
    const google::protobuf::RepeatedPtrField<std::string>& ids,
    const common::v1::ScoreBatch& scores,
    const google::protobuf::RepeatedPtrField<storage::v1::RowExplanation>& explanations) {
  storage::v1::RecordScoredTransactionsRequest request;
  request.mutable_rows()->set_num_rows(rows.num_rows());
  *request.mutable_rows()->mutable_features() = rows.features();
  *request.mutable_transaction_ids() = ids;
  *request.mutable_scores() = scores;
  *request.mutable_explanations() = explanations;
  *request.mutable_scored_at() = google::protobuf::util::TimeUtil::GetCurrentTime();
  storage::v1::RecordScoredTransactionsResponse response;
  grpc::ClientContext ctx;
  rpc::SetDeadline(&ctx, timeout_);
  const absl::Status s =
      rpc::FromGrpcStatus(stub_->RecordScoredTransactions(&ctx, request, &response));
  if (s.ok()) return s;
  // The caller's own mistakes keep their code; anything else is storage's trouble, and the
  // caller may retry the same call (it is idempotent per transaction id).
  if (s.code() == absl::StatusCode::kInvalidArgument ||
      s.code() == absl::StatusCode::kAlreadyExists) {
    return absl::Status(s.code(),
                        absl::StrCat("scores were not recorded: storage: ", s.message()));
  }
  return absl::UnavailableError(absl::StrCat("scores were not recorded: storage ",
                                             rpc::CodeName(s.code()), ": ", s.message()));
}

}  // namespace fraud::inference
