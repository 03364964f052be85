// A payload's units: a transaction restarts exactly the units of the
// payloads it changes (stopped in one batch, started in one batch), and a
// payload with no units is swapped with no restart. Its rollback and the
// recovery after a crash restart the same units.
#include "agent_test_fixture.hpp"

#include <algorithm>

#include "core/backup_store.hpp"
#include "core/errors.hpp"
#include "core/journal.hpp"
#include "core/staging.hpp"

namespace armdock::test {
namespace {

using Calls = std::vector<std::string>;

class PayloadUnitsTest : public AgentFixture {
protected:
    std::string extraPayloads() const override
    {
        return "[[payload]]\nname = \"containerd\"\npath = \"" + containerdPath().string() + "\"\nunits = [\"containerd.service\"]\n"
               "[[payload]]\nname = \"runc\"\npath = \"" + runcPath().string() + "\"\nunits = []\n";
    }
    void SetUp() override
    {
        AgentFixture::SetUp();
        makeEngineFile(containerdPath(), "old-containerd");
        makeEngineFile(runcPath(), "old-runc");
        oldContainerdSha = sha256OfFile(containerdPath());
    }
    fs::path containerdPath() const { return dir / "root/usr/bin/containerd"; }
    fs::path runcPath() const { return dir / "root/usr/sbin/runc"; }
    std::string oldContainerdSha;
};

TEST_F(PayloadUnitsTest, ContainerdAloneRestartsContainerdServiceAndNotDocker)
{
    startAgent();
    const fs::path src = newEngine("containerd-v2", "");
    agent->upgrade(Files{{"containerd", src.string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(containerdPath()), sha256OfFile(src));
    EXPECT_EQ(units.calls, (Calls{"stop containerd.service", "start containerd.service"}));
    EXPECT_NE(std::find(recorder.messages.begin(), recorder.messages.end(), "stopping containerd.service"), recorder.messages.end());
    expectNoLeftovers();
}

TEST_F(PayloadUnitsTest, TheEngineAloneRestartsDockerAndNotContainerd)
{
    startAgent();
    agent->upgrade(Files{{"docker", newEngine("engine-v2", "2.0.0").string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(units.calls, (Calls{"stop docker.socket", "stop docker.service", "start docker.socket", "start docker.service"}));
    EXPECT_EQ(sha256OfFile(containerdPath()), oldContainerdSha);
}

TEST_F(PayloadUnitsTest, BothStopInOneBatchAndStartInOneBatch)
{
    startAgent();
    agent->upgrade(Files{{"docker", newEngine("engine-v2", "2.0.0").string()}, {"containerd", newEngine("containerd-v2", "").string()}},
                   Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    ASSERT_EQ(units.calls.size(), 6u) << "each unit once each way";
    for (std::size_t i = 0; i < 3; ++i)
        EXPECT_TRUE(units.calls[i].starts_with("stop ")) << "every stop before any start: " << units.calls[i];
    const Calls started(units.calls.begin() + 3, units.calls.end());
    for (const char* unit : {"docker.socket", "docker.service", "containerd.service"})
        EXPECT_NE(std::find(started.begin(), started.end(), std::string("start ") + unit), started.end()) << unit;
}

TEST_F(PayloadUnitsTest, APayloadWithNoUnitsIsSwappedWithNoRestartAndSaysSo)
{
    startAgent();
    const fs::path src = newEngine("runc-v2", "");
    agent->upgrade(Files{{"runc", src.string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(runcPath()), sha256OfFile(src));
    EXPECT_TRUE(units.calls.empty()) << "a unit was touched: " << units.calls.front();
    EXPECT_NE(std::find(recorder.messages.begin(), recorder.messages.end(), "no unit runs the changed files: swapping them with no restart"),
              recorder.messages.end());
    expectNoLeftovers();
}

TEST_F(PayloadUnitsTest, ARollbackRestartsTheSameUnits)
{
    startAgent();
    bool failed = false;
    units.onCall = [&](const std::string& call) {
        if (call == "start containerd.service" && !failed) {
            failed = true;  // the new containerd's start fails once; the restored one starts
            throw UnitJobFailed("containerd.service", "failed", "start job for containerd.service failed");
        }
    };
    agent->upgrade(Files{{"containerd", newEngine("containerd-v2", "").string()}}, Options{});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::RolledBack) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(containerdPath()), oldContainerdSha);
    EXPECT_EQ(units.calls, (Calls{"stop containerd.service", "start containerd.service", "stop containerd.service", "start containerd.service"}));
    expectNoLeftovers();
}

TEST_F(PayloadUnitsTest, TheRecoveryRestartsTheUnitsOfTheInterruptedPayloads)
{
    fs::create_directories(dir / "state");
    BackupStore store(dir / "state");
    const auto made = store.backUp(config.payloads, [](const fs::path&) { return std::string("1.0.0"); });
    {
        TransactionJournal journal(dir / "state");
        journal.begin({"crashed-tx", TransactionKind::Upgrade, {{"containerd", containerdPath(), stagedPathFor(containerdPath(), "crashed-tx"), ""}}, {}});
        journal.record(JournalStepKind::BackedUp, made.set.id);
        journal.record(JournalStepKind::Stopping);
        journal.record(JournalStepKind::Swap, "containerd");
    }
    makeEngineFile(containerdPath(), "containerd-v2");  // the rename happened, then the crash
    startAgent();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::RolledBack) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(containerdPath()), oldContainerdSha);
    EXPECT_EQ(units.calls, (Calls{"stop containerd.service", "start containerd.service"}));
    expectNoLeftovers();
}

// component = "containerd": after the restart, /version must report the
// version the new file printed, or the upgrade is rolled back.
class PayloadComponentTest : public PayloadUnitsTest {
protected:
    std::string extraPayloads() const override
    {
        return "[[payload]]\nname = \"containerd\"\npath = \"" + containerdPath().string() +
               "\"\nunits = [\"containerd.service\"]\ncomponent = \"containerd\"\n";
    }
    void SetUp() override
    {
        PayloadUnitsTest::SetUp();
        probeVersions[oldContainerdSha] = "1.6.20";
    }
    // What dockerd reports after asking the containerd that runs now: the installed file's version.
    void reportTheInstalledContainerd()
    {
        engine->componentsNow = [this] {
            return std::vector<ComponentVersion>{{"containerd", probeVersions[sha256OfFile(containerdPath())]}, {"runc", "1.1.5"}};
        };
    }
};

TEST_F(PayloadComponentTest, TheNewVersionReportedByTheEnginePasses)
{
    reportTheInstalledContainerd();
    startAgent();
    agent->upgrade(Files{{"containerd", newEngine("containerd-v2", "1.7.2").string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_NE(std::find(recorder.messages.begin(), recorder.messages.end(), "checking that the engine uses containerd 1.7.2"),
              recorder.messages.end());
}

TEST_F(PayloadComponentTest, TheOldVersionReportedByTheEngineRollsBackNamingTheFile)
{
    engine->componentsNow = [] { return std::vector<ComponentVersion>{{"containerd", "1.6.20"}}; };  // the engine uses another containerd
    startAgent();
    agent->upgrade(Files{{"containerd", newEngine("containerd-v2", "1.7.2").string()}}, Options{});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::RolledBack) << agent->status().lastError;
    EXPECT_NE(agent->status().lastError.find("check components: /var/run/docker.sock reports containerd 1.6.20, but the new " +
                                             containerdPath().string() + " (payload containerd) is 1.7.2"),
              std::string::npos)
        << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(containerdPath()), oldContainerdSha);
    expectNoLeftovers();
}

TEST_F(PayloadComponentTest, AnUnchangedComponentIsNotCompared)
{
    engine->componentsNow = [] { return std::vector<ComponentVersion>{}; };  // would fail a containerd check
    startAgent();
    agent->upgrade(Files{{"docker", newEngine("engine-v2", "2.0.0").string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
}

TEST_F(PayloadComponentTest, ANewFileThatPrintsNoVersionIsRejectedBeforeAnythingStops)
{
    startAgent();
    const fs::path src = dir / "src/containerd-mute";
    makeEngineFile(src, "containerd-mute");  // the fake probe knows no version for it
    agent->upgrade(Files{{"containerd", src.string()}}, Options{});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Rejected) << agent->status().lastError;
    EXPECT_TRUE(units.calls.empty()) << "a unit was touched: " << units.calls.front();
    EXPECT_EQ(sha256OfFile(containerdPath()), oldContainerdSha);
}

}  // namespace
}  // namespace armdock::test
