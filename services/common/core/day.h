// The day of a transaction: floor(Time / 86400), Time being seconds since the dataset's first
// transaction. Realised metrics, the what-if window and the label-delay replay all count days this
// way (storage's SQL spells it floor(time / 86400)).
#pragma once

#include <cmath>
#include <cstdint>

namespace fraud::layout {

inline constexpr double kSecondsPerDay = 86400;

inline int64_t DayOf(double time) {
  return static_cast<int64_t>(std::floor(time / kSecondsPerDay));
}

}  // namespace fraud::layout
