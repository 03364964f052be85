// UnitControl over org.freedesktop.systemd1.Manager. Subscribe()s once, keeps
// a JobRemoved match installed before any StopUnit/StartUnit/RestartUnit call
// ("replace" mode), and completes each call's awaitable when its job's
// JobRemoved arrives (result "done" -> success, anything else ->
// UnitJobFailed naming the unit, the result and what to look at:
// `journalctl -u UNIT`). A deadline timer fails the wait with "timeout".
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <boost/asio/io_context.hpp>

#include <map>
#include <memory>

#include "core/unit_control.hpp"

namespace armdock {

class SystemdUnits final : public UnitControl {
public:
    SystemdUnits(boost::asio::io_context& io, sdbus::IConnection& connection);
    ~SystemdUnits() override;

    Task<void> stopUnit(const std::string& unit, std::chrono::milliseconds timeout) override;
    Task<void> startUnit(const std::string& unit, std::chrono::milliseconds timeout) override;
    Task<void> restartUnit(const std::string& unit, std::chrono::milliseconds timeout) override;
    Task<std::string> activeState(const std::string& unit) override;
    Task<std::uint32_t> mainPid(const std::string& unit) override;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace armdock
