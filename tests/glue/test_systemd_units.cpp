// SystemdUnits against a fake org.freedesktop.systemd1 on a private bus:
// Subscribe, the job wait (JobRemoved after or before the method reply),
// failed jobs, the deadline, a stop's escalation to KillUnit, method errors,
// and the unit properties. The
// fake and the agent's proxy are on two connections driven by one io_context.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

#include "core/unit_control.hpp"
#include "dbus/asio_bus.hpp"
#include "fake_systemd.hpp"
#include "private_bus.hpp"
#include "systemd/systemd_units.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;

class SystemdUnitsTest : public ::testing::Test {
protected:
    SystemdUnitsTest()
        : server(openBusConnection(bus.address())),
          client(openBusConnection(bus.address())),
          serverDriver(io, *server),
          clientDriver(io, *client),
          systemd(*server),
          units(io, *client, clientDriver)
    {
        systemd.addUnit("docker.service", "active", 4242);
        systemd.addUnit("docker.socket", "active", 0);
        systemd.addUnit("broken.service", "failed", 0);
    }

    // Expects `task` to throw UnitJobFailed and returns it.
    UnitJobFailed expectJobFailure(Task<void> task)
    {
        try {
            runTask(io, std::move(task));
        } catch (const UnitJobFailed& e) {
            return e;
        }
        ADD_FAILURE() << "no UnitJobFailed";
        return UnitJobFailed("", "", "");
    }

    PrivateBus bus;
    std::unique_ptr<sdbus::IConnection> server;  // connections before the loop (trap 2)
    std::unique_ptr<sdbus::IConnection> client;
    boost::asio::io_context io;
    AsioBusDriver serverDriver;
    AsioBusDriver clientDriver;
    FakeSystemd systemd;
    SystemdUnits units;
};

TEST_F(SystemdUnitsTest, SubscribesOnce)
{
    runTask(io, units.stopUnit("docker.service", 5s));
    EXPECT_EQ(systemd.subscribes, 1);
}

TEST_F(SystemdUnitsTest, StopStartRestartWaitForTheirJobs)
{
    runTask(io, units.stopUnit("docker.socket", 5s));
    runTask(io, units.stopUnit("docker.service", 5s));
    runTask(io, units.startUnit("docker.service", 5s));
    runTask(io, units.restartUnit("docker.service", 5s));
    const std::vector<std::string> expected = {"StopUnit docker.socket replace", "StopUnit docker.service replace",
                                               "StartUnit docker.service replace",
                                               "RestartUnit docker.service replace"};
    EXPECT_EQ(systemd.calls, expected);
}

TEST_F(SystemdUnitsTest, JobRemovedBeforeTheReplyStillCompletes)
{
    systemd.jobs["docker.service"] = {.result = "done", .removedBeforeReply = true};
    runTask(io, units.startUnit("docker.service", 5s), 3s);
}

TEST_F(SystemdUnitsTest, FailedJobBeforeTheReplyIsAFailure)
{
    systemd.jobs["broken.service"] = {.result = "failed", .removedBeforeReply = true};
    const auto error = expectJobFailure(units.startUnit("broken.service", 5s));
    EXPECT_EQ(error.result(), "failed");
}

TEST_F(SystemdUnitsTest, FailedJobNamesUnitResultAndWhereToLook)
{
    systemd.jobs["broken.service"] = {.result = "failed"};
    const auto error = expectJobFailure(units.startUnit("broken.service", 5s));
    EXPECT_EQ(error.unit(), "broken.service");
    EXPECT_EQ(error.result(), "failed");
    const std::string message = error.what();
    EXPECT_NE(message.find("broken.service"), std::string::npos) << message;
    EXPECT_NE(message.find("failed"), std::string::npos) << message;
    EXPECT_NE(message.find("journalctl -u broken.service"), std::string::npos) << message;
    EXPECT_NE(message.find("systemctl status broken.service"), std::string::npos) << message;
}

TEST_F(SystemdUnitsTest, EveryResultButDoneFails)
{
    for (const std::string result : {"canceled", "timeout", "dependency", "skipped"}) {
        systemd.jobs["docker.service"] = {.result = result};
        EXPECT_EQ(expectJobFailure(units.stopUnit("docker.service", 5s)).result(), result);
    }
}

TEST_F(SystemdUnitsTest, JobThatNeverEndsTimesOut)
{
    systemd.jobs["docker.service"] = {.neverRemoved = true};
    const auto started = std::chrono::steady_clock::now();
    const auto error = expectJobFailure(units.startUnit("docker.service", 300ms));
    const auto waited = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(error.result(), "timeout");
    EXPECT_NE(std::string(error.what()).find("journalctl -u docker.service"), std::string::npos);
    EXPECT_GE(waited, 250ms);
    EXPECT_LT(waited, 3s);
    // Only a stop is escalated to a kill.
    const std::vector<std::string> expected = {"StartUnit docker.service replace"};
    EXPECT_EQ(systemd.calls, expected);
    // And the next call still works.
    systemd.jobs.clear();
    runTask(io, units.startUnit("docker.service", 5s));
}

// A stop still running at its deadline (a process that ignores SIGTERM):
// KillUnit with SIGKILL for every process of the unit, then the same job's
// JobRemoved is still awaited.
TEST_F(SystemdUnitsTest, StopPastItsDeadlineKillsTheUnitAndWaitsForTheSameJob)
{
    systemd.jobs["docker.service"] = {.result = "done", .neverRemoved = true, .removedOnKill = true};
    const auto started = std::chrono::steady_clock::now();
    try {
        runTask(io, units.stopUnit("docker.service", 300ms), 5s);
    } catch (const UnitJobFailed& e) {
        ADD_FAILURE() << "the stop failed: " << e.what();
    }
    EXPECT_GE(std::chrono::steady_clock::now() - started, 250ms);
    const std::vector<std::string> expected = {"StopUnit docker.service replace", "KillUnit docker.service all 9"};
    EXPECT_EQ(systemd.calls, expected);
}

// A stop that does not end even after the kill fails, once the extra wait
// passed too, with a message that says what was tried and where to look.
TEST_F(SystemdUnitsTest, StopThatOutlivesTheKillFailsNamingWhatToCheck)
{
    SystemdUnits shortKill(io, *client, clientDriver, 300ms);
    systemd.jobs["docker.service"] = {.neverRemoved = true};
    const auto started = std::chrono::steady_clock::now();
    const auto error = expectJobFailure(shortKill.stopUnit("docker.service", 300ms));
    const auto waited = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(error.unit(), "docker.service");
    EXPECT_EQ(error.result(), "timeout");
    const std::string message = error.what();
    EXPECT_NE(message.find("SIGKILL"), std::string::npos) << message;
    EXPECT_NE(message.find("systemctl status docker.service"), std::string::npos) << message;
    EXPECT_NE(message.find("journalctl -u docker.service"), std::string::npos) << message;
    EXPECT_GE(waited, 550ms);
    EXPECT_LT(waited, 3s);
    EXPECT_EQ(std::count(systemd.calls.begin(), systemd.calls.end(), "KillUnit docker.service all 9"), 1);
}

// In a batch, only the unit whose stop hangs is killed.
TEST_F(SystemdUnitsTest, StopUnitsKillsOnlyTheUnitThatHangs)
{
    systemd.jobs["docker.service"] = {.result = "done", .neverRemoved = true, .removedOnKill = true};
    try {
        runTask(io, units.stopUnits({"docker.socket", "docker.service"}, 300ms), 5s);
    } catch (const UnitJobFailed& e) {
        ADD_FAILURE() << "the stop failed: " << e.what();
    }
    const std::vector<std::string> expected = {"StopUnit docker.socket replace", "StopUnit docker.service replace",
                                               "KillUnit docker.service all 9"};
    EXPECT_EQ(systemd.calls, expected);
}

TEST_F(SystemdUnitsTest, MethodErrorCarriesTheDbusError)
{
    const auto error = expectJobFailure(units.stopUnit("nothere.service", 5s));
    EXPECT_EQ(error.unit(), "nothere.service");
    EXPECT_EQ(error.result(), "org.freedesktop.systemd1.NoSuchUnit");
    EXPECT_NE(std::string(error.what()).find("Unit nothere.service not found."), std::string::npos) << error.what();
}

TEST_F(SystemdUnitsTest, ConcurrentJobsEachGetTheirOwnResult)
{
    systemd.jobs["broken.service"] = {.result = "failed"};
    int done = 0;
    std::string brokenResult;
    boost::asio::co_spawn(io, units.stopUnit("docker.service", 5s), [&](std::exception_ptr e) {
        if (!e)
            ++done;
    });
    boost::asio::co_spawn(io, units.startUnit("broken.service", 5s), [&](std::exception_ptr e) {
        try {
            if (e)
                std::rethrow_exception(e);
        } catch (const UnitJobFailed& failure) {
            brokenResult = failure.result();
        }
    });
    ASSERT_TRUE(runUntil(io, [&] { return done == 1 && !brokenResult.empty(); }, 5s));
    EXPECT_EQ(brokenResult, "failed");
}

// The upgrade's start step: both StartUnit calls are sent before any job is
// awaited (one job wait in the downtime, not two), in the list's order.
TEST_F(SystemdUnitsTest, StartUnitsSendsEveryCallBeforeAnyJobEnds)
{
    systemd.jobs["docker.socket"] = {.neverRemoved = true};
    const auto error = expectJobFailure(units.startUnits({"docker.socket", "docker.service"}, 300ms));
    // One after the other, the service's call would never have been sent.
    const std::vector<std::string> expected = {"StartUnit docker.socket replace", "StartUnit docker.service replace"};
    EXPECT_EQ(systemd.calls, expected);
    EXPECT_EQ(error.unit(), "docker.socket");
    EXPECT_EQ(error.result(), "timeout");
}

TEST_F(SystemdUnitsTest, StartUnitsWaitsForEveryJobAndNamesTheFirstUnitThatFailed)
{
    runTask(io, units.startUnits({"docker.socket", "docker.service"}, 5s));
    EXPECT_EQ(systemd.calls.size(), 2u);

    // The service's job ends first (systemd fails it as a dependency), the
    // socket's own failure is what the caller must see.
    systemd.jobs["docker.socket"] = {.result = "failed"};
    systemd.jobs["docker.service"] = {.result = "dependency", .removedBeforeReply = true};
    auto error = expectJobFailure(units.startUnits({"docker.socket", "docker.service"}, 5s));
    EXPECT_EQ(error.unit(), "docker.socket");
    EXPECT_EQ(error.result(), "failed");

    // Done for the socket is not enough: the service's job is waited for too.
    systemd.jobs.clear();
    systemd.jobs["docker.service"] = {.neverRemoved = true};
    error = expectJobFailure(units.startUnits({"docker.socket", "docker.service"}, 300ms));
    EXPECT_EQ(error.unit(), "docker.service");
    EXPECT_EQ(error.result(), "timeout");
}

TEST_F(SystemdUnitsTest, ReadsActiveStateAndMainPid)
{
    EXPECT_EQ(runTask(io, units.activeState("docker.service")), "active");
    EXPECT_EQ(runTask(io, units.activeState("broken.service")), "failed");
    EXPECT_EQ(runTask(io, units.mainPid("docker.service")), 4242u);
    EXPECT_EQ(runTask(io, units.mainPid("docker.socket")), 0u);
}

TEST_F(SystemdUnitsTest, ActiveStateOfAnUnknownUnitFails)
{
    try {
        runTask(io, units.activeState("nothere.service"));
        ADD_FAILURE() << "no exception";
    } catch (const UnitJobFailed& e) {
        EXPECT_EQ(e.result(), "org.freedesktop.systemd1.NoSuchUnit");
    }
}

}  // namespace
}  // namespace armdock::test
