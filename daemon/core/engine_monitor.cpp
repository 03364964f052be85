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
        boost::asio::co_spawn(io_, checkOnce(), [](std::exception_ptr e) {
            if (!e)
                return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& x) {
                spdlog::error("health monitor: {}", x.what());
            }
        });
    });
}

void EngineMonitor::setHealthy(bool healthy, const std::string& reason)
{
    if (healthy_ == healthy)
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
    }
}

}  // namespace armdock
