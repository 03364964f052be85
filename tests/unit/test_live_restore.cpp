// Live-restore: with it on (and no Swarm), the containers that ran before an
// engine restart must run in the same processes after it, or the upgrade is
// rolled back naming them; "require" refuses before anything stops what
// live-restore cannot carry; "off" never asks. systemd and Docker are faked;
// the containers' processes are this test's own (their start times real).
#include "agent_test_fixture.hpp"

#include <unistd.h>

namespace armdock::test {
namespace {

class LiveRestoreTest : public AgentFixture {
protected:
    // One running container whose main process is this test.
    void oneRunningContainer()
    {
        engine->containersNow = {{"4f1c0a3b2d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a", "web", "running", "no",
                                  static_cast<int>(::getpid())}};
    }
    const std::string& finishedMessage() const { return std::get<2>(recorder.finishedCalls.at(0)); }
};

TEST_F(LiveRestoreTest, AutoWithLiveRestoreOnChecksThatEachContainerKeptRunning)
{
    engine->liveRestoreNow = {true, false};
    oneRunningContainer();
    startAgent();
    upgradeTo(newEngine("engine-v2", "1.0.1"), TransactionResult::Success);
    EXPECT_NE(finishedMessage().find("1 container(s) kept running through the restart"), std::string::npos) << finishedMessage();
}

TEST_F(LiveRestoreTest, AContainerTheNewEngineRestartedRollsTheUpgradeBackNamingIt)
{
    engine->liveRestoreNow = {true, false};
    oneRunningContainer();
    startAgent();
    bool restarted = false;
    units.onCall = [&](const std::string& call) {
        if (call == "start docker.service" && !restarted) {
            restarted = true;  // the new engine came up without live-restore: the container runs anew
            engine->containersNow[0].pid = static_cast<int>(::getppid());
        }
    };
    upgradeTo(newEngine("engine-v2", "1.0.1"), TransactionResult::RolledBack);
    const std::string error = agent->status().lastError;
    EXPECT_NE(error.find("check live-restore"), std::string::npos) << error;
    EXPECT_NE(error.find("container web (4f1c0a3b2d9e, Pid " + std::to_string(::getpid()) + ") was restarted"), std::string::npos) << error;
    EXPECT_NE(error.find("--live-restore"), std::string::npos) << error;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
}

TEST_F(LiveRestoreTest, AutoWithLiveRestoreOffLeavesTheContainersToTheBackCheck)
{
    oneRunningContainer();
    startAgent();
    units.onCall = [&](const std::string& call) {
        if (call == "start docker.service")
            engine->containersNow[0].pid = static_cast<int>(::getppid());
    };
    upgradeTo(newEngine("engine-v2", "2.0.0"), TransactionResult::Success);
    EXPECT_EQ(finishedMessage().find("kept running"), std::string::npos) << finishedMessage();
}

TEST_F(LiveRestoreTest, OffNeverAsks)
{
    config.docker.liveRestore = LiveRestoreMode::Off;
    engine->liveRestoreNow = {true, false};
    oneRunningContainer();
    startAgent();
    upgradeTo(newEngine("engine-v2", "2.0.0"), TransactionResult::Success);
    EXPECT_EQ(engine->liveRestoreCalls, 0);
}

// Each refusal of "require": before anything stops, nothing changed.
class RequireLiveRestoreTest : public LiveRestoreTest {
protected:
    void expectRefused(const fs::path& src, const std::string& why)
    {
        config.docker.liveRestore = LiveRestoreMode::Require;
        oneRunningContainer();
        startAgent();
        upgradeTo(src, TransactionResult::Rejected);
        const std::string error = agent->status().lastError;
        EXPECT_NE(error.find("docker.live_restore = \"require\": "), std::string::npos) << error;
        EXPECT_NE(error.find(why), std::string::npos) << error;
        EXPECT_NE(error.find("Docker was not interrupted"), std::string::npos) << error;
        EXPECT_TRUE(units.calls.empty()) << "a unit was touched: " << units.calls.front();
        EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
        EXPECT_TRUE(agent->listBackups().empty()) << "a refused upgrade left a backup";
        expectNoLeftovers();
    }
};

TEST_F(RequireLiveRestoreTest, RefusesWhenLiveRestoreIsOff)
{
    engine->liveRestoreNow = {false, false};
    expectRefused(newEngine("engine-v2", "1.0.1"), "the running engine has live-restore off; start dockerd with --live-restore");
}

TEST_F(RequireLiveRestoreTest, RefusesASwarmNode)
{
    engine->liveRestoreNow = {true, true};
    expectRefused(newEngine("engine-v2", "1.0.1"), "this node is in a Swarm");
}

TEST_F(RequireLiveRestoreTest, RefusesAnotherReleaseLine)
{
    engine->liveRestoreNow = {true, false};
    expectRefused(newEngine("engine-v2", "1.1.0"), "engine 1.0.0 -> 1.1.0 is not a patch release of the same YY.MM");
}

TEST_F(RequireLiveRestoreTest, LetsAPatchReleaseThrough)
{
    config.docker.liveRestore = LiveRestoreMode::Require;
    engine->liveRestoreNow = {true, false};
    oneRunningContainer();
    startAgent();
    upgradeTo(newEngine("engine-v2", "1.0.1"), TransactionResult::Success);
    EXPECT_NE(finishedMessage().find("1 container(s) kept running"), std::string::npos) << finishedMessage();
}

}  // namespace
}  // namespace armdock::test
