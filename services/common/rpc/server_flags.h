// Flags shared by every service binary, and the one place they are read. Linked only by the
// services' main.cc (flags are globals, TotW #103): libraries receive plain option structs.
//
// Every flag also reads its default from FRAUD_<FLAG> in the environment (see core/config.h):
//   --host --port --metrics_port --max_threads --grace_period_seconds --log_level
//   --admin_token --tls_cert --tls_key --tls_ca --heap_keep_mb
#pragma once

#include <string>

#include "absl/time/time.h"
#include "services/common/rpc/channel.h"
#include "services/common/rpc/server_runner.h"

namespace fraud::rpc {

// Parses the command line after loading env defaults; exits with a message on bad values.
// `default_port` / `default_metrics_port` apply when --port / --metrics_port are not given.
void InitService(int argc, char** argv, const std::string& service_name, const std::string& usage);
// Applies --heap_keep_mb (KeepFreedHeap with 2 arenas). Called by the services that stream
// megabyte-sized messages (gateway, ingest, storage, inference); not by training, which returns
// its memory after each phase itself.
void KeepFreedHeapFromFlags();

ServerOptions ServerOptionsFromFlags(const std::string& service_name, int default_port,
                                     int default_metrics_port);
absl::Duration GracePeriodFromFlags();
// Bearer token required by admin RPCs ("" = no auth).
std::string AdminTokenFromFlags();
// CA file for outgoing TLS channels ("" = plaintext).
std::string TlsCaFromFlags();
// The deployment's service token ("" = none): sent on outgoing channels, required by storage
// for writes.
std::string ServiceTokenFromFlags();
// Options for a channel to `target` with this process's --tls_ca and --service_token.
ChannelOptions ChannelOptionsFromFlags(const std::string& target);

}  // namespace fraud::rpc
