#include "core/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <sstream>

#include "core/unique_fd.hpp"

namespace armdock {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A bare name is looked up in childPath, the same list the child gets.
std::string resolveProgram(const std::string& program)
{
    if (program.find('/') != std::string::npos)
        return program;
    std::istringstream dirs(childPath);
    for (std::string dir; std::getline(dirs, dir, ':');) {
        const std::string candidate = dir + "/" + program;
        if (::access(candidate.c_str(), X_OK) == 0)
            return candidate;
    }
    return {};  // not found: never run relative to the working directory
}

// pidfd_open where the kernel has it (5.3+): the child's exit wakes poll().
// -1 otherwise; then the child is polled with waitpid(WNOHANG) every 10 ms.
int openPidFd(pid_t pid)
{
#ifdef SYS_pidfd_open
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
    (void)pid;
    return -1;
#endif
}

// Reads what the pipe holds now, at most 64 KiB per call so that a child
// writing as fast as it is read cannot keep the caller past its deadline;
// false at EOF.
bool drainPipe(int fd, std::string& output, std::size_t limit)
{
    char buffer[4096];
    for (int reads = 0; reads < 16; ++reads) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n > 0) {
            const std::size_t room = limit - std::min(limit, output.size());
            output.append(buffer, std::min(room, static_cast<std::size_t>(n)));
            continue;
        }
        if (n == 0)
            return false;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    return true;
}

[[noreturn]] void cannotRun(const std::string& program, const std::string& why, int error)
{
    throw std::system_error(error, std::generic_category(), "cannot run " + program + ": " + why);
}

pid_t spawnChild(const std::vector<std::string>& argvIn, int outputFd, const std::vector<std::string>& environment)
{
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, outputFd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, outputFd, STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    // The staged engine is untrusted until checked: it gets no descriptor of
    // the agent's (bus, journal, locks), even one opened without O_CLOEXEC.
    posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
#endif
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none;
    sigemptyset(&none);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGCHLD, SIGUSR1, SIGUSR2})
        sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setpgroup(&attributes, 0);  // its own group: a timeout kills what it started too
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

    std::vector<std::string> argvStrings = argvIn;
    argvStrings[0] = resolveProgram(argvIn[0]);
    if (argvStrings[0].empty()) {
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attributes);
        cannotRun(argvIn[0], std::string(std::strerror(ENOENT)) + " in " + childPath, ENOENT);
    }
    std::vector<char*> argv;
    for (auto& arg : argvStrings)
        argv.push_back(arg.data());
    argv.push_back(nullptr);
    std::vector<std::string> envStrings{std::string("PATH=") + childPath};
    envStrings.insert(envStrings.end(), environment.begin(), environment.end());
    std::vector<char*> envp;
    for (auto& entry : envStrings)
        envp.push_back(entry.data());
    envp.push_back(nullptr);

    pid_t pid = -1;
    const int error = ::posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (error != 0)
        cannotRun(argvIn[0], std::strerror(error), error);
    return pid;
}

}  // namespace

ChildOutcome runChild(const std::vector<std::string>& argv, milliseconds timeout, std::size_t outputLimit,
                      const std::vector<std::string>& environment)
{
    if (argv.empty() || argv[0].empty())
        cannotRun("(nothing)", "the command is empty", EINVAL);
    const auto deadline = Clock::now() + timeout;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
        cannotRun(argv[0], std::string("pipe: ") + std::strerror(errno), errno);
    UniqueFd readEnd(fds[0]);
    UniqueFd writeEnd(fds[1]);
    ::fcntl(writeEnd.get(), F_SETFL, ::fcntl(writeEnd.get(), F_GETFL) & ~O_NONBLOCK);  // the child's end blocks as usual
    const pid_t pid = spawnChild(argv, writeEnd.get(), environment);
    writeEnd.reset();

    ChildOutcome outcome;
    UniqueFd pidFd(openPidFd(pid));
    int status = 0;
    bool reaped = false;
    bool statusKnown = true;
    auto tryReap = [&] {
        for (;;) {
            const pid_t r = ::waitpid(pid, &status, WNOHANG);
            if (r == pid) {
                reaped = true;
                return;
            }
            if (r < 0 && errno == ECHILD) {  // reaped elsewhere (SIGCHLD ignored): its status is lost
                reaped = true;
                statusKnown = false;
                return;
            }
            if (r < 0 && errno == EINTR)
                continue;
            return;
        }
    };
    while (!reaped) {
        const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
        if (left.count() <= 0)
            break;
        pollfd pfds[2];
        nfds_t n = 0;
        if (readEnd)
            pfds[n++] = {readEnd.get(), POLLIN, 0};
        if (pidFd)
            pfds[n++] = {pidFd.get(), POLLIN, 0};
        const auto wait = pidFd ? left : std::min(left, milliseconds{10});
        if (::poll(pfds, n, static_cast<int>(std::min<long long>(wait.count(), 1 << 30))) < 0 && errno != EINTR)
            break;
        if (readEnd && !drainPipe(readEnd.get(), outcome.output, outputLimit))
            readEnd.reset();
        tryReap();
    }
    if (!reaped) {
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        outcome.end = ChildOutcome::End::TimedOut;
        outcome.outputClosed = !readEnd;
        return outcome;
    }
    // What the child wrote before it exited is in the pipe; a grandchild that
    // keeps the pipe open does not hold us up.
    if (readEnd)
        drainPipe(readEnd.get(), outcome.output, outputLimit);
    if (!statusKnown) {
        outcome.code = -1;  // never read as success
    } else if (WIFSIGNALED(status)) {
        outcome.end = ChildOutcome::End::Signalled;
        outcome.code = WTERMSIG(status);
    } else {
        outcome.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    return outcome;
}

std::string joinCommand(const std::vector<std::string>& argv)
{
    std::string text;
    for (const auto& arg : argv)
        text += (text.empty() ? "" : " ") + arg;
    return text;
}

std::string lastLine(std::string text)
{
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
        text.pop_back();
    if (const auto nl = text.rfind('\n'); nl != std::string::npos)
        text.erase(0, nl + 1);
    if (text.size() > 200)
        text = text.substr(0, 200) + "...";
    return text;
}

}  // namespace armdock
