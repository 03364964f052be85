// DockerClient against a real dockerd started here (with a containerd of its
// own, on sockets in a temporary folder, not through systemd) and against
// small asio servers that misbehave on purpose.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "docker/docker_client.hpp"

namespace armdock {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using Socket = asio::local::stream_protocol::socket;

milliseconds since(Clock::time_point start)
{
    return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
}

// Runs one coroutine on the loop until it ends (other work, such as a test
// server, may stay pending) and returns its value or rethrows its exception.
template <typename T>
T runTask(asio::io_context& io, Task<T> task)
{
    std::exception_ptr error;
    std::optional<T> value;
    bool done = false;
    asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T v) {
        error = e;
        if (!e) {
            value = std::move(v);
        }
        done = true;
    });
    while (!done && io.run_one() > 0) {
    }
    io.restart();
    if (error) {
        std::rethrow_exception(error);
    }
    return std::move(*value);
}

class TempDir {
public:
    TempDir()
    {
        std::string pattern = (fs::temp_directory_path() / "armdock-dc-XXXXXX").string();
        if (!::mkdtemp(pattern.data())) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = pattern;
    }
    ~TempDir()
    {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

// ---------------------------------------------------------------------------
// A real dockerd

// A child process that gets SIGKILL if this test process dies first.
pid_t spawnDaemon(const std::vector<std::string>& argv, const fs::path& log)
{
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) {
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) {
            ::_exit(127);
        }
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || null < 0) {
            ::_exit(127);
        }
        ::dup2(null, 0);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::setsid();
        std::vector<char*> args;
        for (const auto& a : argv) {
            args.push_back(const_cast<char*>(a.c_str()));
        }
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    return pid;
}

bool exited(pid_t pid)
{
    int status;
    return ::waitpid(pid, &status, WNOHANG) == pid;
}

// SIGTERM, wait (on a pidfd) up to `patience`, then SIGKILL and reap.
void stopDaemon(pid_t pid, milliseconds patience)
{
    if (pid <= 0) {
        return;
    }
    ::kill(pid, SIGTERM);
    int pidFd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidFd >= 0) {
        pollfd p{pidFd, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(patience.count()));
        ::close(pidFd);
    }
    int status;
    if (::waitpid(pid, &status, WNOHANG) != pid) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
    }
}

bool canConnect(const fs::path& socketPath)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socketPath.c_str(), sizeof addr.sun_path - 1);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

std::string readFile(const fs::path& path)
{
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

class RealDockerd : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (::geteuid() != 0 || !fs::exists("/usr/sbin/dockerd") || !fs::exists("/usr/bin/containerd")) {
            GTEST_SKIP() << "needs root, /usr/sbin/dockerd and /usr/bin/containerd";
        }
        const auto t = tmp.path();
        containerd = spawnDaemon({"/usr/bin/containerd", "--address", (t / "ctd.sock").string(), "--root",
                                  (t / "ctd-root").string(), "--state", (t / "ctd-state").string()},
                                 t / "containerd.log");
        // containerd has no readiness signal here: its socket accepting is the one.
        const auto ctdDeadline = Clock::now() + 20s;
        while (!canConnect(t / "ctd.sock")) {
            ASSERT_FALSE(exited(containerd)) << "containerd exited:\n" << readFile(t / "containerd.log");
            ASSERT_LT(Clock::now(), ctdDeadline) << "containerd did not listen:\n" << readFile(t / "containerd.log");
            asio::steady_timer wait(io, 5ms);
            wait.wait();
        }
        dockerdStart = Clock::now();
        dockerd = spawnDaemon({"/usr/sbin/dockerd", "-H", "unix://" + (t / "docker.sock").string(),
                               "--containerd=" + (t / "ctd.sock").string(), "--data-root", (t / "data").string(),
                               "--exec-root", (t / "exec").string(), "--pidfile", (t / "docker.pid").string(),
                               "--iptables=false", "--ip-masq=false", "--bridge=none", "--storage-driver=vfs"},
                              t / "dockerd.log");
    }

    void TearDown() override
    {
        stopDaemon(dockerd, 10s);
        stopDaemon(containerd, 10s);
        dockerd = containerd = -1;
        if (HasFailure()) {
            std::cerr << "dockerd log:\n" << readFile(tmp.path() / "dockerd.log");
        }
    }

    TempDir tmp;
    asio::io_context io;
    pid_t containerd = -1;
    pid_t dockerd = -1;
    Clock::time_point dockerdStart;
};

TEST_F(RealDockerd, AnswersPingVersionInfoAndContainers)
{
    DockerClient client(io, tmp.path() / "docker.sock");

    // The first ping waits for the socket to appear (ENOENT, retried every
    // 5 ms) and for dockerd to serve.
    ASSERT_TRUE(runTask(io, client.ping(30s)));
    const auto readyAfter = since(dockerdStart);
    ASSERT_FALSE(exited(dockerd));

    std::vector<long> micros;
    for (int i = 0; i < 50; ++i) {
        auto start = Clock::now();
        ASSERT_TRUE(runTask(io, client.ping(2s)));
        micros.push_back(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
    }
    std::sort(micros.begin(), micros.end());
    std::cout << "dockerd answered /_ping " << readyAfter.count() << " ms after it was started; ping round trip "
              << "median " << micros[micros.size() / 2] << " us, max " << micros.back() << " us\n";
    RecordProperty("dockerd_ready_ms", static_cast<int>(readyAfter.count()));
    RecordProperty("ping_median_us", static_cast<int>(micros[micros.size() / 2]));

    EXPECT_EQ(runTask(io, client.version(5s)), "20.10.24+dfsg1");
    EXPECT_EQ(runTask(io, client.initSha1(5s)), std::nullopt);
    EXPECT_TRUE(runTask(io, client.containers(5s)).empty());

    auto [status, body] = runTask(io, client.get("/containers/nonexistent/json", 5s));
    EXPECT_EQ(status, 404u);
    EXPECT_NE(body.find("No such container: nonexistent"), std::string::npos) << body;
}

// ---------------------------------------------------------------------------
// Misbehaving engines

// A unix-socket server on the test's loop. Until serve() it only listens (as
// systemd's docker.socket does before the engine runs): connects succeed and
// wait in the backlog.
class TestServer {
public:
    enum class Mode { answerOk, silent, garbage, error500 };

    TestServer(asio::io_context& io, fs::path path) : io_(io), path_(std::move(path)), acceptor_(io) {}

    void listen()
    {
        acceptor_.open();
        acceptor_.bind(asio::local::stream_protocol::endpoint(path_.string()));
        acceptor_.listen();
    }

    void serve(Mode mode)
    {
        mode_ = mode;
        asio::co_spawn(io_, acceptLoop(), asio::detached);
    }

    void close()
    {
        boost::system::error_code ec;
        acceptor_.close(ec);
        for (auto& s : held_) {
            s->close(ec);
        }
    }

    std::optional<http::request<http::string_body>> lastRequest;
    int connections = 0;

private:
    Task<void> acceptLoop()
    {
        for (;;) {
            auto socket = std::make_shared<Socket>(io_);
            co_await acceptor_.async_accept(*socket, asio::use_awaitable);
            ++connections;
            held_.push_back(socket);
            if (mode_ != Mode::silent) {
                asio::co_spawn(io_, answer(socket), asio::detached);
            }
        }
    }

    Task<void> answer(std::shared_ptr<Socket> socket)
    {
        boost::beast::flat_buffer buffer;
        http::request<http::string_body> request;
        co_await http::async_read(*socket, buffer, request, asio::use_awaitable);
        lastRequest = request;
        if (mode_ == Mode::garbage) {
            std::string junk = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
            co_await asio::async_write(*socket, asio::buffer(junk), asio::use_awaitable);
        } else {
            http::response<http::string_body> response{
                mode_ == Mode::error500 ? http::status::internal_server_error : http::status::ok, 11};
            response.set(http::field::content_type, "text/plain; charset=utf-8");
            response.body() = mode_ == Mode::error500 ? R"({"message":"daemon is shutting down"})" : "OK";
            response.prepare_payload();
            co_await http::async_write(*socket, response, asio::use_awaitable);
        }
        socket->shutdown(Socket::shutdown_send);
    }

    asio::io_context& io_;
    fs::path path_;
    asio::local::stream_protocol::acceptor acceptor_;
    Mode mode_ = Mode::answerOk;
    std::vector<std::shared_ptr<Socket>> held_;
};

class DockerClientTest : public ::testing::Test {
protected:
    TempDir tmp;
    asio::io_context io;  // after tmp: pending handlers go before the folder
    fs::path socketPath = tmp.path() / "docker.sock";
    DockerClient client{io, socketPath};
};

TEST_F(DockerClientTest, MissingSocketIsUnreachableAtTheTimeout)
{
    const auto start = Clock::now();
    try {
        runTask(io, client.ping(300ms));
        FAIL() << "no exception";
    } catch (const EngineUnreachable& e) {
        std::string message = e.what();
        EXPECT_NE(message.find("docker socket " + socketPath.string() + ": connect: No such file or directory"),
                  std::string::npos)
            << message;
    }
    const auto elapsed = since(start);
    EXPECT_GE(elapsed, 295ms);
    EXPECT_LT(elapsed, 400ms);
}

TEST_F(DockerClientTest, OtherRequestsDoNotRetryTheConnect)
{
    const auto start = Clock::now();
    EXPECT_THROW(runTask(io, client.version(5s)), EngineUnreachable);
    EXPECT_LT(since(start), 100ms);
}

TEST_F(DockerClientTest, SocketWithoutListenerIsUnreachable)
{
    // A socket file left behind by an engine that died: ECONNREFUSED.
    {
        asio::local::stream_protocol::acceptor stale(io);
        stale.open();
        stale.bind(asio::local::stream_protocol::endpoint(socketPath.string()));
    }
    try {
        runTask(io, client.version(1s));
        FAIL() << "no exception";
    } catch (const EngineUnreachable& e) {
        EXPECT_NE(std::string(e.what()).find("connect: Connection refused"), std::string::npos) << e.what();
    }
}

TEST_F(DockerClientTest, SilentEngineIsUnreachableAfterTheTimeout)
{
    TestServer server(io, socketPath);
    server.listen();
    server.serve(TestServer::Mode::silent);
    for (auto timeout : {300ms, 50ms}) {
        const auto start = Clock::now();
        try {
            runTask(io, client.ping(timeout));
            FAIL() << "no exception";
        } catch (const EngineUnreachable& e) {
            EXPECT_NE(std::string(e.what()).find("no answer to GET /_ping within " + std::to_string(timeout.count()) +
                                                 " ms"),
                      std::string::npos)
                << e.what();
        }
        const auto elapsed = since(start);
        EXPECT_GE(elapsed, timeout);
        EXPECT_LT(elapsed, timeout + 100ms);
    }
    EXPECT_EQ(server.connections, 2);
    server.close();
}

TEST_F(DockerClientTest, ListeningButNotServingEngineIsUnreachableAfterTheTimeout)
{
    TestServer server(io, socketPath);
    server.listen();  // connects land in the backlog, nobody accepts
    const auto start = Clock::now();
    EXPECT_THROW(runTask(io, client.version(200ms)), EngineUnreachable);
    const auto elapsed = since(start);
    EXPECT_GE(elapsed, 200ms);
    EXPECT_LT(elapsed, 300ms);
}

TEST_F(DockerClientTest, SocketActivatedEngineIsDetectedAsSoonAsItServes)
{
    // As with docker.socket: the socket listens from the start, the engine
    // starts answering 200 ms later.
    TestServer server(io, socketPath);
    server.listen();
    asio::steady_timer engineStarts(io, 200ms);
    Clock::time_point servingAt;
    engineStarts.async_wait([&](boost::system::error_code ec) {
        if (!ec) {
            servingAt = Clock::now();
            server.serve(TestServer::Mode::answerOk);
        }
    });
    const auto start = Clock::now();
    EXPECT_TRUE(runTask(io, client.ping(10s)));
    const auto elapsed = since(start);
    const auto delay = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - servingAt);
    std::cout << "socket-activated engine: ping returned " << elapsed.count() << " ms after it started, "
              << delay.count() << " us after the engine began serving\n";
    EXPECT_GE(elapsed, 200ms);
    EXPECT_LT(elapsed, 230ms);
    EXPECT_EQ(server.connections, 1);  // one connection, no polling

    ASSERT_TRUE(server.lastRequest);
    EXPECT_EQ(server.lastRequest->method(), http::verb::get);
    EXPECT_EQ(server.lastRequest->target(), "/_ping");
    EXPECT_EQ(server.lastRequest->version(), 11);
    EXPECT_EQ((*server.lastRequest)[http::field::host], "docker");
    EXPECT_EQ((*server.lastRequest)[http::field::connection], "close");

    // The 10 s deadline was cancelled with the request: nothing is left on
    // the loop once the server is closed.
    server.close();
    const auto drainStart = Clock::now();
    io.run();
    EXPECT_LT(since(drainStart), 100ms);
}

TEST_F(DockerClientTest, EngineWhoseSocketAppearsLateIsDetectedWithinMilliseconds)
{
    // Without socket activation: the socket file appears 200 ms later.
    TestServer server(io, socketPath);
    asio::steady_timer engineStarts(io, 200ms);
    Clock::time_point servingAt;
    engineStarts.async_wait([&](boost::system::error_code ec) {
        if (!ec) {
            server.listen();
            servingAt = Clock::now();
            server.serve(TestServer::Mode::answerOk);
        }
    });
    const auto start = Clock::now();
    EXPECT_TRUE(runTask(io, client.ping(10s)));
    const auto elapsed = since(start);
    const auto delay = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - servingAt);
    std::cout << "late socket: ping returned " << elapsed.count() << " ms after it started, " << delay.count()
              << " us after the socket appeared\n";
    EXPECT_GE(elapsed, 200ms);
    EXPECT_LT(elapsed, 230ms);
    server.close();
}

TEST_F(DockerClientTest, GarbageAnswerIsUnreachable)
{
    TestServer server(io, socketPath);
    server.listen();
    server.serve(TestServer::Mode::garbage);
    const auto start = Clock::now();
    try {
        runTask(io, client.ping(5s));
        FAIL() << "no exception";
    } catch (const EngineUnreachable& e) {
        EXPECT_NE(std::string(e.what()).find("GET /_ping: read:"), std::string::npos) << e.what();
    }
    EXPECT_LT(since(start), 1s);
    server.close();
}

TEST_F(DockerClientTest, ErrorStatusNamesTheEnginesMessage)
{
    TestServer server(io, socketPath);
    server.listen();
    server.serve(TestServer::Mode::error500);
    EXPECT_FALSE(runTask(io, client.ping(5s)));
    try {
        runTask(io, client.version(5s));
        FAIL() << "no exception";
    } catch (const EngineUnreachable& e) {
        EXPECT_NE(std::string(e.what()).find("GET /version answered HTTP 500: daemon is shutting down"),
                  std::string::npos)
            << e.what();
    }
    server.close();
}

TEST_F(DockerClientTest, NonJsonVersionIsUnreachable)
{
    TestServer server(io, socketPath);
    server.listen();
    server.serve(TestServer::Mode::answerOk);  // "OK" is not a /version body
    try {
        runTask(io, client.version(5s));
        FAIL() << "no exception";
    } catch (const EngineUnreachable& e) {
        EXPECT_NE(std::string(e.what()).find("GET /version: unexpected answer: not JSON"), std::string::npos)
            << e.what();
    }
    server.close();
}

}  // namespace
}  // namespace armdock
