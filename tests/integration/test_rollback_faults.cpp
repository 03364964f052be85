// Second faults against the real parts (systemd user manager, dbus-daemon,
// dockerd): a rollback whose old engine cannot start either, a symlinked
// engine target, a new engine that hangs. Each ends with Docker answering on
// a whole set.
#include <cstdlib>
#include <regex>

#include "agent_sandbox_fixture.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class RollbackFaultsTest : public AgentSandboxTest {
protected:
    std::string waitFinished(const std::string& tx) { return client->waitFinished(tx); }

    void dockerDropIn(const std::string& name, const std::string& text)
    {
        const fs::path dir = sandbox->unitDir() / "docker.service.d";
        fs::create_directories(dir);
        writeFile(dir / name, text);
        sandbox->daemonReload();
    }
    void removeDockerDropIn(const std::string& name)
    {
        fs::remove(sandbox->unitDir() / "docker.service.d" / name);
        sandbox->daemonReload();
    }
};

// The host's fault, not the engine's: docker.service cannot start at all
// (an ExecStartPre that fails), so the new engine fails and the old one
// fails too. The failed set is kept and marked failed; Rollback() does not
// reinstall it; the command LastError names brings the old engine back once
// the cause is gone.
TEST_F(RollbackFaultsTest, AfterAFailedRollbackTheAdvisedCommandBringsDockerBack)
{
    startAll({{"docker.health_timeout_sec", "5"}, {"docker.grace_sec", "1"}});
    ASSERT_FALSE(armdockctlBinary().empty());
    const std::string oldSha = sha256Of(sandbox->payloadPath("docker"));
    const std::string initSha = sha256Of(sandbox->payloadPath("dockerinit"));
    dockerDropIn("host-fault.conf", "[Service]\nExecStartPre=/bin/false\n");
    const fs::path fresh = newGoodEngine("armdock-second-fault");
    ASSERT_EQ(waitFinished(client->upgrade({{"docker", fresh.string()}})), "failed") << client->property("LastError");
    const std::string error = client->property("LastError");
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldSha);

    std::smatch advised;
    ASSERT_TRUE(std::regex_search(error, advised, std::regex("armdockctl rollback --to ([0-9a-f]{16})"))) << error;
    const std::string backupId = advised[1];
    bool failedSetListed = false;
    for (const auto& b : client->listBackupSets()) {
        if (b.id == backupId) {
            EXPECT_TRUE(b.installed);
            EXPECT_EQ(b.health, "healthy");
        } else {
            failedSetListed = true;
            EXPECT_EQ(b.health, "failed") << b.id;
        }
    }
    EXPECT_TRUE(failedSetListed);

    // Rollback() must not reinstall the engine that just failed.
    try {
        const std::string tx = client->rollback();
        waitFinished(tx);
        EXPECT_NE(sha256Of(sandbox->payloadPath("docker")), sha256Of(fresh)) << "Rollback() reinstalled the failed engine";
    } catch (const sdbus::Error& e) {
        EXPECT_EQ(e.getName(), "io.armdock.Agent1.Error.NoBackup") << e.getMessage();
    }

    removeDockerDropIn("host-fault.conf");  // the cause is gone
    auto r = sandbox->run({armdockctlBinary().string(), "--bus", sandbox->busAddress(), "rollback", "--to", backupId}, 120s);
    EXPECT_EQ(r.exitCode, 0) << r.output;
    EXPECT_EQ(client->property("LastResult"), "success") << client->property("LastError");
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldSha);
    EXPECT_EQ(sha256Of(sandbox->payloadPath("dockerinit")), initSha);
    EXPECT_TRUE(sandbox->ping());
    EXPECT_EQ(sandbox->activeState("docker.service"), "active");

    auto listed = sandbox->run({armdockctlBinary().string(), "--bus", sandbox->busAddress(), "backups"});
    EXPECT_EQ(listed.exitCode, 0) << listed.output;
    EXPECT_NE(listed.output.find("STATE"), std::string::npos) << listed.output;
    EXPECT_NE(listed.output.find("failed"), std::string::npos) << listed.output;
    EXPECT_NE(listed.output.find("installed"), std::string::npos) << listed.output;
}

// The engine target is a symbolic link to a file beside it (as Debian's
// docker-init is, or an alternatives link): a failing upgrade's rollback puts
// the link back, and Docker runs through it again.
TEST_F(RollbackFaultsTest, ASymlinkedEngineSurvivesAFailingUpgrade)
{
    startAll({{"docker.health_timeout_sec", "5"}, {"docker.grace_sec", "1"}});
    const fs::path target = sandbox->payloadPath("docker");
    const fs::path real = target.parent_path() / "dockerd-real";
    sandbox->stopUnits({"docker.socket", "docker.service"});
    fs::rename(target, real);
    fs::create_symlink("dockerd-real", target);
    sandbox->startUnits({"docker.socket", "docker.service"});
    ASSERT_TRUE(Sandbox::waitFor([&] { return sandbox->ping(); }, 30s));
    const std::string realSha = sha256Of(real);

    const fs::path failing = testEngine("engine_exits");
    ASSERT_EQ(waitFinished(client->upgrade({{"docker", failing.string()}})), "rolled-back") << client->property("LastError");
    ASSERT_TRUE(fs::is_symlink(fs::symlink_status(target))) << "the link was not restored";
    EXPECT_EQ(fs::read_symlink(target), fs::path("dockerd-real"));
    EXPECT_EQ(sha256Of(real), realSha);
    EXPECT_TRUE(sandbox->ping());
    for (const auto& e : fs::directory_iterator(target.parent_path()))
        EXPECT_TRUE(e.path() == target || e.path() == real) << "stray " << e.path();
}

// The new engine fails its check; the rollback's stop reaches the agent's
// stop timeout (2 s) long before the unit's TimeoutStopSec (120 s). The agent
// kills the unit's processes and the rollback completes.
TEST_F(RollbackFaultsTest, HungEngineIsKilledAndRolledBack)
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
