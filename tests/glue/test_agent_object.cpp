// AgentObject on a private bus over the real Agent (with the unit tests'
// fake systemd and engine): properties, named errors, a whole upgrade with
// PropertiesChanged and Finished, and the caller check with callers of
// other uids and groups (busctl run as another user).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "../unit/agent_test_fixture.hpp"
#include "dbus/agent_object.hpp"
#include "dbus/asio_bus.hpp"
#include "dbus/sdbus_compat.hpp"
#include "private_bus.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;

const std::string agentInterface = agentInterfaceName;

class AgentObjectTest : public AgentFixture {
protected:
    void SetUp() override
    {
        AgentFixture::SetUp();
        server = openBusConnection(bus.address());
        client = openBusConnection(bus.address());
        serverDriver = std::make_unique<AsioBusDriver>(io, *server);
        clientDriver = std::make_unique<AsioBusDriver>(io, *client);
    }

    void TearDown() override
    {
        proxy.reset();
        object.reset();
        clientDriver.reset();
        serverDriver.reset();
        client.reset();
        server.reset();
        AgentFixture::TearDown();
    }

    void startObject()
    {
        startAgent();
        object = std::make_unique<AgentObject>(*server, *agent, *serverDriver);
        proxy = compat::makeProxy(*client, server->getUniqueName(), agentObjectPath);
    }

    sdbus::Variant property(const std::string& name)
    {
        std::optional<sdbus::Variant> value;
        auto pending = proxy->callMethodAsync("Get")
                           .onInterface("org.freedesktop.DBus.Properties")
                           .withArguments(agentInterface, name)
                           .uponReplyInvoke([&](compat::ReplyError error, const sdbus::Variant& v) {
                               value = compat::errorOf(error) ? sdbus::Variant(std::string("error")) : v;
                           });
        (void)pending;
        clientDriver->kick();
        EXPECT_TRUE(test::runUntil(io, [&] { return value.has_value(); }, 5s));
        return value.value_or(sdbus::Variant());
    }

    // Calls Upgrade; returns the transaction id or "ERROR-NAME: message".
    std::string callUpgrade(const std::map<std::string, std::string>& files,
                            const std::map<std::string, sdbus::Variant>& options)
    {
        return callUpgradeMethod("Upgrade", files, options);
    }

    // The same for UpgradeFds (payload name -> descriptor, sent as a dup).
    std::string callUpgradeFds(const std::map<std::string, int>& fds, const std::map<std::string, sdbus::Variant>& options)
    {
        std::map<std::string, sdbus::UnixFd> files;
        for (const auto& [name, fd] : fds)
            files.emplace(name, sdbus::UnixFd(fd));
        return callUpgradeMethod("UpgradeFds", files, options);
    }

    template <typename Files>
    std::string callUpgradeMethod(const std::string& method, const Files& files, const std::map<std::string, sdbus::Variant>& options)
    {
        std::optional<std::string> answer;
        auto pending = proxy->callMethodAsync(compat::MethodName{method})
                           .onInterface(agentInterface)
                           .withArguments(files, options)
                           .uponReplyInvoke([&](compat::ReplyError error, const std::string& transaction) {
                               auto* e = compat::errorOf(error);
                               answer = e ? e->getName() + ": " + e->getMessage() : transaction;
                           });
        (void)pending;
        clientDriver->kick();
        EXPECT_TRUE(test::runUntil(io, [&] { return answer.has_value(); }, 10s));
        return answer.value_or("no answer");
    }

    // Runs busctl as uid 65534 with the given groups; returns its exit code
    // and leaves its stderr in `busctlErrors`.
    int busctlAs(gid_t primary, std::vector<gid_t> groups, const std::string& method)
    {
        const std::string errFile = (dir / "busctl.err").string();
        const std::string address = "--address=" + bus.address();
        const std::string destination = server->getUniqueName();
        const pid_t pid = fork();
        if (pid == 0)
            execBusctl(primary, groups, {address, destination, method}, errFile);
        int status = -1;
        bool reaped = false;
        const bool ended = test::runUntil(io, [&] { return reaped = reaped || waitpid(pid, &status, WNOHANG) == pid; }, 10s);
        EXPECT_TRUE(ended);
        std::ifstream in(errFile);
        busctlErrors.assign(std::istreambuf_iterator<char>(in), {});
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

    struct BusctlCall {
        std::string address, destination, method;
    };

    [[noreturn]] static void execBusctl(gid_t primary, std::vector<gid_t>& groups, const BusctlCall& call,
                                        const std::string& errFile)
    {
        const int err = open(errFile.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (err < 0 || dup2(err, STDERR_FILENO) < 0)
            _exit(121);
        if (setgroups(groups.size(), groups.data()) != 0 || setgid(primary) != 0 || setuid(65534) != 0)
            _exit(120);
        execlp("busctl", "busctl", call.address.c_str(), "call", call.destination.c_str(), agentObjectPath,
               agentInterfaceName, call.method.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }

    PrivateBus bus;
    std::unique_ptr<sdbus::IConnection> server;
    std::unique_ptr<sdbus::IConnection> client;
    std::unique_ptr<AsioBusDriver> serverDriver;
    std::unique_ptr<AsioBusDriver> clientDriver;
    std::unique_ptr<AgentObject> object;
    std::unique_ptr<sdbus::IProxy> proxy;
    std::string busctlErrors;
};

TEST_F(AgentObjectTest, PropertiesShowTheAgentStatus)
{
    startObject();
    EXPECT_EQ(property("State").get<std::string>(), "idle");
    EXPECT_EQ(property("LastResult").get<std::string>(), "none");
    EXPECT_EQ(property("CurrentVersion").get<std::string>(), "1.0.0");
    const auto progress = property("Progress").get<sdbus::Struct<std::uint32_t, std::string>>();
    EXPECT_EQ(std::get<0>(progress), agent->status().percent);
}

TEST_F(AgentObjectTest, BadRequestIsANamedError)
{
    startObject();
    const std::string answer = callUpgrade({{"nosuchpayload", "/tmp/x"}}, {});
    EXPECT_EQ(answer.rfind("io.armdock.Agent1.Error.InvalidArgument: ", 0), 0u) << answer;
    EXPECT_NE(answer.find("nosuchpayload"), std::string::npos) << answer;
}

TEST_F(AgentObjectTest, OptionOfAnUnsupportedTypeIsRefusedByName)
{
    startObject();
    const auto engine = newEngine("new-engine", "2.0.0");
    const std::string answer = callUpgrade({{"docker", engine.string()}}, {{"dry_run", sdbus::Variant(std::int32_t(1))}});
    EXPECT_EQ(answer.rfind("io.armdock.Agent1.Error.InvalidArgument: ", 0), 0u) << answer;
    EXPECT_NE(answer.find("dry_run"), std::string::npos) << answer;
}

TEST_F(AgentObjectTest, UpgradeReportsThroughPropertiesChangedAndFinished)
{
    startObject();
    std::vector<std::string> states;
    std::optional<std::string> finishedResult;
    std::string finishedTransaction;
    proxy->uponSignal("PropertiesChanged")
        .onInterface("org.freedesktop.DBus.Properties")
        .call([&](const std::string&, const std::map<std::string, sdbus::Variant>& changed, const std::vector<std::string>&) {
            auto state = changed.find("State");
            if (state != changed.end())
                states.push_back(state->second.get<std::string>());
        });
    proxy->uponSignal("Finished").onInterface(agentInterface).call(
        [&](const std::string& transaction, const std::string& result, const std::string&) {
            finishedTransaction = transaction;
            finishedResult = result;
        });
    compat::finishProxyRegistration(*proxy);

    const auto engine = newEngine("new-engine", "2.0.0");
    const std::string transaction = callUpgrade({{"docker", engine.string()}}, {});
    ASSERT_EQ(transaction.find("io.armdock"), std::string::npos) << transaction;
    ASSERT_TRUE(test::runUntil(io, [&] { return finishedResult.has_value(); }, 20s));
    EXPECT_EQ(*finishedResult, "success");
    EXPECT_EQ(finishedTransaction, transaction);
    ASSERT_FALSE(states.empty());
    EXPECT_EQ(states.front(), "verifying");
    EXPECT_EQ(states.back(), "idle");
    EXPECT_EQ(property("CurrentVersion").get<std::string>(), "2.0.0");
    EXPECT_EQ(property("Transaction").get<std::string>(), transaction);
}

TEST_F(AgentObjectTest, UpgradeFdsUpgradesFromTheDescriptorAlone)
{
    startObject();
    std::optional<std::string> finishedResult;
    proxy->uponSignal("Finished").onInterface(agentInterface).call(
        [&](const std::string&, const std::string& result, const std::string&) { finishedResult = result; });
    compat::finishProxyRegistration(*proxy);

    const auto engine = newEngine("fd-engine", "2.0.0");
    const std::string sha = sha256OfFile(engine);
    const int fd = ::open(engine.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    fs::remove(engine);  // no path leads to the file any more: only the descriptor
    const std::string transaction = callUpgradeFds({{"docker", fd}}, {{"source.docker", sdbus::Variant(engine.string())}});
    ::close(fd);
    ASSERT_EQ(transaction.find("io.armdock"), std::string::npos) << transaction;
    ASSERT_TRUE(test::runUntil(io, [&] { return finishedResult.has_value(); }, 20s));
    EXPECT_EQ(*finishedResult, "success") << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), sha);
    EXPECT_EQ(property("CurrentVersion").get<std::string>(), "2.0.0");
}

TEST_F(AgentObjectTest, UpgradeFdsRefusalsAreNamedErrorsThatNameTheSource)
{
    startObject();
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    const std::string answer = callUpgradeFds({{"docker", fd}}, {{"source.docker", sdbus::Variant(std::string("/srv/new/docker"))}});
    EXPECT_EQ(answer.rfind("io.armdock.Agent1.Error.PayloadRejected: payload docker: /srv/new/docker is a character device", 0), 0u)
        << answer;
    EXPECT_EQ(callUpgradeFds({{"nosuchpayload", fd}}, {}).rfind("io.armdock.Agent1.Error.InvalidArgument: ", 0), 0u);
    ::close(fd);
}

TEST_F(AgentObjectTest, CallerOutsideAllowedGroupsIsDenied)
{
    startObject();
    chmod(bus.directory().c_str(), 0711);
    EXPECT_NE(busctlAs(65534, {65534}, "Cancel"), 0);
    EXPECT_NE(busctlErrors.find("may not call"), std::string::npos) << busctlErrors;
}

TEST_F(AgentObjectTest, CallerInAnAllowedSupplementaryGroupMayCall)
{
    config.agent.allowedGroups = {"12345"};
    startObject();
    chmod(bus.directory().c_str(), 0711);
    // Cancel with nothing running: the agent's own error, not AccessDenied.
    EXPECT_NE(busctlAs(65534, {65534, 12345}, "Cancel"), 0);
    EXPECT_EQ(busctlErrors.find("may not call"), std::string::npos) << busctlErrors;
    EXPECT_FALSE(busctlErrors.empty());
}

}  // namespace
}  // namespace armdock::test
