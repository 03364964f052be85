// Who may call the agent, with real users: callers run as uid 65534 through
// `setpriv --reuid=65534 --regid=65534 --clear-groups` (or `--groups=GID`),
// numeric ids only, nothing added to the host's /etc/passwd or /etc/group.
//
// 1. On the sandbox's open bus (it lets everyone send everything) the agent's
//    own check answers: io.armdock.Agent1.Error.AccessDenied for every method,
//    properties readable, a member of allowed_groups gets through.
// 2. On a policy-enforcing bus (PolicyBus: Debian's system.conf rules plus the
//    shipped units/io.armdock.Agent1.conf, pulled in by <includedir>) the bus
//    itself refuses methods to other users (org.freedesktop.DBus.Error.AccessDenied)
//    and lets them read properties, introspect and ping; members of the group
//    `armdock` reach the agent, which then applies allowed_groups.
//    The agent runs on that bus alone. systemd's manager is not on it (the
//    agent's Subscribe fails and is logged), so this test calls no method
//    that would stop or start a unit: Upgrade asks for a file that does not
//    exist, UpgradeFds passes /dev/null, Rollback has no backup.
#include <grp.h>

#include "agent_sandbox_fixture.hpp"
#include "policy_bus.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;

const std::vector<std::string> methods = {"Upgrade", "UpgradeFds", "Rollback", "Release", "Cancel", "ListBackups", "ListPayloads",
                                          "ListPayloadPackages", "Reload"};

constexpr const char* agentDenied = "error io.armdock.Agent1.Error.AccessDenied:";
constexpr const char* busDenied = "error org.freedesktop.DBus.Error.AccessDenied:";

// A gid from `from` up that no group of the host uses (nor `besides`).
gid_t unusedGid(gid_t from, gid_t besides = 0)
{
    for (gid_t gid = from;; ++gid)
        if (gid != besides && ::getgrgid(gid) == nullptr)
            return gid;
}

// What a caller that reached the agent gets from each method when nothing
// runs, no backup exists and the drop-in folder is empty.
std::string reachedAgent(const std::string& method)
{
    if (method == "Upgrade" || method == "UpgradeFds")  // a missing file; /dev/null
        return "error io.armdock.Agent1.Error.PayloadRejected:";
    if (method == "Rollback")
        return "error io.armdock.Agent1.Error.NoBackup:";
    if (method == "Release")  // nothing diverted
        return "error io.armdock.Agent1.Error.InvalidArgument:";
    if (method == "Cancel")
        return "error io.armdock.Agent1.Error.Failed:";
    if (method == "ListBackups")
        return "ok 0 backups";
    if (method == "ListPayloads")
        return "ok 2 payloads";  // docker and dockerinit
    if (method == "ListPayloadPackages")
        return "ok 2 payloads";
    return "ok done";  // Reload
}

class AccessPolicyTest : public AgentSandboxTest {
protected:
    // armdock-bus-call copied where uid 65534 can run it.
    fs::path busCall()
    {
        const fs::path copy = sandbox->dir() / "armdock-bus-call";
        if (!fs::exists(copy)) {
            const char* built = std::getenv("ARMDOCK_BUS_CALL");
            if (!built)
                throw std::runtime_error("ARMDOCK_BUS_CALL is not set: run this test through meson test");
            installExecutable(built, copy);
        }
        return copy;
    }

    // One call as uid/gid 65534 with the given supplementary groups (none: --clear-groups).
    std::string callAs(const std::string& bus, const std::vector<gid_t>& groups, const std::string& what)
    {
        std::vector<std::string> argv{"setpriv", "--reuid=65534", "--regid=65534"};
        if (groups.empty()) {
            argv.push_back("--clear-groups");
        } else {
            std::string list;
            for (gid_t g : groups)
                list += (list.empty() ? "" : ",") + std::to_string(g);
            argv.push_back("--groups=" + list);
        }
        argv.push_back(busCall().string());
        argv.push_back(bus);
        argv.push_back(what);
        auto r = sandbox->run(argv, 30s);
        std::string out = r.output;
        while (!out.empty() && out.back() == '\n')
            out.pop_back();
        return out;
    }

    static bool startsWith(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

    // Properties, introspection and ping answer a caller with no groups at all.
    void expectReadsWork(const std::string& bus)
    {
        EXPECT_EQ(callAs(bus, {}, "Get:State"), "ok idle");
        EXPECT_EQ(callAs(bus, {}, "Get:LastResult"), "ok none");
        EXPECT_TRUE(startsWith(callAs(bus, {}, "GetAll"), "ok ")) << callAs(bus, {}, "GetAll");
        EXPECT_EQ(callAs(bus, {}, "Introspect"), "ok has Upgrade");
        EXPECT_EQ(callAs(bus, {}, "Ping"), "ok pong");
    }

    void expectEveryMethod(const std::string& bus, const std::vector<gid_t>& groups, const std::string& expected)
    {
        for (const auto& method : methods) {
            const std::string out = callAs(bus, groups, method);
            EXPECT_TRUE(startsWith(out, expected)) << method << " with groups [" << groups.size() << "]: " << out;
        }
    }

    void expectEveryMethodReachesTheAgent(const std::string& bus, const std::vector<gid_t>& groups)
    {
        for (const auto& method : methods) {
            const std::string out = callAs(bus, groups, method);
            EXPECT_TRUE(startsWith(out, reachedAgent(method))) << method << ": " << out;
        }
    }

    void expectNothingChanged(pid_t dockerPid)
    {
        EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), oldEngineSha);
        EXPECT_EQ(sandbox->dockerMainPid(), dockerPid);
        EXPECT_EQ(client->property("LastResult"), "none");
    }

    void TearDown() override
    {
        AgentSandboxTest::TearDown();  // the agent stops before its bus goes
        policyBus.reset();
    }

    std::unique_ptr<PolicyBus> policyBus;
};

TEST_F(AccessPolicyTest, OnAnOpenBusTheAgentRefusesOtherUsersAndLetsAllowedGroupsIn)
{
    const gid_t allowed = unusedGid(4711);
    const gid_t other = unusedGid(allowed + 1);
    startAll({{"agent.allowed_groups", "[" + std::to_string(allowed) + "]"}});
    const pid_t dockerPid = sandbox->dockerMainPid();
    const std::string bus = sandbox->busAddress();

    expectEveryMethod(bus, {}, agentDenied);
    expectEveryMethod(bus, {other}, agentDenied);
    const std::string denial = callAs(bus, {}, "Cancel");
    EXPECT_NE(denial.find("uid 65534"), std::string::npos) << denial;
    EXPECT_NE(denial.find("allowed_groups [" + std::to_string(allowed) + "]"), std::string::npos) << denial;
    expectReadsWork(bus);
    expectEveryMethodReachesTheAgent(bus, {other, allowed});
    expectNothingChanged(dockerPid);
}

TEST_F(AccessPolicyTest, TheShippedPolicyOnASystemLikeBus)
{
    const char* policyFile = std::getenv("ARMDOCK_DBUS_POLICY");
    ASSERT_NE(policyFile, nullptr) << "ARMDOCK_DBUS_POLICY is not set: run this test through meson test";
    const gid_t armdockGid = unusedGid(4711);
    const gid_t other = unusedGid(armdockGid + 1);

    sandbox = std::make_unique<Sandbox>();
    // The group `armdock` exists only in the bus's own mount namespace.
    policyBus = std::make_unique<PolicyBus>(PolicyBus::Options{.dir = sandbox->dir() / "policy-bus",
                         .policyFiles = {policyFile},
                         .extraGroups = {{"armdock", armdockGid}},
                         .environment = {"ARMDOCK_SANDBOX=" + sandbox->dir().string()}});
    const std::string bus = policyBus->address();
    auto startAgent = [&](const std::string& allowedGroups) {
        configFile = sandbox->writeAgentConfig("", {{"agent.bus", "\"" + bus + "\""}, {"agent.allowed_groups", allowedGroups}});
    };
    startAgent("[]");
    sandbox->agentUnit(agentBinary(), configFile);
    sandbox->startUnits({"armdock-agent.service"});
    ASSERT_TRUE(AgentClient::waitForAgent(bus)) << agentLog() << readFile(policyBus->logFile());
    client = std::make_unique<AgentClient>(bus);  // root: the policy lets it call everything
    oldEngineSha = sha256Of(sandbox->payloadPath("docker"));
    const pid_t dockerPid = sandbox->dockerMainPid();
    EXPECT_TRUE(client->listBackups().empty());

    // No group: the bus refuses every method; reads work.
    expectEveryMethod(bus, {}, busDenied);
    expectReadsWork(bus);
    // Nor may another user own the agent's name, even in group armdock.
    for (const auto& groups : std::vector<std::vector<gid_t>>{{}, {armdockGid}}) {
        const std::string own = callAs(bus, groups, "Own");
        EXPECT_TRUE(startsWith(own, busDenied)) << own;  // (the agent owns it: a queued request would not fail)
    }

    // Group armdock: the bus lets the call through, the agent applies
    // allowed_groups (empty: root only).
    expectEveryMethod(bus, {armdockGid}, agentDenied);

    // allowed_groups names armdock's gid and another one: armdock's members
    // reach the agent; the other group has no bus policy, so the bus refuses it.
    startAgent("[" + std::to_string(armdockGid) + ", " + std::to_string(other) + "]");
    client->reload();
    expectEveryMethodReachesTheAgent(bus, {armdockGid});
    expectEveryMethod(bus, {other}, busDenied);
    expectNothingChanged(dockerPid);
}

}  // namespace
}  // namespace armdock::test
