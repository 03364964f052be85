#include "fault_point.hpp"

#if ARMDOCK_FAULT_INJECTION

#include <csignal>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

namespace armdock {

void faultPoint(FaultPointName point)
{
    const char* name = point.name();
    const char* wanted = std::getenv("ARMDOCK_FAULT");
    if (wanted == nullptr || std::strcmp(wanted, name) != 0)
        return;
    spdlog::critical("fault point {}: killing myself", name);
    spdlog::default_logger()->flush();
    std::raise(SIGKILL);
}

}  // namespace armdock

#endif
