// The review area: the queue of unreviewed alerts (storage's ListReviewQueue) with each item's
// reasons (the explanation stored with the alert; for alerts without one, inference Predict
// with explain, one batched call per page) and the serving model's per-feature training
// distribution, and analysts' dispositions (storage's SubmitReview). AttachExplanations, shared
// with an upload's predictions route, lives here.
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/gateway/gateway_internal.h"

namespace fraud::gateway {

void internal::AttachExplanations(Gateway& gw, const Call& call,
                                  const std::vector<ExplainableRow>& rows, json* items,
                                  json* doc) {
  std::vector<size_t> missing;
  for (size_t i = 0; i < rows.size(); ++i) {
    json& item = (*items)[i];
    if (rows[i].stored) {
      item["explanationSource"] = "stored";
      item["explanationModelVersion"] = std::to_string(rows[i].model_version);
    } else if (rows[i].wanted) {
      missing.push_back(i);
    }
  }
  if (missing.empty()) return;
  if (gw.inference() == nullptr) {
    (*doc)["explanationError"] = "inference is not configured";
    return;
  }
  inferencepb::PredictRequest request;
  request.set_explain(true);
  request.set_top_k(kComputedReasons);
  common::v1::TransactionBatch* batch = request.mutable_rows();
  batch->set_num_rows(static_cast<uint32_t>(missing.size()));
  for (size_t i : missing) {
    batch->mutable_features()->Add(rows[i].features->begin(), rows[i].features->end());
  }
  grpc::ClientContext ctx;
  gw.Prepare(call, &ctx);
  inferencepb::PredictResponse response;
  const grpc::Status s = gw.inference()->Predict(&ctx, request, &response);
  if (!s.ok() || response.explanations_size() != static_cast<int>(missing.size())) {
    // The page is still useful without these reasons: say why they are missing.
    (*doc)["explanationError"] =
        s.ok() ? std::string("inference returned no explanations")
               : std::string(BackendStatus("inference", "Predict", s).message());
    return;
  }
  const std::string version = std::to_string(response.scores().model_version());
  (*doc)["explanationModelVersion"] = version;
  for (size_t k = 0; k < missing.size(); ++k) {
    json& item = (*items)[missing[k]];
    item["explanation"] = json::parse(ToJson(response.explanations(static_cast<int>(k))));
    item["explanationSource"] = "computed";
    item["explanationModelVersion"] = version;
  }
}

namespace {

using StorageStub = Gateway::StorageStub;

constexpr char kDefaultReviewer[] = "admin";

// Every item's reasons: the stored ones (by the flagging version, at scoring time), else
// computed by the serving model (AttachExplanations).
void Explain(Gateway& gw, const Call& call, const storagepb::ListReviewQueueResponse& queue,
             json* doc) {
  std::vector<ExplainableRow> rows;
  for (const storagepb::ReviewItem& item : queue.items()) {
    ExplainableRow r;
    r.features = &item.features();
    r.stored = item.has_explanation();
    r.model_version = item.model_version();
    r.wanted = true;
    rows.push_back(r);
  }
  AttachExplanations(gw, call, rows, &(*doc)["items"], doc);
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
                           "paging; each item with its reasons: the explanation stored with the "
                           "alert by the version that flagged it (explanationSource stored), "
                           "else its top 5 reasons explained by the serving model in one "
                           "batched call (computed; left out with explanationError when "
                           "inference is unavailable), and the serving model's per-feature "
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
