// The health monitor's decisions with a fake engine and fake systemd: when it
// restarts, how the hourly limit holds, and that it stays out of transactions.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "core/engine_monitor.hpp"

namespace armdock {
namespace {

using namespace std::chrono;

class ScriptedEngine final : public EngineApi {
public:
    bool answers = true;
    int pings = 0;
    Task<bool> ping(milliseconds) override
    {
        ++pings;
        if (!answers)
            throw EngineUnreachable("docker socket /run/docker.sock: no answer");
        co_return true;
    }
    Task<std::string> version(milliseconds) override { co_return "1.0"; }
    Task<std::optional<std::string>> initSha1(milliseconds) override { co_return std::nullopt; }
    Task<std::vector<ContainerSummary>> containers(milliseconds) override { co_return std::vector<ContainerSummary>{}; }
};

class CountingUnits final : public UnitControl {
public:
    std::vector<std::string> restarted;
    Task<void> stopUnit(const std::string&, milliseconds) override { co_return; }
    Task<void> startUnit(const std::string&, milliseconds) override { co_return; }
    Task<void> restartUnit(const std::string& unit, milliseconds) override
    {
        restarted.push_back(unit);
        co_return;
    }
    Task<std::string> activeState(const std::string&) override { co_return "active"; }
    Task<std::uint32_t> mainPid(const std::string&) override { co_return 1; }
};

class EngineMonitorTest : public ::testing::Test {
protected:
    EngineMonitorTest()
    {
        settings.interval = milliseconds(10);
        settings.failuresBeforeRestart = 3;
        settings.maxRestartsPerHour = 2;
        settings.socketPath = "/run/docker.sock";
        hooks.transactionRunning = [this] { return transaction; };
        hooks.healthChanged = [this](bool healthy, const std::string& reason) { changes.emplace_back(healthy, reason); };
        hooks.gaveUp = [this](const std::string& why) { gaveUpWhy = why; };
    }
    void tick(EngineMonitor& monitor, int times = 1)
    {
        for (int i = 0; i < times; ++i) {
            boost::asio::co_spawn(io, monitor.checkOnce(), boost::asio::detached);
            io.restart();
            io.run();
        }
    }
    boost::asio::io_context io;
    ScriptedEngine engine;
    CountingUnits units;
    MonitorSettings settings;
    EngineMonitor::Hooks hooks;
    bool transaction = false;
    std::vector<std::pair<bool, std::string>> changes;
    std::string gaveUpWhy;
};

TEST_F(EngineMonitorTest, RestartsAfterTheConfiguredFailuresInARow)
{
    EngineMonitor monitor(io, engine, units, settings, hooks);
    engine.answers = false;
    tick(monitor, 2);
    EXPECT_TRUE(units.restarted.empty());
    EXPECT_TRUE(monitor.healthy());
    tick(monitor);
    EXPECT_EQ(units.restarted, std::vector<std::string>{"docker.service"});
    EXPECT_FALSE(monitor.healthy());
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_NE(changes[0].second.find("no answer"), std::string::npos);
    engine.answers = true;
    tick(monitor);
    EXPECT_TRUE(monitor.healthy());
    EXPECT_EQ(changes.size(), 2u);
    EXPECT_EQ(monitor.restarts(), 1u);
}

TEST_F(EngineMonitorTest, ASuccessResetsTheCount)
{
    EngineMonitor monitor(io, engine, units, settings, hooks);
    engine.answers = false;
    tick(monitor, 2);
    engine.answers = true;
    tick(monitor);
    engine.answers = false;
    tick(monitor, 2);
    EXPECT_TRUE(units.restarted.empty());
}

TEST_F(EngineMonitorTest, TheHourlyLimitHoldsAndItSaysWhy)
{
    EngineMonitor monitor(io, engine, units, settings, hooks);
    engine.answers = false;
    tick(monitor, 3 * 4);
    EXPECT_EQ(units.restarted.size(), 2u);  // max_restarts_per_hour = 2
    EXPECT_TRUE(monitor.gaveUp());
    EXPECT_NE(gaveUpWhy.find("not restarting it again"), std::string::npos);
    EXPECT_NE(gaveUpWhy.find("docker.service"), std::string::npos);
    monitor.reconfigure(settings);  // a reload resumes supervision
    EXPECT_FALSE(monitor.gaveUp());
    monitor.stop();
}

TEST_F(EngineMonitorTest, StaysOutOfTransactions)
{
    EngineMonitor monitor(io, engine, units, settings, hooks);
    engine.answers = false;
    transaction = true;
    tick(monitor, 10);
    EXPECT_EQ(engine.pings, 0);
    EXPECT_TRUE(units.restarted.empty());
}

TEST_F(EngineMonitorTest, TheTimerDrivesIt)
{
    EngineMonitor monitor(io, engine, units, settings, hooks);
    engine.answers = false;
    monitor.start();
    auto deadline = steady_clock::now() + seconds(5);
    while (units.restarted.empty() && steady_clock::now() < deadline)
        io.run_for(milliseconds(5));
    monitor.stop();
    io.run_for(milliseconds(20));
    EXPECT_EQ(units.restarted.size(), 1u);
    EXPECT_GE(engine.pings, 3);
}

}  // namespace
}  // namespace armdock
