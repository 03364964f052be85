// Reload and the drop-in folder, on real files with systemd and Docker faked.
#include "agent_test_fixture.hpp"

#include "core/errors.hpp"

namespace armdock::test {
namespace {

class AgentReloadTest : public AgentFixture {};

TEST_F(AgentReloadTest, ADropInUpgradesAndTheFolderIsEmptyAfterwards)
{
    startAgent();
    fs::path src = newEngine("engine-v2", "2.0.0");
    fs::copy_file(src, dir / "incoming/docker");
    std::ofstream(dir / "incoming/docker.sha256") << sha256OfFile(src) << "  docker\n";
    std::string tx = agent->reload();
    EXPECT_FALSE(tx.empty());
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, "success") << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), sha256OfFile(src));
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
}

TEST_F(AgentReloadTest, RefusedDropInsAreMovedAsideWithTheirReason)
{
    startAgent();
    std::ofstream(dir / "incoming/containerd") << "not a payload";
    makeEngineFile(dir / "incoming/docker", "world-writable", /*world=*/true);
    EXPECT_THROW(agent->reload(), AgentError);
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
    EXPECT_EQ(agent->status().lastResult, "rejected");
    EXPECT_NE(agent->status().lastError.find("writable"), std::string::npos) << agent->status().lastError;
    int reasons = 0;
    for (const auto& e : fs::directory_iterator(dir / "state/rejected"))
        reasons += e.path().extension() == ".reason";
    EXPECT_EQ(reasons, 2);
    EXPECT_TRUE(units.calls.empty());
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
}

TEST_F(AgentReloadTest, ADropInThatFailsItsCheckIsMovedAsideAfterTheRollback)
{
    startAgent();
    fs::path src = newEngine("engine-broken", "2.0.0", true);
    fs::copy_file(src, dir / "incoming/docker");
    agent->reload();
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, "rolled-back");
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
    EXPECT_FALSE(fs::is_empty(dir / "state/rejected"));
}

TEST_F(AgentReloadTest, ABrokenConfigIsRefusedAndTheOldOneKept)
{
    startAgent();
    std::ofstream(dir / "agent.toml", std::ios::app) << "\n[docker]\nbogus_key = 1\n";
    try {
        agent->reload();
        FAIL();
    } catch (const AgentError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
        EXPECT_NE(std::string(e.what()).find((dir / "agent.toml").string() + ":"), std::string::npos) << e.what();
    }
    EXPECT_EQ(agent->config().agent.keepBackups, 2u);
    EXPECT_EQ(agent->config().payloads.at(0).path, enginePath());
}

TEST_F(AgentReloadTest, LastResultSurvivesARestart)
{
    startAgent();
    fs::path src = newEngine("engine-v2", "2.0.0");
    std::string tx = agent->upgrade({{"docker", src.string()}}, {});
    waitIdle();
    agent.reset();
    startAgent();
    EXPECT_EQ(agent->status().transaction, tx);
    EXPECT_EQ(agent->status().lastResult, "success");
    EXPECT_EQ(agent->status().currentVersion, "2.0.0");
}

}  // namespace
}  // namespace armdock::test
