#include <gtest/gtest.h>

#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "core/elf_check.hpp"
#include "core/errors.hpp"
#include "core/sha_digest.hpp"
#include "core/source_verifier.hpp"
#include "core/staging.hpp"
#include "core/unique_fd.hpp"

namespace armdock {
namespace {

namespace fs = std::filesystem;

class StagingTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (fs::temp_directory_path() / "armdock-staging-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
        fs::create_directory(dir_ / "src");
        fs::create_directory(dir_ / "usr");
        source_ = dir_ / "src" / "docker";
        fs::copy_file("/bin/true", source_);
        ::chmod(source_.c_str(), 0755);
        target_ = dir_ / "usr" / "docker";
    }
    void TearDown() override { fs::remove_all(dir_); }

    OpenedSource open() { return openAndCheckSource("docker", source_.string(), SourceRules{0, hostElfMachine()}); }

    // The AgentError of a stageCopy that must fail, checking its kind.
    std::string failure(const OpenedSource& source, ErrorKind kind, const std::string& sha = "",
                        const fs::path& target = {})
    {
        try {
            stageCopy(source.fd.get(), source.st, "docker", target.empty() ? target_ : target, 0755, "tx1", sha);
        } catch (const AgentError& error) {
            EXPECT_EQ(error.kind(), kind) << error.what();
            return error.what();
        }
        ADD_FAILURE() << "stageCopy succeeded";
        return "";
    }

    std::size_t entriesIn(const fs::path& dir) const
    {
        return static_cast<std::size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
    }

    fs::path dir_;
    fs::path source_;
    fs::path target_;
};

TEST(StagingNames, StagedPathFor)
{
    EXPECT_EQ(stagedPathFor("/usr/bin/docker", "20240101-abc"), "/usr/bin/.docker.armdock-20240101-abc");
    EXPECT_EQ(stagedPathFor("/usr/lib/docker/dockerinit", "tx"), "/usr/lib/docker/.dockerinit.armdock-tx");
}

TEST(StagingNames, IsStagedFileName)
{
    EXPECT_TRUE(isStagedFileName(".docker.armdock-tx1"));
    EXPECT_TRUE(isStagedFileName(stagedPathFor("/usr/bin/docker", "x").filename().string()));
    EXPECT_FALSE(isStagedFileName("docker"));
    EXPECT_FALSE(isStagedFileName("docker.armdock-tx1"));
    EXPECT_FALSE(isStagedFileName(".docker.armdock-"));
    EXPECT_FALSE(isStagedFileName(".armdock-tx1"));
    EXPECT_FALSE(isStagedFileName(".docker"));
}

TEST_F(StagingTest, CopiesHashesAndSetsTheMode)
{
    OpenedSource source = open();
    char skip[10];
    ASSERT_EQ(::read(source.fd.get(), skip, sizeof skip), 10) << "the copy must start at offset 0 anyway";
    mode_t oldMask = ::umask(077);
    StagedFile staged = stageCopy(source.fd.get(), source.st, "docker", target_, 0755, "tx1", "");
    ::umask(oldMask);
    EXPECT_EQ(staged.staged, dir_ / "usr" / ".docker.armdock-tx1");
    EXPECT_EQ(staged.target, target_);
    EXPECT_EQ(staged.size, fs::file_size(source_));
    EXPECT_EQ(staged.sha256, sha256OfFile(source_));
    EXPECT_EQ(staged.sha1, sha1OfFile(source_));
    EXPECT_EQ(sha256OfFile(staged.staged), staged.sha256);
    struct stat st {};
    ASSERT_EQ(::stat(staged.staged.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    EXPECT_FALSE(fs::exists(target_)) << "staging never touches the target";
}

TEST_F(StagingTest, AcceptsTheExpectedDigestInAnyCase)
{
    OpenedSource source = open();
    std::string digest = sha256OfFile(source_);
    std::string upper = digest;
    for (auto& c : upper)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    StagedFile staged = stageCopy(source.fd.get(), source.st, "docker", target_, 0755, "tx1", upper);
    EXPECT_EQ(staged.sha256, digest);
}

TEST_F(StagingTest, Sha256MismatchIsRejectedAndRemoved)
{
    OpenedSource source = open();
    std::string wrong(64, '0');
    std::string message = failure(source, ErrorKind::PayloadRejected, wrong);
    EXPECT_EQ(message, "payload docker: SHA-256 mismatch: expected " + wrong + ", the source has " + sha256OfFile(source_)
                           + "; check that you gave the right file and digest");
    EXPECT_EQ(entriesIn(dir_ / "usr"), 0u);
}

TEST_F(StagingTest, SourceGrownWhileStagedIsRejected)
{
    OpenedSource source = open();
    auto size = fs::file_size(source_);
    std::ofstream(source_, std::ios::app) << "appended after verification";
    std::string message = failure(source, ErrorKind::PayloadRejected);
    EXPECT_EQ(message, "payload docker: the source changed while it was being copied (its size changed from "
                           + std::to_string(size) + " to " + std::to_string(fs::file_size(source_))
                           + " bytes); make sure nothing writes it and try again");
    EXPECT_EQ(entriesIn(dir_ / "usr"), 0u);
}

TEST_F(StagingTest, SourceRewrittenInPlaceIsRejected)
{
    OpenedSource source = open();
    // Past the kernel's coarse timestamp tick, so that mtime/ctime move.
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    int fd = ::open(source_.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "XX", 2, 100), 2);
    ::close(fd);
    EXPECT_EQ(failure(source, ErrorKind::PayloadRejected),
              "payload docker: the source changed while it was being copied (it was modified); "
              "make sure nothing writes it and try again");
    EXPECT_EQ(entriesIn(dir_ / "usr"), 0u);
}

TEST_F(StagingTest, MissingTargetFolderFails)
{
    OpenedSource source = open();
    fs::path target = dir_ / "absent" / "docker";
    EXPECT_EQ(failure(source, ErrorKind::Failed, "", target),
              "payload docker: staging failed: cannot create " + (dir_ / "absent" / ".docker.armdock-tx1").string()
                  + ": No such file or directory; free space or fix the folder and try again");
}

TEST_F(StagingTest, ExistingStagedFileIsNeitherReplacedNorRemoved)
{
    OpenedSource source = open();
    fs::path existing = stagedPathFor(target_, "tx1");
    std::ofstream(existing) << "someone else's";
    std::string message = failure(source, ErrorKind::Failed);
    EXPECT_EQ(message, "payload docker: staging failed: cannot create " + existing.string()
                           + ": File exists; free space or fix the folder and try again");
    ASSERT_TRUE(fs::exists(existing));
    EXPECT_EQ(fs::file_size(existing), 14u);
}

// ENOSPC from a 64 KiB tmpfs mounted in a private mount namespace of this
// test process, so the host's mounts are never touched.
TEST_F(StagingTest, DiskFullRemovesThePartialCopy)
{
    if (::unshare(CLONE_NEWNS) != 0)
        GTEST_SKIP() << "no private mount namespace here (unshare: " << std::strerror(errno) << ")";
    ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << std::strerror(errno);
    fs::path small = dir_ / "small";
    fs::create_directory(small);
    if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=64k,mode=0755") != 0)
        GTEST_SKIP() << "cannot mount a tmpfs (" << std::strerror(errno) << ")";

    // A 1 MiB source: stageCopy does not look at ELF headers, so any data does.
    fs::path big = dir_ / "src" / "big";
    std::ofstream(big, std::ios::binary) << std::string(1 << 20, 'x');
    UniqueFd fd(::open(big.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    ::fstat(fd.get(), &st);
    std::string message;
    try {
        stageCopy(fd.get(), st, "docker", small / "docker", 0755, "tx1", "");
    } catch (const AgentError& error) {
        EXPECT_EQ(error.kind(), ErrorKind::Failed);
        message = error.what();
    }
    EXPECT_EQ(message, "payload docker: staging failed: cannot write " + (small / ".docker.armdock-tx1").string()
                           + ": No space left on device; free space or fix the folder and try again");
    EXPECT_EQ(entriesIn(small), 0u) << "the partial copy must be removed";
    ::umount2(small.c_str(), MNT_DETACH);
}

}  // namespace
}  // namespace armdock
