// When a second thing goes wrong: a rollback that fails too, a damaged
// backup, a restore that stops half way, a symlinked target, a cancel inside
// the outage. Real files, systemd and Docker faked.
#include <unistd.h>

#include "agent_test_fixture.hpp"

#include "core/backup_store.hpp"
#include "core/errors.hpp"
#include "core/journal.hpp"

namespace armdock::test {
namespace {


std::string slurp(const fs::path& file)
{
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

class SecondFaultTest : public AgentFixture {
protected:

    const BackupInfo* backupWithVersion(const std::vector<BackupInfo>& list, const std::string& version)
    {
        for (const auto& b : list)
            if (b.version == version)
                return &b;
        return nullptr;
    }
};

// After a rollback that failed because the old engine did not come back
// either, the failed set is kept but marked failed, Rollback() never picks
// it, and the command LastError names works once the cause is gone.
TEST_F(SecondFaultTest, AfterAFailedRollbackTheAdvisedCommandBringsTheOldEngineBack)
{
    startAgent();
    engine->brokenSha256.insert(oldEngineSha);  // the host's fault: the old engine does not answer either
    fs::path bad = newEngine("engine-broken", "2.0.0", true);
    upgradeTo(bad, TransactionResult::Failed);
    const std::string error = agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_EQ(sha256OfFile(initPath()), oldInitSha);

    auto backups = agent->listBackups();
    ASSERT_EQ(backups.size(), 2u);
    const BackupInfo* old = backupWithVersion(backups, "1.0.0");
    const BackupInfo* failed = backupWithVersion(backups, "2.0.0");
    ASSERT_TRUE(old && failed);
    EXPECT_EQ(old->health, "healthy");  // it answered before the upgrade
    EXPECT_TRUE(old->installed);
    EXPECT_EQ(failed->health, "failed");
    EXPECT_FALSE(failed->note.empty());
    const std::string advice = "armdockctl rollback --to " + old->id;
    EXPECT_NE(error.find(advice), std::string::npos) << error;

    // Rollback() does not reinstall the engine that just failed.
    try {
        agent->rollback();
        waitIdle();
        EXPECT_NE(sha256OfFile(enginePath()), sha256OfFile(bad)) << "Rollback() reinstalled the failed engine";
    } catch (const AgentError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::NoBackup);
        EXPECT_NE(std::string(e.what()).find("rollback --to"), std::string::npos) << e.what();
    }

    engine->brokenSha256.erase(oldEngineSha);  // the cause is gone
    const std::string oldId = old->id;
    agent->rollbackTo(oldId);
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(agent->status().state, AgentState::Idle);
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_EQ(sha256OfFile(initPath()), oldInitSha);
    expectNoLeftovers();
}

// Only docker was upgraded: the failed set kept after a failed rollback is
// still a whole set, and nothing a set lacks is ever deleted.
TEST_F(SecondFaultTest, AFailedRollbackNeverLeadsToADeletedPayload)
{
    startAgent();
    engine->brokenSha256.insert(oldEngineSha);
    fs::path bad = newEngine("engine-broken", "2.0.0", true);
    upgradeTo(bad, TransactionResult::Failed);
    engine->brokenSha256.erase(oldEngineSha);
    const auto backups = agent->listBackups();
    const BackupInfo* failed = backupWithVersion(backups, "2.0.0");
    ASSERT_TRUE(failed);
    const std::string failedId = failed->id;
    // The operator insists on the failed set: it is installed whole (dockerinit too), and rolls back again.
    agent->rollbackTo(failedId);
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::RolledBack) << agent->status().lastError;
    ASSERT_TRUE(fs::exists(initPath())) << "dockerinit was deleted";
    EXPECT_EQ(sha256OfFile(initPath()), oldInitSha);
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    expectNoLeftovers();
}

TEST_F(SecondFaultTest, RollbackToAnUnknownOrIncompleteSetIsANamedError)
{
    startAgent();
    try {
        agent->rollbackTo("0123456789abcdef");
        FAIL();
    } catch (const AgentError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::NoBackup);
        EXPECT_NE(std::string(e.what()).find("armdockctl backups"), std::string::npos) << e.what();
    }
    // A set made under another config (no dockerinit member).
    BackupStore store(dir / "state");
    SetMember member = describeTarget(config.payloads[0]);
    fs::path copy = dir / "copy";
    fs::copy_file(enginePath(), copy);
    const std::string id = store.keepFiles({{member, copy}}, "1.0.0").id;
    try {
        agent->rollbackTo(id);
        FAIL();
    } catch (const AgentError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::PayloadRejected);
        EXPECT_NE(std::string(e.what()).find("incomplete"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(units.calls.empty());
}

// A backup whose file no longer hashes to its manifest is named, marked
// damaged and skipped for the next healthy set, never installed.
TEST_F(SecondFaultTest, ADamagedBackupIsSkippedForTheNextHealthySet)
{
    startAgent();
    upgradeTo(newEngine("engine-v2", "2.0.0"), TransactionResult::Success);
    upgradeTo(newEngine("engine-v3", "3.0.0"), TransactionResult::Success);
    auto backups = agent->listBackups();
    ASSERT_EQ(backups.size(), 2u);
    const BackupInfo* v2 = backupWithVersion(backups, "2.0.0");
    ASSERT_TRUE(v2);
    const std::string v2Id = v2->id;
    {
        std::ofstream damage(dir / "state/backups" / v2Id / "docker", std::ios::app | std::ios::binary);
        damage << "bit rot";
    }
    agent->rollback();
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);  // the 1.0.0 set, the next healthy one
    EXPECT_NE(agent->status().message.find(v2Id), std::string::npos) << agent->status().message;
    const auto listed = agent->listBackups();
    const BackupInfo* after = backupWithVersion(listed, "2.0.0");
    ASSERT_TRUE(after);
    EXPECT_EQ(after->health, "damaged");
    expectNoLeftovers();
}

// The restore itself fails half way (its copies are damaged): the journal
// stays, nothing else may start on the mixed set, and RollbackTo finishes the
// restore once the backup is good again.
TEST_F(SecondFaultTest, AFailedRestoreKeepsTheJournalUntilTheSetIsWhole)
{
    startAgent();
    fs::path bad = newEngine("engine-broken", "2.0.0", true);
    const std::string backupDir = (dir / "state/backups").string();
    std::string savedCopy;
    fs::path backupFile;
    units.onCall = [&](const std::string& call) {
        if (call != "stop docker.service" || agent->status().state != AgentState::RollingBack || !savedCopy.empty())
            return;
        // Between the rollback's stop and its restore: spoil the staged restore copy and the backup.
        for (const auto& e : fs::directory_iterator(enginePath().parent_path()))
            if (e.path().filename().string().ends_with("-restore"))
                std::ofstream(e.path(), std::ios::app | std::ios::binary) << "torn";
        for (const auto& set : fs::directory_iterator(backupDir)) {
            backupFile = set.path() / "docker";
            savedCopy = slurp(backupFile);
            std::ofstream(backupFile, std::ios::app | std::ios::binary) << "torn";
        }
    };
    agent->upgrade(Files{{"docker", bad.string()}, {"dockerinit", newEngine("init-v2", "").string()}}, Options{});
    waitIdle();
    units.onCall = nullptr;
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Failed);
    EXPECT_NE(agent->status().lastError.find("damaged"), std::string::npos) << agent->status().lastError;
    EXPECT_TRUE(fs::exists(dir / "state/transaction.journal")) << "the journal was cleared with a mixed set on disk";
    // No upgrade may start on top of it.
    try {
        agent->upgrade(Files{{"docker", newEngine("engine-v4", "4.0.0").string()}}, Options{});
        FAIL();
    } catch (const AgentError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Busy);
        EXPECT_NE(std::string(e.what()).find("rollback --to"), std::string::npos) << e.what();
    }
    // The backup is repaired (as from an off-site copy): the advised command finishes the restore.
    ASSERT_FALSE(savedCopy.empty());
    {
        std::ofstream repair(backupFile, std::ios::trunc | std::ios::binary);
        repair << savedCopy;
    }
    const std::string id = backupFile.parent_path().filename().string();
    agent->rollbackTo(id);
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::RolledBack) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_EQ(sha256OfFile(initPath()), oldInitSha);
    expectNoLeftovers();
}

// Debian's /usr/bin/docker-init is a symbolic link; a rollback puts the link
// back as it was, never deletes it.
TEST_F(SecondFaultTest, ASymlinkedTargetIsRestoredAsTheLinkItWas)
{
    const fs::path real = enginePath().parent_path() / "docker-real";
    fs::rename(enginePath(), real);
    fs::create_symlink("docker-real", enginePath());
    startAgent();
    fs::path bad = newEngine("engine-broken", "2.0.0", true);
    upgradeTo(bad, TransactionResult::RolledBack);
    ASSERT_TRUE(fs::is_symlink(fs::symlink_status(enginePath()))) << "the link was not put back";
    EXPECT_EQ(fs::read_symlink(enginePath()), fs::path("docker-real"));
    EXPECT_EQ(sha256OfFile(real), oldEngineSha);

    // A good upgrade replaces the link by the new file; Rollback() brings the link back.
    fs::path good = newEngine("engine-v2", "2.0.0");
    upgradeTo(good, TransactionResult::Success);
    EXPECT_FALSE(fs::is_symlink(fs::symlink_status(enginePath())));
    EXPECT_EQ(sha256OfFile(enginePath()), sha256OfFile(good));
    EXPECT_EQ(sha256OfFile(real), oldEngineSha);  // the file the link named is not touched
    agent->rollback();
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    ASSERT_TRUE(fs::is_symlink(fs::symlink_status(enginePath())));
    EXPECT_EQ(fs::read_symlink(enginePath()), fs::path("docker-real"));
    for (const auto& e : fs::directory_iterator(enginePath().parent_path()))
        EXPECT_TRUE(e.path() == enginePath() || e.path() == real) << "stray " << e.path();
}

// Cancel after the stop and before the first rename starts the old engine
// as it is: one stop and one start, not a swap and a rollback.
TEST_F(SecondFaultTest, CancelBeforeTheFirstRenameCostsOneOutage)
{
    startAgent();
    units.onCall = [&](const std::string& call) {
        if (call == "stop docker.service" && agent->status().state == AgentState::Stopping)
            agent->cancel();
    };
    fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Cancelled) << agent->status().lastError;
    EXPECT_EQ(units.calls, (std::vector<std::string>{"stop docker.socket", "stop docker.service", "start docker.socket",
                                                     "start docker.service"}));
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_TRUE(agent->listBackups().empty());
    expectNoLeftovers();
}

}  // namespace
}  // namespace armdock::test
