// AsioBusDriver on a private dbus-daemon: a server object and a client proxy
// on two connections, both driven by one io_context and never by an sdbus
// thread. Includes STYLE.md's trap 1: a call made from a timer only gets its
// reply timeout when the driver is kicked.
//
// The fake server objects register through compat::ObjectVTable, so the
// tests build against sdbus-c++ 1.2 and 2.x.
#include <gtest/gtest.h>

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "dbus/asio_bus.hpp"
#include "dbus/sdbus_compat.hpp"
#include "private_bus.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;

const std::string interfaceName = "test.armdock.Echo";
const std::string objectPath = "/test/echo";

class AsioBusTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        server = openBusConnection(bus.address());
        client = openBusConnection(bus.address());
        serverDriver = std::make_unique<AsioBusDriver>(io, *server);
        clientDriver = std::make_unique<AsioBusDriver>(io, *client);
        object = compat::makeObject(*server, objectPath);
        compat::ObjectVTable vtable(*object);
        vtable.onInterface(interfaceName).method("Echo", [](const std::string& text) { return text; });
        vtable.method("Hang", [this](sdbus::Result<>&& result) {
            held.push_back(std::move(result));  // never answered
        });
        vtable.signal<std::string>("Tick");
        vtable.finish();
        proxy = compat::makeProxy(*client, server->getUniqueName(), objectPath);
    }

    void TearDown() override
    {
        proxy.reset();
        object.reset();
        held.clear();
        clientDriver.reset();
        serverDriver.reset();
    }

    void callHangFromTimer(std::chrono::milliseconds callTimeout, bool kick)
    {
        timer.expires_after(10ms);
        timer.async_wait([=, this](const boost::system::error_code&) {
            issued = std::chrono::steady_clock::now();
            auto pending = proxy->callMethodAsync("Hang")
                               .onInterface(interfaceName)
                               .withTimeout(callTimeout)
                               .uponReplyInvoke([this](compat::ReplyError error) {
                                   auto* e = compat::errorOf(error);
                                   replyError = e ? std::string(e->getName()) : "no error";
                                   answered = std::chrono::steady_clock::now();
                               });
            (void)pending;
            if (kick)
                clientDriver->kick();
        });
    }

    PrivateBus bus;
    std::unique_ptr<sdbus::IConnection> server;  // connections before the loop: they outlive its handlers
    std::unique_ptr<sdbus::IConnection> client;
    boost::asio::io_context io;
    std::unique_ptr<AsioBusDriver> serverDriver;
    std::unique_ptr<AsioBusDriver> clientDriver;
    std::unique_ptr<sdbus::IObject> object;
    std::unique_ptr<sdbus::IProxy> proxy;
    std::vector<sdbus::Result<>> held;
    boost::asio::steady_timer timer{io};
    std::string replyError;
    std::chrono::steady_clock::time_point issued;
    std::chrono::steady_clock::time_point answered;
};

TEST_F(AsioBusTest, MethodCallRoundTripsOnOneLoop)
{
    std::string answer;
    auto pending = proxy->callMethodAsync("Echo").onInterface(interfaceName).withArguments(std::string("hello")).uponReplyInvoke(
        [&](compat::ReplyError error, const std::string& text) { answer = compat::errorOf(error) ? "error" : text; });
    (void)pending;
    clientDriver->kick();
    ASSERT_TRUE(runUntil(io, [&] { return !answer.empty(); }, 5s));
    EXPECT_EQ(answer, "hello");
}

TEST_F(AsioBusTest, ManyConcurrentCallsAllComplete)
{
    constexpr int count = 100;  // dbus-daemon allows 128 pending replies per connection
    int answered = 0;
    int wrong = 0;
    for (int i = 0; i < count; ++i) {
        auto pending = proxy->callMethodAsync("Echo").onInterface(interfaceName).withArguments(std::to_string(i)).uponReplyInvoke(
            [&, i](compat::ReplyError error, const std::string& text) {
                ++answered;
                if (compat::errorOf(error) || text != std::to_string(i))
                    ++wrong;
            });
        (void)pending;
    }
    clientDriver->kick();
    ASSERT_TRUE(runUntil(io, [&] { return answered == count; }, 10s));
    EXPECT_EQ(wrong, 0);
}

TEST_F(AsioBusTest, CallFromTimerGetsItsReplyTimeoutWhenKicked)
{
    callHangFromTimer(300ms, true);
    ASSERT_TRUE(runUntil(io, [&] { return !replyError.empty(); }, 5s)) << "the reply timeout never fired";
    EXPECT_NE(replyError, "no error");
    const auto waited = answered - issued;
    EXPECT_GE(waited, 250ms);
    EXPECT_LT(waited, 2s);
}

// Why kick() exists: on sdbus-c++ 1.2 the driver still waits with the
// timeout it armed before the call (none), so the reply timeout does not
// fire. 2.x wakes its event fd, which the driver watches, so there it does.
TEST_F(AsioBusTest, CallFromTimerWithoutKickTimesOutOnlyWhenTheBusWakesTheLoop)
{
    callHangFromTimer(200ms, false);
    if (compat::callsWakeTheLoop) {
        EXPECT_TRUE(runUntil(io, [&] { return !replyError.empty(); }, 1500ms)) << "2.x's event fd did not wake the driver";
        EXPECT_NE(replyError, "no error");
        return;
    }
    EXPECT_FALSE(runUntil(io, [&] { return !replyError.empty(); }, 1500ms));
    clientDriver->kick();
    EXPECT_TRUE(runUntil(io, [&] { return !replyError.empty(); }, 2s));
}

TEST_F(AsioBusTest, SignalEmittedFromTimerArrives)
{
    std::string received;
    proxy->uponSignal("Tick").onInterface(interfaceName).call([&](const std::string& text) { received = text; });
    compat::finishProxyRegistration(*proxy);
    timer.expires_after(20ms);
    timer.async_wait([&](const boost::system::error_code&) {
        object->emitSignal("Tick").onInterface(interfaceName).withArguments(std::string("tock"));
        serverDriver->kick();
    });
    ASSERT_TRUE(runUntil(io, [&] { return !received.empty(); }, 5s));
    EXPECT_EQ(received, "tock");
}

TEST_F(AsioBusTest, DriverCanGoWhileTheLoopKeepsRunning)
{
    clientDriver->kick();
    clientDriver.reset();  // its waits are cancelled and must not touch it
    bool ticked = false;
    timer.expires_after(50ms);
    timer.async_wait([&](const boost::system::error_code&) { ticked = true; });
    EXPECT_TRUE(runUntil(io, [&] { return ticked; }, 2s));
    clientDriver = std::make_unique<AsioBusDriver>(io, *client);  // and a new one takes over
    std::string answer;
    auto pending = proxy->callMethodAsync("Echo").onInterface(interfaceName).withArguments(std::string("again")).uponReplyInvoke(
        [&](compat::ReplyError error, const std::string& text) { answer = compat::errorOf(error) ? "error" : text; });
    (void)pending;
    clientDriver->kick();
    ASSERT_TRUE(runUntil(io, [&] { return !answer.empty(); }, 5s));
    EXPECT_EQ(answer, "again");
}

TEST(OpenBusConnection, AcceptsAnAddress)
{
    PrivateBus bus;
    auto connection = openBusConnection(bus.address());
    EXPECT_FALSE(connection->getUniqueName().empty());
}

}  // namespace
}  // namespace armdock::test
