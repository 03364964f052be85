// [hooks] with the real systemd and dockerd: a drain script that refuses
// leaves Docker running and every file alone; drain and undrain scripts
// around a real upgrade see the engine answering on both sides, with the
// transaction and the versions in their environment.
#include "agent_sandbox_fixture.hpp"

namespace armdock::test {
namespace {

class UpgradeHooksTest : public AgentSandboxTest {
protected:
    void SetUp() override
    {
        char tmpl[] = "/tmp/armdock-hook-scripts.XXXXXX";
        scripts = ::mkdtemp(tmpl);
    }
    void TearDown() override
    {
        AgentSandboxTest::TearDown();
        std::error_code ec;
        fs::remove_all(scripts, ec);
    }

    // A hook that appends "HOOK TX OLD NEW RESULT PING" to the log, PING being
    // what the engine's /_ping answers while it runs, then exits `status`.
    fs::path hook(const std::string& name, int status = 0)
    {
        const fs::path file = scripts / name;
        writeFile(file,
                  "#!/bin/sh\n"
                  "ping=$(curl -s -m 2 --unix-socket \"$1\" http://docker/_ping || echo down)\n"
                  "echo \"$ARMDOCK_HOOK $ARMDOCK_TRANSACTION $ARMDOCK_OLD_VERSION $ARMDOCK_NEW_VERSION $ARMDOCK_RESULT $ping\" >> " +
                      (scripts / "log").string() + "\n" + (status ? "echo 'the node still has work' >&2\n" : "") + "exit " +
                      std::to_string(status) + "\n",
                  0755);
        return file;
    }

    std::string hooksToml(const fs::path& before, const fs::path& success, const fs::path& rollback) const
    {
        auto command = [&](const fs::path& program) { return "[\"" + program.string() + "\", \"" + socketPlaceholder + "\"]"; };
        return "[hooks]\ntimeout_sec = 20\nbefore_stop = " + command(before) + "\nafter_success = " + command(success) +
               "\nafter_rollback = " + command(rollback) + "\n";
    }

    std::vector<std::string> log() const
    {
        std::vector<std::string> lines;
        std::istringstream in(fs::exists(scripts / "log") ? readFile(scripts / "log") : "");
        for (std::string l; std::getline(in, l);)
            lines.push_back(l);
        return lines;
    }

    void startWithHooks(const std::string& toml) { startAll({}, toml); }

    // The sandbox's Docker socket (dir/docker.sock), written through startAll's @ROOT@ (dir/root).
    const std::string socketPlaceholder = "@ROOT@/../docker.sock";
    fs::path scripts;
};

TEST_F(UpgradeHooksTest, ABeforeStopThatRefusesLeavesDockerRunningAndTheFilesAlone)
{
    startWithHooks(hooksToml(hook("drain", 3), hook("undrain"), hook("undrain-after-rollback")));
    const pid_t dockerBefore = sandbox->dockerMainPid();
    ASSERT_GT(dockerBefore, 0);
    const fs::path engine = newGoodEngine();
    const std::string tx = client->upgrade({{"docker", engine.string()}});
    EXPECT_EQ(client->waitFinished(tx), "rejected");
    const std::string error = client->property("LastError");
    EXPECT_NE(error.find("hook before_stop `" + (scripts / "drain").string()), std::string::npos) << error;
    EXPECT_NE(error.find("exited with status 3 (it said: the node still has work)"), std::string::npos) << error;
    EXPECT_NE(error.find("nothing was changed and Docker was not interrupted"), std::string::npos) << error;
    EXPECT_EQ(sandbox->dockerMainPid(), dockerBefore) << "Docker was restarted";
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldEngineSha);
    EXPECT_TRUE(client->listBackups().empty());
    EXPECT_EQ(log(), (std::vector<std::string>{"before_stop " + tx + " 20.10.24+dfsg1 20.10.24+dfsg1  OK"}));
}

TEST_F(UpgradeHooksTest, DrainAndUndrainSeeTheEngineAnsweringOnBothSidesOfAnUpgrade)
{
    startWithHooks(hooksToml(hook("drain"), hook("undrain"), hook("undrain-after-rollback")));
    const fs::path engine = newGoodEngine();
    const std::string tx = client->upgrade({{"docker", engine.string()}});
    ASSERT_EQ(client->waitFinished(tx), "success") << client->property("LastError");
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), sha256Of(engine));
    EXPECT_EQ(log(), (std::vector<std::string>{"before_stop " + tx + " 20.10.24+dfsg1 20.10.24+dfsg1  OK",
                                               "after_success " + tx + " 20.10.24+dfsg1 20.10.24+dfsg1 success OK"}));
}

TEST_F(UpgradeHooksTest, AfterRollbackRunsOnceTheOldEngineIsBack)
{
    startWithHooks(hooksToml(hook("drain"), hook("undrain"), hook("undrain-after-rollback")));
    const fs::path engine = testEngine("engine_exits");
    const std::string tx = client->upgrade({{"docker", engine.string()}});
    ASSERT_EQ(client->waitFinished(tx), "rolled-back") << client->property("LastError");
    const auto lines = log();
    ASSERT_EQ(lines.size(), 2u) << readFile(scripts / "log");
    EXPECT_TRUE(lines[0].starts_with("before_stop " + tx + " 20.10.24+dfsg1 ")) << lines[0];
    EXPECT_TRUE(lines[1].starts_with("after_rollback " + tx + " 20.10.24+dfsg1 ")) << lines[1];
    EXPECT_TRUE(lines[1].ends_with(" rolled-back OK")) << lines[1];
}

}  // namespace
}  // namespace armdock::test
