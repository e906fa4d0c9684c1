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
// Lets glibc malloc keep freed heap memory for reuse: blocks under `bytes` come from the arenas
// (not a private mmap each), an arena hands memory back only when more than `bytes` is free at
// its top, and at most `arena_max` arenas exist (0 = glibc's default of 8 per core). For
// services that allocate and free megabyte-sized messages for every batch (protobuf fields,
// gRPC's serialisation slices): with glibc's defaults each such buffer was mapped, zeroed by
// the kernel page by page and unmapped again, which was 60% of ingest's CPU in an upload.
// bytes = 0 leaves malloc's defaults.
void KeepFreedHeap(int64_t bytes, int arena_max);

}  // namespace fraud
