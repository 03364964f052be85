#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/backup_store.hpp"
#include "core/sha_digest.hpp"

namespace armdock {
namespace {

namespace fs = std::filesystem;

class BackupStoreTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        char pattern[] = "/tmp/armdock-backups-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir = pattern;
        fs::create_directories(dir / "root");
        payloads = {PayloadSpec{"docker", dir / "root/docker", 0755, {"-v"}, true},
                    PayloadSpec{"dockerinit", dir / "root/dockerinit", 0755, {}, false}};
        write("docker", "engine-1");
    }
    void TearDown() override { fs::remove_all(dir); }
    void write(const std::string& name, const std::string& content)
    {
        std::ofstream(dir / "root" / name, std::ios::trunc) << content;
    }
    BackupStore::BackUpResult backUp(BackupStore& store, const std::string& version)
    {
        return store.backUp(payloads, [&](const fs::path&) { return version; });
    }
    fs::path dir;
    std::vector<PayloadSpec> payloads;
};

TEST_F(BackupStoreTest, KeepsEachDistinctSetOnceWithItsFilesAndAbsentMembers)
{
    BackupStore store(dir / "state");
    auto first = backUp(store, "1.0");
    EXPECT_TRUE(first.created);
    EXPECT_EQ(first.set.version, "1.0");
    EXPECT_EQ(sha256OfFile(first.set.fileOf("docker")), sha256OfFile(dir / "root/docker"));
    ASSERT_TRUE(first.set.member("dockerinit"));
    EXPECT_FALSE(first.set.member("dockerinit")->present);

    auto again = backUp(store, "ignored");
    EXPECT_FALSE(again.created);
    EXPECT_EQ(again.set.id, first.set.id);
    EXPECT_EQ(store.list().size(), 1u);

    write("docker", "engine-2");
    auto second = backUp(store, "2.0");
    EXPECT_TRUE(second.created);
    EXPECT_NE(second.set.id, first.set.id);
    auto sets = store.list();
    ASSERT_EQ(sets.size(), 2u);
    EXPECT_EQ(sets[0].id, second.set.id);  // newest first
}

TEST_F(BackupStoreTest, PruneKeepsTheNewestAndTheProtectedSet)
{
    BackupStore store(dir / "state");
    std::vector<std::string> ids;
    for (int i = 0; i < 4; ++i) {
        write("docker", "engine-" + std::to_string(i));
        ids.push_back(backUp(store, std::to_string(i)).set.id);
    }
    store.prune(2, ids[0]);
    auto sets = store.list();
    ASSERT_EQ(sets.size(), 3u);
    EXPECT_EQ(sets[0].id, ids[3]);
    EXPECT_EQ(sets[1].id, ids[2]);
    EXPECT_EQ(sets[2].id, ids[0]);
    EXPECT_FALSE(fs::exists(dir / "state/backups" / ids[1]));
}

TEST_F(BackupStoreTest, HalfWrittenFoldersAreNotBackups)
{
    BackupStore store(dir / "state");
    fs::create_directories(dir / "state/backups/.incoming-abc");
    fs::create_directories(dir / "state/backups/deadbeef");  // no manifest
    EXPECT_TRUE(store.list().empty());
    EXPECT_FALSE(store.find("../../etc").has_value());
}

TEST_F(BackupStoreTest, SetIdDependsOnContentNotOrder)
{
    std::vector<SetMember> a{{"docker", "/a", true, "11"}, {"dockerinit", "/b", false, ""}};
    std::vector<SetMember> b{{"dockerinit", "/b", false, ""}, {"docker", "/a", true, "11"}};
    EXPECT_EQ(setIdOf(a), setIdOf(b));
    b[1].sha256 = "12";
    EXPECT_NE(setIdOf(a), setIdOf(b));
}

}  // namespace
}  // namespace armdock
