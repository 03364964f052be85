// [docker] hold_socket: the staged files are renamed while the old engine
// still runs, then the changed units restart with the socket still
// listening: the service alone in "ignore-dependencies" mode when the socket
// is PartOf= it (Docker 1.10's unit), else one "replace" batch. A failure
// rolls back as without the option (everything stopped, restored, started).
#include "agent_test_fixture.hpp"

#include <algorithm>

#include "core/held_restart.hpp"

namespace armdock::test {
namespace {

using Calls = std::vector<std::string>;

TEST(HeldRestarts, EveryUnitButTheSocketInOneReplaceBatch)
{
    EXPECT_EQ(heldRestarts({"docker.socket", "docker.service", "containerd.service"}, "docker.socket", "docker.service", {}),
              (std::vector<RestartBatch>{{{"docker.service", "containerd.service"}, JobMode::Replace}}));
}

TEST(HeldRestarts, ASocketPartOfTheServiceMakesTheServiceRestartAloneAfterTheOthers)
{
    EXPECT_EQ(heldRestarts({"docker.socket", "docker.service", "containerd.service"}, "docker.socket", "docker.service", {"docker.service"}),
              (std::vector<RestartBatch>{{{"containerd.service"}, JobMode::Replace}, {{"docker.service"}, JobMode::IgnoreDependencies}}));
    EXPECT_EQ(heldRestarts({"docker.socket", "docker.service"}, "docker.socket", "docker.service", {"docker.service"}),
              (std::vector<RestartBatch>{{{"docker.service"}, JobMode::IgnoreDependencies}}));
}

TEST(HeldRestarts, AChangeThatDoesNotRestartTheServiceIgnoresPartOf)
{
    EXPECT_EQ(heldRestarts({"containerd.service"}, "docker.socket", "docker.service", {"docker.service"}),
              (std::vector<RestartBatch>{{{"containerd.service"}, JobMode::Replace}}));
    EXPECT_TRUE(heldRestarts({"docker.socket"}, "docker.socket", "docker.service", {}).empty());
}

class SocketHoldTest : public AgentFixture {
protected:
    std::string extraDocker() const override { return "hold_socket = true\n"; }
    std::string extraPayloads() const override
    {
        return "[[payload]]\nname = \"containerd\"\npath = \"" + containerdPath().string() + "\"\nunits = [\"containerd.service\"]\n";
    }
    void SetUp() override
    {
        AgentFixture::SetUp();
        makeEngineFile(containerdPath(), "old-containerd");
        units.setActive("docker.socket");
        units.setActive("docker.service");
        units.setActive("containerd.service");
    }
    fs::path containerdPath() const { return dir / "root/usr/bin/containerd"; }

    // The engine file's SHA-256 at each restart call: what the restarted service runs.
    std::vector<std::string> engineAtRestart;
    void noteEngineAtRestart()
    {
        units.onCall = [this](const std::string& call) {
            if (call.starts_with("restart "))
                engineAtRestart.push_back(sha256OfFile(enginePath()));
        };
    }
    bool saidInProgress(const std::string& words) const
    {
        return std::any_of(recorder.messages.begin(), recorder.messages.end(), [&](const std::string& m) { return m.find(words) != std::string::npos; });
    }
};

TEST_F(SocketHoldTest, TheFilesAreRenamedFirstThenTheServiceAloneRestarts)
{
    startAgent();
    noteEngineAtRestart();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(units.calls, (Calls{"restart docker.service"})) << "the socket is never stopped";
    EXPECT_EQ(engineAtRestart, (std::vector<std::string>{sha256OfFile(src)})) << "the rename comes before the restart";
    EXPECT_TRUE(saidInProgress("docker.socket keeps listening"));
    EXPECT_TRUE(saidInProgress("then docker.service restarts with the socket still listening"));
    expectNoLeftovers();
}

TEST_F(SocketHoldTest, ASocketPartOfTheServiceStaysUpThroughAnIgnoreDependenciesRestart)
{
    units.setPartOf("docker.socket", {"docker.service"});
    startAgent();
    agent->upgrade(Files{{"docker", newEngine("engine-v2", "2.0.0").string()}, {"containerd", newEngine("containerd-v2", "").string()}},
                   Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(units.calls, (Calls{"restart containerd.service", "restart docker.service (ignore-dependencies)"}));
    EXPECT_TRUE(saidInProgress("docker.socket is PartOf= it"));
}

TEST_F(SocketHoldTest, WithoutPartOfTheEngineAndContainerdRestartInOneBatch)
{
    startAgent();
    agent->upgrade(Files{{"docker", newEngine("engine-v2", "2.0.0").string()}, {"containerd", newEngine("containerd-v2", "").string()}},
                   Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(units.calls, (Calls{"restart containerd.service docker.service"}));  // one batch: systemd orders its jobs
}

TEST_F(SocketHoldTest, ASocketThatIsNotListeningHasNothingToHold)
{
    units.setActive("docker.socket", false);
    startAgent();
    agent->upgrade(Files{{"docker", newEngine("engine-v2", "2.0.0").string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(units.calls, (Calls{"stop docker.socket", "stop docker.service", "start docker.socket", "start docker.service"}));
}

TEST_F(SocketHoldTest, AFailedRestartRollsBackAsWithoutTheOption)
{
    startAgent();
    bool failed = false;
    units.onCall = [&](const std::string& call) {
        if (call == "restart docker.service" && !failed) {
            failed = true;
            throw UnitJobFailed("docker.service", "failed", "restart job for docker.service failed");
        }
    };
    agent->upgrade(Files{{"docker", newEngine("engine-v2", "2.0.0").string()}}, Options{});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::RolledBack) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_EQ(units.calls, (Calls{"restart docker.service", "stop docker.socket", "stop docker.service", "start docker.socket",
                                  "start docker.service"}));
    expectNoLeftovers();
}

TEST_F(SocketHoldTest, ACancelBeforeTheRenamesChangesNothingAndTouchesNoUnit)
{
    startAgent();
    CancelOnce canceller(*agent, [&](const std::vector<std::string>& names) {
        return std::find(names.begin(), names.end(), "Progress") != names.end() && agent->status().message.starts_with("holding docker.socket");
    });
    agent->upgrade(Files{{"docker", newEngine("engine-v2", "2.0.0").string()}}, Options{});
    waitIdle();
    EXPECT_TRUE(canceller.cancelled);
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Cancelled) << agent->status().lastError;
    EXPECT_NE(agent->status().lastError.find("Docker was not interrupted"), std::string::npos) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_TRUE(units.calls.empty()) << units.calls.front();
    EXPECT_TRUE(agent->listBackups().empty());
    expectNoLeftovers();
}

}  // namespace
}  // namespace armdock::test
