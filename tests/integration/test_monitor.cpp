// Supervision between upgrades with the real parts: a dockerd frozen with
// SIGSTOP keeps its socket open and never answers; the agent must notice it
// and restart docker.service through systemd, within its limits.
#include <signal.h>

#include "agent_sandbox_fixture.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono;

class MonitorTest : public AgentSandboxTest {
protected:
    // Freezes the running engine and returns its PID.
    pid_t freezeEngine()
    {
        pid_t pid = sandbox->dockerMainPid();
        EXPECT_GT(pid, 0);
        EXPECT_EQ(::kill(pid, SIGSTOP), 0);
        return pid;
    }
};

TEST_F(MonitorTest, AFrozenEngineIsDetectedAndRestartedInTime)
{
    // interval 1 s, 2 failures: detection and restart within 1 s x (2 + 1).
    startAll({{"docker.monitor_interval_sec", "1"}, {"docker.monitor_failures", "2"}, {"docker.max_restarts_per_hour", "3"}});
    ASSERT_TRUE(Sandbox::waitFor([&] { return client->lastHealthCheck() > 0; }, seconds(5)));
    EXPECT_TRUE(client->healthy());
    const pid_t frozen = freezeEngine();
    const auto frozenAt = steady_clock::now();
    ASSERT_TRUE(Sandbox::waitFor([&] { return client->engineRestarts() == 1u; }, seconds(10), milliseconds(20)));
    const auto restartedAfter = duration_cast<milliseconds>(steady_clock::now() - frozenAt);
    std::cout << "frozen engine restarted after " << restartedAfter.count() << " ms\n";
    EXPECT_LE(restartedAfter, milliseconds(3000 + 500));
    ASSERT_TRUE(Sandbox::waitFor([&] { return sandbox->ping() && client->healthy(); }, seconds(30), milliseconds(50)));
    EXPECT_NE(sandbox->dockerMainPid(), frozen);
    EXPECT_FALSE(processAlive(frozen));
    EXPECT_EQ(client->property("State"), "idle");
}

TEST_F(MonitorTest, TheHourlyRestartLimitHoldsAndStateSaysWhy)
{
    startAll({{"docker.monitor_interval_sec", "1"}, {"docker.monitor_failures", "1"}, {"docker.max_restarts_per_hour", "1"}});
    freezeEngine();
    ASSERT_TRUE(Sandbox::waitFor([&] { return client->engineRestarts() == 1u; }, seconds(10), milliseconds(20)));
    // dockerd answers /_ping a moment before it sends READY=1: freezing it in
    // that window would hang the restart job until its start timeout, and the
    // monitor, waiting for that job, would not tick. Wait until the restart
    // is over: the unit active and the agent's Healthy true again.
    ASSERT_TRUE(Sandbox::waitFor(
        [&] { return sandbox->ping() && sandbox->activeState("docker.service") == "active" && client->healthy(); },
        seconds(30), milliseconds(50)));
    const pid_t second = freezeEngine();
    ASSERT_TRUE(Sandbox::waitFor([&] { return client->property("State") == "failed"; }, seconds(10), milliseconds(20)));
    EXPECT_NE(client->progress().second.find("not restarting it again"), std::string::npos) << client->progress().second;
    EXPECT_EQ(client->engineRestarts(), 1u);
    EXPECT_FALSE(client->healthy());
    EXPECT_EQ(sandbox->dockerMainPid(), second);  // left alone, as the limit says
    ::kill(second, SIGCONT);
}

TEST_F(MonitorTest, TheMonitorStaysOutOfAnUpgrade)
{
    // One failed ping would restart the engine, if the monitor looked during the upgrade's stop.
    startAll({{"docker.monitor_interval_sec", "1"}, {"docker.monitor_failures", "1"}});
    fs::path engine = newGoodEngine();
    for (int i = 0; i < 2; ++i) {
        std::string tx = i == 0 ? client->upgrade({{"docker", engine.string()}}) : client->rollback();
        ASSERT_EQ(client->waitFinished(tx), "success") << client->property("LastError");
    }
    EXPECT_EQ(client->engineRestarts(), 0u);
    EXPECT_TRUE(client->healthy());
}

}  // namespace
}  // namespace armdock::test
