// Supervision between transactions: every monitor_interval_sec the engine is
// pinged; after monitor_failures failures in a row it is restarted through
// systemd, at most max_restarts_per_hour times an hour. Past that it stops
// acting and says why. It never acts while a transaction runs.
// Containers: each healthy tick also notes which containers run with a restart
// policy (always, unless-stopped); after a restart of its own the monitor waits
// for those to run again, and while any does not, Healthy stays false and the
// reason names them (until they run, are removed, or the agent is reloaded).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "async.hpp"
#include "engine_api.hpp"
#include "health_check.hpp"
#include "unit_control.hpp"

namespace armdock {

struct MonitorSettings {
    std::chrono::milliseconds interval{30000};  // 0: off
    unsigned failuresBeforeRestart = 3;
    unsigned maxRestartsPerHour = 3;
    std::string service = "docker.service";
    std::chrono::milliseconds restartTimeout{90000};
    std::string socketPath;  // for messages
    bool expectContainersBack = true;
    std::chrono::milliseconds healthTimeout{60000};  // after a restart: engine and containers back within this
};

class EngineMonitor {
public:
    struct Hooks {
        std::function<bool()> transactionRunning;
        std::function<void(bool healthy, const std::string& reason)> healthChanged;
        std::function<void(std::uint64_t usec)> checked;      // each ping, with its wall-clock time
        std::function<void(unsigned restarts)> restarted;     // restarts since the agent started
        std::function<void(const std::string& why)> gaveUp;   // the rate limit was reached
    };

    EngineMonitor(boost::asio::io_context& io, EngineApi& engine, UnitControl& units, MonitorSettings settings, Hooks hooks);

    void start();  // no-op when the interval is 0
    void stop();
    void reconfigure(MonitorSettings settings);  // also forgets a give-up

    // One tick: ping, count, maybe restart. Public for tests.
    Task<void> checkOnce();

    bool healthy() const { return healthy_; }
    unsigned restarts() const { return restarts_; }
    bool gaveUp() const { return gaveUp_; }

private:
    void arm();
    // Signals a change; `announceAgain` signals a new reason while the value stays.
    void setHealthy(bool healthy, const std::string& reason, bool announceAgain = false);
    bool restartAllowed(std::chrono::steady_clock::time_point now);
    Task<void> noteContainers(std::chrono::milliseconds timeout);
    Task<void> waitForContainersAfterRestart();

    boost::asio::io_context& io_;
    EngineApi& engine_;
    UnitControl& units_;
    MonitorSettings settings_;
    Hooks hooks_;
    boost::asio::steady_timer timer_;
    bool running_ = false;
    bool checking_ = false;
    bool healthy_ = true;
    bool gaveUp_ = false;
    unsigned failures_ = 0;
    unsigned restarts_ = 0;
    std::deque<std::chrono::steady_clock::time_point> recentRestarts_;
    std::vector<ContainerSummary> expectedBack_;        // from the last healthy tick
    std::vector<ContainerSummary> missingAfterRestart_;  // did not come back after our restart
};

}  // namespace armdock
