// Text formatting shared by fraudctl's commands, so every table and summary writes numbers, sizes,
// times and metrics the same way. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "fraud/common/v1/types.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace fraud::cli {

// 1234567 -> "1,234,567".
std::string WithThousands(int64_t n);
// 27262976 -> "26.0 MiB"; below 1 KiB: "512 B".
std::string HumanBytes(int64_t bytes);
// 0.00123 -> "0.123%".
std::string Percent(double fraction);
// "2024-01-02 03:04:05" (UTC, whole seconds); "-" for an unset (zero) timestamp.
std::string UtcTime(const google::protobuf::Timestamp& t);
// The AUPRC with 4 decimals; "-" when no row was evaluated, "n/a" when the rows had one class.
std::string AuprcText(const common::v1::ClassificationMetrics& m);

}  // namespace fraud::cli
