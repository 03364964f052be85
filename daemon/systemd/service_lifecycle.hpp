// The agent as a systemd service, on the event loop: start-up in its order
// (the state folder, the bus name, READY=1 and the watchdog, then the
// recovery of an interrupted transaction, then the warm-up), SIGTERM and
// SIGINT (a running transaction is cancelled at its next safe point and the
// loop ends once it finished; a second signal ends it at once; the journal
// makes that safe too), and SIGHUP (Agent::reload between RELOADING=1 and
// READY=1).
#pragma once

#include <utility>  // before Boost 1.74 Asio headers, which need std::exchange

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>

#include "core/agent.hpp"
#include "systemd/service_notifier.hpp"

namespace armdock {

class ServiceLifecycle {
public:
    // `goOnBus` registers the bus object and requests the name; it runs
    // after the state folder is read and before READY=1.
    ServiceLifecycle(boost::asio::io_context& io, Agent& agent, ServiceNotifier& notifier, std::function<void()> goOnBus);

    // Arms the signals and spawns the start-up; io.run() does the rest.
    void start();
    // After io.run(): 0, or 1 when the start-up failed (logged, loop stopped).
    int exitCode() const { return exitCode_; }

private:
    void waitForStop();
    void stopWhenIdle();
    void waitForReload();
    Task<void> startUp();

    boost::asio::io_context& io_;
    Agent& agent_;
    ServiceNotifier& notifier_;
    std::function<void()> goOnBus_;
    boost::asio::signal_set stopSignals_;
    boost::asio::signal_set reloadSignal_;
    boost::asio::steady_timer drainTimer_;
    bool draining_ = false;
    int exitCode_ = 0;
};

}  // namespace armdock
