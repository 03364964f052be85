// The seam between the transaction and systemd: stop, start and restart units
// and read their state. The real implementation talks to
// org.freedesktop.systemd1.Manager over D-Bus (daemon/systemd/); tests use a
// fake. Every method throws UnitJobFailed when the job does not end in "done".
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "async.hpp"

namespace armdock {

class UnitJobFailed : public std::runtime_error {
public:
    UnitJobFailed(const std::string& unit, const std::string& result, const std::string& message)
        : std::runtime_error(message), unit_(unit), result_(result)
    {
    }
    const std::string& unit() const noexcept { return unit_; }
    const std::string& result() const noexcept { return result_; }  // JobRemoved result: failed, timeout, canceled, dependency, ...

private:
    std::string unit_;
    std::string result_;
};

class UnitControl {
public:
    virtual ~UnitControl() = default;

    // Each call waits for the job's JobRemoved (subscribed before the call)
    // and throws UnitJobFailed unless its result is "done" within `timeout`.
    virtual Task<void> stopUnit(const std::string& unit, std::chrono::milliseconds timeout) = 0;
    virtual Task<void> startUnit(const std::string& unit, std::chrono::milliseconds timeout) = 0;
    virtual Task<void> restartUnit(const std::string& unit, std::chrono::milliseconds timeout) = 0;

    // ActiveState ("active", "activating", "failed", "inactive", ...).
    virtual Task<std::string> activeState(const std::string& unit) = 0;
    // ExecMainPID of a service (0 when not running).
    virtual Task<std::uint32_t> mainPid(const std::string& unit) = 0;
};

}  // namespace armdock
