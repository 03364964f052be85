// Faults of the second round, end to end with the real parts: a new engine
// that hangs (ignores SIGTERM, never answers) must still be rolled back.
#include <chrono>

#include "agent_sandbox_fixture.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class SecondFaultsTest : public AgentSandboxTest {
protected:
    // A drop-in for docker.service, then a reload of the manager.
    void dockerDropIn(const std::string& name, const std::string& text)
    {
        const fs::path dir = sandbox->unitDir() / "docker.service.d";
        fs::create_directories(dir);
        writeFile(dir / name, text);
        sandbox->daemonReload();
    }
};

// The new engine fails its check; the rollback's stop reaches the agent's
// stop timeout (2 s) long before the unit's TimeoutStopSec (120 s). The agent
// kills the unit's processes and the rollback completes.
TEST_F(SecondFaultsTest, HungEngineIsKilledAndRolledBack)
{
    startAll({{"docker.stop_timeout_sec", "2"}, {"docker.health_timeout_sec", "3"}, {"docker.grace_sec", "1"}});
    dockerDropIn("stop-timeout.conf", "[Service]\nTimeoutStopSec=120\n");
    const fs::path engine = testEngine("engine_hangs");

    const auto started = Clock::now();
    const std::string tx = client->upgrade({{"docker", engine.string()}});
    const std::string result = client->waitFinished(tx, 90s);
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    std::cout << "upgrade to a hung engine ended '" << result << "' in " << seconds << " s" << std::endl;
    EXPECT_EQ(result, "rolled-back") << client->property("LastError");
    EXPECT_EQ(client->property("LastResult"), "rolled-back");
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldEngineSha);
    EXPECT_TRUE(Sandbox::waitFor([&] { return sandbox->ping(); }, 10s)) << "Docker does not answer /_ping";
    EXPECT_EQ(sandbox->activeState("docker.service"), "active");
    EXPECT_NE(agentLog().find("SIGKILL"), std::string::npos) << "the agent did not log the escalation";
    EXPECT_LT(seconds, 60.0);
}

}  // namespace
}  // namespace armdock::test
