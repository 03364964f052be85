// The fleet rollout (ansible/rollout.yml and the role armdock_upgrade) run by
// the real ansible-playbook against three real agents, each in its own
// sandbox (systemd user manager, dbus-daemon, containerd, dockerd), reached
// with ansible_connection: local and a per-host armdock_bus; and a host that
// cannot be reached (ssh to a closed port on 127.0.0.1).
//
// The cases share the three sandboxes and run in order, as an operator's
// rollouts would: a dry run, a rollout that stops at a rolled-back host, the
// re-run after the fix, a rollout stopped by the unreachable host, and one
// that lets one failure through and stops at the second.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "agent_sandbox_fixture.hpp"

namespace armdock::test {

// Found by argument-dependent lookup when a failed assertion prints a command.
inline std::ostream& operator<<(std::ostream& out, const CommandResult& r) { return out << "exit " << r.exitCode << "\n" << r.output; }

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

fs::path ansibleDir()
{
    const char* dir = std::getenv("ARMDOCK_ANSIBLE_DIR");
    return dir ? fs::path(dir) : fs::path();
}

fs::path ctlBinary()
{
    const char* ctl = std::getenv("ARMDOCKCTL_BINARY");
    return ctl ? fs::path(ctl) : fs::path();
}

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
        auto r = host.sandbox->run({ctlBinary().string(), "--bus", host.sandbox->busAddress(), "reload"}, 30s);
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

    // The inventory: the sandboxed hosts in order, `down` (unreachable) inserted before index `downAt` when >= 0.
    static fs::path inventory(int downAt = -1)
    {
        std::string text = "armdock_hosts:\n  hosts:\n";
        for (int i = 0; i < hostCount; ++i) {
            if (i == downAt)
                text += "    down:\n      ansible_connection: ssh\n      ansible_host: 127.0.0.1\n      ansible_port: " + std::to_string(downPort) +
                        "\n      ansible_user: nobody\n      ansible_ssh_common_args: '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                        "-o ConnectTimeout=5 -o BatchMode=yes'\n";
            const Host& h = hosts[i];
            text += "    " + h.name + ":\n      ansible_connection: local\n      ansible_python_interpreter: /usr/bin/python3\n"
                    "      armdock_bus: \"" + h.sandbox->busAddress() + "\"\n"
                    "      armdock_docker_socket: \"" + h.sandbox->dockerSocket().string() + "\"\n"
                    "      armdock_stage_dir: \"" + (h.sandbox->dir() / "stage").string() + "\"\n"
                    "      armdock_ctl: \"" + ctlBinary().string() + "\"\n";
        }
        const fs::path file = work / "inventory.yml";
        writeFile(file, text);
        return file;
    }

    struct Rollout {
        CommandResult run;
        double seconds = 0;
        nlohmann::json summary;
        std::map<std::string, nlohmann::json> results;
    };

    // ansible-playbook rollout.yml with these extra vars (JSON), from the work folder.
    static Rollout rollout(const fs::path& inventoryFile, const nlohmann::json& vars, const std::vector<std::string>& more = {})
    {
        fs::remove_all(work / "results");
        writeFile(work / "vars.json", vars.dump());
        std::vector<std::string> argv{"env", "ANSIBLE_LOCAL_TEMP=" + (work / "ansible-tmp").string(),
                                      "ANSIBLE_REMOTE_TEMP=" + (work / "ansible-tmp").string(), "ANSIBLE_NOCOLOR=1",
                                      "ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_RETRY_FILES_ENABLED=0",
                                      "sh", "-c", "cd \"$1\" && shift && exec \"$@\"", "sh", work.string(), "ansible-playbook", "-i", inventoryFile.string(),
                                      (ansibleDir() / "rollout.yml").string(), "-e", "@" + (work / "vars.json").string()};
        argv.insert(argv.end(), more.begin(), more.end());
        const auto start = Clock::now();
        Rollout r;
        r.run = hosts[0].sandbox->run(argv, 600s);
        r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
        const fs::path results = work / "results";
        if (fs::exists(results / "summary.json"))
            r.summary = nlohmann::json::parse(readFile(results / "summary.json"));
        if (fs::exists(results))
            for (const auto& entry : fs::directory_iterator(results))
                if (entry.path().extension() == ".json" && entry.path().stem() != "summary")
                    r.results[entry.path().stem().string()] = nlohmann::json::parse(readFile(entry.path()));
        return r;
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
        if (ansibleDir().empty() || ctlBinary().empty())
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

}  // namespace
}  // namespace armdock::test
