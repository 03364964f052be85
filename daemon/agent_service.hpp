// The agent as a running service: the loop, the bus, the agent and its
// systemd glue built in order, the bus name requested last, then the loop runs
// until the service stops (systemd/service_lifecycle.hpp).
#pragma once

#include "core/config.hpp"

namespace armdock {

// Tunes glibc's allocator for a daemon that idles between bursts of file work.
void tuneAllocator();

// Runs until SIGTERM; returns the exit code (1 when the start-up failed).
int runAgentService(const Config& config);

}  // namespace armdock
