#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/journal.hpp"

namespace armdock {
namespace {

namespace fs = std::filesystem;

class JournalTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        char pattern[] = "/tmp/armdock-journal-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir = pattern;
    }
    void TearDown() override { fs::remove_all(dir); }
    fs::path dir;
};

TEST_F(JournalTest, RecordsStepsInOrderAndReadsThemBack)
{
    TransactionJournal journal(dir);
    EXPECT_FALSE(journal.load().has_value());
    journal.begin({"tx1", TransactionKind::Upgrade, {{"docker", "/usr/bin/docker", "/usr/bin/.docker.armdock-tx1", "ab"}}, {}});
    journal.record(JournalStepKind::BackedUp, "set1");
    journal.record(JournalStepKind::Stopping);
    journal.record(JournalStepKind::Swap, "docker");

    TransactionJournal reader(dir);
    auto contents = reader.load();
    ASSERT_TRUE(contents);
    EXPECT_EQ(contents->begin.transaction, "tx1");
    EXPECT_EQ(contents->begin.kind, TransactionKind::Upgrade);
    ASSERT_EQ(contents->begin.payloads.size(), 1u);
    EXPECT_EQ(contents->begin.payloads[0].staged, "/usr/bin/.docker.armdock-tx1");
    EXPECT_TRUE(contents->has(JournalStepKind::Stopping));
    EXPECT_FALSE(contents->has(JournalStepKind::Committed));
    EXPECT_EQ(contents->detailOf(JournalStepKind::BackedUp), "set1");
    EXPECT_EQ(contents->lastStep(), "swap");
}

TEST_F(JournalTest, ATornLastLineIsIgnored)
{
    TransactionJournal journal(dir);
    journal.begin({"tx1", TransactionKind::Upgrade, {}, {}});
    journal.record(JournalStepKind::BackedUp, "set1");
    std::ofstream(journal.file(), std::ios::app) << "{\"step\":\"stopp";  // the crash hit mid-write
    auto contents = TransactionJournal(dir).load();
    ASSERT_TRUE(contents);
    EXPECT_EQ(contents->lastStep(), "backed-up");
    EXPECT_FALSE(contents->has(JournalStepKind::Stopping));
}

TEST_F(JournalTest, AnUnreadableFirstLineIsAnErrorNamingTheFile)
{
    std::ofstream(dir / "transaction.journal") << "garbage\n";
    try {
        TransactionJournal(dir).load();
        FAIL();
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find((dir / "transaction.journal").string()), std::string::npos);
    }
}

TEST_F(JournalTest, BeginRefusesWhenATransactionIsPendingAndClearRemovesIt)
{
    TransactionJournal journal(dir);
    journal.begin({"tx1", TransactionKind::Upgrade, {}, {}});
    TransactionJournal other(dir);
    EXPECT_THROW(other.begin({"tx2", TransactionKind::Upgrade, {}, {}}), std::system_error);
    journal.clear();
    EXPECT_FALSE(journal.exists());
    EXPECT_FALSE(TransactionJournal(dir).load().has_value());
}

}  // namespace
}  // namespace armdock
