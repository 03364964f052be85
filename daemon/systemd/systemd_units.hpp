// UnitControl over org.freedesktop.systemd1.Manager. Subscribe()s once, keeps
// a JobRemoved match installed before any StopUnit/StartUnit/RestartUnit call
// ("replace" mode unless a restart asks for another), and completes each call's awaitable when its job's
// JobRemoved arrives (result "done" -> success, anything else ->
// UnitJobFailed naming the unit, the result and what to look at:
// `journalctl -u UNIT`). A deadline timer fails the wait with "timeout"; a
// method error (NoSuchUnit, AccessDenied...) fails it with result "error" and
// the D-Bus error's name and message. A stop job still running at its
// deadline is escalated first: KillUnit(unit, "all", SIGKILL), then up to
// killWait more for that same job before the wait fails with "timeout".
//
// Runs on the io_context thread only. The proxy lives on the agent's one
// connection, driven by `driver`; every call from a coroutine kicks it.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <memory>

#include "core/unit_control.hpp"
#include "dbus/asio_bus.hpp"

namespace armdock {

class SystemdUnits final : public UnitControl {
public:
    // How long a stop job may still take once its deadline passed and every
    // process of the unit got SIGKILL.
    static constexpr std::chrono::seconds defaultKillWait{15};

    // Installs the JobRemoved handler and sends Subscribe (asynchronously; an
    // error is logged). `connection` and `driver` must outlive this object.
    SystemdUnits(boost::asio::io_context& io, sdbus::IConnection& connection, AsioBusDriver& driver,
                 std::chrono::milliseconds killWait = defaultKillWait);
    SystemdUnits(const SystemdUnits&) = delete;
    SystemdUnits& operator=(const SystemdUnits&) = delete;
    ~SystemdUnits() override;

    Task<void> stopUnit(const std::string& unit, std::chrono::milliseconds timeout) override;
    Task<void> startUnit(const std::string& unit, std::chrono::milliseconds timeout) override;
    Task<void> restartUnit(const std::string& unit, std::chrono::milliseconds timeout) override;
    Task<void> startUnits(std::vector<std::string> units, std::chrono::milliseconds timeout) override;
    Task<void> stopUnits(std::vector<std::string> units, std::chrono::milliseconds timeout) override;
    Task<void> restartUnits(std::vector<std::string> units, std::chrono::milliseconds timeout, JobMode mode) override;
    Task<std::vector<std::string>> partOf(const std::string& unit) override;
    Task<std::string> activeState(const std::string& unit) override;
    Task<std::uint32_t> mainPid(const std::string& unit) override;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;  // shared: bus callbacks hold weak references
};

}  // namespace armdock
