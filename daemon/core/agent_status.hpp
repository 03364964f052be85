// What the agent shows on the bus: the six properties of io.armdock.Agent1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vocabulary.hpp"

namespace armdock {

struct AgentStatus {
    AgentState state = AgentState::Idle;
    std::uint32_t percent = 0;
    std::string message = std::string(toString(AgentState::Idle));
    std::string transaction;
    std::string currentVersion;
    TransactionResult lastResult = TransactionResult::None;
    std::string lastError;
    // Supervision between transactions (engine_monitor.hpp).
    bool healthy = true;
    std::uint64_t lastHealthCheckUsec = 0;
    std::uint32_t engineRestarts = 0;
};

// Told of every change, on the event loop. The D-Bus glue turns these into
// PropertiesChanged and Finished; the systemd glue into STATUS= lines.
class AgentObserver {
public:
    virtual ~AgentObserver() = default;
    // Names of the properties that changed ("State", "Progress", ...).
    virtual void propertiesChanged(const std::vector<std::string>& names) = 0;
    virtual void finished(const std::string& transaction, TransactionResult result, const std::string& message) = 0;
    virtual void healthChanged(bool /*healthy*/, const std::string& /*reason*/) {}
    // After every reload, also one refused as busy or for a broken config:
    // what the config names outside it (the groups in /etc/group) may have changed.
    virtual void reloaded() {}
};

}  // namespace armdock
