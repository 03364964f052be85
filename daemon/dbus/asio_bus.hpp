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

    // Processes what is pending and re-arms the waits. Call after making a
    // bus call outside a bus callback (from a timer or a coroutine), or its
    // reply timeout never fires.
    void kick();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace armdock
