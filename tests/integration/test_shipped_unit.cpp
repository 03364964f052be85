// The agent under the sandboxing of the shipped units/armdock-agent.service
// (its [Service] lines from NoNewPrivileges= on, as written: PrivateTmp=yes,
// ProtectHome=yes, PrivateDevices=yes, RestrictAddressFamilies=AF_UNIX, ...),
// in a sandbox made outside /tmp and the home folders, so that the agent
// still reaches its bus, Docker's socket, its state folder and the payload
// root. New engines wait in /tmp and /root, which that sandboxing hides from
// the agent: armdockctl upgrades from them (it passes each file as a
// descriptor); Upgrade with such a path is refused at once with an
// InvalidArgument that says why and what to do, and nothing changes.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "agent_sandbox_fixture.hpp"
#include "core/source_verifier.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;

// Outside /tmp, /var/tmp, /home, /root and /run/user: the agent sees it.
constexpr const char* sandboxBase = "/var/lib/armdock-test";

// A folder of the host's, made by the test where the agent cannot see
// (mkdtemp under /tmp or /root, root-owned 0755) and removed with all it
// holds when the test ends, passed or not.
class HostFolder {
public:
    explicit HostFolder(const fs::path& parent)
    {
        std::string pattern = (parent / "armdock-shipped-unit.XXXXXX").string();
        if (!::mkdtemp(pattern.data()))
            throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
        path_ = pattern;
        ::chmod(path_.c_str(), 0755);
    }
    ~HostFolder()
    {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    HostFolder(const HostFolder&) = delete;
    HostFolder& operator=(const HostFolder&) = delete;
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

class ShippedUnitTest : public ::testing::Test {
protected:
    static void SetUpTestSuite()
    {
        try {
            if (armdockctlBinary().empty() || shippedAgentUnit().empty())
                throw std::runtime_error("ARMDOCKCTL_BINARY or ARMDOCK_AGENT_UNIT is not set: run this test through meson test");
            SandboxOptions options;
            options.baseDir = sandboxBase;
            sandbox = std::make_unique<Sandbox>(options);
            const fs::path config = sandbox->writeAgentConfig("", {{"docker.grace_sec", "1"}, {"docker.health_timeout_sec", "20"}});
            sandbox->agentUnitSandboxedAs(shippedAgentUnit(), agentBinary(), config);
            sandbox->startUnits({"armdock-agent.service"});
            if (!AgentClient::waitForAgent(sandbox->busAddress()))
                throw std::runtime_error("the agent did not take its bus name");
            client = std::make_unique<AgentClient>(sandbox->busAddress());
        } catch (const std::exception& e) {
            setupError = e.what();
        }
    }

    static void TearDownTestSuite()
    {
        if (sandbox && ::testing::UnitTest::GetInstance()->failed_test_count() > 0 && fs::exists(sandbox->agentLog()))
            std::cerr << "---- agent log ----\n" << readFile(sandbox->agentLog()) << "\n-------------------\n";
        client.reset();
        sandbox.reset();
    }

    void SetUp() override
    {
        ASSERT_TRUE(sandbox && client) << "sandbox start failed: " << setupError;
        ASSERT_EQ(client->property("State"), "idle");
    }

    // folder/docker: the installed engine with `marker` appended (another
    // file that runs and reports the same version), root-owned, 0755.
    static fs::path newEngine(const fs::path& folder, const std::string& marker)
    {
        const fs::path file = folder / "docker";
        installExecutable(sandbox->payloadPath("docker"), file);
        std::ofstream(file, std::ios::app | std::ios::binary) << marker;
        return file;
    }

    static std::string installedSha() { return sha256Of(sandbox->payloadPath("docker")); }

    // The installed engine as the sandbox made it (root:root, 0755, no capability), for the tests after.
    static void undecorate(const fs::path& target)
    {
        sandbox->run({"setcap", "-r", target.string()});
        ::chown(target.c_str(), 0, 0);
        ::chmod(target.c_str(), 0755);
    }

    // Upgrade with `path` must fail at once with InvalidArgument; returns the message.
    static std::string refusedUpgrade(const fs::path& path)
    {
        try {
            const std::string tx = client->upgrade({{"docker", path.string()}});
            ADD_FAILURE() << "Upgrade of " << path << " was accepted: transaction " << tx;
            client->waitFinished(tx);
        } catch (const sdbus::Error& e) {
            EXPECT_EQ(e.getName(), "io.armdock.Agent1.Error.InvalidArgument") << e.getMessage();
            std::cout << "  " << e.getName() << ": " << e.getMessage() << "\n";
            return e.getMessage();
        }
        return "";
    }

    static inline std::unique_ptr<Sandbox> sandbox;
    static inline std::unique_ptr<AgentClient> client;
    static inline std::string setupError;
};

TEST_F(ShippedUnitTest, TheAgentRunsUnderTheShippedSandboxing)
{
    for (const char* directive : {"PrivateTmp=yes", "ProtectHome=yes", "PrivateDevices=yes", "NoNewPrivileges=yes"})
        EXPECT_NE(serviceSandboxingLines(shippedAgentUnit()).find(directive), std::string::npos) << directive;
    const auto shown = sandbox->systemctl({"show", "-p", "PrivateTmp", "-p", "ProtectHome", "-p", "NoNewPrivileges", "armdock-agent.service"});
    EXPECT_NE(shown.output.find("PrivateTmp=yes"), std::string::npos) << shown.output;
    EXPECT_NE(shown.output.find("ProtectHome=yes"), std::string::npos) << shown.output;
    EXPECT_NE(shown.output.find("NoNewPrivileges=yes"), std::string::npos) << shown.output;

    // What the agent's own process sees (read from /proc, nothing signalled).
    const pid_t agent = sandbox->mainPid("armdock-agent.service");
    ASSERT_GT(agent, 0);
    const std::string proc = "/proc/" + std::to_string(agent);
    EXPECT_NE(readFile(proc + "/status").find("NoNewPrivs:\t1"), std::string::npos);
    std::vector<std::string> hidden;
    for (const auto& h : hiddenFoldersIn(readFile(proc + "/mountinfo")))
        hidden.push_back(h.folder + " " + h.directive);
    EXPECT_NE(std::find(hidden.begin(), hidden.end(), "/tmp PrivateTmp=yes"), hidden.end());
    EXPECT_NE(std::find(hidden.begin(), hidden.end(), "/root ProtectHome=yes"), hidden.end());
}

TEST_F(ShippedUnitTest, UpgradeWithAPathTheAgentCannotSeeSaysWhyAndChangesNothing)
{
    const std::string before = installedSha();
    const pid_t dockerPid = sandbox->dockerMainPid();
    ASSERT_GT(dockerPid, 0);

    HostFolder inTmp("/tmp");
    const fs::path tmpEngine = newEngine(inTmp.path(), "armdock-shipped-unit-tmp-path");
    const std::string tmpMessage = refusedUpgrade(tmpEngine);
    for (const std::string& word : {tmpEngine.string(), std::string("PrivateTmp=yes"), std::string("armdockctl")})
        EXPECT_NE(tmpMessage.find(word), std::string::npos) << "the message does not name " << word << ": " << tmpMessage;

    HostFolder inRoot("/root");
    const fs::path rootEngine = newEngine(inRoot.path(), "armdock-shipped-unit-root-path");
    const std::string rootMessage = refusedUpgrade(rootEngine);
    for (const std::string& word : {rootEngine.string(), std::string("ProtectHome=yes"), std::string("armdockctl")})
        EXPECT_NE(rootMessage.find(word), std::string::npos) << "the message does not name " << word << ": " << rootMessage;

    EXPECT_EQ(installedSha(), before);
    EXPECT_EQ(sandbox->dockerMainPid(), dockerPid) << "Docker was restarted";
    EXPECT_EQ(client->property("State"), "idle");
    EXPECT_TRUE(sandbox->ping());
}

TEST_F(ShippedUnitTest, ArmdockctlUpgradesFromTmpAndFromRoot)
{
    for (const char* parent : {"/tmp", "/root"}) {
        SCOPED_TRACE(parent);
        HostFolder folder(parent);
        const fs::path engine = newEngine(folder.path(), std::string("armdock-shipped-unit-ctl") + parent);
        const std::string sha = sha256Of(engine);
        ASSERT_NE(sha, installedSha());
        const pid_t dockerBefore = sandbox->dockerMainPid();
        const auto started = std::chrono::steady_clock::now();
        const auto r = sandbox->run({armdockctlBinary().string(), "--bus", sandbox->busAddress(), "upgrade", "--docker", engine.string()}, 120s);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        EXPECT_EQ(r.exitCode, 0) << r.output;
        EXPECT_EQ(installedSha(), sha) << r.output;
        EXPECT_EQ(client->property("LastResult"), "success") << client->property("LastError");
        EXPECT_NE(sandbox->dockerMainPid(), dockerBefore) << "the new engine runs";
        EXPECT_TRUE(sandbox->ping());
        std::cout << "  armdockctl upgrade --docker " << engine.string() << ": exit " << r.exitCode << " in " << seconds << " s\n";
    }
}

// The engine's owner, mode and file capability, as a package's postinst may
// have set them, stay through an upgrade by the agent under the shipped
// unit's CapabilityBoundingSet= (CAP_CHOWN, CAP_FSETID, CAP_SETFCAP...). The
// capability is one inside that set: the agent runs the new engine for its
// version under it (the next test is about one outside it).
TEST_F(ShippedUnitTest, TheEngineKeepsItsCapabilityOwnerAndModeThroughAnUpgrade)
{
    const fs::path target = sandbox->payloadPath("docker");
    ASSERT_EQ(::chown(target.c_str(), 0, 50), 0) << std::strerror(errno);
    ASSERT_EQ(::chmod(target.c_str(), 04750), 0) << std::strerror(errno);
    const auto setcap = sandbox->run({"setcap", "cap_chown+ep", target.string()});
    ASSERT_EQ(setcap.exitCode, 0) << "setcap (package libcap2-bin): " << setcap.output;
    HostFolder folder(sandbox->dir());
    const fs::path engine = newEngine(folder.path(), "armdock-shipped-unit-attributes");
    const std::string tx = client->upgrade({{"docker", engine.string()}});
    ASSERT_EQ(client->waitFinished(tx), "success") << client->property("LastError");
    EXPECT_EQ(installedSha(), sha256Of(engine));
    struct stat st {};
    ASSERT_EQ(::stat(target.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_gid, 50u);
    EXPECT_EQ(st.st_mode & 07777, 04750u);
    const auto getcap = sandbox->run({"getcap", target.string()});
    EXPECT_NE(getcap.output.find("cap_chown=ep"), std::string::npos) << getcap.output;
    EXPECT_TRUE(sandbox->ping());
    std::cout << "  after the upgrade: uid " << st.st_uid << ", gid " << st.st_gid << ", mode 0" << std::oct << (st.st_mode & 07777)
              << std::dec << ", getcap: " << getcap.output;
    undecorate(target);
}

// An engine whose capability (marked effective) the agent's bounding set
// lacks cannot be run by the agent (execve: EPERM): the upgrade is refused
// before Docker stops, naming the capability and what to do.
TEST_F(ShippedUnitTest, AnEngineCapabilityOutsideTheAgentsBoundingSetIsRefusedBeforeDockerStops)
{
    const fs::path target = sandbox->payloadPath("docker");
    const auto setcap = sandbox->run({"setcap", "cap_net_bind_service+ep", target.string()});
    ASSERT_EQ(setcap.exitCode, 0) << "setcap (package libcap2-bin): " << setcap.output;
    const std::string before = installedSha();
    const pid_t dockerPid = sandbox->dockerMainPid();
    HostFolder folder(sandbox->dir());
    const fs::path engine = newEngine(folder.path(), "armdock-shipped-unit-bounding-set");
    const std::string tx = client->upgrade({{"docker", engine.string()}});
    EXPECT_EQ(client->waitFinished(tx), "rejected");
    const std::string error = client->property("LastError");
    for (const std::string& word : {std::string("cap_net_bind_service"), std::string("CapabilityBoundingSet="), std::string("setcap -r")})
        EXPECT_NE(error.find(word), std::string::npos) << "LastError does not name " << word << ": " << error;
    std::cout << "  LastError: " << error << "\n";
    EXPECT_EQ(installedSha(), before);
    EXPECT_EQ(sandbox->dockerMainPid(), dockerPid) << "Docker was restarted";
    EXPECT_TRUE(sandbox->ping());
    undecorate(target);
}

}  // namespace
}  // namespace armdock::test
