#include "engine_monitor.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace armdock {

using namespace std::chrono;

EngineMonitor::EngineMonitor(boost::asio::io_context& io, EngineApi& engine, UnitControl& units, MonitorSettings settings, Hooks hooks)
    : io_(io), engine_(engine), units_(units), settings_(std::move(settings)), hooks_(std::move(hooks)), timer_(io)
{
}

void EngineMonitor::start()
{
    running_ = settings_.interval.count() > 0;
    if (running_)
        arm();
}

void EngineMonitor::stop()
{
    running_ = false;
    timer_.cancel();
}

void EngineMonitor::reconfigure(MonitorSettings settings)
{
    stop();
    settings_ = std::move(settings);
    gaveUp_ = false;
    failures_ = 0;
    missingAfterRestart_.clear();  // a reload acknowledges containers that did not come back
    start();
}

// Ticks run on a fixed schedule (start to start), so a hung ping does not
// stretch the interval: detection stays within interval x (failures + 1).
void EngineMonitor::arm()
{
    timer_.expires_after(settings_.interval);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || !running_)
            return;
        arm();
        if (checking_)  // a slow restart still runs: skip this tick
            return;
        boost::asio::co_spawn(io_, checkOnce(), onException([](const std::string& what) { spdlog::error("health monitor: {}", what); }));
    });
}

void EngineMonitor::setHealthy(bool healthy, const std::string& reason, bool announceAgain)
{
    if (healthy_ == healthy && !announceAgain)
        return;
    healthy_ = healthy;
    if (healthy)
        spdlog::info("engine health: {}", reason);
    else
        spdlog::warn("engine health: {}", reason);
    if (hooks_.healthChanged)
        hooks_.healthChanged(healthy, reason);
}

bool EngineMonitor::restartAllowed(steady_clock::time_point now)
{
    while (!recentRestarts_.empty() && now - recentRestarts_.front() > hours(1))
        recentRestarts_.pop_front();
    return recentRestarts_.size() < settings_.maxRestartsPerHour;
}

Task<void> EngineMonitor::checkOnce()
{
    if (hooks_.transactionRunning && hooks_.transactionRunning()) {
        failures_ = 0;  // a transaction stops and checks the engine itself
        co_return;
    }
    checking_ = true;
    struct Done {
        bool& flag;
        ~Done() { flag = false; }
    } done{checking_};

    // Half an interval (at most 5 s): the answer is in before the next tick.
    const milliseconds interval = settings_.interval.count() > 0 ? settings_.interval : seconds(10);
    const milliseconds timeout = std::clamp<milliseconds>(interval / 2, milliseconds(100), seconds(5));
    std::string problem;
    try {
        if (!co_await engine_.ping(timeout))
            problem = "GET /_ping on " + settings_.socketPath + " did not answer OK";
    } catch (const std::exception& e) {
        problem = e.what();
    }
    if (hooks_.checked)
        hooks_.checked(duration_cast<microseconds>(system_clock::now().time_since_epoch()).count());
    if (hooks_.transactionRunning && hooks_.transactionRunning())
        co_return;  // one started while we pinged: its stop is not a failure
    if (problem.empty()) {
        failures_ = 0;
        co_await noteContainers(timeout);
        if (missingAfterRestart_.empty())
            setHealthy(true, "the engine answers /_ping on " + settings_.socketPath);
        co_return;
    }
    ++failures_;
    spdlog::warn("health monitor: ping {} of {} failed: {}", failures_, settings_.failuresBeforeRestart, problem);
    if (failures_ < settings_.failuresBeforeRestart)
        co_return;
    setHealthy(false, std::to_string(failures_) + " pings in a row failed: " + problem);
    if (gaveUp_)
        co_return;
    if (!restartAllowed(steady_clock::now())) {
        gaveUp_ = true;
        const std::string why = settings_.service + " was restarted " + std::to_string(settings_.maxRestartsPerHour) +
                                " times in the last hour and still does not answer on " + settings_.socketPath +
                                "; not restarting it again. Check `systemctl status " + settings_.service + "` and `journalctl -u " +
                                settings_.service + "`, then `systemctl reload armdock-agent` to resume supervision";
        spdlog::critical("health monitor: {}", why);
        if (hooks_.gaveUp)
            hooks_.gaveUp(why);
        co_return;
    }
    spdlog::warn("health monitor: restarting {} ({} failed pings)", settings_.service, failures_);
    recentRestarts_.push_back(steady_clock::now());
    ++restarts_;
    failures_ = 0;
    if (hooks_.restarted)
        hooks_.restarted(restarts_);
    try {
        co_await units_.restartUnit(settings_.service, settings_.restartTimeout);
    } catch (const std::exception& e) {
        spdlog::error("health monitor: restart of {} failed: {}", settings_.service, e.what());
        co_return;
    }
    co_await waitForContainersAfterRestart();
}

// On a healthy tick: which containers would have to come back after a
// restart, and whether those missing after our last restart run again.
Task<void> EngineMonitor::noteContainers(milliseconds timeout)
{
    if (!settings_.expectContainersBack) {
        expectedBack_.clear();
        missingAfterRestart_.clear();
        co_return;
    }
    std::vector<ContainerSummary> all;
    try {
        all = co_await engine_.containers(timeout);
    } catch (const std::exception& e) {
        spdlog::debug("health monitor: cannot list containers: {}", e.what());
        co_return;
    }
    if (!missingAfterRestart_.empty()) {
        std::vector<ContainerSummary> still;
        for (const auto& m : missingAfterRestart_) {
            auto it = std::find_if(all.begin(), all.end(), [&](const ContainerSummary& c) { return c.id == m.id; });
            if (it == all.end() || it->state != "running")
                still.push_back(m);
        }
        missingAfterRestart_ = std::move(still);
        if (!missingAfterRestart_.empty())
            co_return;  // keep the list from before our restart: it is what must come back
        spdlog::info("health monitor: the containers missing after the restart of {} run again", settings_.service);
    }
    expectedBack_ = containersExpectedBack(all);
}

Task<void> EngineMonitor::waitForContainersAfterRestart()
{
    if (!settings_.expectContainersBack || expectedBack_.empty())
        co_return;
    HealthExpectations expect;
    expect.serviceUnit = settings_.service;
    expect.socketPath = settings_.socketPath;
    expect.timeout = settings_.healthTimeout;
    expect.containersBack = expectedBack_;
    const auto deadline = steady_clock::now() + settings_.healthTimeout;
    try {
        co_await waitForContainers(engine_, expect, deadline);
        spdlog::info("health monitor: {} restarted; its {} container(s) with a restart policy run again", settings_.service,
                     expectedBack_.size());
    } catch (const HealthCheckFailed& e) {
        missingAfterRestart_ = expectedBack_;
        const std::string why = settings_.service + " was restarted by the health monitor, but " + e.what() +
                                "; Healthy stays false until they run again (or `systemctl reload armdock-agent`)";
        spdlog::error("health monitor: {}", why);
        setHealthy(false, why, true);
    }
}

}  // namespace armdock
