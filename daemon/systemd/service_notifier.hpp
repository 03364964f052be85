// sd_notify from the event loop: READY=1, STATUS= lines, STOPPING=1,
// RELOADING=1 and the watchdog (WATCHDOG=1 every quarter of WATCHDOG_USEC on
// a steady_timer, so a stuck loop stops feeding it). Does nothing when
// NOTIFY_SOCKET is unset.
//
// It can also follow the agent (Agent::addObserver(&notifier) and
// followStatus(agent.status())): every status change becomes one STATUS= line.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "core/agent_status.hpp"

namespace armdock {

class ServiceNotifier final : public AgentObserver {
public:
    explicit ServiceNotifier(boost::asio::io_context& io);
    ~ServiceNotifier() override;
    void ready();
    void status(const std::string& line);
    void stopping();
    void reloading();  // follow with ready() when the reload is done
    void startWatchdog();  // no-op unless WATCHDOG_USEC is set for this PID

    // STATUS= lines from this status object (it must outlive the notifier;
    // Agent::status() is such a reference).
    void followStatus(const AgentStatus& status);
    void propertiesChanged(const std::vector<std::string>& names) override;
    void finished(const std::string& transaction, TransactionResult result, const std::string& message) override;

private:
    void armWatchdog();
    boost::asio::steady_timer timer_;
    std::chrono::microseconds interval_{0};
    const AgentStatus* followed_ = nullptr;
};

// "State: swapping (60%, renaming /usr/bin/docker)" and the like.
std::string statusLine(const AgentStatus& status);

}  // namespace armdock
