// One container as the engine lists it: what the health check compares
// before and after an upgrade. Plain data, no Asio (the fuzz build uses it).
#pragma once

#include <string>

namespace armdock {

struct ContainerSummary {
    std::string id;
    std::string name;
    std::string state;          // "running", "exited", ...
    std::string restartPolicy;  // "always", "unless-stopped", "on-failure", "no", "" when unknown
};

}  // namespace armdock
