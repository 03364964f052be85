// runHealthCheck against a fake engine and fake units on a real io_context,
// and runCommandWithTimeout with real processes.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <signal.h>
#include <unistd.h>

#include "core/health_check.hpp"

namespace armdock {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

Task<void> sleepFor(milliseconds d)
{
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    co_await timer.async_wait(asio::use_awaitable);
}

class FakeEngine : public EngineApi {
public:
    // ping
    bool pingHangs = false;             // never answers: waits its timeout, then throws
    int pingRefusedCalls = 0;           // the first N pings fail at once (socket not there yet)
    std::optional<int> pingFailsAfter;  // pings after the Nth fail
    // answers
    std::string versionValue = "1.10.2";
    std::optional<std::string> initSha1Value;
    std::vector<ContainerSummary> containerList;
    std::function<void(std::vector<ContainerSummary>&, int call)> containersHook;
    std::vector<ComponentVersion> componentList;
    std::function<void(std::vector<ComponentVersion>&, int call)> componentsHook;

    int pingCalls = 0;
    int componentsCalls = 0;
    int containersCalls = 0;

    Task<bool> ping(milliseconds timeout) override
    {
        ++pingCalls;
        if (pingHangs) {
            co_await sleepFor(timeout);
            throw EngineUnreachable("docker socket /run/docker.sock: no answer to GET /_ping within " +
                                    std::to_string(timeout.count()) + " ms");
        }
        if (pingCalls <= pingRefusedCalls) {
            throw EngineUnreachable("docker socket /run/docker.sock: connect: Connection refused");
        }
        if (pingFailsAfter && pingCalls > *pingFailsAfter) {
            throw EngineUnreachable("docker socket /run/docker.sock: connect: Connection refused");
        }
        co_return true;
    }
    Task<std::string> version(milliseconds) override { co_return versionValue; }
    Task<std::optional<std::string>> initSha1(milliseconds) override { co_return initSha1Value; }
    Task<std::vector<ComponentVersion>> components(milliseconds) override
    {
        ++componentsCalls;
        if (componentsHook) {
            componentsHook(componentList, componentsCalls);
        }
        co_return componentList;
    }
    Task<std::vector<ContainerSummary>> containers(milliseconds) override
    {
        ++containersCalls;
        if (containersHook) {
            containersHook(containerList, containersCalls);
        }
        co_return containerList;
    }
    Task<LiveRestoreInfo> liveRestore(milliseconds) override { co_return LiveRestoreInfo{}; }
};

class FakeUnits : public UnitControl {
public:
    std::string state = "active";
    std::optional<int> inactiveAfterStateCalls;  // activeState() says "failed" after N calls
    std::uint32_t pid = 4242;
    std::optional<int> pidChangesAfterCalls;  // mainPid() reports another PID after N calls

    int stateCalls = 0;
    int pidCalls = 0;

    Task<void> stopUnit(const std::string&, milliseconds) override { co_return; }
    Task<void> startUnit(const std::string&, milliseconds) override { co_return; }
    Task<void> restartUnit(const std::string&, milliseconds) override { co_return; }
    Task<std::vector<std::string>> partOf(const std::string&) override { co_return std::vector<std::string>{}; }
    Task<std::string> activeState(const std::string&) override
    {
        ++stateCalls;
        if (inactiveAfterStateCalls && stateCalls > *inactiveAfterStateCalls) {
            co_return "failed";
        }
        co_return state;
    }
    Task<std::uint32_t> mainPid(const std::string&) override
    {
        ++pidCalls;
        if (pidChangesAfterCalls && pidCalls > *pidChangesAfterCalls) {
            co_return pid + 1;
        }
        co_return pid;
    }
};

class HealthCheckTest : public ::testing::Test {
protected:
    HealthCheckTest()
    {
        expect.serviceUnit = "docker.service";
        expect.socketPath = "/run/docker.sock";
        expect.expectedVersion = "1.10.2";
        expect.timeout = 2s;
        expect.grace = 0ms;
    }

    // Runs the check to its end; returns the failure, if any.
    std::optional<HealthCheckFailed> run()
    {
        std::exception_ptr error;
        bool done = false;
        const auto start = Clock::now();
        asio::co_spawn(io, runHealthCheck(engine, units, pool, expect, [this](const std::string& line) {
            progress.push_back(line);
        }), [&](std::exception_ptr e) {
            error = e;
            done = true;
        });
        io.run();
        io.restart();
        elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
        EXPECT_TRUE(done);
        if (!error) {
            return std::nullopt;
        }
        try {
            std::rethrow_exception(error);
        } catch (const HealthCheckFailed& e) {
            return e;
        }
    }

    bool progressHas(const std::string& line) const
    {
        return std::find(progress.begin(), progress.end(), line) != progress.end();
    }

    asio::io_context io;
    asio::thread_pool pool{2};
    FakeEngine engine;
    FakeUnits units;
    HealthExpectations expect;
    std::vector<std::string> progress;
    milliseconds elapsed{0};
};

ContainerSummary container(std::string id, std::string state)
{
    return ContainerSummary{std::move(id), "c", std::move(state), "always"};
}

TEST_F(HealthCheckTest, PassesWhenEverythingHolds)
{
    expect.expectedInitSha1 = "0f4a5c6e2b1d3e7f8a9b0c1d2e3f4a5b6c7d8e9f";
    engine.initSha1Value = "0F4A5C6E2B1D3E7F8A9B0C1D2E3F4A5B6C7D8E9F";  // the engine prints it in upper case
    expect.grace = 300ms;
    expect.containersBack = {container("6f7bacc6fbea531eec2e7924a380489ceba100e6ab652b39409433300c788745", "running")};
    engine.containerList = {container("6f7bacc6fbea531eec2e7924a380489ceba100e6ab652b39409433300c788745", "running")};
    expect.smokeCommand = {"/bin/true"};

    auto failure = run();
    ASSERT_FALSE(failure) << failure->what();
    EXPECT_GE(elapsed, 300ms);
    EXPECT_LT(elapsed, 1000ms);
    EXPECT_TRUE(progressHas("waiting for /_ping on /run/docker.sock"));
    EXPECT_TRUE(progressHas("checking version"));
    EXPECT_TRUE(progressHas("checking InitSha1"));
    EXPECT_TRUE(progressHas("grace period 300 ms"));
    EXPECT_TRUE(progressHas("running smoke command"));
    // One ping before the grace period and one every 100 ms through it.
    EXPECT_GE(engine.pingCalls, 4);
    EXPECT_LE(engine.pingCalls, 6);
}

TEST_F(HealthCheckTest, WaitsForTheEngineToAnswer)
{
    engine.pingRefusedCalls = 3;
    auto failure = run();
    ASSERT_FALSE(failure) << failure->what();
    EXPECT_EQ(engine.pingCalls, 4);
}

TEST_F(HealthCheckTest, PingThatNeverAnswersFailsAfterTheTimeout)
{
    engine.pingHangs = true;
    expect.timeout = 300ms;
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "ping");
    EXPECT_GE(elapsed, 300ms);
    EXPECT_LT(elapsed, 400ms);
    std::string message = failure->what();
    EXPECT_NE(message.find("/run/docker.sock did not answer GET /_ping within 300 ms after docker.service started"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("journalctl -u docker.service"), std::string::npos) << message;
}

TEST_F(HealthCheckTest, UnitThatFailsWhileWaitingForPingFailsAtOnce)
{
    engine.pingRefusedCalls = 1000;
    units.state = "failed";
    expect.timeout = 5s;
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "ping");
    EXPECT_LT(elapsed, 500ms);
    EXPECT_NE(std::string(failure->what()).find("docker.service is failed"), std::string::npos) << failure->what();
}

TEST_F(HealthCheckTest, WrongVersionFails)
{
    engine.versionValue = "1.9.1";
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "version");
    std::string message = failure->what();
    EXPECT_NE(message.find("reports version 1.9.1"), std::string::npos) << message;
    EXPECT_NE(message.find("1.10.2"), std::string::npos) << message;
}

TEST_F(HealthCheckTest, EmptyExpectedVersionIsNotChecked)
{
    engine.versionValue = "anything";
    expect.expectedVersion = "";
    EXPECT_FALSE(run());
    EXPECT_FALSE(progressHas("checking version"));
}

// ---- components: what /version says the engine uses now ----

const ExpectedComponent newContainerd{"containerd", "1.7.2", "containerd", "/usr/bin/containerd"};
const ExpectedComponent newRunc{"runc", "1.1.12", "runc", "/usr/sbin/runc"};

TEST_F(HealthCheckTest, ComponentsReportingTheNewVersionsPass)
{
    expect.components = {newContainerd, newRunc};
    engine.componentList = {{"containerd", "v1.7.2"}, {"runc", "1.1.12"}, {"docker-init", "0.19.0"}};
    auto failure = run();
    ASSERT_FALSE(failure) << failure->what();
    EXPECT_TRUE(progressHas("checking that the engine uses containerd 1.7.2, runc 1.1.12"));
    EXPECT_EQ(engine.componentsCalls, 1);
}

TEST_F(HealthCheckTest, AComponentWithAnotherVersionFailsAtOnceNamingItsFile)
{
    expect.timeout = 5s;
    expect.components = {newContainerd, newRunc};
    engine.componentList = {{"containerd", "1.7.2"}, {"runc", "1.1.5+ds1"}};
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "components");
    EXPECT_LT(elapsed, 1s);
    EXPECT_EQ(std::string(failure->what()),
              "check components: /run/docker.sock reports runc 1.1.5+ds1, but the new /usr/sbin/runc (payload runc) is 1.1.12: "
              "the engine does not use the file just installed. Check that it runs that path (dockerd's --containerd, its runtimes "
              "and init-path in /etc/docker/daemon.json, the PATH of docker.service) and that the payload's units restart the "
              "service that runs it");
}

TEST_F(HealthCheckTest, AComponentNotReportedYetIsAskedForAgain)
{
    expect.components = {newContainerd};
    engine.componentList = {{"runc", "1.1.12"}};  // dockerd still reconnecting to the new containerd
    engine.componentsHook = [](std::vector<ComponentVersion>& list, int call) {
        if (call == 3)
            list.push_back({"containerd", "1.7.2"});
    };
    auto failure = run();
    ASSERT_FALSE(failure) << failure->what();
    EXPECT_EQ(engine.componentsCalls, 3);
}

TEST_F(HealthCheckTest, AComponentNeverReportedFailsAtTheDeadlineListingWhatIs)
{
    expect.timeout = 300ms;
    expect.components = {{"containerd.io", "1.7.2", "containerd", "/usr/bin/containerd"}};
    engine.componentList = {{"containerd", "1.7.2"}, {"runc", "1.1.12"}};
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "components");
    EXPECT_GE(elapsed, 300ms);
    const std::string message = failure->what();
    EXPECT_TRUE(message.starts_with("check components: /run/docker.sock does not report containerd.io (payload containerd) among its "
                                    "Components (it reports containerd 1.7.2, runc 1.1.12) within "))
        << message;
    EXPECT_NE(message.find("set component to one of those names"), std::string::npos) << message;
}

TEST(SameComponentVersion, ALeadingVIsTheSameVersion)
{
    EXPECT_TRUE(sameComponentVersion("v1.7.0", "1.7.0"));
    EXPECT_TRUE(sameComponentVersion("1.6.20~ds1", "1.6.20~ds1"));
    EXPECT_FALSE(sameComponentVersion("1.6.20", "1.6.20~ds1"));
    EXPECT_FALSE(sameComponentVersion("", ""));
}

TEST_F(HealthCheckTest, InitSha1MismatchFails)
{
    expect.expectedInitSha1 = "0f4a5c6e2b1d3e7f8a9b0c1d2e3f4a5b6c7d8e9f";
    engine.initSha1Value = "1111111111111111111111111111111111111111";
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "initsha1");
    std::string message = failure->what();
    EXPECT_NE(message.find("1111111111111111111111111111111111111111"), std::string::npos) << message;
    EXPECT_NE(message.find("0f4a5c6e2b1d3e7f8a9b0c1d2e3f4a5b6c7d8e9f"), std::string::npos) << message;
}

TEST_F(HealthCheckTest, InitSha1NotReportedByEngineIsFine)
{
    expect.expectedInitSha1 = "0f4a5c6e2b1d3e7f8a9b0c1d2e3f4a5b6c7d8e9f";
    engine.initSha1Value = std::nullopt;
    EXPECT_FALSE(run());
}

TEST_F(HealthCheckTest, UnitLeavingActiveDuringGraceFails)
{
    expect.grace = 1s;
    units.inactiveAfterStateCalls = 3;
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "grace");
    EXPECT_LT(elapsed, 500ms);  // seen at the next 100 ms tick, not at the end of the grace period
    EXPECT_NE(std::string(failure->what()).find("docker.service went failed"), std::string::npos) << failure->what();
}

TEST_F(HealthCheckTest, MainPidChangingDuringGraceFails)
{
    expect.grace = 1s;
    units.pidChangesAfterCalls = 3;
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "grace");
    EXPECT_LT(elapsed, 500ms);
    EXPECT_NE(std::string(failure->what()).find("main PID changed from 4242 to 4243"), std::string::npos)
        << failure->what();
}

TEST_F(HealthCheckTest, PingStoppingDuringGraceFails)
{
    expect.grace = 1s;
    engine.pingFailsAfter = 3;
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "grace");
    EXPECT_NE(std::string(failure->what()).find("stopped answering GET /_ping"), std::string::npos)
        << failure->what();
}

TEST_F(HealthCheckTest, NoMainPidFailsGrace)
{
    expect.grace = 200ms;
    units.pid = 0;
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "grace");
}

// The exe check reads /proc/MAINPID/exe; this process stands in for the engine.
TEST_F(HealthCheckTest, MainProcessRunningTheInstalledFilePasses)
{
    units.pid = static_cast<std::uint32_t>(::getpid());
    expect.expectedExe = executableIdentity("/proc/self/exe");  // the file this test runs from

    auto failure = run();
    ASSERT_FALSE(failure) << failure->what();
    EXPECT_TRUE(progressHas("checking that docker.service runs /proc/self/exe"));
}

// A rebuild with the same version: /version agrees, but the process runs another file.
TEST_F(HealthCheckTest, MainProcessRunningAnotherFileFailsNamingBoth)
{
    units.pid = static_cast<std::uint32_t>(::getpid());
    expect.expectedExe = executableIdentity("/bin/sh");

    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "exe");
    const std::string message = failure->what();
    EXPECT_NE(message.find("not the installed /bin/sh"), std::string::npos) << message;
    EXPECT_NE(message.find("main process (PID " + std::to_string(::getpid()) + ") runs /"), std::string::npos) << message;
    EXPECT_NE(message.find("systemctl cat docker.service"), std::string::npos) << message;
}

// Another restarted service (containerd.service after a new containerd) must run its new file too.
TEST_F(HealthCheckTest, AnotherRestartedServiceRunningAnotherFileFailsNamingIt)
{
    units.pid = static_cast<std::uint32_t>(::getpid());
    expect.otherExes.emplace_back("containerd.service", executableIdentity("/proc/self/exe"));
    auto passed = run();
    ASSERT_FALSE(passed) << passed->what();
    EXPECT_TRUE(progressHas("checking that containerd.service runs /proc/self/exe"));

    expect.otherExes = {{"containerd.service", executableIdentity("/bin/sh")}};
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "exe");
    const std::string message = failure->what();
    EXPECT_NE(message.find("containerd.service's main process"), std::string::npos) << message;
    EXPECT_NE(message.find("not the installed /bin/sh"), std::string::npos) << message;
}

TEST_F(HealthCheckTest, NoMainProcessFailsTheExeCheck)
{
    units.pid = 0;
    expect.expectedExe = executableIdentity("/proc/self/exe");

    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "exe");
    EXPECT_NE(std::string(failure->what()).find("has no main process"), std::string::npos) << failure->what();
}

TEST_F(HealthCheckTest, SmokeCommandFalseFails)
{
    expect.smokeCommand = {"/bin/false"};
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "smoke");
    EXPECT_NE(std::string(failure->what()).find("`/bin/false` exited with status 1"), std::string::npos)
        << failure->what();
}

TEST_F(HealthCheckTest, SmokeCommandTruePasses)
{
    expect.smokeCommand = {"/bin/true"};
    EXPECT_FALSE(run());
    EXPECT_TRUE(progressHas("running smoke command"));
}

TEST_F(HealthCheckTest, SmokeCommandOutputIsInTheMessage)
{
    expect.smokeCommand = {"/bin/sh", "-c", "echo starting; echo 'Cannot connect to the Docker daemon' >&2; exit 1"};
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "smoke");
    EXPECT_NE(std::string(failure->what()).find("Cannot connect to the Docker daemon"), std::string::npos)
        << failure->what();
}

TEST_F(HealthCheckTest, SmokeCommandRunsOffTheLoop)
{
    // While the command runs, a timer on the loop keeps firing.
    expect.smokeCommand = {"/bin/sleep", "0.3"};
    int ticks = 0;
    asio::steady_timer ticker(io);
    std::function<void()> tick = [&] {
        ticker.expires_after(20ms);
        ticker.async_wait([&](boost::system::error_code ec) {
            if (!ec && ++ticks < 1000) {
                tick();
            }
        });
    };
    tick();
    std::exception_ptr error;
    asio::co_spawn(io, [&]() -> Task<void> {
        HealthProgress noProgress;
        co_await runHealthCheck(engine, units, pool, expect, noProgress);
        ticker.cancel();
    }, [&](std::exception_ptr e) { error = e; ticker.cancel(); });
    io.run();
    EXPECT_FALSE(error);
    EXPECT_GE(ticks, 10);
}

TEST_F(HealthCheckTest, MissingContainerFailsAfterTheTimeout)
{
    expect.timeout = 400ms;
    expect.containersBack = {container("6f7bacc6fbea531eec2e7924a380489ceba100e6ab652b39409433300c788745", "running")};
    engine.containerList = {container("c0080773c1d88033552c28e9a9720837718a924b2c2858b720dfdfb276f3a5d8", "running")};
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "containers");
    EXPECT_GE(elapsed, 400ms);
    EXPECT_LT(elapsed, 700ms);
    EXPECT_NE(std::string(failure->what()).find("c (6f7bacc6fbea): gone from the engine"), std::string::npos) << failure->what();
}

TEST_F(HealthCheckTest, ExitedContainerFailsNamingItsState)
{
    expect.timeout = 300ms;
    expect.containersBack = {container("6f7bacc6fbea", "running")};
    engine.containerList = {container("6f7bacc6fbea531eec2e7924a380489ceba100e6ab652b39409433300c788745", "exited")};
    auto failure = run();
    ASSERT_TRUE(failure);
    EXPECT_EQ(failure->check(), "containers");
    EXPECT_NE(std::string(failure->what()).find("c (6f7bacc6fbea): exited"), std::string::npos) << failure->what();
}

TEST_F(HealthCheckTest, ContainerThatComesBackLaterPasses)
{
    expect.containersBack = {container("6f7bacc6fbea531eec2e7924a380489ceba100e6ab652b39409433300c788745", "running")};
    engine.containerList = {container("6f7bacc6fbea531eec2e7924a380489ceba100e6ab652b39409433300c788745", "restarting")};
    engine.containersHook = [](std::vector<ContainerSummary>& list, int call) {
        if (call >= 3) {
            list[0].state = "running";
        }
    };
    auto failure = run();
    ASSERT_FALSE(failure) << failure->what();
    EXPECT_EQ(engine.containersCalls, 3);
}

// ---- runCommandWithTimeout ----

TEST(RunCommandWithTimeout, ReturnsTheExitStatusAndOutput)
{
    std::string output;
    EXPECT_EQ(runCommandWithTimeout({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, 5s, &output), 3);
    EXPECT_EQ(output, "out\nerr\n");
    EXPECT_EQ(runCommandWithTimeout({"/bin/true"}, 5s, nullptr), 0);
    EXPECT_EQ(runCommandWithTimeout({"true"}, 5s, nullptr), 0);  // found on PATH
}

TEST(RunCommandWithTimeout, KillsACommandThatOverrunsItsTimeout)
{
    const auto start = Clock::now();
    try {
        runCommandWithTimeout({"/bin/sleep", "30"}, 200ms, nullptr);
        FAIL() << "no exception";
    } catch (const HealthCheckFailed& e) {
        EXPECT_EQ(e.check(), "smoke");
        EXPECT_NE(std::string(e.what()).find("did not finish within 200 ms and was killed"), std::string::npos)
            << e.what();
    }
    auto elapsed = Clock::now() - start;
    EXPECT_GE(elapsed, 200ms);
    EXPECT_LT(elapsed, 400ms);
}

TEST(RunCommandWithTimeout, MissingProgramFails)
{
    try {
        runCommandWithTimeout({"/nonexistent/docker", "info"}, 1s, nullptr);
        FAIL() << "no exception";
    } catch (const HealthCheckFailed& e) {
        EXPECT_EQ(e.check(), "smoke");
        EXPECT_NE(std::string(e.what()).find("cannot run `/nonexistent/docker info`: No such file or directory"),
                  std::string::npos)
            << e.what();
    }
}

TEST(RunCommandWithTimeout, CommandKilledBySignalFails)
{
    EXPECT_THROW(runCommandWithTimeout({"/bin/sh", "-c", "kill -KILL $$"}, 5s, nullptr), HealthCheckFailed);
}

TEST(RunCommandWithTimeout, OutputIsCappedAt64KiB)
{
    std::string output;
    EXPECT_EQ(runCommandWithTimeout({"/usr/bin/head", "-c", "1000000", "/dev/zero"}, 5s, &output), 0);
    EXPECT_EQ(output.size(), 64u * 1024);
}

TEST(RunCommandWithTimeout, ABackgroundChildHoldingThePipeDoesNotDelayTheResult)
{
    std::string output;
    const auto start = Clock::now();
    EXPECT_EQ(runCommandWithTimeout({"/bin/sh", "-c", "/bin/sleep 5 & echo $!"}, 10s, &output), 0);
    EXPECT_LT(Clock::now() - start, 1s);
    int pid = std::atoi(output.c_str());
    ASSERT_GT(pid, 1);
    ::kill(pid, SIGKILL);
}

}  // namespace
}  // namespace armdock
