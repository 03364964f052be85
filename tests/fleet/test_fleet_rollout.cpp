// The fleet rollout (ansible/rollout.yml and the role armdock_upgrade) run by
// the real ansible-playbook against three real agents, each in its own
// sandbox (systemd user manager, dbus-daemon, containerd, dockerd), reached
// with ansible_connection: local and a per-host armdock_bus; a host that
// cannot be reached (ssh to a closed port on 127.0.0.1); and one of the
// sandboxed hosts reached over real ssh (dropbear) and cut off during its
// upgrade.
//
// The cases share the three sandboxes and run in order, as an operator's
// rollouts would: a dry run, a rollout that stops at a rolled-back host, the
// re-run after the fix, a rollout stopped by the unreachable host, one that
// lets one failure through and stops at the second, one that loses a host
// during its upgrade, and one limited to a single host.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>

#include <nlohmann/json.hpp>

#include "agent_sandbox_fixture.hpp"
#include "fleet_controller.hpp"

namespace armdock::test {

// Found by argument-dependent lookup when a failed assertion prints a command.
inline std::ostream& operator<<(std::ostream& out, const CommandResult& r) { return out << "exit " << r.exitCode << "\n" << r.output; }

namespace {

using namespace std::chrono_literals;

// A TCP port on 127.0.0.1 that nothing listens on: bound, then closed.
int closedPort()
{
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size) != 0)
        throw std::runtime_error("cannot find a free port");
    ::close(fd);
    return ntohs(addr.sin_port);
}

bool accepts(int port)
{
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (fd >= 0)
        ::close(fd);
    return ok;
}

// A real ssh server on 127.0.0.1 for one host of the inventory: dropbear in
// its own mount and PID namespaces, root's home there a tmpfs that holds the
// test's key (the host's own /root is not touched). cut() kills the
// namespace's first process, and with it every session and what runs in it:
// the host is gone from the network mid-task, as when a host dies.
class SshServer {
public:
    explicit SshServer(const fs::path& dir) : dir_(dir)
    {
        fs::create_directories(dir_);
        runOrThrow({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (dir_ / "key").string()});
        runOrThrow({"dropbearkey", "-t", "ed25519", "-f", (dir_ / "hostkey").string()});
        writeFile(dir_ / "serve.sh",
                  "set -e\n"
                  "mount --make-rprivate /\n"
                  "mount -t tmpfs -o mode=0700 tmpfs /root\n"
                  "mkdir -m 0700 /root/.ssh\n"
                  "cp \"$1/key.pub\" /root/.ssh/authorized_keys\n"
                  "exec dropbear -F -E -s -p \"127.0.0.1:$2\" -r \"$1/hostkey\" -P \"$1/dropbear.pid\"\n");
        port_ = closedPort();
        // unshare blocks SIGTERM while it waits: SIGKILL it, and --kill-child takes the namespace with it.
        SpawnSetup setup;
        setup.deathSignal = SIGKILL;
        pid_ = spawnLogged(dir_ / "dropbear.log",
                           {"/usr/bin/unshare", "--mount", "--pid", "--fork", "--kill-child=SIGKILL", "/bin/sh",
                            (dir_ / "serve.sh").string(), dir_.string(), std::to_string(port_)},
                           {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, setup);
        if (!Sandbox::waitFor([&] { return accepts(port_); }, 10s, 20ms))
            throw std::runtime_error("dropbear did not listen: " + readFile(dir_ / "dropbear.log"));
    }
    ~SshServer() { cut(); }

    int port() const { return port_; }
    fs::path key() const { return dir_ / "key"; }

    void cut()
    {
        if (pid_ <= 0)
            return;
        // pid_ is our own child, not yet reaped: the PID cannot have been reused.
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

private:
    static void runOrThrow(const std::vector<std::string>& argv)
    {
        std::string line;
        for (const auto& a : argv)
            line += " '" + a + "'";
        if (std::system(("exec" + line + " >/dev/null 2>&1").c_str()) != 0)
            throw std::runtime_error("failed:" + line);
    }

    fs::path dir_;
    int port_ = 0;
    pid_t pid_ = -1;
};

struct Host {
    std::string name;
    std::unique_ptr<Sandbox> sandbox;
    fs::path config;
};

class FleetRolloutTest : public ::testing::Test {
protected:
    static constexpr int hostCount = 3;
    static inline std::vector<Host> hosts;
    static inline fs::path work;  // inventory, payloads, results: on the "controller"
    static inline int downPort = 0;

    static void SetUpTestSuite()
    {
        char tmpl[] = "/tmp/armdock-fleet.XXXXXX";
        work = ::mkdtemp(tmpl);
        downPort = closedPort();
        for (int i = 1; i <= hostCount; ++i) {
            Host host{"node" + std::to_string(i), std::make_unique<Sandbox>(), {}};
            host.config = host.sandbox->writeAgentConfig("", settingsFor(false));
            host.sandbox->agentUnit(agentBinary(), host.config);
            host.sandbox->startUnits({"armdock-agent.service"});
            if (!AgentClient::waitForAgent(host.sandbox->busAddress()))
                throw std::runtime_error(host.name + ": the agent did not come up: " + readFile(host.sandbox->agentLog()));
            hosts.push_back(std::move(host));
        }
    }

    static void TearDownTestSuite()
    {
        hosts.clear();  // each sandbox stops what it started, by PID
        std::error_code ec;
        if (!work.empty() && !std::getenv("ARMDOCK_KEEP_SANDBOX"))
            fs::remove_all(work, ec);
    }

    // A host whose new engine must fail its check runs a smoke command that fails.
    static std::map<std::string, std::string> settingsFor(bool failingSmoke)
    {
        std::map<std::string, std::string> s{{"docker.health_timeout_sec", "10"}, {"docker.grace_sec", "1"}};
        if (failingSmoke)
            s["docker.smoke_command"] = "[\"/bin/false\"]";
        return s;
    }

    static void reconfigure(Host& host, bool failingSmoke)
    {
        host.sandbox->writeAgentConfig("", settingsFor(failingSmoke));
        auto r = host.sandbox->run({armdockctlBinary().string(), "--bus", host.sandbox->busAddress(), "reload"}, 30s);
        ASSERT_EQ(r.exitCode, 0) << r.output;
    }

    // A new engine file on the controller: the sandbox's dockerd with `marker` appended.
    static fs::path newEngine(const std::string& marker)
    {
        const fs::path file = work / ("dockerd-" + marker);
        fs::copy_file(hosts[0].sandbox->payloadPath("docker"), file, fs::copy_options::overwrite_existing);
        std::ofstream(file, std::ios::app | std::ios::binary) << marker;
        fs::permissions(file, fs::perms(0755));
        return file;
    }

    // The inventory: the sandboxed hosts in order, `down` (unreachable) inserted before index `downAt` when >= 0,
    // host `sshAt` reached over ssh through `ssh` when >= 0.
    static fs::path inventory(int downAt = -1, int sshAt = -1, const SshServer* ssh = nullptr)
    {
        const std::string sshOptions = "ansible_ssh_common_args: '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                       "-o ConnectTimeout=5 -o BatchMode=yes'";
        std::vector<InventoryHost> entries;
        for (int i = 0; i < hostCount; ++i) {
            if (i == downAt)
                entries.push_back({"down", {"ansible_connection: ssh", "ansible_host: 127.0.0.1", "ansible_port: " + std::to_string(downPort),
                                            "ansible_user: nobody", sshOptions}});
            InventoryHost host = localAgentHost(hosts[i].name, *hosts[i].sandbox, armdockctlBinary());
            if (i == sshAt && ssh) {
                host.vars.front() = "ansible_connection: ssh";
                host.vars.insert(host.vars.end(), {"ansible_host: 127.0.0.1", "ansible_user: root", "ansible_port: " + std::to_string(ssh->port()),
                                                   "ansible_ssh_private_key_file: " + ssh->key().string(), sshOptions});
            }
            entries.push_back(std::move(host));
        }
        const fs::path file = work / "inventory.yml";
        writeInventory(file, entries);
        return file;
    }

    static RolloutRun rollout(const fs::path& inventoryFile, const nlohmann::json& vars, const std::vector<std::string>& more = {})
    {
        return runRollout(*hosts[0].sandbox, work, inventoryFile, vars, more);
    }

    static nlohmann::json varsFor(const fs::path& engine, int maxFailures = 0)
    {
        return {{"armdock_payloads", {{"docker", engine.string()}}}, {"armdock_results", "results"}, {"armdock_max_failures", maxFailures}};
    }

    // The throw-away folders the role copies to for a dry run (ansible.builtin.tempfile, in /tmp).
    static int dryRunFolders()
    {
        int count = 0;
        for (const auto& entry : fs::directory_iterator("/tmp"))
            count += entry.path().filename().string().starts_with("armdock-check.") ? 1 : 0;
        return count;
    }

    static std::string installedSha(int i) { return sha256Of(hosts[i].sandbox->payloadPath("docker")); }

    void SetUp() override
    {
        if (ansibleDir().empty() || armdockctlBinary().empty())
            GTEST_FAIL() << "ARMDOCK_ANSIBLE_DIR and ARMDOCKCTL_BINARY are not set (run through meson test)";
        if (hosts.size() != hostCount)
            GTEST_FAIL() << "the sandboxed hosts did not start";
    }
};

TEST_F(FleetRolloutTest, TheRoleAndPlaybookPassTheLinter)
{
    auto r = hosts[0].sandbox->run({"ansible-lint", "--offline", "--nocolor", (ansibleDir() / "rollout.yml").string(),
                                    (ansibleDir() / "roles/armdock_upgrade").string()},
                                   300s);
    EXPECT_EQ(r.exitCode, 0) << r.output;
}

TEST_F(FleetRolloutTest, CheckModeDryRunsEveryHostAndChangesNothing)
{
    std::vector<std::string> before;
    for (int i = 0; i < hostCount; ++i)
        before.push_back(installedSha(i));
    const fs::path engine = newEngine("check");
    auto r = rollout(inventory(), varsFor(engine), {"--check"});
    ASSERT_EQ(r.run.exitCode, 0) << r.run;
    for (int i = 0; i < hostCount; ++i) {
        EXPECT_EQ(installedSha(i), before[i]) << hosts[i].name << " changed in a dry run";
        const auto& result = r.results[hosts[i].name];
        EXPECT_EQ(result["result"], "success") << result.dump();
        EXPECT_NE(result["message"].get<std::string>().find("dry run"), std::string::npos) << result.dump();
        EXPECT_FALSE(fs::exists(hosts[i].sandbox->dir() / "stage")) << "a dry run made the stage folder";
    }
    EXPECT_EQ(r.summary["stopped"], false) << r.summary.dump();
    EXPECT_EQ(dryRunFolders(), 0) << "a dry run left its copies in /tmp";
}

// The second host rolls back: the rollout stops before the third, which is never touched.
TEST_F(FleetRolloutTest, ARolledBackHostStopsTheRolloutBeforeTheNextBatch)
{
    reconfigure(hosts[1], true);
    const std::string thirdBefore = installedSha(2);
    const fs::path engine = newEngine("v2");
    auto r = rollout(inventory(), varsFor(engine));
    std::printf("[fleet] rollout stopped at a rolled-back host: %.1f s\n", r.seconds);
    EXPECT_NE(r.run.exitCode, 0) << r.run;
    EXPECT_EQ(r.results["node1"]["result"], "success") << r.results["node1"].dump();
    EXPECT_EQ(r.results["node1"]["version_after"], "20.10.24+dfsg1") << r.results["node1"].dump();
    EXPECT_FALSE(r.results["node1"]["transaction"].get<std::string>().empty()) << r.results["node1"].dump();
    EXPECT_GT(r.results["node1"]["upgrade_seconds"].get<double>(), 0.5) << r.results["node1"].dump();
    EXPECT_EQ(installedSha(0), sha256Of(engine));
    EXPECT_EQ(r.results["node2"]["result"], "rolled-back") << r.results["node2"].dump();
    EXPECT_EQ(r.results["node2"]["exit_code"], 3) << r.results["node2"].dump();
    EXPECT_NE(r.results["node2"]["message"].get<std::string>().find("smoke"), std::string::npos) << r.results["node2"].dump();
    EXPECT_EQ(r.results["node3"]["result"], "not-run") << r.results["node3"].dump();
    EXPECT_EQ(installedSha(2), thirdBefore) << "the third host was upgraded after the second rolled back";
    EXPECT_FALSE(fs::exists(hosts[2].sandbox->dir() / "stage")) << "the third host was touched";
    EXPECT_EQ(r.summary["stopped"], true) << r.summary.dump();
    EXPECT_EQ(r.summary["counts"]["success"], 1);
    EXPECT_EQ(r.summary["counts"]["rolled-back"], 1);
    EXPECT_EQ(r.summary["counts"]["not-run"], 1);
    EXPECT_NE(r.run.output.find("stopped: 1 host(s) rolled back, failed or were unreachable"), std::string::npos) << r.run;
}

// After the fix, the same rollout again: the host already done is skipped, the others upgraded.
TEST_F(FleetRolloutTest, ARerunAfterTheFixSkipsTheHostsAlreadyDone)
{
    reconfigure(hosts[1], false);
    const fs::path engine = work / "dockerd-v2";
    ASSERT_TRUE(fs::exists(engine));
    auto r = rollout(inventory(), varsFor(engine));
    std::printf("[fleet] re-run, 1 skipped and 2 upgraded: %.1f s\n", r.seconds);
    ASSERT_EQ(r.run.exitCode, 0) << r.run;
    EXPECT_EQ(r.results["node1"]["result"], "skipped") << r.results["node1"].dump();
    EXPECT_EQ(r.results["node2"]["result"], "success") << r.results["node2"].dump();
    EXPECT_EQ(r.results["node3"]["result"], "success") << r.results["node3"].dump();
    for (int i = 0; i < hostCount; ++i)
        EXPECT_EQ(installedSha(i), sha256Of(engine)) << hosts[i].name;
    EXPECT_EQ(r.summary["stopped"], false) << r.summary.dump();
    EXPECT_EQ(r.summary["counts"]["skipped"], 1);
    EXPECT_EQ(r.summary["counts"]["success"], 2);
}

// A host that cannot be reached stops a serial play too (Ansible alone would go on).
TEST_F(FleetRolloutTest, AnUnreachableHostStopsTheRollout)
{
    const std::string secondBefore = installedSha(1);
    const fs::path engine = newEngine("v3");
    auto r = rollout(inventory(1), varsFor(engine));
    EXPECT_NE(r.run.exitCode, 0) << r.run;
    EXPECT_EQ(r.results["node1"]["result"], "success") << r.results["node1"].dump();
    EXPECT_EQ(r.results["down"]["result"], "unreachable") << r.results["down"].dump();
    EXPECT_EQ(r.results["node2"]["result"], "not-run") << r.results["node2"].dump();
    EXPECT_EQ(r.results["node3"]["result"], "not-run") << r.results["node3"].dump();
    EXPECT_EQ(installedSha(1), secondBefore);
    EXPECT_EQ(r.summary["stopped"], true) << r.summary.dump();
    EXPECT_EQ(r.summary["counts"]["unreachable"], 1);
}

// armdock_max_failures: 1 lets the unreachable host through and stops at the rolled-back one.
TEST_F(FleetRolloutTest, MaxFailuresOneLetsOneThroughAndStopsAtTheSecond)
{
    reconfigure(hosts[2], true);
    const fs::path engine = work / "dockerd-v3";
    auto r = rollout(inventory(1), varsFor(engine, 1));
    EXPECT_NE(r.run.exitCode, 0) << r.run;
    EXPECT_EQ(r.results["node1"]["result"], "skipped") << r.results["node1"].dump();
    EXPECT_EQ(r.results["down"]["result"], "unreachable") << r.results["down"].dump();
    EXPECT_EQ(r.results["node2"]["result"], "success") << r.results["node2"].dump();
    EXPECT_EQ(r.results["node3"]["result"], "rolled-back") << r.results["node3"].dump();
    EXPECT_EQ(r.summary["stopped"], true) << r.summary.dump();
    EXPECT_EQ(r.summary["failures"].size(), 2u) << r.summary.dump();
    reconfigure(hosts[2], false);
}

// The second host, reached over real ssh, is cut off while its agent runs the
// upgrade: Ansible reports the lost connection as a failed task, not as
// unreachable. The host's result says unreachable and where to look, the
// rollout stops before the third host, and the agent finishes on its own.
TEST_F(FleetRolloutTest, AHostLostDuringItsUpgradeStopsTheRollout)
{
    SshServer ssh(work / "ssh");
    const std::string thirdBefore = installedSha(2);
    const fs::path engine = newEngine("v4");
    const fs::path inventoryFile = inventory(-1, 1, &ssh);
    auto running = std::async(std::launch::async, [&] { return rollout(inventoryFile, varsFor(engine)); });
    AgentClient second(hosts[1].sandbox->busAddress());
    const bool upgrading = Sandbox::waitFor([&] { return second.property("State") != "idle"; }, 120s, 20ms);
    ssh.cut();
    auto r = running.get();
    ASSERT_TRUE(upgrading) << "the second host's upgrade never began\n" << r.run;
    EXPECT_NE(r.run.exitCode, 0) << r.run;
    EXPECT_EQ(r.results["node1"]["result"], "success") << r.results["node1"].dump();
    EXPECT_EQ(r.results["node2"]["result"], "unreachable") << r.results["node2"].dump();
    EXPECT_NE(r.results["node2"]["message"].get<std::string>().find("armdockctl status"), std::string::npos) << r.results["node2"].dump();
    EXPECT_EQ(r.results["node3"]["result"], "not-run") << r.results["node3"].dump();
    EXPECT_EQ(installedSha(2), thirdBefore) << "the third host was upgraded after the second was lost";
    EXPECT_EQ(r.summary["stopped"], true) << r.summary.dump();
    EXPECT_EQ(r.summary["counts"]["unreachable"], 1) << r.summary.dump();
    // Cut off from its controller, the agent still ends its transaction, on the new set.
    ASSERT_TRUE(AgentClient::waitForIdleAgent(hosts[1].sandbox->busAddress()));
    EXPECT_EQ(second.property("LastResult"), "success");
    EXPECT_EQ(installedSha(1), sha256Of(engine));
}

// --limit: a rollout of part of the group runs without localhost in the limit, and its summary counts those hosts.
TEST_F(FleetRolloutTest, ALimitedRolloutNeedsNoLocalhost)
{
    const fs::path engine = work / "dockerd-v4";
    auto r = rollout(inventory(), varsFor(engine), {"--limit", "node3"});
    ASSERT_EQ(r.run.exitCode, 0) << r.run;
    EXPECT_EQ(r.results.size(), 1u) << r.run;
    EXPECT_EQ(r.results["node3"]["result"], "success") << r.results["node3"].dump();
    EXPECT_EQ(installedSha(2), sha256Of(engine));
    EXPECT_EQ(r.summary["hosts"], 1) << r.summary.dump();
    EXPECT_EQ(r.summary["stopped"], false) << r.summary.dump();
    EXPECT_EQ(r.summary["counts"]["success"], 1) << r.summary.dump();
}

}  // namespace
}  // namespace armdock::test
