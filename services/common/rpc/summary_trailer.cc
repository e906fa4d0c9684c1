#include "services/common/rpc/summary_trailer.h"

#include <utility>

namespace fraud::rpc {

std::string SerializeSummaryForTrailer(ingest::v1::UploadSummary summary) {
  // A failed upload has no scores; drop whatever is not needed to explain the failure.
  summary.clear_top_suspicious();
  summary.clear_score_histogram();
  summary.clear_metrics();
  summary.mutable_report()->clear_drift();
  std::string out = summary.SerializeAsString();
  while (out.size() > kMaxSummaryTrailerBytes && summary.errors_size() > 1) {
    summary.mutable_errors()->RemoveLast();
    summary.set_errors_truncated(true);
    out = summary.SerializeAsString();
  }
  if (out.size() > kMaxSummaryTrailerBytes) {
    constexpr size_t kShortReason = 512;
    for (auto& e : *summary.mutable_errors()) {
      if (e.reason().size() > kShortReason) {
        // Cut at a UTF-8 character boundary so the string stays valid.
        size_t cut = kShortReason;
        while (cut > 0 && (static_cast<unsigned char>(e.reason()[cut]) & 0xC0) == 0x80) --cut;
        e.set_reason(e.reason().substr(0, cut) + "...");
      }
    }
    out = summary.SerializeAsString();
  }
  return out;
}

void AttachSummaryTrailer(grpc::ServerContext* ctx, const ingest::v1::UploadSummary& summary) {
  ctx->AddTrailingMetadata(kSummaryTrailer, SerializeSummaryForTrailer(summary));
}

std::optional<ingest::v1::UploadSummary> SummaryFromTrailers(const grpc::ClientContext& ctx) {
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find(kSummaryTrailer);
  if (it == trailers.end()) return std::nullopt;
  ingest::v1::UploadSummary summary;
  if (!summary.ParseFromArray(it->second.data(), static_cast<int>(it->second.size()))) {
    return std::nullopt;
  }
  return summary;
}

}  // namespace fraud::rpc
