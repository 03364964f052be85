// The engine as a set of files with their own units, against the real parts
// (systemd user manager, dbus-daemon, containerd, dockerd): containerd runs
// from a payload as its own unit, and docker.service only Wants= it, as in
// Debian's units. A transaction restarts exactly the units of the payloads
// it changes, told apart by their MainPIDs.
#include "agent_sandbox_fixture.hpp"

namespace armdock::test {
namespace {

class EngineSetTest : public AgentSandboxTest {
protected:
    void startSet()
    {
        sandboxOptions.containerdPayload = true;
        startAll({}, "[[payload]]\nname = \"containerd\"\npath = \"@ROOT@/usr/bin/containerd\"\nunits = [\"containerd.service\"]\n");
    }
    // A copy of the installed containerd with `marker` appended: another file, the same program.
    fs::path newContainerd(const std::string& marker)
    {
        fs::path file = sandbox->dir() / ("src-" + marker);
        fs::copy_file(sandbox->payloadPath("containerd"), file);
        std::ofstream(file, std::ios::app | std::ios::binary) << marker;
        fs::permissions(file, fs::perms(0755));
        return file;
    }
};

TEST_F(EngineSetTest, UpgradingContainerdRestartsContainerdAndNotDocker)
{
    startSet();
    const pid_t dockerBefore = sandbox->mainPid("docker.service");
    const pid_t containerdBefore = sandbox->mainPid("containerd.service");
    ASSERT_GT(dockerBefore, 0);
    ASSERT_GT(containerdBefore, 0);
    const fs::path containerd = newContainerd("containerd-v2");

    const std::string tx = client->upgrade({{"containerd", containerd.string()}});
    ASSERT_EQ(client->waitFinished(tx), "success") << client->property("LastError") << agentLog();
    EXPECT_EQ(sha256Of(sandbox->payloadPath("containerd")), sha256Of(containerd));
    EXPECT_EQ(sandbox->mainPid("docker.service"), dockerBefore) << "docker.service was restarted";
    const pid_t containerdAfter = sandbox->mainPid("containerd.service");
    EXPECT_GT(containerdAfter, 0);
    EXPECT_NE(containerdAfter, containerdBefore) << "containerd.service was not restarted";
    EXPECT_TRUE(sandbox->ping());
}

TEST_F(EngineSetTest, UpgradingDockerdRestartsDockerAndNotContainerd)
{
    startSet();
    const pid_t dockerBefore = sandbox->mainPid("docker.service");
    const pid_t containerdBefore = sandbox->mainPid("containerd.service");
    ASSERT_GT(containerdBefore, 0);

    const std::string tx = client->upgrade({{"docker", newGoodEngine().string()}});
    ASSERT_EQ(client->waitFinished(tx), "success") << client->property("LastError") << agentLog();
    EXPECT_EQ(sandbox->mainPid("containerd.service"), containerdBefore) << "containerd.service was restarted";
    EXPECT_NE(sandbox->mainPid("docker.service"), dockerBefore) << "docker.service was not restarted";
    EXPECT_TRUE(sandbox->ping());
}

}  // namespace
}  // namespace armdock::test
