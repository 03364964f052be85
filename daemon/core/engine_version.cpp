#include "engine_version.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <regex>
#include <system_error>
#include <vector>

#include "durable_fs.hpp"
#include "errors.hpp"
#include "unique_fd.hpp"

namespace armdock {

namespace {

constexpr std::size_t outputLimit = 64 * 1024;
constexpr std::size_t chunkSize = 1 << 20;

[[noreturn]] void cannotRun(const std::string& command, const std::string& why)
{
    throw AgentError(ErrorKind::PayloadRejected, "cannot learn the engine's version: " + command + " " + why);
}

std::string describeCommand(const std::filesystem::path& binary, const std::vector<std::string>& args)
{
    std::string text = binary.string();
    for (const auto& arg : args)
        text += " " + arg;
    return text;
}

std::string firstLine(const std::string& output)
{
    std::string line = output.substr(0, output.find('\n'));
    return line.size() > 200 ? line.substr(0, 200) + "..." : line;
}

// The child, in a process group of its own so that a timeout kills anything
// it started too.
class Child {
public:
    Child(const std::filesystem::path& binary, const std::vector<std::string>& args, const std::string& command)
    {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0)
            cannotRun(command, std::string("failed: pipe: ") + std::strerror(errno));
        readEnd_.reset(fds[0]);
        UniqueFd writeEnd(fds[1]);
        spawn(binary, args, writeEnd.get(), command);
    }

    ~Child()
    {
        if (pid_ > 0)
            killAndReap();
    }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    int readFd() const { return readEnd_.get(); }

    void killAndReap()
    {
        ::kill(-pid_, SIGKILL);
        reap(0);
    }

    // Waits for the exit status (the caller has already seen EOF or killed it).
    int reap(int flags)
    {
        int status = 0;
        pid_t got;
        do {
            got = ::waitpid(pid_, &status, flags);
        } while (got < 0 && errno == EINTR);
        // ECHILD: someone else reaped it (SIGCHLD ignored); nothing is left to wait for.
        if (got == pid_ || (got < 0 && errno == ECHILD))
            pid_ = -1;
        return status;
    }

    // The exit status, or nullopt when the deadline passed first.
    std::optional<int> waitUntil(std::chrono::steady_clock::time_point deadline)
    {
        for (;;) {
            int status = reap(WNOHANG);
            if (pid_ < 0)
                return status;
            if (std::chrono::steady_clock::now() >= deadline)
                return std::nullopt;
            ::usleep(2000);
        }
    }

private:
    pid_t pid_ = -1;
    UniqueFd readEnd_;

    void spawn(const std::filesystem::path& binary, const std::vector<std::string>& args, int writeFd,
               const std::string& command)
    {
        posix_spawn_file_actions_t actions;
        posix_spawnattr_t attributes;
        posix_spawn_file_actions_init(&actions);
        posix_spawnattr_init(&attributes);
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&actions, writeFd, STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&actions, writeFd, STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
        // The staged engine is untrusted until checked: it gets no descriptor
        // of the agent's (bus, journal, locks), even one opened without O_CLOEXEC.
        posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
#endif
        posix_spawnattr_setpgroup(&attributes, 0);
        sigset_t defaults;
        sigemptyset(&defaults);
        sigaddset(&defaults, SIGPIPE);
        sigaddset(&defaults, SIGTERM);
        sigaddset(&defaults, SIGHUP);
        sigset_t none;
        sigemptyset(&none);
        posix_spawnattr_setsigdefault(&attributes, &defaults);
        posix_spawnattr_setsigmask(&attributes, &none);
        posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

        std::vector<std::string> argvStrings{binary.string()};
        argvStrings.insert(argvStrings.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& arg : argvStrings)
            argv.push_back(arg.data());
        argv.push_back(nullptr);
        std::string path = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
        char* envp[] = {path.data(), nullptr};

        int error = ::posix_spawn(&pid_, binary.c_str(), &actions, &attributes, argv.data(), envp);
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attributes);
        if (error != 0) {
            pid_ = -1;
            cannotRun(command, std::string("cannot run: ") + std::strerror(error));
        }
    }
};

// Collects output until EOF; false when the deadline passed first.
bool collectOutput(int fd, std::chrono::steady_clock::time_point deadline, std::string& output)
{
    char buffer[4096];
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return false;
        pollfd pfd{fd, POLLIN, 0};
        int ready = ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left.count(), 60'000)));
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0)
            throw std::system_error(errno, std::generic_category(), "poll");
        if (ready == 0)
            continue;
        ssize_t got = ::read(fd, buffer, sizeof buffer);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got <= 0)
            return true;
        // Keep reading past the limit so a chatty child never blocks on a full pipe.
        std::size_t room = outputLimit - std::min(outputLimit, output.size());
        output.append(buffer, std::min(room, static_cast<std::size_t>(got)));
    }
}

std::string exitProblem(int status, const std::string& output)
{
    if (WIFSIGNALED(status))
        return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        return "exited with status " + std::to_string(WEXITSTATUS(status))
            + (output.empty() ? std::string() : ": " + firstLine(output));
    return {};
}

}  // namespace

std::optional<std::string> parseDockerVersionLine(std::string_view output)
{
    static const std::regex pattern(R"(version\s+v?([0-9]+\.[0-9]+[0-9A-Za-z.+~_-]*))", std::regex::icase);
    std::match_results<std::string_view::const_iterator> match;
    if (!std::regex_search(output.begin(), output.end(), match, pattern))
        return std::nullopt;
    std::string version = match[1].str();
    // "1.10.2," or "1.10.2." at the end of a sentence: the punctuation is not part of it.
    while (!version.empty() && (version.back() == '.' || version.back() == '-'))
        version.pop_back();
    return version;
}

std::string learnEngineVersion(const std::filesystem::path& binary, const std::vector<std::string>& args,
                               std::chrono::milliseconds timeout)
{
    std::string command = describeCommand(binary, args);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    Child child(binary, args, command);
    std::string output;
    if (!collectOutput(child.readFd(), deadline, output)) {
        child.killAndReap();
        cannotRun(command, "did not finish within " + std::to_string(timeout.count()) + " ms; it was killed");
    }
    // EOF: the child closed its output, but it may still linger (or have
    // handed the pipe on and kept running); it gets the rest of the deadline.
    auto status = child.waitUntil(deadline);
    if (!status) {
        child.killAndReap();
        cannotRun(command, "closed its output but did not exit within " + std::to_string(timeout.count())
                               + " ms; it was killed");
    }
    std::string problem = exitProblem(*status, output);
    if (!problem.empty())
        cannotRun(command, problem);
    auto version = parseDockerVersionLine(output);
    if (!version)
        cannotRun(command, "printed no version" + (output.empty() ? std::string() : ": \"" + firstLine(output) + "\""));
    return *version;
}

bool fileContainsText(const std::filesystem::path& file, std::string_view text)
{
    if (text.empty())
        return true;
    std::boyer_moore_horspool_searcher searcher(text.begin(), text.end());
    // The last text.size() - 1 bytes of one chunk are kept before the next, so
    // a match across the boundary is found.
    std::string window;
    return readInChunks(file, chunkSize, [&](const char* data, std::size_t size) {
        window.append(data, size);
        if (std::search(window.begin(), window.end(), searcher) != window.end())
            return false;  // found: stop reading
        window.erase(0, window.size() - std::min(window.size(), text.size() - 1));
        return true;
    });
}

}  // namespace armdock
