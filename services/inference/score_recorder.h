// Where Predict stores the rows it scored with caller-assigned transaction ids (issue 17: live
// scoring is stored so delayed feedback can label it by id). Inference never touches PostgreSQL:
// the rows go to storage's RecordScoredTransactions.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fraud/common/v1/types.pb.h"
#include "fraud/storage/v1/storage.grpc.pb.h"
#include "google/protobuf/repeated_field.h"

namespace fraud::inference {

// Thread-safety: implementations must be safe to call from several threads.
class ScoreRecorder {
 public:
  virtual ~ScoreRecorder() = default;
  // Stores `rows` (features only are sent) with one id per row, their `scores` and the reason
  // codes of their alerts (`explanations`, row = index in `rows`; may be empty). OK only when
  // everything is stored. Errors keep the storage's code for the caller's mistakes
  // (InvalidArgument, AlreadyExists); every other failure is Unavailable "scores were not
  // recorded: ..." (nothing may be assumed stored; retrying the same call is safe).
  virtual absl::Status Record(const common::v1::TransactionBatch& rows,
                              const google::protobuf::RepeatedPtrField<std::string>& ids,
                              const common::v1::ScoreBatch& scores,
                              const google::protobuf::RepeatedPtrField<storage::v1::RowExplanation>&
                                  explanations) = 0;
};

// Calls fraud.storage.v1.StorageService/RecordScoredTransactions with a deadline (a write: the
// stub's channel must carry the service token when storage requires one).
class StorageScoreRecorder final : public ScoreRecorder {
 public:
  // `stub` is not owned and must outlive this object.
  StorageScoreRecorder(storage::v1::StorageService::StubInterface* stub, absl::Duration timeout)
      : stub_(stub), timeout_(timeout) {}
  absl::Status Record(const common::v1::TransactionBatch& rows,
                      const google::protobuf::RepeatedPtrField<std::string>& ids,
                      const common::v1::ScoreBatch& scores,
                      const google::protobuf::RepeatedPtrField<storage::v1::RowExplanation>&
                          explanations) override;

 private:
  storage::v1::StorageService::StubInterface* stub_;
  absl::Duration timeout_;
};

}  // namespace fraud::inference
