// The health monitor's decisions with a fake engine and fake systemd: when it
// restarts, how the hourly limit holds, that it stays out of transactions, and
// that containers with a restart policy must come back after its restart.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>

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
    Task<std::vector<ComponentVersion>> components(milliseconds) override { co_return std::vector<ComponentVersion>{}; }
    std::vector<ContainerSummary> containerList;
    Task<std::vector<ContainerSummary>> containers(milliseconds) override
    {
        if (!answers)
            throw EngineUnreachable("docker socket /run/docker.sock: no answer");
        co_return containerList;
    }
    Task<LiveRestoreInfo> liveRestore(milliseconds) override { co_return LiveRestoreInfo{}; }
};

class CountingUnits final : public UnitControl {
public:
    std::vector<std::string> restarted;
    std::function<void()> onRestart;
    Task<void> stopUnit(const std::string&, milliseconds) override { co_return; }
    Task<void> startUnit(const std::string&, milliseconds) override { co_return; }
    Task<void> restartUnit(const std::string& unit, milliseconds) override
    {
        restarted.push_back(unit);
        if (onRestart)
            onRestart();
        co_return;
    }
    Task<std::vector<std::string>> partOf(const std::string&) override { co_return std::vector<std::string>{}; }
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
    // The engine stops answering; the monitor's restart brings it back with `containers`.
    void engineHangsThenComesBackWith(std::vector<ContainerSummary> containers)
    {
        engine.answers = false;
        units.onRestart = [this, containers] {
            engine.answers = true;
            engine.containerList = containers;
        };
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

const std::string webId = "6f7bacc6fbea531eec2e7924a380489ceba100e6ab652b39409433300c788745";
const std::string batchId = "c0080773c1d88033552c28e9a9720837718a924b2c2858b720dfdfb276f3a5d8";

TEST_F(EngineMonitorTest, ContainersMissingAfterItsRestartKeepItUnhealthyUntilTheyRun)
{
    settings.healthTimeout = milliseconds(300);
    EngineMonitor monitor(io, engine, units, settings, hooks);
    engine.containerList = {{webId, "web", "running", "always"}, {batchId, "batch", "running", "no"}};
    tick(monitor);  // healthy: notes that web must come back (batch has no restart policy)
    engineHangsThenComesBackWith({{batchId, "batch", "exited", "no"}});  // without web
    tick(monitor, 3);
    ASSERT_EQ(units.restarted.size(), 1u);
    EXPECT_FALSE(monitor.healthy());
    ASSERT_EQ(changes.size(), 2u);  // the failed pings, then the missing container: a new reason
    EXPECT_FALSE(changes[1].first);
    EXPECT_NE(changes[1].second.find("web (6f7bacc6fbea): gone from the engine"), std::string::npos) << changes[1].second;
    EXPECT_EQ(changes[1].second.find("batch"), std::string::npos) << changes[1].second;

    tick(monitor, 2);  // pings answer, web is still missing
    EXPECT_FALSE(monitor.healthy());
    EXPECT_EQ(changes.size(), 2u);

    engine.containerList.push_back({webId, "web", "running", "always"});
    tick(monitor);
    EXPECT_TRUE(monitor.healthy());
    EXPECT_EQ(changes.size(), 3u);
}

TEST_F(EngineMonitorTest, ContainersThatComeBackAfterItsRestartLeaveItHealthy)
{
    settings.healthTimeout = milliseconds(2000);
    EngineMonitor monitor(io, engine, units, settings, hooks);
    engine.containerList = {{webId, "web", "running", "unless-stopped"}};
    tick(monitor);
    engineHangsThenComesBackWith({{webId, "web", "restarting", "unless-stopped"}});
    auto comesBack = std::make_shared<boost::asio::steady_timer>(io, milliseconds(250));
    tick(monitor, 2);
    comesBack->async_wait([this](const boost::system::error_code&) { engine.containerList[0].state = "running"; });
    const auto before = steady_clock::now();
    tick(monitor);  // restart, then waits for web
    EXPECT_GE(steady_clock::now() - before, milliseconds(200));
    EXPECT_EQ(units.restarted.size(), 1u);
    tick(monitor);
    EXPECT_TRUE(monitor.healthy());
    ASSERT_EQ(changes.size(), 2u);  // unhealthy for the failed pings, healthy again
    EXPECT_TRUE(changes[1].first);
}

TEST_F(EngineMonitorTest, AReloadAcknowledgesContainersThatDidNotComeBack)
{
    settings.healthTimeout = milliseconds(200);
    EngineMonitor monitor(io, engine, units, settings, hooks);
    engine.containerList = {{webId, "web", "running", "always"}};
    tick(monitor);
    engineHangsThenComesBackWith({});
    tick(monitor, 3);
    EXPECT_FALSE(monitor.healthy());
    monitor.reconfigure(settings);
    monitor.stop();
    tick(monitor);
    EXPECT_TRUE(monitor.healthy());
}

TEST_F(EngineMonitorTest, WithoutExpectContainersBackItDoesNotWaitForThem)
{
    settings.expectContainersBack = false;
    settings.healthTimeout = milliseconds(5000);
    EngineMonitor monitor(io, engine, units, settings, hooks);
    engine.containerList = {{webId, "web", "running", "always"}};
    tick(monitor);
    engineHangsThenComesBackWith({});
    const auto before = steady_clock::now();
    tick(monitor, 4);
    EXPECT_LT(steady_clock::now() - before, milliseconds(1000));
    EXPECT_TRUE(monitor.healthy());
}

}  // namespace
}  // namespace armdock
