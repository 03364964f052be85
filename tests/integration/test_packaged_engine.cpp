// Beside apt, with a real dpkg database: Debian's own docker.io and
// needrestart packages (their maintainer scripts left out: dpkg --root runs
// them chrooted into a root that has no shell) installed into the sandbox's
// payload root with `dpkg --root`, the agent's dpkg_root pointing there and
// its engine payload at usr/sbin/dockerd, where docker.io puts it. The
// agent refuses to install over the packaged dockerd and says how to divert
// and hold it; armdockctl status shows the package, its diversion, its hold
// and what unattended-upgrades and needrestart would do; once the advice is
// followed the upgrade goes through, and installing docker.io again leaves
// the agent's engine in place.
#include <cstdlib>

#include "agent_sandbox_fixture.hpp"
#include "armdock_build_config.h"
#include "dpkg_tool.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;

fs::path debNamed(const std::string& prefix)
{
    const char* dir = std::getenv("ARMDOCK_TEST_DEBS");
    if (!dir)
        return {};
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().filename().string().starts_with(prefix + "_") && e.path().extension() == ".deb")
            return e.path();
    return {};
}

class PackagedEngineTest : public AgentSandboxTest {
protected:
    void SetUp() override
    {
        dockerIo = debNamed("docker.io");
        needrestart = debNamed("needrestart");
        ASSERT_FALSE(dockerIo.empty() || needrestart.empty())
            << "Debian's docker.io and needrestart .debs are not in $ARMDOCK_TEST_DEBS (scripts/install-deps.sh downloads them)";
        sandboxOptions.enginePath = "usr/sbin/dockerd";
        startAll({{"agent.dpkg_root", "\"@ROOT@\""}});
        if (HasFatalFailure())
            return;
        root = sandbox->root();
        work = sandbox->dir() / "debs";
        fs::create_directories(work);
        // docker.io as Debian ships it: its dockerd lands where the sandbox's engine runs from.
        dockerIoDeb = withoutMaintainerScripts(dockerIo, work);
        installDeb(root, dockerIoDeb);
        installDeb(root, withoutMaintainerScripts(needrestart, work));
        // unattended-upgrades, configured on as its debconf question leaves it (20auto-upgrades).
        installExecutable("/bin/true", root / "usr/bin/unattended-upgrade");
        fs::create_directories(root / "etc/apt/apt.conf.d");
        std::ofstream(root / "etc/apt/apt.conf.d/20auto-upgrades")
            << "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n";
        packagedSha = sha256Of(sandbox->payloadPath("docker"));
    }

    CommandResult ctl(const std::vector<std::string>& args) const
    {
        std::vector<std::string> argv{armdockctlBinary().string(), "--bus", sandbox->busAddress(),
                                      "--docker-socket", sandbox->dockerSocket().string()};
        argv.insert(argv.end(), args.begin(), args.end());
        return sandbox->run(argv, 120s);
    }

    std::string dpkg(const std::string& args) const
    {
        const auto r = sandbox->run({"sh", "-c", "dpkg --root=" + root.string() + " " + args}, 60s);
        return r.output;
    }

    // The agent again with dpkg_owned = "divert" (and `env`, e.g. a fault point).
    void restartAgentDiverting(const std::map<std::string, std::string>& env = {})
    {
        sandbox->stopUnits({"armdock-agent.service"});
        configFile = sandbox->writeAgentConfig("", {{"docker.health_timeout_sec", "10"}, {"docker.grace_sec", "2"},
                                                    {"agent.dpkg_root", "\"" + root.string() + "\""}, {"agent.dpkg_owned", "\"divert\""}});
        sandbox->agentUnit(agentBinary(), configFile, env);
        sandbox->systemctl({"reset-failed", "armdock-agent.service"});
        sandbox->startUnits({"armdock-agent.service"});
        ASSERT_TRUE(AgentClient::waitForIdleAgent(sandbox->busAddress())) << agentLog();
    }
    bool agentGone() const
    {
        const std::string state = sandbox->activeState("armdock-agent.service");
        return state == "failed" || state == "inactive";
    }
    bool diverted() const { return dpkg("-S /usr/sbin/dockerd").find("local diversion from: /usr/sbin/dockerd") != std::string::npos; }
    // apt's own view of the hold (`apt-mark showhold`, on the root's dpkg status) agrees with dpkg's selections.
    bool held() const
    {
        const bool dpkgHolds = dpkg("--get-selections docker.io").find("hold") != std::string::npos;
        const auto apt = sandbox->run({"apt-mark", "-o", "Dir::State::status=" + (root / "var/lib/dpkg/status").string(), "showhold"});
        EXPECT_EQ(apt.output.find("docker.io") != std::string::npos, dpkgHolds) << "apt-mark showhold: " << apt.output;
        return dpkgHolds;
    }

    fs::path dockerIo, needrestart, dockerIoDeb, root, work;
    std::string packagedSha;
};

TEST_F(PackagedEngineTest, AnUpgradeOverDockerIoIsRefusedUntilItIsDivertedAndHeldThenDpkgLeavesItAlone)
{
    const std::string target = sandbox->payloadPath("docker").string();
    ASSERT_NE(dpkg("-S /usr/sbin/dockerd").find("docker.io: /usr/sbin/dockerd"), std::string::npos);

    // What status says before anything: the owner, no diversion, no hold, and what would replace or restart it.
    auto status = ctl({"status"});
    ASSERT_EQ(status.exitCode, 0) << status.output;
    std::cout << status.output;
    EXPECT_NE(status.output.find("docker  " + target + ": package docker.io, not diverted, not held"), std::string::npos) << status.output;
    EXPECT_NE(status.output.find("warning: unattended-upgrades is on (APT::Periodic::Unattended-Upgrade \"1\" in /etc/apt/apt.conf.d/20auto-upgrades"),
              std::string::npos)
        << status.output;
    EXPECT_NE(status.output.find("warning: needrestart is installed and restarts services"), std::string::npos) << status.output;
    EXPECT_NE(status.output.find("dockerinit  " + sandbox->payloadPath("dockerinit").string() + ": no package"), std::string::npos)
        << status.output;

    // The upgrade is refused with nothing changed and Docker not interrupted.
    const pid_t dockerPid = sandbox->dockerMainPid();
    ASSERT_GT(dockerPid, 0);
    const fs::path engine = newGoodEngine();
    auto refused = ctl({"upgrade", "--timeout", "120", "--docker", engine.string()});
    EXPECT_EQ(refused.exitCode, 4) << refused.output;
    EXPECT_NE(refused.output.find(target + " belongs to package docker.io"), std::string::npos) << refused.output;
    EXPECT_EQ(sha256Of(target), packagedSha);
    EXPECT_EQ(sandbox->dockerMainPid(), dockerPid) << "Docker was restarted";
    const std::string why = client->property("LastError");
    std::cout << "  refused: " << why << "\n";

    // The advice, as the message gives it.
    for (const std::string opening : {"Divert the packaged file (`", "and hold it (`"}) {
        const auto at = why.find(opening);
        ASSERT_NE(at, std::string::npos) << why;
        const auto start = at + opening.size();
        const std::string command = why.substr(start, why.find('`', start) - start);
        const auto r = sandbox->run({"sh", "-c", command}, 60s);
        ASSERT_EQ(r.exitCode, 0) << command << ": " << r.output;
    }
    status = ctl({"status"});
    EXPECT_NE(status.output.find("docker  " + target + ": package docker.io, diverted to /usr/sbin/dockerd.distrib (local), held"),
              std::string::npos)
        << status.output;
    EXPECT_EQ(status.output.find("unattended-upgrades is on"), std::string::npos) << "a held package is not upgraded: " << status.output;
    // needrestart's advice, as its warning gives it.
    const std::string keep = "$nrconf{override_rc}{qr(^containerd)} = 0;";
    ASSERT_NE(status.output.find(keep), std::string::npos) << status.output;
    std::ofstream(root / "etc/needrestart/conf.d/armdock.conf") << keep << "\n";
    status = ctl({"status"});
    EXPECT_EQ(status.output.find("needrestart is installed"), std::string::npos) << status.output;

    auto upgraded = ctl({"upgrade", "--timeout", "120", "--docker", engine.string()});
    ASSERT_EQ(upgraded.exitCode, 0) << upgraded.output << agentLog();
    EXPECT_EQ(sha256Of(target), sha256Of(engine));

    // What dpkg says now, and docker.io installed again: its dockerd goes beside the agent's engine.
    EXPECT_NE(dpkg("-S /usr/sbin/dockerd").find("local diversion from: /usr/sbin/dockerd"), std::string::npos);
    EXPECT_NE(sandbox->run({"dpkg-divert", "--root", root.string(), "--list"}).output.find(
                  "local diversion of /usr/sbin/dockerd to /usr/sbin/dockerd.distrib"),
              std::string::npos);
    EXPECT_TRUE(held());
    const auto again = sandbox->run({"dpkg", "--root=" + root.string(), "--force-depends", "-i", dockerIoDeb.string()}, 120s);
    ASSERT_EQ(again.exitCode, 0) << again.output;
    EXPECT_EQ(sha256Of(target), sha256Of(engine)) << "dpkg -i of docker.io overwrote the agent's engine";
    EXPECT_EQ(sha256Of(target + ".distrib"), packagedSha);
    EXPECT_TRUE(sandbox->ping());
}

TEST_F(PackagedEngineTest, DivertKilledAfterTheDiversionIsUndoneThenDivertsAndReleases)
{
#if !ARMDOCK_FAULT_INJECTION
    GTEST_SKIP() << "the agent was built without -Dfault_injection=true";
#endif
    const std::string target = sandbox->payloadPath("docker").string();
    const pid_t dockerPid = sandbox->dockerMainPid();
    ASSERT_GT(dockerPid, 0);
    const fs::path engine = newGoodEngine();

    // Killed once the diversion and the hold are made, before Docker stops.
    restartAgentDiverting({{"ARMDOCK_FAULT", "after-divert"}});
    if (HasFatalFailure())
        return;
    try {
        client->upgrade({{"docker", engine.string()}}, {});
    } catch (const sdbus::Error&) {
    }
    ASSERT_TRUE(Sandbox::waitFor([&] { return agentGone(); }, 90s, 10ms)) << "the agent did not reach after-divert: " << agentLog();
    EXPECT_TRUE(diverted()) << "the crash came after the diversion";
    EXPECT_TRUE(held());
    // Started again: the recovery takes the diversion and the hold back; Docker never stopped.
    restartAgentDiverting();
    if (HasFatalFailure())
        return;
    EXPECT_EQ(client->property("LastResult"), "rolled-back") << client->property("LastError");
    EXPECT_FALSE(diverted()) << dpkg("-S /usr/sbin/dockerd");
    EXPECT_FALSE(held());
    EXPECT_FALSE(fs::exists(target + ".distrib"));
    EXPECT_EQ(sha256Of(target), packagedSha);
    EXPECT_EQ(sandbox->dockerMainPid(), dockerPid);

    // The upgrade diverts and holds as part of it.
    auto upgraded = ctl({"upgrade", "--timeout", "120", "--docker", engine.string()});
    ASSERT_EQ(upgraded.exitCode, 0) << upgraded.output << agentLog();
    EXPECT_EQ(sha256Of(target), sha256Of(engine));
    EXPECT_TRUE(diverted());
    EXPECT_TRUE(held());
    EXPECT_EQ(sha256Of(target + ".distrib"), packagedSha);
    auto status = ctl({"status"});
    EXPECT_NE(status.output.find("docker  " + target + ": package docker.io, diverted to /usr/sbin/dockerd.distrib (local), held"),
              std::string::npos)
        << status.output;

    // Release: the packaged dockerd is installed again, through a transaction that checks it; the diversion and hold go.
    auto released = ctl({"release", "--timeout", "120"});
    ASSERT_EQ(released.exitCode, 0) << released.output << agentLog();
    std::cout << released.output;
    EXPECT_EQ(sha256Of(target), packagedSha);
    EXPECT_FALSE(diverted()) << dpkg("-S /usr/sbin/dockerd");
    EXPECT_FALSE(held());
    EXPECT_FALSE(fs::exists(target + ".distrib"));
    EXPECT_NE(dpkg("-S /usr/sbin/dockerd").find("docker.io: /usr/sbin/dockerd"), std::string::npos);
    EXPECT_TRUE(sandbox->ping());
    auto again = ctl({"release"});
    EXPECT_NE(again.exitCode, 0) << again.output;
    EXPECT_NE(again.output.find("nothing to release"), std::string::npos) << again.output;
}

}  // namespace
}  // namespace armdock::test
