// Named fault points at each durable step of a transaction. Compiled in only
// with -Dfault_injection=true (tests): when the environment variable
// ARMDOCK_FAULT equals the point's name, the agent kills itself with SIGKILL
// there, so a test can prove the recovery from a crash at that very step.
#pragma once

#include "armdock_build_config.h"

namespace armdock {

#if ARMDOCK_FAULT_INJECTION
void faultPoint(const char* name);
#else
inline void faultPoint(const char*) {}  // compiled to nothing in a shipped build
#endif

}  // namespace armdock
