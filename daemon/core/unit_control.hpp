// The seam between the transaction and systemd: stop, start and restart units
// and read their state. The real implementation talks to
// org.freedesktop.systemd1.Manager over D-Bus (daemon/systemd/); tests use a
// fake. Every method throws UnitJobFailed when the job does not end in "done".
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "async.hpp"
#include "vocabulary.hpp"

namespace armdock {

// The mode of a job (systemd's StartUnit/RestartUnit "mode" argument).
// IgnoreDependencies: the job alone, no unit pulled in or taken down with it
// (a socket PartOf= the service stays listening through its restart).
enum class JobMode { Replace, IgnoreDependencies };

template <>
struct Words<JobMode> {
    using enum JobMode;
    static constexpr std::array<Word<JobMode>, 2> table{{{Replace, "replace"}, {IgnoreDependencies, "ignore-dependencies"}}};
};
static_assert(tableIsWhole<JobMode>(2));

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
    // Starts several units as `systemctl start A B` does: the systemd
    // implementation enqueues every job, in this order, before it waits for
    // any (systemd orders them by their After=/Before=, and a socket unit is
    // ordered before the service it activates), then waits for all. Throws
    // the failure of the first unit in the list whose job did not end in
    // "done". This default starts them one after the other.
    virtual Task<void> startUnits(std::vector<std::string> units, std::chrono::milliseconds timeout)
    {
        for (const auto& unit : units)
            co_await startUnit(unit, timeout);
    }

    // Stops several units as `systemctl stop A B` does, the same way: every
    // job enqueued in this order, then all awaited. This default stops them
    // one after the other.
    virtual Task<void> stopUnits(std::vector<std::string> units, std::chrono::milliseconds timeout)
    {
        for (const auto& unit : units)
            co_await stopUnit(unit, timeout);
    }

    // Restarts several units (RestartUnit in `mode`), enqueued and awaited
    // as startUnits does. This default restarts them one after the other
    // and knows only JobMode::Replace.
    virtual Task<void> restartUnits(std::vector<std::string> units, std::chrono::milliseconds timeout, JobMode mode)
    {
        if (mode != JobMode::Replace)
            throw std::logic_error("this UnitControl restarts units in \"replace\" mode only");
        for (const auto& unit : units)
            co_await restartUnit(unit, timeout);
    }

    // The units a unit is PartOf= (a stop or restart of those takes it along).
    virtual Task<std::vector<std::string>> partOf(const std::string& unit) = 0;

    // ActiveState ("active", "activating", "failed", "inactive", ...).
    virtual Task<std::string> activeState(const std::string& unit) = 0;
    // ExecMainPID of a service (0 when not running).
    virtual Task<std::uint32_t> mainPid(const std::string& unit) = 0;
};

}  // namespace armdock
