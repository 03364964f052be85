// Drives an sdbus-c++ connection from the agent's io_context (the way
// sdbusplus does): a stream_descriptor on the bus fd (released, never closed:
// sd-bus owns it) waits for the events sd-bus asks for, a steady_timer for
// its timeout; on either, process pending messages until none is left, then
// re-arm. Never calls enterEventLoop*.
#pragma once

#include <sdbus-c++/sdbus-c++.h>

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>

namespace armdock {

// "system", "user", or a D-Bus address ("unix:path=...").
std::unique_ptr<sdbus::IConnection> openBusConnection(const std::string& busSetting);

class AsioBusDriver {
public:
    AsioBusDriver(boost::asio::io_context& io, sdbus::IConnection& connection);
    ~AsioBusDriver();
    AsioBusDriver(const AsioBusDriver&) = delete;
    AsioBusDriver& operator=(const AsioBusDriver&) = delete;

    // Processes what is pending and re-arms the waits (soon, from the loop:
    // never inside the caller). Call after making a bus call or emitting a
    // signal outside a bus callback (from a timer or a coroutine), or its
    // reply timeout never fires. Cheap; calls made before the loop runs
    // coalesce into one.
    void kick();

    // When sd-bus reports an error (the bus went away), the driver logs it,
    // stops waiting and rethrows it out of io_context::run(): main treats
    // that as fatal and exits non-zero, so systemd restarts the agent.

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;  // shared: pending waits hold weak references
};

}  // namespace armdock
