// The sandbox itself: a real systemd user manager on a private bus, a real
// dockerd behind docker.socket, and a cleanup that leaves nothing behind.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "sandbox.hpp"

namespace fs = std::filesystem;
using armdock::test::processAlive;
using armdock::test::Sandbox;
using armdock::test::SandboxOptions;
using namespace std::chrono_literals;

namespace {

std::string trimmed(std::string s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

std::string cgroupOf(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
    std::string all, line;
    while (std::getline(in, line))
        all += line + "\n";
    return all;
}

unsigned long long startTimeOf(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')');
    if (close == std::string::npos)
        return 0;
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    for (int i = 3; i <= 22; ++i)
        rest >> field;
    return std::stoull(field);
}

// Alive and still the same process (not a recycled PID).
bool sameProcessAlive(pid_t pid, unsigned long long startTime)
{
    return processAlive(pid) && startTimeOf(pid) == startTime;
}

}  // namespace

TEST(Sandbox, DockerAnswersAndManagerIsOnTheBus)
{
    Sandbox sb;
    std::printf("sandbox %s: manager on the bus after %.3f s, dockerd answering after %.3f s\n",
        sb.dir().c_str(), sb.managerStartSeconds(), sb.dockerStartSeconds());
    ::testing::Test::RecordProperty("manager_start_ms", static_cast<int>(sb.managerStartSeconds() * 1000));
    ::testing::Test::RecordProperty("docker_start_ms", static_cast<int>(sb.dockerStartSeconds() * 1000));

    EXPECT_TRUE(sb.ping());
    auto version = sb.dockerGet("/version");
    ASSERT_TRUE(version);
    EXPECT_EQ(version->status, 200);
    EXPECT_NE(version->body.find("\"Version\":\"20.10.24+dfsg1\""), std::string::npos) << version->body;

    // The user manager answers on the private bus (not only on its private socket).
    auto status = sb.busctl({"status", "org.freedesktop.systemd1"});
    EXPECT_EQ(status.exitCode, 0) << status.output;
    auto prop = sb.busctl({"get-property", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager", "Version"});
    EXPECT_EQ(prop.exitCode, 0) << prop.output;
    EXPECT_NE(prop.output.find("252"), std::string::npos) << prop.output;

    // dockerd runs from the payload root, in the sandbox's own cgroup.
    pid_t docker = sb.dockerMainPid();
    ASSERT_GT(docker, 0);
    EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(docker) + "/exe"), sb.payloadPath("docker"));
    auto cgroup = cgroupOf(docker);
    EXPECT_NE(cgroup.find("/armdock-sandbox-"), std::string::npos) << cgroup;
    EXPECT_NE(cgroup.find("docker.service"), std::string::npos) << cgroup;

    EXPECT_EQ(sb.activeState("docker.socket"), "active");
    EXPECT_EQ(sb.activeState("containerd.service"), "active");
    EXPECT_TRUE(fs::exists(sb.payloadPath("dockerinit")));
}

// Documents what a client touching the socket does while the engine is stopped.
TEST(Sandbox, SocketActivationRestartsAStoppedServiceUnlessTheSocketIsStopped)
{
    Sandbox sb;
    const pid_t first = sb.dockerMainPid();
    ASSERT_GT(first, 0);

    // Only the service stopped: docker.socket still listens, and a client
    // touching it starts the old engine again (what the agent must prevent).
    sb.stopUnits({"docker.service"});
    EXPECT_EQ(sb.activeState("docker.service"), "inactive");
    EXPECT_EQ(sb.activeState("docker.socket"), "active");
    EXPECT_TRUE(sb.ping(10s)) << "the connection waits in the backlog until dockerd accepts";
    EXPECT_EQ(sb.activeState("docker.service"), "active");
    const pid_t second = sb.dockerMainPid();
    EXPECT_GT(second, 0);
    EXPECT_NE(second, first);

    // Socket and service stopped: nobody listens. The socket file stays
    // (RemoveOnStop=no), a client gets ECONNREFUSED at once, nothing starts.
    sb.stopUnits({"docker.socket", "docker.service"});
    EXPECT_EQ(sb.activeState("docker.service"), "inactive");
    EXPECT_EQ(sb.activeState("docker.socket"), "inactive");
    EXPECT_TRUE(fs::exists(sb.dockerSocket()));
    auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(sb.dockerGet("/_ping", 2s));
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
    EXPECT_EQ(sb.activeState("docker.service"), "inactive");

    // And back.
    sb.startUnits({"docker.socket", "docker.service"});
    EXPECT_TRUE(Sandbox::waitFor([&] { return sb.ping(); }, 30s));
}

TEST(Sandbox, CleanupLeavesNoProcessNoCgroupNoFolder)
{
    std::map<pid_t, unsigned long long> pids;
    fs::path dir;
    pid_t manager = 0;
    {
        Sandbox sb;
        dir = sb.dir();
        manager = sb.managerPid();
        for (pid_t pid : sb.ownedPids())
            pids[pid] = startTimeOf(pid);
        for (const char* unit : {"dbus.service", "containerd.service", "docker.service"}) {
            pid_t main = sb.mainPid(unit);
            EXPECT_GT(main, 0) << unit;
            EXPECT_EQ(pids.count(main), 1u) << unit << " main PID is not counted as owned";
        }
        EXPECT_EQ(pids.count(manager), 1u);
    }
    ASSERT_GE(pids.size(), 4u);
    for (const auto& [pid, start] : pids)
        EXPECT_FALSE(sameProcessAlive(pid, start)) << "PID " << pid << " survived the sandbox";
    EXPECT_FALSE(fs::exists(dir)) << dir;
    const std::string cgroupName = "armdock-sandbox-" + dir.filename().string().substr(16);
    for (const char* h : {"/sys/fs/cgroup/", "/sys/fs/cgroup/unified/", "/sys/fs/cgroup/systemd/",
             "/sys/fs/cgroup/cpu/", "/sys/fs/cgroup/memory/", "/sys/fs/cgroup/pids/"}) {
        EXPECT_FALSE(fs::exists(std::string(h) + cgroupName)) << h << cgroupName;
    }
}

TEST(Sandbox, WithoutDockerExtraUnitsRunAndStopWithIt)
{
    SandboxOptions options;
    options.startDocker = false;
    options.extraUnits["sleeper.service"] = "[Service]\nExecStart=/bin/sleep 1000\n";
    options.startUnits = {"sleeper.service"};
    pid_t sleeper = 0;
    unsigned long long sleeperStart = 0;
    {
        Sandbox sb(options);
        EXPECT_EQ(sb.activeState("docker.service"), "inactive");
        EXPECT_EQ(sb.activeState("sleeper.service"), "active");
        sleeper = sb.mainPid("sleeper.service");
        ASSERT_GT(sleeper, 0);
        sleeperStart = startTimeOf(sleeper);

        // Units written later need a daemon-reload.
        sb.writeUnit("late.service", "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n");
        sb.daemonReload();
        sb.startUnits({"late.service"});
        EXPECT_EQ(sb.activeState("late.service"), "active");

        // No dockerd: the socket is not even there.
        EXPECT_FALSE(sb.ping(500ms));
    }
    EXPECT_FALSE(sameProcessAlive(sleeper, sleeperStart));
}

TEST(Sandbox, ContainersRunComeBackAfterRestartAndDieWithTheSandbox)
{
    pid_t containerPid = 0;
    unsigned long long containerStart = 0;
    {
        Sandbox sb;
        sb.importBusyboxImage("armdock-busybox");
        // busybox sleep as PID 1 ignores SIGTERM: without --stop-timeout every
        // engine stop waits 10 s for it.
        auto run = sb.docker({"run", "-d", "--restart=always", "--network=none", "--stop-timeout=1", "--name",
            "sleeper", "armdock-busybox", "/bin/sleep", "1000"});
        ASSERT_EQ(run.exitCode, 0) << run.output;
        auto pidOf = [&] {
            auto r = sb.docker({"inspect", "-f", "{{.State.Running}} {{.State.Pid}}", "sleeper"});
            if (r.exitCode != 0 || !r.output.starts_with("true "))
                return pid_t(0);
            return static_cast<pid_t>(std::stol(r.output.substr(5)));
        };
        pid_t before = pidOf();
        ASSERT_GT(before, 0);

        auto restartStart = std::chrono::steady_clock::now();
        auto restart = sb.systemctl({"restart", "docker.service"});
        ASSERT_EQ(restart.exitCode, 0) << restart.output;
        ASSERT_TRUE(Sandbox::waitFor([&] { return sb.ping(); }, 60s));
        ASSERT_TRUE(Sandbox::waitFor([&] { return pidOf() > 0; }, 60s)) << "container did not come back";
        containerPid = pidOf();
        std::printf("docker restart with one container: back with the container after %.3f s\n",
            std::chrono::duration<double>(std::chrono::steady_clock::now() - restartStart).count());
        EXPECT_NE(containerPid, before);
        containerStart = startTimeOf(containerPid);
        auto owned = sb.ownedPids();
        EXPECT_NE(std::find(owned.begin(), owned.end(), containerPid), owned.end())
            << "the container process is not counted as the sandbox's";
    }
    EXPECT_FALSE(sameProcessAlive(containerPid, containerStart)) << "container process " << containerPid
                                                                 << " survived the sandbox";
}

TEST(Sandbox, AgentConfigAndUnit)
{
    SandboxOptions options;
    options.startDocker = false;
    Sandbox sb(options);
    auto config = sb.writeAgentConfig("", {{"docker.grace_sec", "3"}, {"agent.keep_backups", "2"}});
    auto text = armdock::test::readFile(config);
    EXPECT_NE(text.find("bus = \"" + sb.busAddress() + "\""), std::string::npos) << text;
    EXPECT_NE(text.find("grace_sec = 3\n"), std::string::npos) << text;
    EXPECT_NE(text.find("keep_backups = 2\n"), std::string::npos) << text;
    EXPECT_EQ(text.find("grace_sec = 1\n"), std::string::npos) << text;

    sb.agentUnit("/bin/true", config, {{"ARMDOCK_FAULT", "none"}});
    auto unit = armdock::test::readFile(sb.unitDir() / "armdock-agent.service");
    EXPECT_NE(unit.find("Type=notify"), std::string::npos);
    EXPECT_EQ(trimmed(sb.systemctl({"show", "--property=LoadState", "--value", "armdock-agent.service"}).output),
        "loaded");

    // The agent's own parser accepts it (when the agent is built).
    auto agent = armdock::test::agentBinary();
    if (agent.empty() || !fs::exists(agent))
        GTEST_SKIP() << "ARMDOCK_AGENT_BINARY not set or not built";
    auto check = sb.run({agent.string(), "--check-config", "--config", config.string()});
    EXPECT_EQ(check.exitCode, 0) << check.output << "\n" << text;
}
