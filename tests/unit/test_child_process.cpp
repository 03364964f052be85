// runChild with real processes: the environment, the descriptors, the
// signals and the process group a child gets, the timeout, the output cap.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "core/child_process.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;

TEST(ChildProcess, TheEnvironmentIsOnlyPath)
{
    ::setenv("ARMDOCK_SECRET_OF_THE_AGENT", "1", 1);
    const ChildOutcome child = runChild({"/usr/bin/env"}, 5s);
    ::unsetenv("ARMDOCK_SECRET_OF_THE_AGENT");
    EXPECT_EQ(child.end, ChildOutcome::End::Exited);
    EXPECT_EQ(child.output, std::string("PATH=") + childPath + "\n");
}

TEST(ChildProcess, ABareNameIsLookedUpInTheChildsPath)
{
    EXPECT_EQ(runChild({"true"}, 5s).code, 0);
    EXPECT_EQ(runChild({"false"}, 5s).code, 1);
    try {
        runChild({"armdock-no-such-program"}, 5s);
        FAIL() << "ran a program that does not exist";
    } catch (const std::system_error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot run armdock-no-such-program"), std::string::npos) << e.what();
    }
}

TEST(ChildProcess, NoDescriptorOfTheAgentIsInherited)
{
    const int fd = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC on purpose
    ASSERT_GT(fd, 2);
    const std::string script = "test -e /proc/self/fd/" + std::to_string(fd) + " && echo inherited || echo closed";
    const ChildOutcome child = runChild({"/bin/sh", "-c", script}, 5s);
    ::close(fd);
    EXPECT_EQ(child.output, "closed\n");
}

TEST(ChildProcess, SignalsAreAtTheirDefaultsAndUnblocked)
{
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction before {};
    ::sigaction(SIGHUP, &ignore, &before);
    sigset_t blocked, old;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &blocked, &old);
    const ChildOutcome hup = runChild({"/bin/sh", "-c", "kill -HUP $$; echo survived"}, 5s);
    const ChildOutcome term = runChild({"/bin/sh", "-c", "kill -TERM $$; echo survived"}, 5s);
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    ::sigaction(SIGHUP, &before, nullptr);
    EXPECT_EQ(hup.end, ChildOutcome::End::Signalled) << hup.output;
    EXPECT_EQ(hup.code, SIGHUP);
    EXPECT_EQ(term.end, ChildOutcome::End::Signalled) << term.output;
    EXPECT_EQ(term.code, SIGTERM);
}

TEST(ChildProcess, TheChildLeadsAProcessGroupOfItsOwn)
{
    // Field 5 of /proc/PID/stat is the process group.
    const ChildOutcome child = runChild({"/bin/sh", "-c", "echo $$; cut -d' ' -f5 /proc/$$/stat"}, 5s);
    std::istringstream lines(child.output);
    std::string pid, group;
    std::getline(lines, pid);
    std::getline(lines, group);
    EXPECT_FALSE(pid.empty());
    EXPECT_EQ(group, pid);
    EXPECT_NE(group, std::to_string(::getpgrp()));
}

// Gone, or a zombie waiting for its new parent: no longer running.
bool stopped(const std::string& pid)
{
    std::ifstream stat("/proc/" + pid + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    return text.empty() || close == std::string::npos || text.substr(close + 2, 1) == "Z";
}

TEST(ChildProcess, ATimeoutKillsTheWholeGroup)
{
    const auto started = std::chrono::steady_clock::now();
    const ChildOutcome child = runChild({"/bin/sh", "-c", "/bin/sleep 30 & echo $!; wait"}, 300ms);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    EXPECT_EQ(child.end, ChildOutcome::End::TimedOut);
    const std::string grandchild = child.output.substr(0, child.output.find('\n'));
    ASSERT_FALSE(grandchild.empty());
    bool gone = false;
    for (int i = 0; i < 200 && !gone; ++i, std::this_thread::sleep_for(10ms))
        gone = stopped(grandchild);
    EXPECT_TRUE(gone) << "the child's own child " << grandchild << " still runs";
}

TEST(ChildProcess, OutputIsCappedAndTheChildNeverBlocks)
{
    const ChildOutcome child = runChild({"/usr/bin/head", "-c", "1000000", "/dev/zero"}, 5s, 1000);
    EXPECT_EQ(child.end, ChildOutcome::End::Exited);
    EXPECT_EQ(child.code, 0);
    EXPECT_EQ(child.output.size(), 1000u);
}

TEST(ChildProcess, AChildWritingAsFastAsItIsReadStillEndsAtTheDeadline)
{
    const auto started = std::chrono::steady_clock::now();
    const ChildOutcome child = runChild({"/usr/bin/yes"}, 300ms);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    EXPECT_EQ(child.end, ChildOutcome::End::TimedOut);
}

// With SIGCHLD ignored the kernel reaps the child itself: its status is
// lost, and a lost status must never read as success.
TEST(ChildProcess, ALostExitStatusIsNotSuccess)
{
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction before {};
    ::sigaction(SIGCHLD, &ignore, &before);
    const ChildOutcome child = runChild({"/bin/false"}, 5s);
    ::sigaction(SIGCHLD, &before, nullptr);
    EXPECT_EQ(child.end, ChildOutcome::End::Exited);
    EXPECT_NE(child.code, 0);
}

TEST(ChildProcess, ALingeringChildThatClosedItsOutputIsSaidSo)
{
    const ChildOutcome child = runChild({"/bin/sh", "-c", "exec >&- 2>&-; /bin/sleep 30"}, 300ms);
    EXPECT_EQ(child.end, ChildOutcome::End::TimedOut);
    EXPECT_TRUE(child.outputClosed);
}

}  // namespace
}  // namespace armdock::test
