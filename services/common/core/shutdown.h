// Stop-signal handling without signal handlers: block SIGINT/SIGTERM in every thread (call before
// any thread starts), then sigwait() for them on the main thread.
#pragma once

#include <csignal>

namespace fraud {

// Blocks SIGINT and SIGTERM for the calling thread and every thread it creates later.
sigset_t BlockStopSignals();

// Waits until one of `signals` arrives; returns its number.
int WaitForSignal(const sigset_t& signals);

}  // namespace fraud
