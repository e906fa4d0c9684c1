#include "services/common/core/process_memory.h"

#include <malloc.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace fraud {

int64_t PeakRssBytes() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmHWM:") {
      int64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0;
}

bool ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

void ReleaseFreeMemory() { malloc_trim(0); }

void KeepFreedHeap(int64_t bytes, int arena_max) {
  if (bytes <= 0) return;
  // glibc caps the mmap threshold at 32 MiB on 64-bit (HEAP_MAX_SIZE / 2); larger is refused.
  const int threshold = static_cast<int>(std::min<int64_t>(bytes, int64_t{32} << 20));
  mallopt(M_MMAP_THRESHOLD, threshold);
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(std::min<int64_t>(bytes, int64_t{1} << 30)));
  if (arena_max > 0) mallopt(M_ARENA_MAX, arena_max);
}

}  // namespace fraud
