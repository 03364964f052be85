#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

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
        payloads = {PayloadSpec{"docker", dir / "root/docker", 0755, {"-v"}, true, std::nullopt, ""},
                    PayloadSpec{"dockerinit", dir / "root/dockerinit", 0755, {}, false, std::nullopt, ""}};
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

// list() answers from memory (ListBackups runs on the event loop) and follows
// every change made through the store, and sets added or deleted by hand.
TEST_F(BackupStoreTest, ListFollowsEveryChangeAndAnswersFromMemoryBetweenThem)
{
    BackupStore store(dir / "state");
    auto ids = [&] {
        std::vector<std::string> out;
        for (const auto& set : store.list())
            out.push_back(set.id);
        return out;
    };
    EXPECT_TRUE(store.list().empty());  // no backups/ folder yet
    const std::string a = backUp(store, "1.0").set.id;
    EXPECT_EQ(ids(), std::vector<std::string>{a});
    write("docker", "engine-2");
    const std::string b = backUp(store, "2.0").set.id;
    EXPECT_EQ(ids(), (std::vector<std::string>{b, a}));

    // Backing up a kept set again only rewrites its manifest (backups/ itself
    // does not change): the list must still show it as the newest.
    write("docker", "engine-1");
    EXPECT_FALSE(backUp(store, "ignored").created);
    EXPECT_EQ(ids(), (std::vector<std::string>{a, b}));

    store.prune(1, "");
    EXPECT_EQ(ids(), std::vector<std::string>{a});

    std::ofstream(dir / "kept-docker") << "engine-3";
    const SetMember kept{"docker", dir / "root/docker", true, sha256OfFile(dir / "kept-docker")};
    const std::string c = store.keepFiles({{kept, dir / "kept-docker"}}, "3.0").id;
    EXPECT_EQ(ids(), (std::vector<std::string>{c, a}));
    store.remove(c);  // as a rollback or a recovery does
    EXPECT_EQ(ids(), std::vector<std::string>{a});

    // From memory: a manifest edited in place (backups/ unchanged) is not re-read...
    const fs::path manifest = dir / "state/backups" / a / "manifest.json";
    std::string text;
    {
        std::ifstream in(manifest);
        text.assign(std::istreambuf_iterator<char>(in), {});
    }
    const auto at = text.find("\"1.0\"");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 5, "\"1.9\"");
    std::ofstream(manifest, std::ios::trunc) << text;
    ASSERT_EQ(store.list().at(0).version, "1.0");
    // ...until the next change through the store re-reads the folder.
    write("docker", "engine-4");
    const std::string d = backUp(store, "4.0").set.id;
    auto sets = store.list();
    ASSERT_EQ(sets.size(), 2u);
    EXPECT_EQ(sets[0].id, d);
    EXPECT_EQ(sets[1].version, "1.9");

    // A set deleted by hand changes backups/ itself: noticed at once.
    fs::remove_all(dir / "state/backups" / d);
    EXPECT_EQ(ids(), std::vector<std::string>{a});
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
