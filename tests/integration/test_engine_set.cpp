// The engine as a set of files with their own units, against the real parts
// (systemd user manager, dbus-daemon, containerd, dockerd): containerd runs
// from a payload as its own unit, and docker.service only Wants= it, as in
// Debian's units. A transaction restarts exactly the units of the payloads
// it changes, told apart by their MainPIDs. A part with a component must be
// what dockerd's /version reports afterwards.
#include "agent_sandbox_fixture.hpp"

namespace armdock::test {
namespace {

class EngineSetTest : public AgentSandboxTest {
protected:
    void startSet()
    {
        sandboxOptions.containerdPayload = true;
        startAll({}, "[[payload]]\nname = \"containerd\"\npath = \"@ROOT@/usr/bin/containerd\"\nunits = [\"containerd.service\"]\n"
                     "component = \"containerd\"\n");
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
    // What the real containerd prints for --version is what dockerd reports for it.
    EXPECT_NE(agentLog().find("checking that the engine uses containerd 1.6"), std::string::npos) << agentLog();
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

// runc as a part of the set with component = "runc": dockerd runs `runc
// --version` for its /version, from its PATH (the sandbox's usr/sbin first).
// The new runc of these tests prints a version of their choosing.
class RuncComponentTest : public AgentSandboxTest {
protected:
    void startWithRuncAt(const std::string& target)
    {
        sandboxOptions.runcPayload = true;
        startAll({}, "[[payload]]\nname = \"runc\"\npath = \"@ROOT@/" + target + "\"\nunits = []\ncomponent = \"runc\"\n");
        const fs::path installed = sandbox->root() / target;
        if (!fs::exists(installed)) {
            fs::create_directories(installed.parent_path());
            installExecutable("/usr/sbin/runc", installed);
        }
    }
    fs::path runcReporting(const std::string& version)
    {
        const fs::path file = sandbox->dir() / ("src-runc-" + version);
        installExecutable(enginesDir() / "engine_runc_version", file);
        std::ofstream(file, std::ios::app | std::ios::binary) << "\nrunc-version=" << version << "\n";
        return file;
    }
    std::string reportedRunc() const
    {
        const auto reply = sandbox->dockerGet("/version");
        if (!reply)
            return "no answer";
        const auto at = reply->body.find(R"("Name":"runc","Version":")");
        if (at == std::string::npos)
            return "not reported: " + reply->body;
        const auto from = at + std::string(R"("Name":"runc","Version":")").size();
        return reply->body.substr(from, reply->body.find('"', from) - from);
    }
};

TEST_F(RuncComponentTest, ANewRuncThatTheEngineReportsPasses)
{
    startWithRuncAt("usr/sbin/runc");
    ASSERT_EQ(reportedRunc(), "1.1.5+ds1");
    const pid_t dockerBefore = sandbox->dockerMainPid();
    const fs::path runc = runcReporting("1.1.99");

    const std::string tx = client->upgrade({{"runc", runc.string()}});
    ASSERT_EQ(client->waitFinished(tx), "success") << client->property("LastError") << agentLog();
    EXPECT_EQ(reportedRunc(), "1.1.99");
    EXPECT_EQ(sandbox->dockerMainPid(), dockerBefore) << "runc has no units: nothing restarts";
    EXPECT_NE(agentLog().find("checking that the engine uses runc 1.1.99"), std::string::npos) << agentLog();
}

// The payload's target is not the runc dockerd runs: /version still reports
// the old one, the check names both, and the old file is put back.
TEST_F(RuncComponentTest, ARuncTheEngineDoesNotUseIsRolledBack)
{
    startWithRuncAt("opt/runc");
    const std::string oldSha = sha256Of(sandbox->root() / "opt/runc");
    const fs::path runc = runcReporting("1.1.99");

    const std::string tx = client->upgrade({{"runc", runc.string()}});
    EXPECT_EQ(client->waitFinished(tx), "rolled-back") << agentLog();
    const std::string error = client->property("LastError");
    EXPECT_NE(error.find("check components: " + sandbox->dockerSocket().string() + " reports runc 1.1.5+ds1, but the new " +
                         (sandbox->root() / "opt/runc").string() + " (payload runc) is 1.1.99"),
              std::string::npos)
        << error;
    EXPECT_EQ(sha256Of(sandbox->root() / "opt/runc"), oldSha);
    EXPECT_TRUE(sandbox->ping());
}

}  // namespace
}  // namespace armdock::test
