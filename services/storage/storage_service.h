// gRPC front of the storage service (fraud.storage.v1.StorageService): converts protos and
// statuses at the edge; the work happens in PgStore (unary and scan calls), UploadWriter
// (the StoreUpload stream) and artifact_store (the model artifact streams). Sync API: every handler blocks on the database.
//
// Until SetReady(true) (main calls it once the schema migrations are applied) every RPC answers
// UNAVAILABLE "storage is starting". With a service token set, every write (StoreUpload,
// RecordPredictions, RegisterModel, SetChampion, AllocateModelVersion, PutModelArtifact, CreateRun,
// UpdateRun, RecordFeedback, RecordScoredTransactions, SubmitReview,
// SetOperatingPoint)
// answers UNAUTHENTICATED unless the call carries it (rpc::kServiceTokenHeader); reads stay
// open (see .github/SECURITY.md). Thread-safe; `pool` and `store` are not owned and must outlive
// the service.
#pragma once

#include <atomic>
#include <string>
#include <utility>

#include "fraud/storage/v1/storage.grpc.pb.h"
#include "services/storage/pg_pool.h"
#include "services/storage/pg_store.h"

namespace fraud::storage {

class StorageService final : public fraud::storage::v1::StorageService::Service {
 public:
  // `service_token`: required on writes when not empty.
  StorageService(PgPool* pool, PgStore* store, std::string service_token = "")
      : pool_(pool), store_(store), service_token_(std::move(service_token)) {}

  void SetReady(bool ready) { ready_.store(ready); }
  bool ready() const { return ready_.load(); }

  grpc::Status StoreUpload(grpc::ServerContext* ctx,
                           grpc::ServerReader<v1::StoreUploadRequest>* reader,
                           v1::StoreUploadResponse* response) override;
  grpc::Status GetUpload(grpc::ServerContext* ctx, const v1::GetUploadRequest* request,
                         v1::GetUploadResponse* response) override;
  grpc::Status ListUploads(grpc::ServerContext* ctx, const v1::ListUploadsRequest* request,
                           v1::ListUploadsResponse* response) override;
  grpc::Status ScanTransactions(grpc::ServerContext* ctx,
                                const v1::ScanTransactionsRequest* request,
                                grpc::ServerWriter<v1::ScanTransactionsResponse>* writer) override;
  grpc::Status GetDataStats(grpc::ServerContext* ctx, const v1::GetDataStatsRequest* request,
                            v1::GetDataStatsResponse* response) override;
  grpc::Status RecordPredictions(grpc::ServerContext* ctx,
                                 const v1::RecordPredictionsRequest* request,
                                 v1::RecordPredictionsResponse* response) override;
  grpc::Status ListPredictions(grpc::ServerContext* ctx, const v1::ListPredictionsRequest* request,
                               v1::ListPredictionsResponse* response) override;
  grpc::Status RegisterModel(grpc::ServerContext* ctx, const v1::RegisterModelRequest* request,
                             v1::RegisterModelResponse* response) override;
  grpc::Status GetModel(grpc::ServerContext* ctx, const v1::GetModelRequest* request,
                        v1::GetModelResponse* response) override;
  grpc::Status ListModels(grpc::ServerContext* ctx, const v1::ListModelsRequest* request,
                          v1::ListModelsResponse* response) override;
  grpc::Status SetChampion(grpc::ServerContext* ctx, const v1::SetChampionRequest* request,
                           v1::SetChampionResponse* response) override;
  grpc::Status GetChampion(grpc::ServerContext* ctx, const v1::GetChampionRequest* request,
                           v1::GetChampionResponse* response) override;
  grpc::Status ListChampionHistory(grpc::ServerContext* ctx,
                                   const v1::ListChampionHistoryRequest* request,
                                   v1::ListChampionHistoryResponse* response) override;
  grpc::Status AllocateModelVersion(grpc::ServerContext* ctx,
                                    const v1::AllocateModelVersionRequest* request,
                                    v1::AllocateModelVersionResponse* response) override;
  grpc::Status PutModelArtifact(grpc::ServerContext* ctx,
                                grpc::ServerReader<v1::PutModelArtifactRequest>* reader,
                                v1::PutModelArtifactResponse* response) override;
  grpc::Status GetModelArtifact(grpc::ServerContext* ctx,
                                const v1::GetModelArtifactRequest* request,
                                grpc::ServerWriter<v1::GetModelArtifactResponse>* writer) override;
  grpc::Status CreateRun(grpc::ServerContext* ctx, const v1::CreateRunRequest* request,
                         v1::CreateRunResponse* response) override;
  grpc::Status UpdateRun(grpc::ServerContext* ctx, const v1::UpdateRunRequest* request,
                         v1::UpdateRunResponse* response) override;
  grpc::Status GetRun(grpc::ServerContext* ctx, const v1::GetRunRequest* request,
                      v1::GetRunResponse* response) override;
  grpc::Status ListRuns(grpc::ServerContext* ctx, const v1::ListRunsRequest* request,
                        v1::ListRunsResponse* response) override;
  grpc::Status RecordFeedback(grpc::ServerContext* ctx,
                              grpc::ServerReader<v1::RecordFeedbackRequest>* reader,
                              v1::RecordFeedbackResponse* response) override;
  grpc::Status ListLabelHistory(grpc::ServerContext* ctx,
                                const v1::ListLabelHistoryRequest* request,
                                v1::ListLabelHistoryResponse* response) override;
  grpc::Status GetRealisedMetrics(grpc::ServerContext* ctx,
                                  const v1::GetRealisedMetricsRequest* request,
                                  v1::GetRealisedMetricsResponse* response) override;
  grpc::Status RecordScoredTransactions(grpc::ServerContext* ctx,
                                        const v1::RecordScoredTransactionsRequest* request,
                                        v1::RecordScoredTransactionsResponse* response) override;
  grpc::Status ListReviewQueue(grpc::ServerContext* ctx, const v1::ListReviewQueueRequest* request,
                               v1::ListReviewQueueResponse* response) override;
  grpc::Status SubmitReview(grpc::ServerContext* ctx, const v1::SubmitReviewRequest* request,
                            v1::SubmitReviewResponse* response) override;
  grpc::Status SetOperatingPoint(grpc::ServerContext* ctx,
                                 const v1::SetOperatingPointRequest* request,
                                 v1::SetOperatingPointResponse* response) override;
  grpc::Status GetOperatingPoint(grpc::ServerContext* ctx,
                                 const v1::GetOperatingPointRequest* request,
                                 v1::GetOperatingPointResponse* response) override;
  grpc::Status ListOperatingPointHistory(grpc::ServerContext* ctx,
                                         const v1::ListOperatingPointHistoryRequest* request,
                                         v1::ListOperatingPointHistoryResponse* response) override;

 private:
  // NotReady before migrations; for writes also Unauthenticated without the service token.
  grpc::Status Admit(const grpc::ServerContext* ctx, bool write) const;

  PgPool* pool_;
  PgStore* store_;
  const std::string service_token_;
  std::atomic<bool> ready_{false};
};

}  // namespace fraud::storage
