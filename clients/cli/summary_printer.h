// Human-readable and JSON renderings of an ingest UploadSummary for fraudctl upload/validate.
#pragma once

#include <ostream>
#include <string>

#include "fraud/ingest/v1/ingest.pb.h"

namespace fraud::cli {

// What the summary describes, for the first line.
enum class SummaryKind { kUpload, kValidation, kFailure };

// Counts, errors table, scoring, metrics, top suspicious rows and the data report.
void PrintSummary(const ingest::v1::UploadSummary& summary, SummaryKind kind, std::ostream& out);
// The summary as proto JSON (the gateway's format), pretty-printed, with a trailing newline.
std::string SummaryJson(const ingest::v1::UploadSummary& summary);

}  // namespace fraud::cli
