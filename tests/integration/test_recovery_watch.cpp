// A recovery is a transaction like any other. Started after a crash, the
// agent says READY=1 and takes its bus name at once, then recovers: clients
// read State rolling-back and the interrupted transaction's id from the first
// read, `armdockctl watch` follows the recovery to its Finished, and the
// unit's start timeout never cuts it short, however long the restored
// engine's check takes.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <thread>

#include "agent_sandbox_fixture.hpp"
#include "armdock_build_config.h"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* agentUnitName = "armdock-agent.service";
// The agent's unit gets a start timeout the restored engine's check alone
// (its grace period) outlasts.
constexpr int graceSec = 14;
constexpr int startTimeoutSec = 10;
const std::string startTimeoutLine = "TimeoutStartSec=" + std::to_string(startTimeoutSec) + "\n";

class RecoveryWatchTest : public AgentSandboxTest {
protected:
    bool agentGone() const
    {
        const std::string state = sandbox->activeState(agentUnitName);
        return state == "failed" || state == "inactive";
    }

    // `armdockctl watch`, started by this test; stopped by its checked PID.
    pid_t watchPid = -1;
    void stopWatch()
    {
        if (watchPid <= 0)
            return;
        int status = 0;
        if (::waitpid(watchPid, &status, WNOHANG) == 0) {  // still ours and running
            ::kill(watchPid, SIGTERM);
            ::waitpid(watchPid, &status, 0);
        }
        watchPid = -1;
    }
    void TearDown() override
    {
        stopWatch();
        AgentSandboxTest::TearDown();
    }
};

TEST_F(RecoveryWatchTest, ARecoveryLongerThanTheStartTimeoutIsWatchedToItsFinished)
{
#if !ARMDOCK_FAULT_INJECTION
    GTEST_SKIP() << "the agent was built without -Dfault_injection=true: no fault points to hit";
#endif
    ASSERT_FALSE(armdockctlBinary().empty()) << "ARMDOCKCTL_BINARY is not set (run through meson test)";
    startAll({{"docker.grace_sec", std::to_string(graceSec)}, {"docker.health_timeout_sec", "20"}});
    ASSERT_FALSE(HasFatalFailure());

    // An upgrade dies after its swap: Docker stopped, the new file in place.
    sandbox->stopUnits({agentUnitName});
    sandbox->agentUnit(agentBinary(), configFile, {{"ARMDOCK_FAULT", "after-swap"}});
    sandbox->startUnits({agentUnitName});
    ASSERT_TRUE(AgentClient::waitForIdleAgent(sandbox->busAddress())) << agentLog();
    const std::string tx = client->upgrade({{"docker", newGoodEngine().string()}});
    ASSERT_TRUE(Sandbox::waitFor([&] { return agentGone(); }, 90s, 10ms)) << "the upgrade did not die at after-swap";
    ASSERT_NE(sha256Of(sandbox->payloadPath("docker")), oldEngineSha) << "the swap did not happen";

    // Started again as systemd would after the crash, without waiting for it.
    sandbox->agentUnit(agentBinary(), configFile, {}, startTimeoutLine);
    sandbox->systemctl({"reset-failed", agentUnitName});
    const auto started = Clock::now();
    ASSERT_EQ(sandbox->systemctl({"start", "--no-block", agentUnitName}).exitCode, 0);
    ASSERT_TRUE(AgentClient::waitForAgent(sandbox->busAddress(), 10s))
        << "the agent did not take its bus name while it recovers\n" << agentLog();
    EXPECT_TRUE(Sandbox::waitFor([&] { return sandbox->activeState(agentUnitName) == "active"; }, 5s, 10ms))
        << "the unit is " << sandbox->activeState(agentUnitName) << ": no READY=1 before the recovery";
    const pid_t agentPid = sandbox->mainPid(agentUnitName);
    ASSERT_GT(agentPid, 0);
    EXPECT_EQ(client->property("State"), "rolling-back");
    EXPECT_EQ(client->property("Transaction"), tx);

    watchPid = spawnLogged(sandbox->dir() / "logs/watch.log", {armdockctlBinary().string(), "--bus", sandbox->busAddress(), "watch"},
                           sandbox->environment());
    const std::string finishedLine = "finished " + tx + ": rolled-back";
    auto watchLog = [&] { return fs::exists(sandbox->dir() / "logs/watch.log") ? readFile(sandbox->dir() / "logs/watch.log") : ""; };
    ASSERT_TRUE(Sandbox::waitFor([&] { return watchLog().find(finishedLine) != std::string::npos; }, 150s, 50ms))
        << "armdockctl watch did not see the recovery's Finished:\n" << watchLog() << "\n" << agentLog();
    const double took = std::chrono::duration<double>(Clock::now() - started).count();
    std::cout << "recovery watched to its Finished in " << took << " s (start timeout " << startTimeoutSec << " s)" << std::endl;
    EXPECT_GT(took, startTimeoutSec) << "the recovery was shorter than the start timeout: this run proves nothing about it";
    const std::string watched = watchLog();
    EXPECT_NE(watched.find("rolling-back"), std::string::npos) << watched;
    stopWatch();

    // The same process recovered: systemd never killed it.
    EXPECT_EQ(sandbox->activeState(agentUnitName), "active");
    EXPECT_EQ(sandbox->mainPid(agentUnitName), agentPid);
    EXPECT_EQ(client->property("State"), "idle");
    EXPECT_EQ(client->property("LastResult"), "rolled-back") << client->property("LastError");
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldEngineSha);
    EXPECT_FALSE(fs::exists(sandbox->stateDir() / "transaction.journal"));
    EXPECT_TRUE(sandbox->ping()) << "Docker does not answer /_ping";
}

// CurrentVersion is what the engine answers from the first read after a
// start, not empty until the installed set has been hashed.
TEST_F(RecoveryWatchTest, CurrentVersionIsTheEnginesFromTheFirstRead)
{
    startAll();  // a first start: no last result to take a version from
    ASSERT_FALSE(HasFatalFailure());
    const std::string first = client->property("CurrentVersion");  // read as soon as the name is taken
    const auto reply = sandbox->dockerGet("/version");
    ASSERT_TRUE(reply && reply->status == 200);
    const std::string running = nlohmann::json::parse(reply->body).value("Version", "");
    ASSERT_FALSE(running.empty());
    EXPECT_EQ(first, running) << "CurrentVersion at the first read after a first start";

    // Again after a restart with the last result gone.
    sandbox->stopUnits({agentUnitName});
    fs::remove(sandbox->stateDir() / "last-result.json");
    ASSERT_EQ(sandbox->systemctl({"start", "--no-block", agentUnitName}).exitCode, 0);
    ASSERT_TRUE(AgentClient::waitForAgent(sandbox->busAddress(), 30s)) << agentLog();
    EXPECT_EQ(client->property("CurrentVersion"), running) << "CurrentVersion at the first read after a restart";
}

}  // namespace
}  // namespace armdock::test
