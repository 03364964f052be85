// A client that keeps connecting to the Docker socket during a whole upgrade
// (GET /_ping about every millisecond) must not restart the old engine through
// socket activation between the stop and the swap: the engine that runs
// afterwards is the new file, started once. With docker.hold_socket the same
// client is never refused. Real parts: systemd user manager, dbus-daemon,
// containerd, socket-activated dockerd.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include <atomic>
#include <cstdio>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "agent_sandbox_fixture.hpp"

namespace armdock::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How often dockerd has started: the "Starting up" lines it writes to the
// sandbox's docker log (StandardOutput=append), one per start.
int dockerdStarts(const Sandbox& sandbox)
{
    const fs::path log = sandbox.dir() / "logs/docker.log";
    const std::string text = fs::exists(log) ? readFile(log) : std::string();
    int count = 0;
    for (auto at = text.find("Starting up"); at != std::string::npos; at = text.find("Starting up", at + 1))
        ++count;
    return count;
}

std::string exeOf(pid_t pid)
{
    std::error_code ec;
    return fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec).string();
}

std::string systemdProperty(const Sandbox& sandbox, const std::string& unit, const std::string& property)
{
    auto r = sandbox.systemctl({"show", "--property=" + property, "--value", unit}, 10s);
    std::string value = r.output;
    while (!value.empty() && (value.back() == '\n' || value.back() == ' '))
        value.pop_back();
    return value;
}

// A unit's timestamp property from systemd over D-Bus: microseconds since
// the epoch (CLOCK_REALTIME), 0 when it never happened.
std::uint64_t unitTimestamp(const Sandbox& sandbox, const std::string& unit, const std::string& interface,
                            const std::string& property)
{
    auto r = sandbox.busctl({"get-property", "org.freedesktop.systemd1", systemdUnitPath(unit), "org.freedesktop.systemd1." + interface, property});
    if (r.exitCode != 0 || !r.output.starts_with("t "))
        throw std::runtime_error("busctl get-property " + unit + " " + property + ": " + r.output);
    return std::stoull(r.output.substr(2));
}

// When the swap renamed the engine into place: rename(2) sets the inode's
// ctime, and nothing changes the installed file's metadata after that
// (microseconds since the epoch; the kernel's coarse clock, at most a tick early).
std::uint64_t renamedAt(const fs::path& file)
{
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0)
        throw std::runtime_error("stat " + file.string() + ": " + std::strerror(errno));
    return static_cast<std::uint64_t>(st.st_ctim.tv_sec) * 1000000u + static_cast<std::uint64_t>(st.st_ctim.tv_nsec) / 1000u;
}

enum class Ping { Ok, Refused, NoAnswer };

std::uint64_t realtimeMicroseconds()
{
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1000000u + static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
}

// One client visit: connect to the socket, GET /_ping (HTTP/1.0), read the
// answer. Refused: nothing listens on the socket (connect fails with
// ECONNREFUSED), so a connection cannot wake an engine either.
Ping pingOnce(const fs::path& socketPath, std::chrono::milliseconds timeout)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return Ping::NoAnswer;
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socketPath.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return errno == ECONNREFUSED ? Ping::Refused : Ping::NoAnswer;
    const std::string request = "GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
        return Ping::NoAnswer;
    std::string response;
    char buffer[1024];
    for (;;) {
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n > 0)
            response.append(buffer, static_cast<std::size_t>(n));
        else if (n < 0 && errno == EINTR)
            continue;
        else
            break;  // the end, a timeout or a reset
    }
    const bool ok = response.starts_with("HTTP/1.") && response.find(" 200 ") != std::string::npos && response.ends_with("\r\n\r\nOK");
    return ok ? Ping::Ok : Ping::NoAnswer;
}

// A client that connects, GETs /_ping and closes, again after a
// millisecond, from start() to stop(); what it saw, for the assertions.
class PingingClient {
public:
    explicit PingingClient(fs::path socket) : socket_(std::move(socket)) {}
    ~PingingClient() { stop(); }

    void start()
    {
        thread_ = std::thread([this] {
            auto lastOk = Clock::now();
            while (!stop_.load()) {
                const std::uint64_t connectedUs = realtimeMicroseconds();
                const Ping ping = pingOnce(socket_, 500ms);
                const auto now = Clock::now();
                visits.push_back({connectedUs, realtimeMicroseconds(), ping});
                ++attempts;
                if (ping == Ping::Ok) {
                    longestGap = std::max(longestGap, now - lastOk);
                    lastOk = now;
                } else {
                    if (failures++ == 0)
                        firstFailure = now;
                    lastFailure = now;
                    refused += ping == Ping::Refused ? 1 : 0;
                }
                std::this_thread::sleep_for(1ms);
            }
            longestGap = std::max(longestGap, Clock::now() - lastOk);
        });
    }
    void stop()
    {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
    }
    double longestGapMs() const { return std::chrono::duration<double, std::milli>(longestGap).count(); }
    double secondsAfter(Clock::time_point origin, Clock::time_point at) const
    {
        return failures ? std::chrono::duration<double>(at - origin).count() : 0.0;
    }

    // One visit: when it connected and when it was answered (or gave up), on
    // systemd's clock (CLOCK_REALTIME, microseconds), to compare with a unit's timestamps.
    struct Visit {
        std::uint64_t connectedUs = 0;
        std::uint64_t answeredUs = 0;
        Ping result = Ping::NoAnswer;
    };
    std::vector<Visit> visits;  // read after stop()
    long attempts = 0, failures = 0, refused = 0;
    Clock::duration longestGap{};
    Clock::time_point firstFailure{}, lastFailure{};

private:
    fs::path socket_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

class SocketClientsTest : public AgentSandboxTest {};

TEST_F(SocketClientsTest, AClientPingingThroughTheWholeUpgradeDoesNotRestartTheOldEngine)
{
    startAll();
    const pid_t oldPid = sandbox->dockerMainPid();
    ASSERT_GT(oldPid, 0);
    const int startsBefore = dockerdStarts(*sandbox);
    ASSERT_GE(startsBefore, 1) << "dockerd's log has no \"Starting up\" line: the start count below would mean nothing";
    const fs::path engine = newGoodEngine("socket-client");
    const std::string newSha = sha256Of(engine);

    PingingClient pinger(sandbox->dockerSocket());
    pinger.start();
    std::atomic<bool> stop{false};
    // Every dockerd that starts writes its PID file at once: note each PID seen.
    std::set<pid_t> enginePids;
    std::thread pidWatcher([&] {
        const fs::path pidFile = sandbox->dir() / "docker/docker.pid";
        while (!stop.load()) {
            std::ifstream in(pidFile);
            pid_t pid = 0;
            if (in >> pid && pid > 0)
                enginePids.insert(pid);
            std::this_thread::sleep_for(1ms);
        }
    });

    std::this_thread::sleep_for(300ms);  // the client is in its loop before the upgrade starts
    const auto upgradeStart = Clock::now();
    std::string tx;
    std::string result;
    try {
        tx = client->upgrade({{"docker", engine.string()}}, {{"sha256.docker", sdbus::Variant(newSha)}});
        result = client->waitFinished(tx, 120s);
    } catch (const std::exception& e) {
        result = e.what();
    }
    const double upgradeSeconds = std::chrono::duration<double>(Clock::now() - upgradeStart).count();
    std::this_thread::sleep_for(300ms);  // and a little past its end
    stop = true;
    pinger.stop();
    pidWatcher.join();

    const pid_t newPid = sandbox->dockerMainPid();
    const int newStarts = dockerdStarts(*sandbox) - startsBefore;
    std::string pids;
    for (pid_t p : enginePids)
        pids += (pids.empty() ? "" : ",") + std::to_string(p);
    std::printf("[socket] upgrade %s in %.1f s; %ld pings, %ld failed (%ld refused at connect; from %.3f s to %.3f s of the upgrade), longest gap between "
                "answers %.0f ms; dockerd started %d time(s); engine PIDs seen %s (old %d, new %d)\n",
                result.c_str(), upgradeSeconds, pinger.attempts, pinger.failures, pinger.refused,
                pinger.secondsAfter(upgradeStart, pinger.firstFailure), pinger.secondsAfter(upgradeStart, pinger.lastFailure),
                pinger.longestGapMs(), newStarts, pids.c_str(), oldPid, newPid);

    ASSERT_EQ(result, "success") << client->property("LastError");
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), newSha);
    // The engine running now is the new file, and it is the only start.
    ASSERT_GT(newPid, 0);
    EXPECT_NE(newPid, oldPid);
    EXPECT_EQ(exeOf(newPid), sandbox->payloadPath("docker").string()) << "(deleted) means an engine started before the swap";
    EXPECT_EQ(sha256Of("/proc/" + std::to_string(newPid) + "/exe"), newSha);
    EXPECT_EQ(newStarts, 1) << "dockerd started more than once during the upgrade: the socket woke the old engine";
    EXPECT_EQ(enginePids, (std::set<pid_t>{oldPid, newPid})) << pids;
    EXPECT_EQ(systemdProperty(*sandbox, "docker.service", "NRestarts"), "0");
    // And in systemd's own record: docker.socket was started again after the
    // swap (a start of an active unit changes nothing, so it had been
    // stopped), and dockerd's process was exec'd after the swap.
    const std::uint64_t swappedAt = renamedAt(sandbox->payloadPath("docker"));
    const std::uint64_t socketUp = unitTimestamp(*sandbox, "docker.socket", "Unit", "ActiveEnterTimestamp");
    const std::uint64_t engineExec = unitTimestamp(*sandbox, "docker.service", "Service", "ExecMainStartTimestamp");
    std::printf("[socket] after the swap: docker.socket listening again %+.3f s, dockerd exec'd %+.3f s\n",
                (static_cast<double>(socketUp) - static_cast<double>(swappedAt)) / 1e6,
                (static_cast<double>(engineExec) - static_cast<double>(swappedAt)) / 1e6);
    EXPECT_GT(socketUp, swappedAt) << "docker.socket was not stopped and started again around the swap";
    EXPECT_GT(engineExec, swappedAt) << "dockerd was started before the swap";
    // While the socket was down, connections were refused at once: nothing
    // queued in a backlog that would wake the engine.
    EXPECT_GT(pinger.refused, 0);
    // The client really ran through the upgrade, and the engine answers it again.
    EXPECT_GT(pinger.attempts, 100);
    EXPECT_TRUE(sandbox->ping());
}

// docker.hold_socket: docker.socket never stops, so a client pinging every
// millisecond through the whole upgrade is never refused: while the engine
// restarts its connections wait in the socket's backlog, and the new engine
// answers them. Both unit styles: Debian's (docker.service Wants=
// containerd.service, dockerd --live-restore, a busybox container that keeps
// its process) and Docker 1.10's (docker.socket PartOf=docker.service).
class HeldSocketTest : public AgentSandboxTest {
protected:
    void upgradeWhilePinging(const std::string& style)
    {
        const pid_t oldPid = sandbox->dockerMainPid();
        ASSERT_GT(oldPid, 0);
        const std::uint64_t socketUpBefore = unitTimestamp(*sandbox, "docker.socket", "Unit", "ActiveEnterTimestamp");
        const fs::path engine = newGoodEngine("held-socket");
        const std::string newSha = sha256Of(engine);

        PingingClient pinger(sandbox->dockerSocket());
        pinger.start();
        // More clients, so that several connect while the engine restarts (each waits for its answer).
        std::vector<std::unique_ptr<PingingClient>> others;
        for (int i = 0; i < 3; ++i) {
            others.push_back(std::make_unique<PingingClient>(sandbox->dockerSocket()));
            others.back()->start();
        }
        std::this_thread::sleep_for(300ms);
        const auto upgradeStart = Clock::now();
        std::string result;
        try {
            const std::string tx = client->upgrade({{"docker", engine.string()}}, {{"sha256.docker", sdbus::Variant(newSha)}});
            result = client->waitFinished(tx, 120s);
        } catch (const std::exception& e) {
            result = e.what();
        }
        const double upgradeSeconds = std::chrono::duration<double>(Clock::now() - upgradeStart).count();
        std::this_thread::sleep_for(300ms);
        pinger.stop();
        for (auto& other : others) {
            other->stop();
            EXPECT_EQ(other->refused, 0) << "another client was refused: the socket stopped listening";
        }
        std::printf("[held socket, %s] upgrade %s in %.1f s; %ld pings, %ld failed (%ld refused), longest gap between answers %.0f ms\n",
                    style.c_str(), result.c_str(), upgradeSeconds, pinger.attempts, pinger.failures, pinger.refused, pinger.longestGapMs());

        ASSERT_EQ(result, "success") << client->property("LastError");
        EXPECT_EQ(pinger.refused, 0) << "a client was refused: the socket stopped listening";
        // A request the old dockerd had accepted when it was told to stop may
        // get no answer (its shutdown does not finish it); every one that
        // connected later must be answered: checked below, for every client.
        EXPECT_GT(pinger.attempts, 100);
        EXPECT_EQ(unitTimestamp(*sandbox, "docker.socket", "Unit", "ActiveEnterTimestamp"), socketUpBefore)
            << "docker.socket was stopped and started again";
        // The engine that answers now is the new file, started after the rename.
        const pid_t newPid = sandbox->dockerMainPid();
        ASSERT_GT(newPid, 0);
        EXPECT_NE(newPid, oldPid);
        EXPECT_EQ(exeOf(newPid), sandbox->payloadPath("docker").string());
        EXPECT_EQ(sha256Of("/proc/" + std::to_string(newPid) + "/exe"), newSha);
        EXPECT_GT(unitTimestamp(*sandbox, "docker.service", "Service", "ExecMainStartTimestamp"), renamedAt(sandbox->payloadPath("docker")))
            << "the new dockerd was exec'd before its file was renamed into place";
        EXPECT_EQ(systemdProperty(*sandbox, "docker.socket", "ActiveState"), "active");
        std::vector<const PingingClient*> clients{&pinger};
        for (const auto& other : others)
            clients.push_back(other.get());
        expectTheNewEngineAnsweredWhoConnectedDuringTheRestart(style, clients);
    }

    // A client that connected after the old engine began to stop and before
    // the new one was exec'd waited in the socket's backlog; the answer it got
    // came after the new engine started, so the new engine gave it.
    void expectTheNewEngineAnsweredWhoConnectedDuringTheRestart(const std::string& style, const std::vector<const PingingClient*>& clients)
    {
        const std::uint64_t stopBegan = unitTimestamp(*sandbox, "docker.service", "Unit", "ActiveExitTimestamp");
        const std::uint64_t newStarted = unitTimestamp(*sandbox, "docker.service", "Service", "ExecMainStartTimestamp");
        // The old engine's process was gone: a restart passes the unit through "inactive".
        const std::uint64_t oldGone = std::max(stopBegan, unitTimestamp(*sandbox, "docker.service", "Unit", "InactiveEnterTimestamp"));
        ASSERT_GT(stopBegan, 0u);
        ASSERT_GT(newStarted, stopBegan);
        long duringRestart = 0, answeredByNew = 0, droppedInFlight = 0;
        std::uint64_t longestWaitUs = 0;
        for (const PingingClient* client : clients) {
            for (const auto& visit : client->visits) {
                // Connected before the new engine ran, answered after: it waited in the backlog for the new engine.
                if (visit.result == Ping::Ok && visit.connectedUs < newStarted && visit.answeredUs > newStarted) {
                    ++answeredByNew;
                    longestWaitUs = std::max(longestWaitUs, visit.answeredUs - visit.connectedUs);
                }
                if (visit.result != Ping::Ok && visit.connectedUs < oldGone) {
                    // Possibly accepted by the old engine before it stopped: its to answer or to drop.
                    EXPECT_EQ(visit.result, Ping::NoAnswer) << "a client was refused: the socket stopped listening";
                    EXPECT_GE(visit.answeredUs, stopBegan) << "a client got no answer before the upgrade stopped anything";
                    ++droppedInFlight;
                    continue;
                }
                if (visit.connectedUs < stopBegan || visit.connectedUs >= newStarted) {
                    EXPECT_EQ(visit.result, Ping::Ok) << "a client that connected " << (static_cast<double>(visit.connectedUs) - static_cast<double>(oldGone)) / 1000.0
                                                      << " ms after the old engine was gone got no answer";
                    continue;
                }
                ++duringRestart;
                EXPECT_EQ(visit.result, Ping::Ok) << "a client that connected " << (visit.connectedUs - stopBegan) / 1000
                                                  << " ms after the stop began got no answer";
            }
        }
        std::printf("[held socket, %s, %zu clients] %ld visit(s) connected between the old engine's stop and the new one's exec; "
                    "%ld that connected before the new engine ran were answered by it, after %.1f ms at most; %ld request(s) the old engine took before it stopped got no answer\n",
                    style.c_str(), clients.size(), duringRestart, answeredByNew, static_cast<double>(longestWaitUs) / 1000.0, droppedInFlight);
        EXPECT_GE(answeredByNew, 1) << "no client that connected before the new engine ran was answered by it";
    }
};

TEST_F(HeldSocketTest, DebianUnitsWithLiveRestoreNoClientRefusedAndTheContainerKeepsItsProcess)
{
    sandboxOptions.containerdPayload = true;  // docker.service Wants= containerd.service
    sandboxOptions.dockerdArgs = {"--live-restore"};
    startAll({{"docker.hold_socket", "true"}});
    sandbox->importBusyboxImage("armdock-busybox");
    auto run = sandbox->docker({"run", "-d", "--network=none", "--name", "web", "armdock-busybox", "/bin/sleep", "100000"});
    ASSERT_EQ(run.exitCode, 0) << run.output;
    const std::string pidBefore = sandbox->docker({"inspect", "-f", "{{.State.Pid}}", "web"}).output;
    const pid_t containerdBefore = sandbox->mainPid("containerd.service");

    upgradeWhilePinging("Debian units, live-restore");
    EXPECT_EQ(sandbox->docker({"inspect", "-f", "{{.State.Pid}}", "web"}).output, pidBefore) << "the container was restarted";
    EXPECT_NE(client->progress().second.find("1 container(s) kept running through the restart"), std::string::npos) << client->progress().second;
    EXPECT_EQ(sandbox->mainPid("containerd.service"), containerdBefore) << "containerd.service was restarted";
}

TEST_F(HeldSocketTest, Docker110UnitsTheSocketPartOfTheServiceKeepsListening)
{
    sandboxOptions.socketPartOfService = true;
    startAll({{"docker.hold_socket", "true"}});
    ASSERT_EQ(systemdProperty(*sandbox, "docker.socket", "PartOf"), "docker.service");
    upgradeWhilePinging("docker.socket PartOf=docker.service");
    EXPECT_NE(agentLog().find("ignore-dependencies"), std::string::npos) << "the service was not restarted alone";
}

}  // namespace
}  // namespace armdock::test
