// Docker's guard end to end with the real parts: after a crash in the
// middle of the swap, a boot that starts Docker before the agent must not
// run Docker on the mixed set.
#include <chrono>
#include <fstream>
#include <thread>

#include "agent_sandbox_fixture.hpp"
#include "armdock_build_config.h"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class BootGuardTest : public AgentSandboxTest {
protected:
    // A drop-in for docker.service, then a reload of the manager.
    void dockerDropIn(const std::string& name, const std::string& text)
    {
        const fs::path dir = sandbox->unitDir() / "docker.service.d";
        fs::create_directories(dir);
        writeFile(dir / name, text);
        sandbox->daemonReload();
    }

    bool agentGone() const
    {
        const std::string state = sandbox->activeState("armdock-agent.service");
        return state == "failed" || state == "inactive";
    }

    // Rewrites the agent's unit with this environment and starts it; returns
    // once it holds its bus name (it recovers before taking it).
    void restartAgent(const std::map<std::string, std::string>& env)
    {
        client.reset();
        if (!agentGone())
            sandbox->stopUnits({"armdock-agent.service"});
        sandbox->agentUnit(agentBinary(), configFile, env);
        sandbox->systemctl({"reset-failed", "armdock-agent.service"});
        sandbox->startUnits({"armdock-agent.service"});
        ASSERT_TRUE(AgentClient::waitForIdleAgent(sandbox->busAddress())) << agentLog();
        client = std::make_unique<AgentClient>(sandbox->busAddress());
    }

    std::pair<std::string, std::string> installedSet() const
    {
        return {sha256Of(sandbox->payloadPath("docker")), sha256Of(sandbox->payloadPath("dockerinit"))};
    }
};

// Power lost between the two renames of a swap, then a boot: docker.socket
// and docker.service start before the agent, and a client touches the
// socket. Docker's guard (the shipped drop-in) holds the start; the agent's
// recovery stops Docker, restores the old set and starts it.
TEST_F(BootGuardTest, DockerDoesNotStartOnAMixedSetBeforeRecovery)
{
#if !ARMDOCK_FAULT_INJECTION
    GTEST_SKIP() << "the agent was built without -Dfault_injection=true: no fault point to stop at";
#endif
    startAll();
    const auto oldSet = installedSet();
    const fs::path newDocker = newGoodEngine("armdock-mixed-v2");
    const fs::path newInit = sandbox->dir() / "src-dockerinit-v2";
    fs::copy_file(sandbox->payloadPath("dockerinit"), newInit);
    std::ofstream(newInit, std::ios::app | std::ios::binary) << "armdock-mixed-v2";
    fs::permissions(newInit, fs::perms(0755));
    const std::pair<std::string, std::string> newSet{sha256Of(newDocker), sha256Of(newInit)};

    restartAgent({{"ARMDOCK_FAULT", "after-first-rename"}});
    ASSERT_FALSE(HasFatalFailure());
    try {
        client->upgrade({{"docker", newDocker.string()}, {"dockerinit", newInit.string()}});
    } catch (const sdbus::Error& e) {
        std::cout << "Upgrade reply lost: " << e.getName() << std::endl;  // killed before it left
    }
    ASSERT_TRUE(Sandbox::waitFor([&] { return agentGone(); }, 60s, 10ms)) << "the agent did not die at the fault point";
    const auto mixed = installedSet();
    ASSERT_TRUE(mixed != oldSet && mixed != newSet) << "the set on disk is not mixed";
    ASSERT_TRUE(fs::exists(sandbox->stateDir() / "transaction.journal"));
    ASSERT_NE(sandbox->activeState("docker.service"), "active");

    // The boot: Docker's units first, the agent later; and a client knocks.
    const auto started = sandbox->systemctl({"start", "--no-block", "docker.socket", "docker.service"});
    ASSERT_EQ(started.exitCode, 0) << started.output;
    ASSERT_TRUE(Sandbox::waitFor([&] { return sandbox->activeState("docker.socket") == "active"; }, 10s, 10ms));
    bool answered = sandbox->ping(std::chrono::milliseconds(500));
    std::string state;
    const auto until = Clock::now() + 3s;
    while (!answered && Clock::now() < until) {
        state = sandbox->activeState("docker.service");
        if (state == "active")
            break;
        answered = sandbox->ping(std::chrono::milliseconds(200));
    }
    EXPECT_FALSE(answered) << "Docker answered /_ping on a mixed set";
    EXPECT_NE(state, "active") << "docker.service is active on a mixed set";
    const std::string dockerLog = readFile(sandbox->dir() / "logs/docker.log");
    EXPECT_NE(dockerLog.find("mixed set"), std::string::npos) << "the guard did not say why Docker waits:\n" << dockerLog;

    // The agent comes up: its recovery stops Docker (which ends the held
    // start), restores the old set and starts Docker on it.
    const auto recoveryStarted = Clock::now();
    restartAgent({});
    ASSERT_FALSE(HasFatalFailure());
    std::cout << "recovery and Docker's start took "
              << std::chrono::duration<double>(Clock::now() - recoveryStarted).count() << " s" << std::endl;
    EXPECT_EQ(installedSet(), oldSet) << "the old set is not on disk byte for byte";
    EXPECT_TRUE(Sandbox::waitFor([&] { return sandbox->ping(); }, 10s)) << "Docker does not answer /_ping";
    EXPECT_EQ(sandbox->activeState("docker.service"), "active");
    EXPECT_FALSE(fs::exists(sandbox->stateDir() / "transaction.journal")) << "the journal was not cleared";
    EXPECT_EQ(client->property("LastResult"), "rolled-back") << client->property("LastError");
}

}  // namespace
}  // namespace armdock::test
