#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/engine_version.hpp"
#include "core/errors.hpp"

namespace armdock {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class EngineVersionTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        std::string pattern = (fs::temp_directory_path() / "armdock-version-XXXXXX").string();
        ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
    }
    void TearDown() override
    {
        fs::remove_all(dir_);
        // Whatever happened, no child may be left behind, not even a zombie.
        EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
        EXPECT_EQ(errno, ECHILD);
    }

    // A fake engine: a shell script standing in for `docker -v`.
    fs::path script(const std::string& body)
    {
        fs::path file = dir_ / "docker";
        std::ofstream(file) << "#!/bin/sh\n" << body << "\n";
        fs::permissions(file, fs::perms::owner_all);
        return file;
    }

    std::string failure(const fs::path& binary, const std::vector<std::string>& args,
                        std::chrono::milliseconds timeout = 5000ms)
    {
        try {
            learnEngineVersion(binary, args, timeout);
        } catch (const AgentError& error) {
            EXPECT_EQ(error.kind(), ErrorKind::PayloadRejected) << error.what();
            return error.what();
        }
        ADD_FAILURE() << "no error";
        return "";
    }

    fs::path dir_;
};

TEST(ParseDockerVersion, Lines)
{
    EXPECT_EQ(parseProgramVersion("Docker version 1.10.2, build c3959b1\n"), "1.10.2");
    EXPECT_EQ(parseProgramVersion("Docker version 20.10.24+dfsg1, build 5d6db84"), "20.10.24+dfsg1");
    EXPECT_EQ(parseProgramVersion("WARNING: something\nDocker version 1.9.1-rc1, build a34a1d5\n"), "1.9.1-rc1");
    EXPECT_EQ(parseProgramVersion("dockerd version v24.0.5."), "24.0.5");
    EXPECT_EQ(parseProgramVersion("Docker version , build x"), std::nullopt);
    EXPECT_EQ(parseProgramVersion(""), std::nullopt);
    EXPECT_EQ(parseProgramVersion("usage: docker [OPTIONS]"), std::nullopt);
}

// What the parts of Debian 12's set print for --version, and upstream containerd's "v".
TEST(ParseDockerVersion, TheOtherPartsOfTheSet)
{
    EXPECT_EQ(parseProgramVersion("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n"), "1.6.20~ds1");
    EXPECT_EQ(parseProgramVersion("containerd github.com/containerd/containerd v1.7.0 1fbd70374134b891f97ce19c70b6e50c7b9f4e0d\n"), "1.7.0");
    EXPECT_EQ(parseProgramVersion("containerd containerd.io 1.6.28 ae07eda36dd25f8a1b98dfbf587313b99c0190bb\n"), "1.6.28");
    EXPECT_EQ(parseProgramVersion("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8\n"), "1.1.5+ds1");
    EXPECT_EQ(parseProgramVersion("tini version 0.19.0 - git.de40ad0\n"), "0.19.0");
    EXPECT_EQ(parseProgramVersion("tini version 0.19.0\n"), "0.19.0");
    // A number inside a word is not a version.
    EXPECT_EQ(parseProgramVersion("containerd github.com/containerd/containerd-1.6 unknown"), std::nullopt);
}

TEST(ReleaseLine, IsTheFirstTwoNumbers)
{
    EXPECT_EQ(releaseLine("20.10.24+dfsg1"), "20.10");
    EXPECT_EQ(releaseLine("1.10.3"), "1.10");
    EXPECT_EQ(releaseLine("27.3"), "27.3");
    EXPECT_EQ(releaseLine("27"), "");
    EXPECT_EQ(releaseLine("v24.0.5"), "");
    EXPECT_EQ(releaseLine(""), "");
    EXPECT_EQ(releaseLine("20."), "");
}

TEST_F(EngineVersionTest, LearnsTheVersion)
{
    fs::path docker = script("[ \"$1\" = -v ] || exit 3\necho \"Docker version 1.10.2, build c3959b1\"");
    EXPECT_EQ(learnEngineVersion(docker, {"-v"}, 5000ms), "1.10.2");
}

TEST_F(EngineVersionTest, RunsWithAnEmptyEnvironmentAndNoStdin)
{
    ::setenv("ARMDOCK_TEST_SECRET", "leak", 1);
    fs::path docker = script("[ -z \"$ARMDOCK_TEST_SECRET\" ] || exit 4\n"
                             "[ \"$PATH\" = /usr/sbin:/usr/bin:/sbin:/bin ] || exit 5\n"
                             "read line && exit 6\n"
                             "echo \"Docker version 1.10.3, build 20f81dd\" >&2");
    EXPECT_EQ(learnEngineVersion(docker, {}, 5000ms), "1.10.3");
    ::unsetenv("ARMDOCK_TEST_SECRET");
}

TEST_F(EngineVersionTest, InheritsNoDescriptorOfTheAgent)
{
    int leaked = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
    ASSERT_GE(leaked, 3);
    fs::path docker = script("[ -e /proc/self/fd/" + std::to_string(leaked) + " ] && exit 7\n"
                             "echo \"Docker version 1.10.2, build c3959b1\"");
    EXPECT_EQ(learnEngineVersion(docker, {"-v"}, 5000ms), "1.10.2");
    ::close(leaked);
}

TEST_F(EngineVersionTest, NonZeroExit)
{
    fs::path docker = script("echo 'flag provided but not defined: -v'\nexit 2");
    EXPECT_EQ(failure(docker, {"-v"}), "cannot learn a payload's version: " + docker.string()
                                           + " -v exited with status 2: flag provided but not defined: -v");
}

TEST_F(EngineVersionTest, KilledBySignal)
{
    fs::path docker = script("kill -SEGV $$");
    EXPECT_EQ(failure(docker, {"-v"}), "cannot learn a payload's version: " + docker.string()
                                           + " -v was killed by signal 11 (Segmentation fault)");
}

TEST_F(EngineVersionTest, NoVersionPrinted)
{
    fs::path docker = script("echo hello");
    EXPECT_EQ(failure(docker, {"-v"}),
              "cannot learn a payload's version: " + docker.string() + " -v printed no version: \"hello\"");
}

TEST_F(EngineVersionTest, CannotRun)
{
    EXPECT_EQ(failure(dir_ / "absent", {"-v"}), "cannot learn a payload's version: " + (dir_ / "absent").string()
                                                    + " -v cannot run: No such file or directory");
    fs::path notExecutable = dir_ / "plain";
    std::ofstream(notExecutable) << "data";
    fs::permissions(notExecutable, fs::perms::owner_read | fs::perms::owner_write);
    std::string message = failure(notExecutable, {"-v"});
    EXPECT_TRUE(message.starts_with("cannot learn a payload's version: " + notExecutable.string() + " -v cannot run: "))
        << message;
}

TEST_F(EngineVersionTest, TimeoutKillsTheWholeGroup)
{
    // A child that hangs and a grandchild that keeps the pipe open.
    fs::path docker = script("sleep 30 &\nsleep 30");
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(failure(docker, {"-v"}, 300ms),
              "cannot learn a payload's version: " + docker.string() + " -v did not finish within 300 ms; it was killed");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_F(EngineVersionTest, ChildThatClosesItsOutputButLingers)
{
    fs::path docker = script("echo 'Docker version 1.10.2, build c3959b1'\nexec >/dev/null 2>&1\nsleep 30");
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(failure(docker, {"-v"}, 300ms), "cannot learn a payload's version: " + docker.string()
                                                  + " -v closed its output but did not exit within 300 ms; it was killed");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_F(EngineVersionTest, HugeOutputIsCappedAndDoesNotBlock)
{
    fs::path docker = script("head -c 1000000 /dev/zero | tr '\\0' 'x'\necho\necho 'Docker version 1.10.2, build c3959b1'");
    // The version is past the 64 KiB kept: the output is drained, not stored.
    std::string message = failure(docker, {}, 5000ms);
    EXPECT_TRUE(message.starts_with("cannot learn a payload's version: " + docker.string() + " printed no version: \"xxxx"))
        << message.substr(0, 200);
}

TEST_F(EngineVersionTest, FileContainsText)
{
    fs::path file = dir_ / "docker";
    std::string sha1(40, 'a');
    sha1.replace(0, 5, "c0ffe");
    // The text straddles the 1 MiB read boundary.
    std::string content(1024 * 1024 - 10, 'z');
    content += sha1;
    content += std::string(1000, 'z');
    std::ofstream(file, std::ios::binary) << content;
    EXPECT_TRUE(fileContainsText(file, sha1));
    EXPECT_FALSE(fileContainsText(file, std::string(40, 'b')));
    EXPECT_TRUE(fileContainsText(file, "zzz"));
    EXPECT_THROW(fileContainsText(dir_ / "absent", "x"), std::system_error);
}

}  // namespace
}  // namespace armdock
