// Raw TCP on 127.0.0.1 for tests that speak HTTP by hand (cut-off bodies, idle connections).
#pragma once

namespace fraud::testing {

// A socket connected to 127.0.0.1:port; the caller closes it. -1 (errno set) when the socket
// cannot be created or the connection is refused.
int ConnectLoopback(int port);

}  // namespace fraud::testing
