// The agent end to end with the real parts: systemd user manager, dbus-daemon,
// socket-activated dockerd. One upgrade that succeeds, and one rollback for
// each way a new engine can fail.
#include "agent_sandbox_fixture.hpp"

namespace armdock::test {
namespace {

class AgentUpgradeTest : public AgentSandboxTest {
protected:
    // Moves `engine` into the drop-in folder as the docker payload, runs
    // `systemctl reload` and waits until it is installed and the agent idle.
    void dropInAndReload(const fs::path& engine)
    {
        const std::string newSha = sha256Of(engine);
        fs::rename(engine, sandbox->dropinDir() / "docker");
        auto reload = sandbox->systemctl({"reload", "armdock-agent.service"});
        ASSERT_EQ(reload.exitCode, 0) << reload.output;
        ASSERT_TRUE(Sandbox::waitFor([&] { return sha256Of(sandbox->payloadPath("docker")) == newSha && client->property("State") == "idle"; },
                                     std::chrono::seconds(60), std::chrono::milliseconds(50)))
            << client->property("LastError");
    }
};

TEST_F(AgentUpgradeTest, UpgradeSucceedsAndReportsIt)
{
    startAll();
    const pid_t oldPid = sandbox->dockerMainPid();
    fs::path engine = newGoodEngine();
    const std::string newSha = sha256Of(engine);
    ASSERT_TRUE(client->listBackups().empty());

    std::string tx = client->upgrade({{"docker", engine.string()}}, {{"sha256.docker", sdbus::Variant(newSha)}});
    ASSERT_EQ(client->waitFinished(tx), "success") << client->property("LastError");

    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), newSha);
    EXPECT_EQ(client->property("CurrentVersion"), "20.10.24+dfsg1");
    EXPECT_EQ(client->property("LastError"), "");
    EXPECT_EQ(client->progress().first, 100u);
    EXPECT_EQ(client->listBackups().size(), 1u);
    EXPECT_TRUE(sandbox->ping());
    EXPECT_NE(sandbox->dockerMainPid(), oldPid);  // the engine really restarted
    EXPECT_EQ(sandbox->activeState("docker.socket"), "active");
}

struct FailingEngineCase {
    const char* name;
    const char* engine;      // a test engine, or "" for a good engine with a failing smoke command
    const char* check;       // what LastError must name
    // The engine executes the real dockerd, so its main process never runs
    // the installed file: the exe check is turned off to reach `check`.
    bool execsDockerd = false;
};

class AgentRollbackTest : public AgentSandboxTest, public ::testing::WithParamInterface<FailingEngineCase> {};

TEST_P(AgentRollbackTest, BadEngineIsRolledBackByteForByte)
{
    const auto& c = GetParam();
    const bool smokeCase = std::string(c.engine).empty();
    std::map<std::string, std::string> set;
    if (smokeCase)  // a smoke test that fails only for the new engine (it carries a marker)
        set["docker.smoke_command"] = "[\"/bin/sh\", \"-c\", \"! /bin/grep -q smoke-breaker @ENGINE@\"]";
    if (c.execsDockerd)
        set["docker.check_main_exe"] = "false";
    startAll(set);
    fs::path engine = smokeCase ? newGoodEngine("smoke-breaker") : testEngine(c.engine);

    std::string tx = client->upgrade({{"docker", engine.string()}});
    EXPECT_EQ(client->waitFinished(tx), "rolled-back");
    const std::string error = client->property("LastError");
    EXPECT_NE(error.find(c.check), std::string::npos) << error;
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldEngineSha);
    EXPECT_TRUE(sandbox->ping());
    EXPECT_EQ(client->property("State"), "idle");
    EXPECT_TRUE(client->listBackups().empty());  // a rolled-back transaction adds no backup
    for (const auto& e : fs::directory_iterator(sandbox->payloadPath("docker").parent_path()))
        EXPECT_FALSE(e.path().filename().string().starts_with(".")) << "leftover " << e.path();
}

INSTANTIATE_TEST_SUITE_P(
    EachFailure, AgentRollbackTest,
    ::testing::Values(FailingEngineCase{"ExitsAtOnce", "engine_exits", "docker.service"},
                      FailingEngineCase{"NeverAnswers", "engine_silent", "ping"},
                      FailingEngineCase{"ReportsAnotherVersion", "engine_wrong_version", "version"},
                      FailingEngineCase{"DiesInGrace", "engine_dies_in_grace", "grace", true},
                      FailingEngineCase{"SmokeCommandFails", "", "smoke"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(AgentUpgradeTest, DropInThroughSystemctlReload)
{
    startAll();
    ASSERT_NO_FATAL_FAILURE(dropInAndReload(newGoodEngine("dropin")));
    EXPECT_EQ(client->property("LastResult"), "success");
    EXPECT_TRUE(fs::is_empty(sandbox->dropinDir()));
    EXPECT_TRUE(sandbox->ping());
}

// A fresh install has no drop-in folder (the package ships only the state
// folder): the agent makes it at start and on reload, so the README's
// "copy the binary into the drop-in folder" works on a new system.
TEST_F(AgentUpgradeTest, DropInFolderIsMadeAtStartAndOnReload)
{
    startAll();
    const fs::path folder = sandbox->dropinDir();
    auto isPrivateFolder = [&] {
        struct stat st {};
        return ::stat(folder.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700;
    };
    fs::remove(folder);
    auto restart = sandbox->systemctl({"restart", "armdock-agent.service"});
    ASSERT_EQ(restart.exitCode, 0) << restart.output;
    ASSERT_TRUE(AgentClient::waitForAgent(sandbox->busAddress())) << agentLog();
    client = std::make_unique<AgentClient>(sandbox->busAddress());
    EXPECT_TRUE(isPrivateFolder()) << folder << " after a start";

    fs::remove(folder);
    auto reload = sandbox->systemctl({"reload", "armdock-agent.service"});
    ASSERT_EQ(reload.exitCode, 0) << reload.output;
    ASSERT_TRUE(Sandbox::waitFor(isPrivateFolder, std::chrono::seconds(10), std::chrono::milliseconds(20)))
        << folder << " after a reload";

    ASSERT_NO_FATAL_FAILURE(dropInAndReload(newGoodEngine("dropin-new-folder")));
    EXPECT_EQ(client->property("LastResult"), "success");
}

TEST_F(AgentUpgradeTest, RollbackMethodRestoresThePreviousEngine)
{
    startAll();
    fs::path engine = newGoodEngine();
    std::string tx = client->upgrade({{"docker", engine.string()}});
    ASSERT_EQ(client->waitFinished(tx), "success") << client->property("LastError");
    tx = client->rollback();
    ASSERT_EQ(client->waitFinished(tx), "success") << client->property("LastError");
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldEngineSha);
    EXPECT_TRUE(sandbox->ping());
}

}  // namespace
}  // namespace armdock::test
