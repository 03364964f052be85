// sd_notify from the event loop: READY=1, STATUS= lines, STOPPING=1 and the
// watchdog (WATCHDOG=1 every quarter of WATCHDOG_USEC on a steady_timer, so a
// stuck loop stops feeding it). Does nothing when NOTIFY_SOCKET is unset.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <string>

namespace armdock {

class ServiceNotifier {
public:
    explicit ServiceNotifier(boost::asio::io_context& io);
    void ready();
    void status(const std::string& line);
    void stopping();
    void reloading();
    void startWatchdog();  // no-op unless WATCHDOG_USEC is set for this PID

private:
    void armWatchdog();
    boost::asio::steady_timer timer_;
    std::chrono::microseconds interval_{0};
};

}  // namespace armdock
