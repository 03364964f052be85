// [docker] hold_socket: which units restart, in which job batches and modes,
// while the engine's socket keeps listening (docs/design.md, "Holding the
// socket"). Pure logic: the transaction reads the socket's PartOf= from
// systemd and runs the batches.
#pragma once

#include <string>
#include <vector>

#include "unit_control.hpp"

namespace armdock {

struct RestartBatch {
    std::vector<std::string> units;  // restarted together (RestartUnit each, then all awaited)
    JobMode mode = JobMode::Replace;

    bool operator==(const RestartBatch&) const = default;
};

// The restarts that replace "stop all, start all" for `units` (a change's
// units, Config::unitsOf): every unit but the socket restarts; systemd orders
// a "replace" batch by After=. When the socket is PartOf= the service (Docker
// 1.10's unit), restarting the service in "replace" mode would restart the
// socket with it, so the service restarts alone in "ignore-dependencies" mode,
// after the other units (that mode ignores ordering too).
std::vector<RestartBatch> heldRestarts(const std::vector<std::string>& units, const std::string& socketUnit,
                                       const std::string& service, const std::vector<std::string>& socketPartOf);

}  // namespace armdock
