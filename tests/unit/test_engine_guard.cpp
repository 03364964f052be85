// The guard Docker's unit runs before each start: whether the journal says
// the engine files on disk are a whole set, for every step a transaction
// writes (and a torn last line), and what the guard does with a missing or
// broken config, an unreadable journal, a mixed set that gets restored and
// one that stays mixed.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/engine_guard.hpp"
#include "core/journal.hpp"

namespace armdock {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using enum JournalStepKind;

JournalContents journalOf(const std::vector<JournalStepKind>& steps)
{
    JournalContents contents;
    contents.begin = {"tx1", TransactionKind::Upgrade, {}, {}};
    for (const auto s : steps)
        contents.steps.push_back({s, s == Swap ? "docker" : ""});
    return contents;
}

bool whole(const std::vector<JournalStepKind>& steps) { return setIsWhole(journalOf(steps)); }

TEST(SetIsWhole, NoJournalOrNoStopYetIsWhole)
{
    EXPECT_TRUE(setIsWhole(std::nullopt));
    EXPECT_TRUE(whole({}));
    EXPECT_TRUE(whole({BackedUp, BackupNew}));
}

TEST(SetIsWhole, AnnouncedSwapNotFinishedIsMixed)
{
    EXPECT_FALSE(whole({BackedUp, Stopping}));
    EXPECT_FALSE(whole({BackedUp, Stopping, Swap, Swap}));
}

TEST(SetIsWhole, FinishedSwapIsWhole)
{
    EXPECT_TRUE(whole({BackedUp, Stopping, Swap, Swap, Swapped}));
}

TEST(SetIsWhole, RestoreAnnouncedNotFinishedIsMixed)
{
    EXPECT_FALSE(whole({BackedUp, Stopping, Swap, Swapped, RollingBack}));
    // A failure before the swap finished: the rollback restores every announced payload.
    EXPECT_FALSE(whole({BackedUp, Stopping, Swap, Swap, RollingBack}));
    // A recovery that rolls back again after a crash in an earlier rollback.
    EXPECT_FALSE(whole({BackedUp, Stopping, Swap, Swapped, RollingBack, Restored, RollingBack}));
}

TEST(SetIsWhole, FinishedRestoreIsWhole)
{
    EXPECT_TRUE(whole({BackedUp, Stopping, Swap, Swapped, RollingBack, Restored}));
    EXPECT_TRUE(whole({BackedUp, Stopping, Swap, RollingBack, Restored}));
}

TEST(SetIsWhole, CommittedIsWhole)
{
    EXPECT_TRUE(whole({BackedUp, Stopping, Swap, Swapped, Committed}));
    // A journal without "swapped" (written before that step existed) that committed.
    EXPECT_TRUE(whole({BackedUp, Stopping, Swap, Committed}));
}

class EngineGuardTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        char pattern[] = "/tmp/armdock-guard-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir = pattern;
        stateDir = dir / "state";
        fs::create_directories(stateDir);
        config = dir / "agent.toml";
        std::ofstream(config) << "[agent]\nstate_dir = \"" << stateDir.string() << "\"\n";
    }
    void TearDown() override { fs::remove_all(dir); }

    // A journal on disk with these steps.
    void writeJournal(const std::vector<JournalStepKind>& steps)
    {
        TransactionJournal journal(stateDir);
        journal.begin({"tx1", TransactionKind::Upgrade, {}, {}});
        for (const auto s : steps)
            journal.record(s, s == Swap ? "docker" : "");
    }

    int guard(std::chrono::milliseconds timeout = 300ms)
    {
        err.str("");
        return runEngineGuard({config, timeout, 20ms}, err);
    }

    fs::path journalFile() const { return stateDir / "transaction.journal"; }

    fs::path dir, stateDir, config;
    std::ostringstream err;
};

TEST_F(EngineGuardTest, ATornLastLineIsNotAStep)
{
    writeJournal({BackedUp, Stopping, Swap, Swap});
    std::ofstream(journalFile(), std::ios::app) << "{\"step\":\"swapp";  // power lost mid-write
    auto contents = TransactionJournal(stateDir).load();
    ASSERT_TRUE(contents);
    EXPECT_FALSE(setIsWhole(contents));

    fs::remove(journalFile());
    writeJournal({BackedUp});
    std::ofstream(journalFile(), std::ios::app) << "{\"step\":\"stopp";
    contents = TransactionJournal(stateDir).load();
    ASSERT_TRUE(contents);
    EXPECT_TRUE(setIsWhole(contents));
}

TEST_F(EngineGuardTest, WholeSetPassesAtOnceAndSilently)
{
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(guard(5s), 0);  // no journal
    writeJournal({BackedUp, Stopping, Swap, Swapped});
    EXPECT_EQ(guard(5s), 0);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
    EXPECT_EQ(err.str(), "");
}

TEST_F(EngineGuardTest, MissingConfigMeansNothingToGuard)
{
    writeJournal({BackedUp, Stopping});
    fs::remove(config);
    EXPECT_EQ(guard(5s), 0);
    EXPECT_EQ(err.str(), "");
}

TEST_F(EngineGuardTest, BrokenConfigWarnsAndLetsDockerStart)
{
    writeJournal({BackedUp, Stopping});
    std::ofstream(config) << "[agent\nstate_dir = \n";
    EXPECT_EQ(guard(5s), 0);
    EXPECT_NE(err.str().find("warning"), std::string::npos) << err.str();
    EXPECT_NE(err.str().find(config.string()), std::string::npos) << err.str();
}

TEST_F(EngineGuardTest, UnreadableJournalWarnsAndCountsAsWhole)
{
    std::ofstream(journalFile()) << "not json\n";
    EXPECT_EQ(guard(5s), 0);
    EXPECT_NE(err.str().find("warning"), std::string::npos) << err.str();
    EXPECT_NE(err.str().find(journalFile().string()), std::string::npos) << err.str();
}

TEST_F(EngineGuardTest, MixedSetWaitsThenFailsNamingTheJournalAndWhatToDo)
{
    writeJournal({BackedUp, Stopping, Swap, Swap});
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(guard(300ms), 1);
    const auto waited = std::chrono::steady_clock::now() - started;
    EXPECT_GE(waited, 300ms);
    EXPECT_LT(waited, 3s);
    const std::string said = err.str();
    EXPECT_NE(said.find(journalFile().string()), std::string::npos) << said;
    EXPECT_NE(said.find("tx1"), std::string::npos) << said;
    EXPECT_NE(said.find("systemctl start armdock-agent"), std::string::npos) << said;
    EXPECT_NE(said.find("still a mixed set"), std::string::npos) << said;
    EXPECT_EQ(std::count(said.begin(), said.end(), '\n'), 2) << said;  // one line on entry, one at the end
}

TEST_F(EngineGuardTest, MixedSetPassesOnceRestored)
{
    writeJournal({BackedUp, Stopping, Swap, Swapped, RollingBack});
    std::thread agent([this] {
        std::this_thread::sleep_for(200ms);
        TransactionJournal(stateDir).record(JournalStepKind::Restored);
    });
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(guard(10s), 0);
    agent.join();
    EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
    EXPECT_NE(err.str().find("waits"), std::string::npos) << err.str();
}

TEST_F(EngineGuardTest, MixedSetPassesOnceTheJournalIsGone)
{
    writeJournal({BackedUp, Stopping, Swap});
    std::thread agent([this] {
        std::this_thread::sleep_for(200ms);
        fs::remove(journalFile());
    });
    EXPECT_EQ(guard(10s), 0);
    agent.join();
}

}  // namespace
}  // namespace armdock
