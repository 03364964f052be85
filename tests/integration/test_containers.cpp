// Containers across a planned restart, with real busybox containers in the
// sandbox's dockerd: what ran with a restart policy must run again after an
// upgrade, an engine that comes up without them is rolled back, and after
// the monitor restarts a frozen engine its containers run again.
#include <signal.h>

#include "agent_sandbox_fixture.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono;

struct ContainerState {
    bool running = false;
    std::string startedAt;
};

class ContainersTest : public AgentSandboxTest {
protected:
    // health_timeout_sec bounds the wait for containers that never come back.
    // `execsDockerd`: the new engine will be one that executes the real
    // dockerd, which the exe check would refuse before the containers check.
    void startWithContainers(const std::string& healthTimeoutSec = "20", bool execsDockerd = false)
    {
        startAll({{"docker.health_timeout_sec", healthTimeoutSec}, {"docker.check_main_exe", execsDockerd ? "false" : "true"}});
        sandbox->importBusyboxImage("armdock-busybox");
        // busybox sleep as PID 1 ignores SIGTERM: --stop-timeout=1 keeps each engine stop short.
        runContainer("keeper-always", "--restart=always");
        runContainer("keeper-unless-stopped", "--restart=unless-stopped");
        runContainer("one-shot", "--restart=no");  // not expected back: must not fail the check
    }

    void runContainer(const std::string& name, const std::string& policy)
    {
        auto r = sandbox->docker({"run", "-d", policy, "--network=none", "--stop-timeout=1", "--name", name,
                                  "armdock-busybox", "/bin/sleep", "100000"});
        ASSERT_EQ(r.exitCode, 0) << r.output;
    }

    ContainerState state(const std::string& name)
    {
        auto r = sandbox->docker({"inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", name});
        ContainerState s;
        if (r.exitCode != 0)
            return s;
        auto space = r.output.find(' ');
        s.running = r.output.starts_with("true");
        if (space != std::string::npos)
            s.startedAt = r.output.substr(space + 1, r.output.find_last_not_of("\n") - space);
        return s;
    }
};

TEST_F(ContainersTest, ContainersWithARestartPolicyRunAgainAfterAnUpgrade)
{
    startWithContainers();
    const auto always = state("keeper-always");
    const auto unlessStopped = state("keeper-unless-stopped");
    ASSERT_TRUE(always.running && unlessStopped.running);
    const pid_t oldPid = sandbox->dockerMainPid();

    std::string tx = client->upgrade({{"docker", newGoodEngine().string()}});
    ASSERT_EQ(client->waitFinished(tx, seconds(120)), "success") << client->property("LastError");

    EXPECT_NE(sandbox->dockerMainPid(), oldPid);  // the engine really restarted...
    for (const auto& [name, before] : {std::pair{"keeper-always", always}, {"keeper-unless-stopped", unlessStopped}}) {
        auto after = state(name);
        EXPECT_TRUE(after.running) << name << " is not running after the upgrade";
        EXPECT_NE(after.startedAt, before.startedAt) << name << " was not restarted with the engine";
    }
    // ...and the agent waited for them: when Finished came, they were already up.
    EXPECT_FALSE(state("one-shot").running);
}

TEST_F(ContainersTest, AnEngineThatComesUpWithoutTheContainersIsRolledBack)
{
    startWithContainers("8", true);
    ASSERT_TRUE(state("keeper-always").running);

    // The real dockerd, but on an empty data root: ping, version and grace pass.
    std::string tx = client->upgrade({{"docker", testEngine("engine_empty_root").string()}});
    EXPECT_EQ(client->waitFinished(tx, seconds(120)), "rolled-back");

    const std::string error = client->property("LastError");
    EXPECT_NE(error.find("containers"), std::string::npos) << error;
    EXPECT_NE(error.find("keeper-always"), std::string::npos) << error;  // names what was missing
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldEngineSha);
    EXPECT_TRUE(sandbox->ping());
    EXPECT_EQ(client->property("State"), "idle");
    // The old engine brought its containers back, and the agent waited for them.
    EXPECT_TRUE(state("keeper-always").running);
    EXPECT_TRUE(state("keeper-unless-stopped").running);
}

TEST_F(ContainersTest, AfterTheMonitorRestartsAFrozenEngineItsContainersRunAgain)
{
    startAll({{"docker.monitor_interval_sec", "1"}, {"docker.monitor_failures", "2"}, {"docker.health_timeout_sec", "20"}});
    sandbox->importBusyboxImage("armdock-busybox");
    runContainer("keeper-always", "--restart=always");
    const auto before = state("keeper-always");
    ASSERT_TRUE(before.running);
    // Let the monitor see the container on a healthy tick before the freeze.
    const auto seenAt = client->lastHealthCheck();
    ASSERT_TRUE(Sandbox::waitFor([&] { return client->lastHealthCheck() > seenAt + 1000000u; }, seconds(10), milliseconds(50)));

    const pid_t frozen = sandbox->dockerMainPid();
    ASSERT_EQ(::kill(frozen, SIGSTOP), 0);
    ASSERT_TRUE(Sandbox::waitFor([&] { return client->engineRestarts() == 1u; }, seconds(10), milliseconds(20)));
    ASSERT_TRUE(Sandbox::waitFor([&] { return client->healthy(); }, seconds(60), milliseconds(50)))
        << client->progress().second;
    auto after = state("keeper-always");
    EXPECT_TRUE(after.running);
    EXPECT_NE(after.startedAt, before.startedAt);
}

}  // namespace
}  // namespace armdock::test
