// Live-restore against the real parts: dockerd started with --live-restore,
// a busybox container, an engine upgrade. The container keeps its process
// (Pid and start time) and Finished says so; a new engine that comes up
// without live-restore stops it, and the upgrade is rolled back naming it.
#include "agent_sandbox_fixture.hpp"

#include "core/process_start.hpp"

namespace armdock::test {
namespace {

class LiveRestoreTest : public AgentSandboxTest {
protected:
    void startWithAContainer(const std::map<std::string, std::string>& set = {})
    {
        sandboxOptions.dockerdArgs = {"--live-restore"};
        startAll(set);
        sandbox->importBusyboxImage("armdock-busybox");
        auto r = sandbox->docker({"run", "-d", "--network=none", "--stop-timeout=1", "--name", "web", "armdock-busybox", "/bin/sleep", "100000"});
        ASSERT_EQ(r.exitCode, 0) << r.output;
        pid = containerPid();
        ASSERT_GT(pid, 0);
        startTime = processStartTime(pid);
        ASSERT_TRUE(startTime);
    }
    pid_t containerPid()
    {
        auto r = sandbox->docker({"inspect", "-f", "{{.State.Pid}}", "web"});
        return r.exitCode == 0 ? static_cast<pid_t>(std::atoi(r.output.c_str())) : 0;
    }
    pid_t pid = 0;
    std::optional<unsigned long long> startTime;
};

TEST_F(LiveRestoreTest, AContainerKeepsItsProcessThroughADockerdUpgrade)
{
    startWithAContainer();
    const std::string tx = client->upgrade({{"docker", newGoodEngine().string()}});
    ASSERT_EQ(client->waitFinished(tx), "success") << client->property("LastError");
    EXPECT_NE(client->progress().second.find("1 container(s) kept running through the restart"), std::string::npos)
        << client->progress().second;
    EXPECT_EQ(containerPid(), pid) << "the container was restarted";
    EXPECT_EQ(processStartTime(pid), startTime) << "another process runs under the container's Pid";
}

TEST_F(LiveRestoreTest, ANewEngineWithoutLiveRestoreIsRolledBackNamingTheContainer)
{
    // That engine executes the real dockerd: only the exe check would see it, and it comes first.
    startWithAContainer({{"docker.check_main_exe", "false"}});
    const std::string tx = client->upgrade({{"docker", testEngine("engine_no_live_restore").string()}});
    EXPECT_EQ(client->waitFinished(tx), "rolled-back") << client->property("LastError");
    const std::string error = client->property("LastError");
    EXPECT_NE(error.find("check live-restore"), std::string::npos) << error;
    EXPECT_NE(error.find("container web ("), std::string::npos) << error;
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldEngineSha);
    EXPECT_TRUE(sandbox->ping());
}

}  // namespace
}  // namespace armdock::test
