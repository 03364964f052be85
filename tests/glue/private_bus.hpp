// A private dbus-daemon for one test (its own config in a temporary folder,
// killed by PID at the end), and a helper that runs a coroutine on an
// io_context until it ends or a deadline passes.
#pragma once

#include <gtest/gtest.h>

#include <signal.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/async.hpp"

namespace armdock::test {

class PrivateBus {
public:
    PrivateBus()
    {
        char pattern[] = "/tmp/armdock-glue-bus.XXXXXX";
        if (mkdtemp(pattern) == nullptr)
            throw std::runtime_error("mkdtemp failed");
        dir_ = pattern;
        writeConfig();
        start();
    }

    ~PrivateBus()
    {
        if (pid_ > 0) {
            kill(pid_, SIGTERM);
            waitpid(pid_, nullptr, 0);
        }
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    PrivateBus(const PrivateBus&) = delete;
    PrivateBus& operator=(const PrivateBus&) = delete;

    const std::string& address() const { return address_; }
    const std::filesystem::path& directory() const { return dir_; }  // holds the socket

private:
    void writeConfig()
    {
        std::ofstream conf(dir_ / "bus.conf");
        conf << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                "<busconfig>\n"
                "  <type>session</type>\n"
                "  <listen>unix:path="
             << (dir_ / "bus").string()
             << "</listen>\n"
                "  <auth>EXTERNAL</auth>\n"
                "  <policy context=\"default\">\n"
                "    <allow user=\"*\"/>\n"
                "    <allow own=\"*\"/>\n"
                "    <allow send_destination=\"*\"/>\n"
                "    <allow receive_sender=\"*\"/>\n"
                "  </policy>\n"
                "</busconfig>\n";
    }

    // fork + exec rather than posix_spawn: the daemon dies with the test
    // (PR_SET_PDEATHSIG) even when the test crashes.
    void start()
    {
        int out[2];
        if (pipe2(out, O_CLOEXEC) != 0)
            throw std::runtime_error("pipe failed");
        const std::string configArg = "--config-file=" + (dir_ / "bus.conf").string();
        pid_ = fork();
        if (pid_ < 0)
            throw std::runtime_error("fork failed");
        if (pid_ == 0)
            execDaemon(out[1], configArg);
        close(out[1]);
        address_ = readLine(out[0]);
        close(out[0]);
        if (address_.empty())
            throw std::runtime_error("dbus-daemon printed no address");
    }

    [[noreturn]] static void execDaemon(int outFd, const std::string& configArg)
    {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(outFd, STDOUT_FILENO);
        execlp("dbus-daemon", "dbus-daemon", configArg.c_str(), "--print-address", "--nofork", "--nopidfile",
               static_cast<char*>(nullptr));
        _exit(127);
    }

    static std::string readLine(int fd)
    {
        std::string line;
        char c = 0;
        while (read(fd, &c, 1) == 1 && c != '\n')
            line += c;
        return line;
    }

    std::filesystem::path dir_;
    std::string address_;
    pid_t pid_ = -1;
};

// Runs `task` on `io` until it ends; fails the test if it takes longer than
// `limit`. Rethrows the task's exception.
template <typename T>
T runTask(boost::asio::io_context& io, Task<T> task, std::chrono::milliseconds limit = std::chrono::seconds(10))
{
    std::optional<T> value;
    std::exception_ptr error;
    bool done = false;
    boost::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T v) {
        error = e;
        if (!e)
            value = std::move(v);
        done = true;
    });
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) {
        io.restart();
        io.run_one_for(std::chrono::milliseconds(50));
    }
    if (!done)
        throw std::runtime_error("task did not finish in time");
    if (error)
        std::rethrow_exception(error);
    return std::move(*value);
}

inline void runTask(boost::asio::io_context& io, Task<void> task,
                    std::chrono::milliseconds limit = std::chrono::seconds(10))
{
    runTask<bool>(
        io,
        [](Task<void> t) -> Task<bool> {
            co_await std::move(t);
            co_return true;
        }(std::move(task)),
        limit);
}

// Runs the loop until `condition` holds or `limit` passes; returns whether it held.
template <typename Condition>
bool runUntil(boost::asio::io_context& io, Condition condition,
              std::chrono::milliseconds limit = std::chrono::seconds(10))
{
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!condition() && std::chrono::steady_clock::now() < deadline) {
        io.restart();
        io.run_one_for(std::chrono::milliseconds(50));
    }
    return condition();
}

}  // namespace armdock::test
