// When a process started, as the kernel counts it: field 22 of
// /proc/PID/stat (clock ticks since boot). A PID that is reused by another
// process has another start time, so PID and start time together name one
// process.
#pragma once

#include <sys/types.h>

#include <optional>

namespace armdock {

// nullopt when the process is gone or /proc cannot be read.
std::optional<unsigned long long> processStartTime(pid_t pid);

}  // namespace armdock
