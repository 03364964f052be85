// Reload and the drop-in folder, on real files with systemd and Docker faked.
#include "agent_test_fixture.hpp"

#include <sys/stat.h>

#include "core/errors.hpp"
#include "core/journal.hpp"

namespace armdock::test {
namespace {

class AgentReloadTest : public AgentFixture {
protected:
    // Every .reason file in the rejected folder, joined.
    std::string rejectedReasons() const;
};

std::string textOf(const fs::path& file)
{
    std::ifstream in(file);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string AgentReloadTest::rejectedReasons() const
{
    std::string reasons;
    for (const auto& e : fs::directory_iterator(dir / "state/rejected"))
        if (e.path().extension() == ".reason")
            reasons += textOf(e.path());
    return reasons;
}

TEST_F(AgentReloadTest, ADropInUpgradesAndTheFolderIsEmptyAfterwards)
{
    startAgent();
    fs::path src = newEngine("engine-v2", "2.0.0");
    fs::copy_file(src, dir / "incoming/docker");
    std::ofstream(dir / "incoming/docker.sha256") << sha256OfFile(src) << "  docker\n";
    std::string tx = reload();
    EXPECT_FALSE(tx.empty());
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), sha256OfFile(src));
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
}

TEST_F(AgentReloadTest, RefusedDropInsAreMovedAsideWithTheirReason)
{
    startAgent();
    std::ofstream(dir / "incoming/containerd") << "not a payload";
    makeEngineFile(dir / "incoming/docker", "world-writable", /*world=*/true);
    EXPECT_THROW(reload(), AgentError);
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Rejected);
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
    reload();
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::RolledBack);
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
    EXPECT_FALSE(fs::is_empty(dir / "state/rejected"));
}

TEST_F(AgentReloadTest, ABrokenConfigIsRefusedAndTheOldOneKept)
{
    startAgent();
    std::ofstream(dir / "agent.toml", std::ios::app) << "\n[docker]\nbogus_key = 1\n";
    try {
        reload();
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
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success);
    EXPECT_EQ(agent->status().currentVersion, "2.0.0");
}

// A FIFO named like a digest file used to block the loop in read() until
// someone wrote to it: property reads went unanswered and the watchdog fired.
TEST_F(AgentReloadTest, ADigestFileThatIsAFifoIsRefusedAtOnceNotRead)
{
    startAgent();
    fs::path src = newEngine("engine-v2", "2.0.0");
    fs::copy_file(src, dir / "incoming/docker");
    ASSERT_EQ(::mkfifo((dir / "incoming/docker.sha256").c_str(), 0600), 0);
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(reload(), "");  // nothing is installed unchecked
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
    const std::string reasons = rejectedReasons();
    EXPECT_NE(reasons.find("is a FIFO"), std::string::npos) << reasons;
    EXPECT_NE(reasons.find("its digest file docker.sha256 was refused"), std::string::npos) << reasons;
    EXPECT_TRUE(units.calls.empty());
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
}

TEST_F(AgentReloadTest, AHugeDigestFileIsRefusedUnread)
{
    startAgent();
    fs::path src = newEngine("engine-v2", "2.0.0");
    fs::copy_file(src, dir / "incoming/docker");
    fs::copy_file(src, dir / "incoming/docker.sha256");  // megabytes, not one line
    EXPECT_EQ(reload(), "");
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
    EXPECT_TRUE(units.calls.empty());
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
}

// Nobody sees the reply of `systemctl reload`: the refusal is in LastError,
// and the files wait for the next reload, which applies them.
TEST_F(AgentReloadTest, AReloadDuringATransactionLeavesTheDropInsAndSaysSoInLastError)
{
    startAgent();
    fs::path first = newEngine("engine-v2", "2.0.0");
    const std::string tx = agent->upgrade({{"docker", first.string()}}, {});
    fs::path second = newEngine("engine-v3", "3.0.0");
    fs::copy_file(second, dir / "incoming/docker");
    try {
        reload();
        FAIL() << "a reload during a transaction was accepted";
    } catch (const AgentError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Busy);
    }
    const std::string error = agent->status().lastError;
    EXPECT_NE(error.find("reload refused: transaction " + tx + " is running"), std::string::npos) << error;
    EXPECT_NE(error.find("systemctl reload armdock-agent"), std::string::npos) << error;
    EXPECT_TRUE(fs::exists(dir / "incoming/docker"));
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_TRUE(fs::exists(dir / "incoming/docker"));

    EXPECT_FALSE(reload().empty());
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), sha256OfFile(second));
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
}

// The journal names the drop-ins a transaction applies: the recovery after a
// crash settles them, so the next reload does not apply them again.
TEST_F(AgentReloadTest, TheRecoveryOfACrashedDropInUpgradeSettlesItsFiles)
{
    fs::path src = newEngine("engine-v2", "2.0.0");
    fs::copy_file(src, dir / "incoming/docker");
    {
        TransactionJournal journal(dir / "state");
        journal.begin({"20261202T000000-dead", TransactionKind::Upgrade, {{"docker", enginePath(), {}, sha256OfFile(src)}}, {dir / "incoming/docker"}});
    }
    startAgent();
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::RolledBack) << agent->status().lastError;
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
    const std::string reasons = rejectedReasons();
    EXPECT_NE(reasons.find("transaction 20261202T000000-dead rolled-back"), std::string::npos) << reasons;
    EXPECT_EQ(reload(), "");
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
}

// Start-up runs before the bus name is taken: it only finds the interrupted
// transaction and marks the agent busy with it; the recovery itself comes
// after, as a transaction with its Finished.
class AgentStartUpTest : public AgentFixture {
protected:
    template <typename Make>
    void runTask(Make make)
    {
        bool done = false;
        boost::asio::co_spawn(io, make(), [&](std::exception_ptr e) {
            done = true;
            if (e)
                std::rethrow_exception(e);
        });
        runUntil([&] { return done; });
    }
    void makeAgent()
    {
        agent = std::make_unique<Agent>(io, pool, units, *engine, config);
        recorder.agent = agent.get();
        agent->addObserver(&recorder);
        agent->setVersionProbe([](const fs::path&, const std::vector<std::string>&) { return std::string("1.0.0"); });
    }
};

TEST_F(AgentStartUpTest, StartUpFindsTheInterruptedTransactionAndTheRecoveryRunsAfterIt)
{
    {
        TransactionJournal journal(dir / "state");
        journal.begin({"20261202T000000-cafe", TransactionKind::Upgrade, {{"docker", enginePath(), {}, oldEngineSha}}, {}});
    }
    makeAgent();
    runTask([this] { return agent->startUp(); });
    EXPECT_TRUE(agent->busy());
    EXPECT_EQ(agent->status().state, AgentState::RollingBack);
    EXPECT_EQ(agent->status().transaction, "20261202T000000-cafe");
    EXPECT_TRUE(units.calls.empty()) << "start-up touched a unit: " << units.calls.front();
    EXPECT_TRUE(recorder.finishedCalls.empty());
    EXPECT_THROW(agent->rollback(), AgentError);  // Busy while the recovery waits to run
    // A recovery is not cancelled: Cancel says so instead of answering as if it would be.
    try {
        agent->cancel();
        ADD_FAILURE() << "Cancel during a recovery answered success";
    } catch (const AgentError& e) {
        EXPECT_NE(std::string(e.what()).find("cannot be cancelled"), std::string::npos) << e.what();
    }

    runTask([this] { return agent->recoverInterrupted(); });
    EXPECT_FALSE(agent->busy());
    ASSERT_EQ(recorder.finishedCalls.size(), 1u);
    EXPECT_EQ(std::get<0>(recorder.finishedCalls[0]), "20261202T000000-cafe");
    EXPECT_FALSE(fs::exists(dir / "state/transaction.journal"));
}

TEST_F(AgentStartUpTest, StartUpLearnsTheRunningEnginesVersion)
{
    makeAgent();
    runTask([this] { return agent->startUp(); });
    EXPECT_FALSE(agent->busy());
    EXPECT_EQ(agent->status().currentVersion, "1.0.0") << "no last result: the version is the engine's answer";
    EXPECT_TRUE(units.calls.empty());
}

// Run under ThreadSanitizer by the test command: a Reload replaces the config
// on the loop while a pool thread still hashes the installed set; the
// hashing must read its own copy of the payloads, not the config.
TEST_F(AgentStartUpTest, AReloadWhileTheInstalledSetIsHashedLeavesTheHashingItsOwnCopy)
{
    {
        std::ofstream big(enginePath(), std::ios::app | std::ios::binary);
        const std::string chunk(1 << 20, 'x');
        for (int i = 0; i < 64; ++i)
            big << chunk;
    }
    oldEngineSha = sha256OfFile(enginePath());
    engine->versionOf[oldEngineSha] = "1.0.0";
    makeAgent();
    runTask([this] { return agent->startUp(); });
    bool warm = false;
    bool reloaded = false;
    std::exception_ptr reloadError;
    boost::asio::co_spawn(io, agent->warmUp(), [&](std::exception_ptr e) {
        warm = true;
        if (e)
            std::rethrow_exception(e);
    });
    agent->reload([&](const std::string&, std::exception_ptr e) {
        reloaded = true;
        reloadError = e;
    });
    runUntil([&] { return warm && reloaded; });
    EXPECT_FALSE(reloadError);
    EXPECT_EQ(agent->listBackups().size(), 0u);
}

}  // namespace
}  // namespace armdock::test
