// The check proves that the file just installed runs, not only that
// something reports its version: against the real parts (systemd user
// manager, dbus-daemon, dockerd), with a docker.service that runs another
// copy of the engine than the payload the agent upgrades.
#include <sys/stat.h>

#include "agent_sandbox_fixture.hpp"

namespace armdock::test {
namespace {

class EngineIdentityTest : public AgentSandboxTest {
protected:
    // docker.service runs this copy; the agent upgrades usr/bin/docker.
    void runEngineFromAnotherFile() { sandboxOptions.engineRunsFrom = "usr/local/bin/dockerd"; }
};

// A rebuild with the same version answers /version as expected on the old
// file: only /proc/MAINPID/exe tells that the new file never ran.
TEST_F(EngineIdentityTest, RebuildThatDoesNotRunIsRolledBack)
{
    runEngineFromAnotherFile();
    startAll();
    const fs::path engine = newGoodEngine();

    const std::string tx = client->upgrade({{"docker", engine.string()}});
    EXPECT_EQ(client->waitFinished(tx), "rolled-back") << client->property("LastError");
    const std::string error = client->property("LastError");
    EXPECT_NE(error.find("check exe"), std::string::npos) << error;
    EXPECT_NE(error.find("runs " + (sandbox->root() / "usr/local/bin/dockerd").string()), std::string::npos) << error;
    EXPECT_NE(error.find("not the installed " + sandbox->payloadPath("docker").string()), std::string::npos) << error;
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldEngineSha);
    EXPECT_TRUE(sandbox->ping());
    EXPECT_EQ(client->property("State"), "idle");
}

// The switch for a target that is a launcher of another program: the same
// host, with check_main_exe = false, upgrades (the version still checked).
TEST_F(EngineIdentityTest, LauncherTargetPassesWithTheExeCheckOff)
{
    runEngineFromAnotherFile();
    startAll({{"docker.check_main_exe", "false"}});
    const fs::path engine = newGoodEngine();

    const std::string tx = client->upgrade({{"docker", engine.string()}});
    EXPECT_EQ(client->waitFinished(tx), "success") << client->property("LastError");
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), sha256Of(engine));
}

// The ordinary host: after an upgrade Docker's main process runs the new file.
TEST_F(EngineIdentityTest, AfterAnUpgradeTheMainProcessRunsTheNewFile)
{
    startAll();
    const fs::path engine = newGoodEngine();

    const std::string tx = client->upgrade({{"docker", engine.string()}});
    ASSERT_EQ(client->waitFinished(tx), "success") << client->property("LastError");
    const pid_t pid = sandbox->dockerMainPid();
    ASSERT_GT(pid, 0);
    struct stat runs {}, installed {};
    ASSERT_EQ(::stat(("/proc/" + std::to_string(pid) + "/exe").c_str(), &runs), 0);
    ASSERT_EQ(::stat(sandbox->payloadPath("docker").c_str(), &installed), 0);
    EXPECT_EQ(runs.st_ino, installed.st_ino);
    EXPECT_EQ(runs.st_dev, installed.st_dev);
}

}  // namespace
}  // namespace armdock::test
