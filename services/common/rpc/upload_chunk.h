// The size of the messages a CSV file travels in on ingest's Upload stream (the gateway's
// forwarder, fraudctl upload, the replay client).
//
// Every message costs ingest and its sender a fixed amount of CPU (a sync Write / Read, gRPC's
// per-message bookkeeping). In the upload bench's 1,139,228-row file (600 MB), 64 KiB messages
// cost ingest 2.16-2.24 and the gateway 1.03-1.09 CPU s; 256 KiB 1.93 and 0.95-0.98; 1 MiB
// 1.75-1.93 and 0.93-0.99, but with ingest's peak RSS up to 125 MB (95-107 at 64 KiB, 94-97 at
// 256 KiB). Memory stays flat either way: a sender holds one chunk.
#pragma once

#include <cstddef>

namespace fraud::rpc {

inline constexpr size_t kUploadChunkBytes = 256 * 1024;

}  // namespace fraud::rpc
