#include "held_restart.hpp"

#include <algorithm>

namespace armdock {

std::vector<RestartBatch> heldRestarts(const std::vector<std::string>& units, const std::string& socketUnit,
                                       const std::string& service, const std::vector<std::string>& socketPartOf)
{
    const bool serviceTakesSocket = std::find(socketPartOf.begin(), socketPartOf.end(), service) != socketPartOf.end();
    RestartBatch others;
    bool serviceRestarts = false;
    for (const auto& unit : units) {
        if (unit == socketUnit)
            continue;  // held: it keeps listening
        if (unit == service && serviceTakesSocket)
            serviceRestarts = true;
        else
            others.units.push_back(unit);
    }
    std::vector<RestartBatch> batches;
    if (!others.units.empty())
        batches.push_back(std::move(others));
    if (serviceRestarts)
        batches.push_back({{service}, JobMode::IgnoreDependencies});
    return batches;
}

}  // namespace armdock
