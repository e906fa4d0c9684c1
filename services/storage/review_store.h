// The review queue: the database side of ListReviewQueue and SubmitReview (see
// migrations/0005_review_queue.sql). Independent of gRPC.
//
// Queue: alerts (predictions with decision true) of rows without a review disposition, newest
// upload first, then score descending (then line, then model version, all descending), read
// backwards from the partial index predictions_alerts, so a page costs about page_size index
// entries plus the reviewed alerts it skips. Without a model_version filter a row flagged by
// several versions appears once (its highest score; ties: the newest version).
//
// SubmitReview: FRAUD / NOT_FRAUD go through FeedbackWriter (label 1 / 0, source "review"), and
// the disposition row is inserted in the same database transaction before it commits; UNSURE
// inserts only the disposition. Thread-safe (one leased connection per call).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fraud/storage/v1/storage.pb.h"
#include "services/storage/pg_pool.h"

namespace fraud::storage {

inline constexpr int kDefaultReviewPageSize = 50;
inline constexpr int kMaxReviewPageSize = 500;
// Label source of the label events a review appends.
inline constexpr char kReviewLabelSource[] = "review";

// The page query of ListReviewQueue (parameters in review_store.cc), exposed so a test can
// EXPLAIN it and check that it reads the partial index predictions_alerts.
extern const char kReviewQueuePageSql[];

// One page of the queue. InvalidArgument for a page_size outside 0..kMaxReviewPageSize, a
// negative model_version or upload_id, or a page_token that is not one this function returned.
absl::StatusOr<fraud::storage::v1::ListReviewQueueResponse> ListReviewQueue(
    PgPool& pool, const fraud::storage::v1::ListReviewQueueRequest& request);

// Checks the request without the database: identification, note and the label row as
// RecordFeedback checks them (CheckLabelFeedback), and a known disposition. InvalidArgument
// "field F: reason".
absl::Status ValidateSubmitReview(const fraud::storage::v1::SubmitReviewRequest& request);

// Records one disposition (see above). The validation errors above; NotFound when the
// transaction is not stored (nothing is stored); the pg_errors mapping for database failures.
// `deadline` bounds waiting for a pooled connection.
absl::StatusOr<fraud::storage::v1::SubmitReviewResponse> SubmitReview(
    PgPool& pool, absl::Time deadline, const fraud::storage::v1::SubmitReviewRequest& request);

}  // namespace fraud::storage
