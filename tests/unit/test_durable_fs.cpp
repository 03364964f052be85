// durable_fs and sha_digest (which has no test file of its own).
#include <gtest/gtest.h>

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "core/durable_fs.hpp"
#include "core/sha_digest.hpp"

namespace armdock {
namespace {

namespace fs = std::filesystem;

class DurableFsTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (fs::temp_directory_path() / "armdock-durable-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::size_t entries() const { return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir_), fs::directory_iterator())); }

    fs::path dir_;
};

mode_t modeOf(const fs::path& file)
{
    struct stat st {};
    ::stat(file.c_str(), &st);
    return st.st_mode & 07777;
}

// Expects a std::system_error whose what() contains `fragment`.
template <typename Call>
void expectSystemError(Call call, const std::string& fragment, int code)
{
    try {
        call();
        ADD_FAILURE() << "no error";
    } catch (const std::system_error& error) {
        EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
        EXPECT_EQ(error.code().value(), code) << error.what();
    }
}

TEST_F(DurableFsTest, WriteFileDurablyCreatesAndReplaces)
{
    fs::path file = dir_ / "journal";
    writeFileDurably(file, "first", 0600);
    EXPECT_EQ(readSmallFile(file), "first");
    EXPECT_EQ(modeOf(file), 0600u);
    writeFileDurably(file, "second, longer", 0644);
    EXPECT_EQ(readSmallFile(file), "second, longer");
    EXPECT_EQ(modeOf(file), 0644u);
    EXPECT_EQ(entries(), 1u) << "no temporary file may be left";
}

TEST_F(DurableFsTest, WriteFileDurablyNamesTheFileOnFailure)
{
    fs::path file = dir_ / "missing" / "journal";
    expectSystemError([&] { writeFileDurably(file, "x"); }, "cannot create a temporary file beside " + file.string(), ENOENT);
}

TEST_F(DurableFsTest, RenameDurably)
{
    writeFileDurably(dir_ / "a", "content");
    fs::create_directory(dir_ / "sub");
    renameDurably(dir_ / "a", dir_ / "sub" / "b");
    EXPECT_FALSE(fs::exists(dir_ / "a"));
    EXPECT_EQ(readSmallFile(dir_ / "sub" / "b"), "content");
    expectSystemError([&] { renameDurably(dir_ / "a", dir_ / "c"); },
                      "cannot rename " + (dir_ / "a").string() + " to " + (dir_ / "c").string(), ENOENT);
}

TEST_F(DurableFsTest, RemoveDurably)
{
    writeFileDurably(dir_ / "a", "content");
    removeDurably(dir_ / "a");
    EXPECT_FALSE(fs::exists(dir_ / "a"));
    removeDurably(dir_ / "a");  // a missing file is not an error
    fs::create_directory(dir_ / "folder");
    expectSystemError([&] { removeDurably(dir_ / "folder"); }, "cannot remove " + (dir_ / "folder").string(), EISDIR);
}

TEST_F(DurableFsTest, CopyFileDurably)
{
    std::string content(3 * 1024 * 1024 + 17, 'x');  // more than one 1 MiB chunk
    for (std::size_t i = 0; i < content.size(); i += 4096)
        content[i] = static_cast<char>(i / 4096);
    writeFileDurably(dir_ / "from", content);
    std::string digest = copyFileDurably(dir_ / "from", dir_ / "to", 0750);
    EXPECT_EQ(digest, sha256Hex(content.data(), content.size()));
    EXPECT_EQ(readSmallFile(dir_ / "to"), content);
    EXPECT_EQ(modeOf(dir_ / "to"), 0750u);
}

TEST_F(DurableFsTest, CopyFileDurablyReplacesNothing)
{
    writeFileDurably(dir_ / "from", "new");
    writeFileDurably(dir_ / "to", "old");
    expectSystemError([&] { copyFileDurably(dir_ / "from", dir_ / "to", 0755); }, "cannot create " + (dir_ / "to").string(), EEXIST);
    EXPECT_EQ(readSmallFile(dir_ / "to"), "old") << "the existing file must be left alone";
    expectSystemError([&] { copyFileDurably(dir_ / "absent", dir_ / "x", 0755); }, "cannot open " + (dir_ / "absent").string(), ENOENT);
    EXPECT_FALSE(fs::exists(dir_ / "x"));
}

TEST_F(DurableFsTest, FsyncAndRead)
{
    fsyncDirectory(dir_);
    expectSystemError([&] { fsyncDirectory(dir_ / "absent"); }, "cannot open folder " + (dir_ / "absent").string(), ENOENT);
    expectSystemError([&] { readSmallFile(dir_ / "absent"); }, "cannot open " + (dir_ / "absent").string(), ENOENT);
    expectSystemError([&] { fsyncFd(-1, "nothing"); }, "cannot fsync nothing", EBADF);
}

TEST(ShaDigest, KnownVectors)
{
    EXPECT_EQ(sha256Hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256Hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    Digest sha1(Digest::Algorithm::Sha1);
    sha1.update("a", 1);
    sha1.update("bc", 2);
    EXPECT_EQ(sha1.hexDigest(), "a9993e364706816aba3e25717850c26c9cd0d89d");
    EXPECT_THROW(sha1.hexDigest(), std::logic_error);
}

TEST_F(DurableFsTest, ShaOfFiles)
{
    std::string content(2 * 1024 * 1024 + 5, 'a');
    writeFileDurably(dir_ / "file", content);
    EXPECT_EQ(sha256OfFile(dir_ / "file"), sha256Hex(content.data(), content.size()));
    Digest sha1(Digest::Algorithm::Sha1);
    sha1.update(content.data(), content.size());
    EXPECT_EQ(sha1OfFile(dir_ / "file"), sha1.hexDigest());
    expectSystemError([&] { sha256OfFile(dir_ / "absent"); }, "cannot open " + (dir_ / "absent").string(), ENOENT);
}

TEST(ShaDigest, IsSha256Hex)
{
    EXPECT_TRUE(isSha256Hex(std::string(64, 'a')));
    EXPECT_TRUE(isSha256Hex("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
    EXPECT_FALSE(isSha256Hex(std::string(63, 'a')));
    EXPECT_FALSE(isSha256Hex(std::string(65, 'a')));
    EXPECT_FALSE(isSha256Hex(std::string(63, 'a') + "g"));
    EXPECT_FALSE(isSha256Hex(""));
}

}  // namespace
}  // namespace armdock
