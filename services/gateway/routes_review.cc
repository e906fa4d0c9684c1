// The review area: the queue of unreviewed alerts (storage's ListReviewQueue) with each item's
// reasons (inference Predict with explain, one batched call per page) and the serving model's
// per-feature training distribution, and analysts' dispositions (storage's SubmitReview).
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/gateway/gateway_internal.h"

namespace fraud::gateway {

namespace {

using StorageStub = Gateway::StorageStub;

constexpr char kDefaultReviewer[] = "admin";
// Reasons per queue item.
constexpr int kReviewReasons = 5;

// The items' features as one batch, the explanation per item (keyed by index) and the version
// that explained them; an error text instead when inference could not.
void Explain(Gateway& gw, const Call& call, const storagepb::ListReviewQueueResponse& queue,
             json* doc) {
  if (gw.inference() == nullptr) {
    (*doc)["explanationError"] = "inference is not configured";
    return;
  }
  inferencepb::PredictRequest request;
  request.set_explain(true);
  request.set_top_k(kReviewReasons);
  common::v1::TransactionBatch* rows = request.mutable_rows();
  rows->set_num_rows(static_cast<uint32_t>(queue.items_size()));
  for (const storagepb::ReviewItem& item : queue.items()) {
    rows->mutable_features()->Add(item.features().begin(), item.features().end());
  }
  grpc::ClientContext ctx;
  gw.Prepare(call, &ctx);
  inferencepb::PredictResponse response;
  const grpc::Status s = gw.inference()->Predict(&ctx, request, &response);
  if (!s.ok() || response.explanations_size() != queue.items_size()) {
    // The queue is still useful without reasons: say why they are missing.
    (*doc)["explanationError"] =
        s.ok() ? std::string("inference returned no explanations")
               : std::string(BackendStatus("inference", "Predict", s).message());
    return;
  }
  (*doc)["explanationModelVersion"] = std::to_string(response.scores().model_version());
  for (int i = 0; i < queue.items_size(); ++i) {
    (*doc)["items"][i]["explanation"] = json::parse(ToJson(response.explanations(i)));
  }
}

// The per-feature training distribution (manifest reference: quantile bin edges and the share
// of rows in each bin) of the serving model, else of the version that flagged the first item.
void Population(Gateway& gw, const Call& call, const storagepb::ListReviewQueueResponse& queue,
                json* doc) {
  common::v1::ModelManifest manifest;
  int64_t version = 0;
  if (gw.inference() != nullptr) {
    grpc::ClientContext ctx;
    gw.Prepare(call, &ctx);
    inferencepb::GetModelResponse serving;
    if (gw.inference()->GetModel(&ctx, inferencepb::GetModelRequest(), &serving).ok()) {
      manifest = serving.manifest();
      version = serving.version();
    }
  }
  if (manifest.reference_size() == 0 && !queue.items().empty()) {
    grpc::ClientContext ctx;
    gw.Prepare(call, &ctx);
    storagepb::GetModelRequest request;
    request.set_version(queue.items(0).model_version());
    storagepb::GetModelResponse registered;
    if (gw.storage()->GetModel(&ctx, request, &registered).ok()) {
      manifest = registered.model().manifest();
      version = registered.model().version();
    }
  }
  if (manifest.reference_size() == 0) return;
  json features = json::array();
  for (const common::v1::FeatureReference& f : manifest.reference()) {
    features.push_back(json::parse(ToJson(f)));
  }
  (*doc)["population"] = {{"modelVersion", std::to_string(version)}, {"features", features}};
}

void ReviewQueue(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  storagepb::ListReviewQueueRequest request;
  int32_t page_size = 0;
  int64_t model_version = 0;
  int64_t upload_id = 0;
  if (!QueryInt(call, "page_size", kMaxPageSize, &page_size) ||
      !QueryInt(call, "model_version", kMaxInt64, &model_version) ||
      !QueryInt(call, "upload_id", kMaxInt64, &upload_id)) {
    return;
  }
  request.set_page_size(page_size);
  request.set_model_version(model_version);
  request.set_upload_id(upload_id);
  request.set_page_token(Param(call.req, "page_token"));
  storagepb::ListReviewQueueResponse queue;
  {
    grpc::ClientContext ctx;
    gw.Prepare(call, &ctx);
    const grpc::Status s = gw.storage()->ListReviewQueue(&ctx, request, &queue);
    if (!s.ok()) return ReplyError(call, BackendStatus("storage", "ListReviewQueue", s));
  }
  json doc = json::parse(ToJson(queue));
  if (queue.items_size() > 0) Explain(gw, call, queue, &doc);
  Population(gw, call, queue, &doc);
  ReplyJson(call, doc.dump());
}

// "fraud", "not_fraud" / "not-fraud", "unsure" (any case) for the enum's names.
void NormalizeDisposition(json* body) {
  auto it = body->find("disposition");
  if (it == body->end() || !it->is_string()) return;
  std::string d = absl::AsciiStrToLower(it->get<std::string>());
  for (char& c : d) {
    if (c == '-') c = '_';
  }
  if (d == "fraud" || d == "not_fraud" || d == "unsure") {
    *it = absl::StrCat("REVIEW_DISPOSITION_", absl::AsciiStrToUpper(d));
  }
}

void SubmitReview(Gateway& gw, Call& call) {
  if (!Require(call, gw.storage(), "storage")) return;
  json body = json::parse(call.body.empty() ? "{}" : call.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object()) {
    NormalizeDisposition(&body);
    call.body = body.dump();
  }
  storagepb::SubmitReviewRequest request;
  if (absl::Status s = ParseBody(call, &request); !s.ok()) return ReplyError(call, s);
  if (request.actor().empty()) {
    const std::string actor = Param(call.req, "actor");
    request.set_actor(actor.empty() ? kDefaultReviewer : actor.substr(0, 256));
  }
  gw.Forward(call, gw.storage(), "storage", "SubmitReview", &StorageStub::SubmitReview, request);
}

}  // namespace

std::vector<Route> internal::ReviewRoutes() {
  return {
      {.spec = {.method = "GET",
                .path = "/api/v1/review/queue",
                .operation_id = "listReviewQueue",
                .summary = "Unreviewed alerts, newest upload first then score descending, with "
                           "paging; each item with its top 5 reasons (explained by the serving "
                           "model in one batched call; left out with explanationError when "
                           "inference is unavailable) and the serving model's per-feature "
                           "training distribution (population)",
                .tag = "review",
                .response_schema = "ReviewQueueResponse",
                .query = {{.name = "page_size",
                           .type = "integer",
                           .description = "Items per page (default 50, at most 500)"},
                          {.name = "page_token",
                           .type = "string",
                           .description = "nextPageToken of the previous page"},
                          {.name = "model_version",
                           .type = "integer",
                           .description = "Only alerts of this model version"},
                          {.name = "upload_id",
                           .type = "integer",
                           .description = "Only alerts of rows of this upload"}}},
       .handler = ReviewQueue},
      {.spec = {.method = "POST",
                .path = "/api/v1/review",
                .operation_id = "submitReview",
                .summary = "An analyst's disposition of a transaction (upload_id + line or "
                           "transaction_id): fraud / not_fraud label it (source review, as "
                           "feedback does), unsure only takes it out of the queue",
                .tag = "review",
                .access = Access::kAdmin,
                .body = BodyKind::kJson,
                .request_schema = "fraud.storage.v1.SubmitReviewRequest",
                .response_schema = "fraud.storage.v1.SubmitReviewResponse",
                .query = {{.name = "actor",
                           .type = "string",
                           .description = "Reviewer when the body names none (default admin)"}}},
       .handler = SubmitReview},
  };
}

}  // namespace fraud::gateway
