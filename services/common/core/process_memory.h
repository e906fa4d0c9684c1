// This process's memory as the kernel counts it against an instance's limit (Linux /proc).
#pragma once

#include <cstdint>

namespace fraud {

// Peak resident set size since the last ResetPeakRss() (or the start), bytes (VmHWM of
// /proc/self/status; 0 when unavailable).
int64_t PeakRssBytes();
// Resets VmHWM to the current RSS (/proc/self/clear_refs "5"); false when not permitted.
bool ResetPeakRss();
// Returns the free heap memory of every malloc arena to the OS (glibc malloc_trim): a phase's
// freed buffers otherwise stay resident and count against the instance's memory limit.
void ReleaseFreeMemory();

}  // namespace fraud
