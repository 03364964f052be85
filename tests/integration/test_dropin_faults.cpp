// The drop-in folder when something goes wrong, against the real parts
// (systemd user manager, dbus-daemon, dockerd), driven as an operator does:
// files copied into the folder, then `systemctl reload armdock-agent`.
#include <sys/stat.h>

#include <thread>

#include "agent_sandbox_fixture.hpp"
#include "armdock_build_config.h"
#include "dbus/agent_names.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* agentUnitName = "armdock-agent.service";

class DropinFaultsTest : public AgentSandboxTest {
protected:
    void systemctlReload()
    {
        auto reload = sandbox->systemctl({"reload", agentUnitName});
        ASSERT_EQ(reload.exitCode, 0) << reload.output;
    }

    // A property read with a short reply timeout: true when it was answered.
    bool answersWithin1s() const
    {
        auto r = sandbox->busctl({"--timeout=1", "get-property", agentBusName, agentObjectPath, agentInterfaceName, "State"},
                                 5s);
        return r.exitCode == 0;
    }

    bool agentGone() const
    {
        const std::string state = sandbox->activeState(agentUnitName);
        return state == "failed" || state == "inactive";
    }

    void restartAgent(const std::map<std::string, std::string>& env = {})
    {
        if (!agentGone())
            sandbox->stopUnits({agentUnitName});
        sandbox->agentUnit(agentBinary(), configFile, env);
        sandbox->systemctl({"reset-failed", agentUnitName});
        sandbox->startUnits({agentUnitName});
        ASSERT_TRUE(AgentClient::waitForIdleAgent(sandbox->busAddress())) << agentLog();
        client = std::make_unique<AgentClient>(sandbox->busAddress());
    }

    std::string rejectedReasons() const
    {
        std::string reasons;
        const fs::path rejected = sandbox->stateDir() / "rejected";
        if (fs::exists(rejected))
            for (const auto& e : fs::directory_iterator(rejected))
                if (e.path().extension() == ".reason")
                    reasons += readFile(e.path());
        return reasons;
    }
};

// Tried as an operator would: a FIFO named docker.sha256 beside a dropped-in
// docker, then a reload. The agent read the FIFO on its loop: property reads
// went unanswered until the watchdog restarted it.
TEST_F(DropinFaultsTest, AFifoNamedLikeADigestIsRefusedAndTheAgentKeepsAnswering)
{
    startAll();
    const pid_t agentPid = sandbox->mainPid(agentUnitName);
    const fs::path engine = newGoodEngine("dropin");
    fs::rename(engine, sandbox->dropinDir() / "docker");
    ASSERT_EQ(::mkfifo((sandbox->dropinDir() / "docker.sha256").c_str(), 0600), 0);
    systemctlReload();

    for (int i = 0; i < 10; ++i) {
        EXPECT_TRUE(answersWithin1s()) << "a property read went unanswered after the reload (read " << i << ")";
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(Sandbox::waitFor([&] { return fs::is_empty(sandbox->dropinDir()); }, 10s, 50ms));
    const std::string reasons = rejectedReasons();
    EXPECT_NE(reasons.find("is a FIFO"), std::string::npos) << reasons;
    EXPECT_NE(reasons.find("its digest file docker.sha256 was refused"), std::string::npos) << reasons;
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldEngineSha);
    EXPECT_EQ(sandbox->mainPid(agentUnitName), agentPid);
    EXPECT_TRUE(sandbox->ping());
}

// The agent is killed in the middle of a drop-in upgrade. The journal names
// the drop-ins, so its recovery settles them (moved aside with the result):
// the next reload does not apply them a second time.
TEST_F(DropinFaultsTest, ADropInUpgradeKilledMidSwapIsSettledByTheRecoveryNotAppliedAgain)
{
#if !ARMDOCK_FAULT_INJECTION
    GTEST_SKIP() << "the agent was built without -Dfault_injection=true: no fault points to hit";
#endif
    startAll();
    restartAgent({{"ARMDOCK_FAULT", "after-first-rename"}});
    const fs::path engine = newGoodEngine("dropin");
    fs::rename(engine, sandbox->dropinDir() / "docker");
    systemctlReload();
    ASSERT_TRUE(Sandbox::waitFor([&] { return agentGone(); }, 90s, 20ms)) << "the agent did not die at after-first-rename";

    restartAgent();
    ASSERT_TRUE(Sandbox::waitFor([&] { return client->property("State") == "idle" && client->property("LastResult") != "none"; }, 120s,
                                 50ms));
    EXPECT_EQ(client->property("LastResult"), "rolled-back") << client->property("LastError");
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldEngineSha);
    EXPECT_TRUE(fs::is_empty(sandbox->dropinDir())) << "the drop-in waits to be applied a second time";
    const std::string reasons = rejectedReasons();
    EXPECT_NE(reasons.find("rolled-back"), std::string::npos) << reasons;
    EXPECT_TRUE(sandbox->ping());

    const std::string before = client->property("Transaction");
    systemctlReload();
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(client->property("Transaction"), before);
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldEngineSha);
}

}  // namespace
}  // namespace armdock::test
