// A private dbus-daemon for one test (its own config in a temporary folder,
// started with the sandbox's spawnLogged, killed by its checked PID at the end), and a helper that runs a coroutine on an
// io_context until it ends or a deadline passes.
#pragma once

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/async.hpp"
#include "sandbox.hpp"  // spawnLogged

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
        // Signalled only while it is still our unreaped child.
        if (pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0) {
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

    // spawnLogged: the daemon dies with the test (PR_SET_PDEATHSIG) even
    // when the test crashes. Ready once its socket accepts a connection.
    void start()
    {
        const std::filesystem::path socket = dir_ / "bus";
        pid_ = spawnLogged(dir_ / "dbus-daemon.log",
                           {"/usr/bin/dbus-daemon", "--config-file=" + (dir_ / "bus.conf").string(), "--nofork", "--nopidfile"},
                           {"PATH=/usr/bin:/bin"});
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!accepts(socket)) {
            int status = 0;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("dbus-daemon exited: " + logText());
            }
            if (std::chrono::steady_clock::now() >= deadline)
                throw std::runtime_error("dbus-daemon did not listen on " + socket.string() + " within 10 s: " + logText());
            usleep(5000);
        }
        address_ = "unix:path=" + socket.string();
    }

    static bool accepts(const std::filesystem::path& socket)
    {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return false;
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
        const bool connected = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
        ::close(fd);
        return connected;
    }

    std::string logText() const
    {
        std::ifstream in(dir_ / "dbus-daemon.log");
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
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
