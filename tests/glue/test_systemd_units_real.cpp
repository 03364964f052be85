// SystemdUnits against a real systemd user manager (tests/support's Sandbox:
// its own bus, no dockerd): stop, start and restart a trivial service, read
// its state and PID, a failing oneshot unit, a socket and its service
// started together, and the stop of a service that ignores SIGTERM. Needs
// root, like every sandbox test.
#include <gtest/gtest.h>

#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "core/unit_control.hpp"
#include "dbus/asio_bus.hpp"
#include "private_bus.hpp"
#include "sandbox.hpp"
#include "systemd/systemd_units.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;

SandboxOptions sandboxOptions()
{
    SandboxOptions options;
    options.startDocker = false;
    options.extraUnits["sleeper.service"] = "[Service]\nExecStart=/bin/sleep 1000\n";
    options.extraUnits["broken.service"] = "[Service]\nType=oneshot\nExecStart=/bin/false\n";
    // Ignores SIGTERM (an ignored signal stays ignored across exec) and lets
    // systemd wait 120 s before its own SIGKILL: a hung engine.
    options.extraUnits["stubborn.service"] = "[Service]\nExecStart=/bin/sh -c 'trap \"\" TERM; exec /bin/sleep 1000'\n"
                                             "TimeoutStopSec=120\n";
    // A socket-activated pair, set up like Debian's docker.socket and docker.service.
    options.extraUnits["pair.socket"] = "[Socket]\nListenStream=%t/pair.sock\n";
    options.extraUnits["pair.service"] = "[Unit]\nRequires=pair.socket\nAfter=pair.socket\n\n"
                                         "[Service]\nExecStart=/bin/sleep 1000\n";
    return options;
}

// True when the process ignores SIGTERM (SigIgn in /proc/PID/status).
bool ignoresSigterm(pid_t pid)
{
    std::istringstream status(readFile("/proc/" + std::to_string(pid) + "/status"));
    for (std::string line; std::getline(status, line);)
        if (line.starts_with("SigIgn:"))
            return (std::stoull(line.substr(7), nullptr, 16) >> (SIGTERM - 1)) & 1;
    return false;
}

class SystemdUnitsRealTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        if (geteuid() != 0)
            GTEST_SKIP() << "the sandbox needs root";
        sandbox = std::make_unique<Sandbox>(sandboxOptions());
        connection = openBusConnection(sandbox->busAddress());
        driver = std::make_unique<AsioBusDriver>(io, *connection);
        units = std::make_unique<SystemdUnits>(io, *connection, *driver);
    }

    void TearDown() override
    {
        units.reset();
        driver.reset();
        connection.reset();
        sandbox.reset();
    }

    std::unique_ptr<Sandbox> sandbox;
    std::unique_ptr<sdbus::IConnection> connection;  // before the loop (trap 2)
    boost::asio::io_context io;
    std::unique_ptr<AsioBusDriver> driver;
    std::unique_ptr<SystemdUnits> units;
};

TEST_F(SystemdUnitsRealTest, StartsStopsAndRestartsAService)
{
    runTask(io, units->startUnit("sleeper.service", 20s), 30s);
    EXPECT_EQ(runTask(io, units->activeState("sleeper.service")), "active");
    const std::uint32_t pid = runTask(io, units->mainPid("sleeper.service"));
    EXPECT_GT(pid, 0u);
    EXPECT_EQ(static_cast<pid_t>(pid), sandbox->mainPid("sleeper.service"));

    runTask(io, units->restartUnit("sleeper.service", 20s), 30s);
    const std::uint32_t restarted = runTask(io, units->mainPid("sleeper.service"));
    EXPECT_GT(restarted, 0u);
    EXPECT_NE(restarted, pid);

    runTask(io, units->stopUnit("sleeper.service", 20s), 30s);
    EXPECT_EQ(runTask(io, units->activeState("sleeper.service")), "inactive");
    EXPECT_EQ(runTask(io, units->mainPid("sleeper.service")), 0u);
    EXPECT_EQ(sandbox->activeState("sleeper.service"), "inactive");

    // Stopping what is already stopped is a job that is done at once.
    runTask(io, units->stopUnit("sleeper.service", 20s), 30s);
}

TEST_F(SystemdUnitsRealTest, FailingUnitThrowsUnitJobFailed)
{
    try {
        runTask(io, units->startUnit("broken.service", 20s), 30s);
        ADD_FAILURE() << "no UnitJobFailed";
    } catch (const UnitJobFailed& e) {
        EXPECT_EQ(e.unit(), "broken.service");
        EXPECT_EQ(e.result(), "failed");
        EXPECT_NE(std::string(e.what()).find("journalctl -u broken.service"), std::string::npos) << e.what();
    }
    EXPECT_EQ(runTask(io, units->activeState("broken.service")), "failed");
}

// The upgrade's start step: both jobs enqueued at once, systemd orders them.
TEST_F(SystemdUnitsRealTest, StartsASocketAndItsServiceTogether)
{
    runTask(io, units->startUnits({"pair.socket", "pair.service"}, 20s), 30s);
    EXPECT_EQ(sandbox->activeState("pair.socket"), "active");
    EXPECT_EQ(sandbox->activeState("pair.service"), "active");

    try {
        runTask(io, units->startUnits({"sleeper.service", "broken.service"}, 20s), 30s);
        ADD_FAILURE() << "no UnitJobFailed";
    } catch (const UnitJobFailed& e) {
        EXPECT_EQ(e.unit(), "broken.service");
        EXPECT_EQ(e.result(), "failed");
    }
    EXPECT_EQ(sandbox->activeState("sleeper.service"), "active");  // its own job still ran to "done"
}

// The upgrade's stop step: both jobs enqueued at once; the service's stop is
// already part of the socket's transaction (Requires=), the second call joins it.
TEST_F(SystemdUnitsRealTest, StopsASocketAndItsServiceTogether)
{
    runTask(io, units->startUnits({"pair.socket", "pair.service"}, 20s), 30s);
    const pid_t pid = sandbox->mainPid("pair.service");
    ASSERT_GT(pid, 0);
    runTask(io, units->stopUnits({"pair.socket", "pair.service"}, 20s), 30s);
    EXPECT_EQ(sandbox->activeState("pair.socket"), "inactive");
    EXPECT_EQ(sandbox->activeState("pair.service"), "inactive");
    EXPECT_FALSE(processAlive(pid));
    // Again, with both already stopped: jobs that end at once in "done".
    runTask(io, units->stopUnits({"pair.socket", "pair.service"}, 20s), 30s);
}

// The agent's stop timeout (1 s) passes long before the unit's
// TimeoutStopSec (120 s): the stop escalates to SIGKILL for every process of
// the unit and still ends in "done" a moment later.
TEST_F(SystemdUnitsRealTest, StopOfAServiceThatIgnoresSigtermEscalatesToSigkill)
{
    runTask(io, units->startUnit("stubborn.service", 20s), 30s);
    const pid_t pid = sandbox->mainPid("stubborn.service");
    ASSERT_GT(pid, 0);
    // Started means forked: the shell sets its trap a moment later.
    ASSERT_TRUE(Sandbox::waitFor([&] { return ignoresSigterm(pid); }, 5s)) << "the test service does not ignore SIGTERM";
    const auto started = std::chrono::steady_clock::now();
    try {
        runTask(io, units->stopUnit("stubborn.service", 1s), 60s);
    } catch (const UnitJobFailed& e) {
        ADD_FAILURE() << "the stop failed: " << e.what();
    }
    const auto took = std::chrono::steady_clock::now() - started;
    std::cout << "the stop took " << std::chrono::duration<double>(took).count() << " s" << std::endl;
    EXPECT_GE(took, 1s);
    EXPECT_LT(took, 10s);
    EXPECT_TRUE(Sandbox::waitFor([&] { return !processAlive(pid); }, 5s)) << "PID " << pid << " survived the stop";
    EXPECT_NE(sandbox->activeState("stubborn.service"), "active");
    // Killed that way, it starts again (the rollback's next step).
    runTask(io, units->startUnit("stubborn.service", 20s), 30s);
    EXPECT_EQ(sandbox->activeState("stubborn.service"), "active");
    runTask(io, units->stopUnit("stubborn.service", 1s), 60s);  // or the sandbox's teardown waits for it
}

// The same inside a batch, as the transaction stops docker.socket and docker.service.
TEST_F(SystemdUnitsRealTest, StopUnitsEscalatesForTheUnitThatIgnoresSigterm)
{
    runTask(io, units->startUnits({"sleeper.service", "stubborn.service"}, 20s), 30s);
    const pid_t sleeper = sandbox->mainPid("sleeper.service");
    const pid_t stubborn = sandbox->mainPid("stubborn.service");
    ASSERT_GT(sleeper, 0);
    ASSERT_GT(stubborn, 0);
    ASSERT_TRUE(Sandbox::waitFor([&] { return ignoresSigterm(stubborn); }, 5s)) << "the test service does not ignore SIGTERM";
    const auto started = std::chrono::steady_clock::now();
    try {
        runTask(io, units->stopUnits({"sleeper.service", "stubborn.service"}, 1s), 60s);
    } catch (const UnitJobFailed& e) {
        ADD_FAILURE() << "the stop failed: " << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
    EXPECT_TRUE(Sandbox::waitFor([&] { return !processAlive(sleeper) && !processAlive(stubborn); }, 5s));
    EXPECT_EQ(sandbox->activeState("sleeper.service"), "inactive");
    EXPECT_NE(sandbox->activeState("stubborn.service"), "active");
}

TEST_F(SystemdUnitsRealTest, UnknownUnitIsAMethodError)
{
    try {
        runTask(io, units->startUnit("nothere.service", 20s), 30s);
        ADD_FAILURE() << "no UnitJobFailed";
    } catch (const UnitJobFailed& e) {
        EXPECT_EQ(e.unit(), "nothere.service");
        EXPECT_EQ(e.result(), "org.freedesktop.systemd1.NoSuchUnit") << e.what();
    }
}

}  // namespace
}  // namespace armdock::test
