// The transaction end to end on real files, with systemd and Docker faked:
// what lands where, what the units saw, what the state folder keeps.
#include "agent_test_fixture.hpp"

#include "core/engine_guard.hpp"
#include "core/errors.hpp"
#include "core/backup_store.hpp"
#include "core/journal.hpp"
#include "core/staging.hpp"

namespace armdock::test {
namespace {


class TransactionTest : public AgentFixture {};

TEST_F(TransactionTest, UpgradeSwapsTheSetBacksUpTheOldOneAndCommits)
{
    startAgent();
    fs::path src = newEngine("engine-v2", "2.0.0");
    const std::string newSha = sha256OfFile(src);
    std::string tx = agent->upgrade(Files{{"docker", src.string()}}, Options{});
    EXPECT_FALSE(tx.empty());
    EXPECT_TRUE(agent->busy());
    waitIdle();

    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(agent->status().currentVersion, "2.0.0");
    EXPECT_EQ(agent->status().state, AgentState::Idle);
    EXPECT_EQ(sha256OfFile(enginePath()), newSha);
    EXPECT_EQ(sha256OfFile(initPath()), oldInitSha);  // left out: kept
    EXPECT_EQ(units.calls, (std::vector<std::string>{"stop docker.socket", "stop docker.service", "start docker.socket",
                                                     "start docker.service"}));
    auto backups = agent->listBackups();
    ASSERT_EQ(backups.size(), 1u);
    EXPECT_EQ(backups[0].version, "1.0.0");
    expectNoLeftovers();
    ASSERT_EQ(recorder.finishedCalls.size(), 1u);
    EXPECT_EQ(std::get<0>(recorder.finishedCalls[0]), tx);
    EXPECT_EQ(std::get<1>(recorder.finishedCalls[0]), TransactionResult::Success);
    // Every state of the path was shown, in order.
    using enum AgentState;
    const std::vector<AgentState> expected{Verifying, Staging, Stopping, Swapping, Starting, Checking, Idle};
    EXPECT_EQ(recorder.states, expected);
}

// When the units start, Docker's guard must already read "swapped" and every
// target must hold its new file (the line is put on disk while they start).
TEST_F(TransactionTest, TheUnitsStartOnceSwappedIsReadableAndEveryFileIsNew)
{
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    bool checked = false;
    units.onCall = [&](const std::string& call) {
        if (call != "start docker.socket")
            return;
        checked = true;
        auto journal = TransactionJournal(dir / "state").load();
        ASSERT_TRUE(journal.has_value());
        EXPECT_TRUE(journal->has(JournalStepKind::Swapped));
        EXPECT_TRUE(setIsWhole(journal));
        EXPECT_EQ(sha256OfFile(enginePath()), sha256OfFile(src));
    };
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    EXPECT_TRUE(checked);
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
}

TEST_F(TransactionTest, FailedCheckRollsBackByteForByteAndAddsNoBackup)
{
    startAgent();
    fs::path src = newEngine("engine-broken", "2.0.0", /*broken=*/true);
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();

    EXPECT_EQ(agent->status().lastResult, TransactionResult::RolledBack);
    EXPECT_NE(agent->status().lastError.find("ping"), std::string::npos) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_EQ(agent->status().state, AgentState::Idle);
    EXPECT_TRUE(agent->listBackups().empty());
    expectNoLeftovers();
}

TEST_F(TransactionTest, RollbackThatFailsTooEndsFailedAndKeepsBothSets)
{
    startAgent();
    engine->brokenSha256.insert(oldEngineSha);  // the old engine does not come back either
    fs::path src = newEngine("engine-broken", "2.0.0", true);
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();

    EXPECT_EQ(agent->status().lastResult, TransactionResult::Failed);
    EXPECT_EQ(agent->status().state, AgentState::Failed);
    EXPECT_NE(agent->status().lastError.find("rollback failed too"), std::string::npos) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);  // the old set is what was restored on disk
    EXPECT_EQ(agent->listBackups().size(), 2u);            // old set and the failed new set
    expectNoLeftovers();
}

TEST_F(TransactionTest, DigestMismatchIsRejectedBeforeAnythingStops)
{
    startAgent();
    fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{{"sha256.docker", std::string(64, 'a')}});
    waitIdle();

    EXPECT_EQ(agent->status().lastResult, TransactionResult::Rejected);
    EXPECT_NE(agent->status().lastError.find(src.string()), std::string::npos) << agent->status().lastError;
    EXPECT_TRUE(units.calls.empty());
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_TRUE(agent->listBackups().empty());
    expectNoLeftovers();
}

TEST_F(TransactionTest, DryRunVerifiesAndStagesButChangesNothing)
{
    startAgent();
    fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{{"dry_run", true}});
    waitIdle();

    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success);
    EXPECT_TRUE(units.calls.empty());
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_TRUE(agent->listBackups().empty());
    expectNoLeftovers();
}

TEST_F(TransactionTest, TheInstalledSetAgainIsRejected)
{
    startAgent();
    fs::path src = dir / "src/same";
    fs::copy_file(enginePath(), src);
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Rejected);
    EXPECT_NE(agent->status().lastError.find("already installed"), std::string::npos);
    EXPECT_TRUE(units.calls.empty());
    EXPECT_TRUE(agent->listBackups().empty());
    expectNoLeftovers();
}

TEST_F(TransactionTest, SecondUpgradeWhileOneRunsIsBusy)
{
    startAgent();
    fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    try {
        agent->upgrade(Files{{"docker", src.string()}}, Options{});
        FAIL() << "a second upgrade was accepted";
    } catch (const AgentError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Busy);
    }
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success);
}

TEST_F(TransactionTest, CancelWithNothingRunningIsAClearError)
{
    startAgent();
    try {
        agent->cancel();
        FAIL();
    } catch (const AgentError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Failed);
        EXPECT_NE(std::string(e.what()).find("nothing to cancel"), std::string::npos);
    }
}

TEST_F(TransactionTest, CancelAfterTheSwapRollsBack)
{
    startAgent();
    bool cancelled = false;
    units.onCall = [&](const std::string& call) {
        if (call == "start docker.service" && !cancelled) {
            cancelled = true;
            agent->cancel();
        }
    };
    fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Cancelled);
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    expectNoLeftovers();
}

// Cancel during the new engine's check ends it at its next probe, not at the
// health timeout: the engine here never answers, the timeout is 60 s.
TEST_F(TransactionTest, CancelDuringTheCheckRollsBackAtTheNextProbe)
{
    config.docker.healthTimeoutSec = 60;
    startAgent();
    CancelOnce canceller(*agent, [&](const std::vector<std::string>& names) {
        return std::find(names.begin(), names.end(), "State") != names.end() && agent->status().state == AgentState::Checking;
    });
    fs::path src = newEngine("engine-silent", "2.0.0", true);
    const auto start = std::chrono::steady_clock::now();
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    EXPECT_TRUE(canceller.cancelled);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Cancelled) << agent->status().lastError;
    EXPECT_NE(agent->status().lastError.find("cancelled by request during the ping check"), std::string::npos)
        << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_TRUE(agent->listBackups().empty());
    expectNoLeftovers();
}

TEST_F(TransactionTest, RollbackGoesBackToThePreviousSetAndNoBackupIsAClearError)
{
    startAgent();
    try {
        agent->rollback();
        FAIL();
    } catch (const AgentError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::NoBackup);
    }
    fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success);

    agent->rollback();
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_EQ(agent->status().currentVersion, "1.0.0");
    expectNoLeftovers();
}

TEST_F(TransactionTest, KeepBackupsCountsDistinctSets)
{
    startAgent();
    for (int i = 2; i <= 5; ++i) {
        fs::path src = newEngine("engine-v" + std::to_string(i), std::to_string(i) + ".0.0");
        agent->upgrade(Files{{"docker", src.string()}}, Options{});
        waitIdle();
        ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    }
    auto backups = agent->listBackups();
    ASSERT_EQ(backups.size(), 2u);  // keep_backups = 2
    EXPECT_EQ(backups[0].version, "4.0.0");
    EXPECT_EQ(backups[1].version, "3.0.0");
}

TEST_F(TransactionTest, RecoveryAfterACrashMidSwapRestoresTheOldSet)
{
    // First run: make a backup set of the old engine, as a crashed upgrade would have.
    startAgent();
    fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success);
    const std::string backupId = agent->listBackups().at(0).id;
    agent.reset();

    // Pretend an upgrade back to content "engine-v3" died right after its first rename.
    fs::path v3 = newEngine("engine-v3", "3.0.0");
    const std::string v2Sha = sha256OfFile(enginePath());
    {
        TransactionJournal journal(dir / "state");
        journal.begin({"crashed-tx", TransactionKind::Upgrade, {{"docker", enginePath(), stagedPathFor(enginePath(), "crashed-tx"), ""}}, {}});
        journal.record(JournalStepKind::BackedUp, backupId);  // the backup holds the old (1.0.0) set; fine for the test
        journal.record(JournalStepKind::Stopping);
        journal.record(JournalStepKind::Swap, "docker");
    }
    fs::copy_file(v3, enginePath(), fs::copy_options::overwrite_existing);
    fs::copy_file(v3, stagedPathFor(initPath(), "crashed-tx"));  // a stray staged file too
    startAgent();

    EXPECT_EQ(agent->status().lastResult, TransactionResult::RolledBack);
    EXPECT_NE(agent->status().lastError.find("interrupted"), std::string::npos) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_NE(sha256OfFile(enginePath()), v2Sha);
    expectNoLeftovers();
    EXPECT_EQ(units.calls.back(), "start docker.service");
}

TEST_F(TransactionTest, RecoveryDropsTheBackupItsTransactionJustMade)
{
    startAgent();
    fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->listBackups().size(), 1u);
    agent.reset();
    // An upgrade to v3 backed up the installed v2 set (a new backup) and died before the stop.
    BackupStore store(dir / "state");
    auto made = store.backUp(config.payloads, [](const fs::path&) { return std::string("2.0.0"); });
    ASSERT_TRUE(made.created);
    {
        TransactionJournal journal(dir / "state");
        journal.begin({"crashed-tx", TransactionKind::Upgrade, {{"docker", enginePath(), stagedPathFor(enginePath(), "crashed-tx"), ""}}, {}});
        journal.record(JournalStepKind::BackedUp, made.set.id);
        journal.record(JournalStepKind::BackupNew, made.set.id);
    }
    startAgent();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::RolledBack);
    EXPECT_EQ(agent->listBackups().size(), 1u);  // only the v1 set of the first upgrade
    EXPECT_EQ(sha256OfFile(enginePath()), sha256OfFile(src));
    expectNoLeftovers();
}

TEST_F(TransactionTest, RecoveryBeforeTheBackupOnlyRemovesStagedFiles)
{
    {
        fs::create_directories(dir / "state");
        TransactionJournal journal(dir / "state");
        journal.begin({"early-tx", TransactionKind::Upgrade, {{"docker", enginePath(), stagedPathFor(enginePath(), "early-tx"), ""}}, {}});
    }
    fs::copy_file("/bin/true", stagedPathFor(enginePath(), "early-tx"));
    startAgent();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::RolledBack);
    EXPECT_TRUE(units.calls.empty());  // Docker was never stopped, so it is not touched
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    expectNoLeftovers();
}

}  // namespace
}  // namespace armdock::test
