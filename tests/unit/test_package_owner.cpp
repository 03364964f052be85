// Package ownership read from a real dpkg database, made in the test with
// dpkg-deb, `dpkg --root -i` and dpkg-divert; and the upgrade that refuses
// (or, with dpkg_owned = "ignore", installs over) a file a package owns.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "../support/dpkg_tool.hpp"
#include "../support/minisign_tool.hpp"  // readText
#include "agent_test_fixture.hpp"
#include "core/apt_autoupdate.hpp"
#include "core/package_owner.hpp"

namespace armdock::test {
namespace {

class PackageOwnerTest : public ::testing::Test {
protected:
    void SetUp() override
    {
        dir = fs::path(::testing::TempDir()) / ("armdock-dpkg-" + std::to_string(::getpid()));
        fs::remove_all(dir);
        root = dir / "root";
        fs::create_directories(root);
    }
    void TearDown() override { fs::remove_all(dir); }

    fs::path dir, root;
};

TEST_F(PackageOwnerTest, NamesThePackageWhoseFileListHoldsTheTarget)
{
    installPackage(root, "fake-docker", {{"/usr/bin/docker", "/bin/true"}, {"/usr/bin/docker-proxy", "/bin/true"}});
    const auto owners = findPackageOwners(root, {root / "usr/bin/docker", root / "usr/bin/dock", root / "usr/sbin/dockerd"});
    EXPECT_EQ(owners.at(root / "usr/bin/docker").packages, std::vector<std::string>{"fake-docker"});
    EXPECT_EQ(owners.at(root / "usr/bin/docker").listedAs, "/usr/bin/docker");
    EXPECT_FALSE(owners.at(root / "usr/bin/docker").diverted());
    EXPECT_TRUE(owners.at(root / "usr/bin/dock").packages.empty()) << "a prefix of a listed path is not that path";
    EXPECT_TRUE(owners.at(root / "usr/sbin/dockerd").packages.empty());
}

TEST_F(PackageOwnerTest, AMultiarchPackageAndAMergedUsrNameAreFound)
{
    const std::string arch = [] {
        FILE* p = ::popen("dpkg --print-architecture", "r");
        char buffer[64] = {};
        if (p && std::fgets(buffer, sizeof buffer, p))
            buffer[std::strcspn(buffer, "\n")] = 0;
        if (p)
            ::pclose(p);
        return std::string(buffer);
    }();
    ASSERT_FALSE(arch.empty());
    installPackage(root, "fake-runc", {{"/sbin/runc", "/bin/true"}}, arch);
    ASSERT_TRUE(fs::exists(root / ("var/lib/dpkg/info/fake-runc:" + arch + ".list")));
    // The package lists /sbin/runc; the payload names it through /usr (merged /usr).
    const auto owners = findPackageOwners(root, {root / "usr/sbin/runc", root / "sbin/runc"});
    EXPECT_EQ(owners.at(root / "usr/sbin/runc").packages, std::vector<std::string>{"fake-runc"});
    EXPECT_EQ(owners.at(root / "usr/sbin/runc").listedAs, "/sbin/runc");
    EXPECT_EQ(owners.at(root / "sbin/runc").packages, std::vector<std::string>{"fake-runc"});
}

TEST_F(PackageOwnerTest, ALocalDiversionIsSeen)
{
    installPackage(root, "fake-docker", {{"/usr/bin/docker", "/bin/true"}});
    divertLocally(root, "/usr/bin/docker");
    const PackageOwnership owner = findPackageOwners(root, {root / "usr/bin/docker"}).at(root / "usr/bin/docker");
    EXPECT_EQ(owner.packages, std::vector<std::string>{"fake-docker"});
    EXPECT_EQ(owner.divertedTo, "/usr/bin/docker.distrib");
    EXPECT_EQ(owner.divertedBy, "local");
}

TEST_F(PackageOwnerTest, NothingOwnsATargetOutsideTheRootOrWithoutADatabase)
{
    installPackage(root, "fake-docker", {{"/usr/bin/docker", "/bin/true"}});
    EXPECT_TRUE(findPackageOwners(root, {dir / "usr/bin/docker"}).at(dir / "usr/bin/docker").packages.empty());
    EXPECT_TRUE(findPackageOwners(dir / "empty", {dir / "empty/usr/bin/docker"}).at(dir / "empty/usr/bin/docker").packages.empty());
}

// unattended-upgrades and needrestart, from their configuration under a root.
class AutoUpdateTest : public PackageOwnerTest {
protected:
    void write(const std::string& path, const std::string& text)
    {
        fs::create_directories((root / path).parent_path());
        std::ofstream(root / path) << text;
    }
};

TEST_F(AutoUpdateTest, UnattendedUpgradesWarnsWhenOnAndThePackageIsNeitherHeldNorBlacklisted)
{
    EXPECT_EQ(unattendedUpgradeWarning(root, "docker.io", false), "") << "not installed";
    write("usr/bin/unattended-upgrade", "");
    EXPECT_EQ(unattendedUpgradeWarning(root, "docker.io", false), "") << "installed, not configured on";
    write("etc/apt/apt.conf.d/20auto-upgrades", "// APT::Periodic::Unattended-Upgrade \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n");
    const std::string warning = unattendedUpgradeWarning(root, "docker.io", false);
    EXPECT_NE(warning.find("unattended-upgrades is on (APT::Periodic::Unattended-Upgrade \"1\" in /etc/apt/apt.conf.d/20auto-upgrades"),
              std::string::npos)
        << warning;
    EXPECT_NE(warning.find("echo 'docker.io hold' | dpkg --root " + root.string() + " --set-selections"), std::string::npos) << warning;
    EXPECT_EQ(unattendedUpgradeWarning(root, "docker.io", true), "") << "a held package is left alone";
    write("etc/apt/apt.conf.d/50unattended-upgrades",
          "Unattended-Upgrade::Origins-Pattern { \"origin=Debian,codename=${distro_codename},label=Debian-Security\"; // http://x\n};\n"
          "Unattended-Upgrade::Package-Blacklist {\n    \"docker\\.io$\";\n    \"containerd\";\n};\n");
    EXPECT_EQ(unattendedUpgradeWarning(root, "docker.io", false), "") << "blacklisted by a regular expression";
    EXPECT_EQ(unattendedUpgradeWarning(root, "containerd", false), "") << "blacklisted by name";
    EXPECT_NE(unattendedUpgradeWarning(root, "runc", false), "");
    write("etc/apt/apt.conf.d/99off", "/* later files win */ APT::Periodic::Unattended-Upgrade \"0\";\n");
    EXPECT_EQ(unattendedUpgradeWarning(root, "runc", false), "") << "turned off by a later file";
}

TEST_F(AutoUpdateTest, NeedrestartWarnsUnlessItOnlyListsOrKeepsContainerd)
{
    EXPECT_EQ(needrestartWarning(root), "") << "not installed";
    write("usr/sbin/needrestart", "");
    write("etc/needrestart/needrestart.conf", "#$nrconf{restart} = 'a';\n$nrconf{override_rc} = {\n    qr(^docker) => 0,\n};\n");
    EXPECT_NE(needrestartWarning(root).find("$nrconf{restart} = 'i', needrestart's default"), std::string::npos) << needrestartWarning(root);
    write("etc/needrestart/conf.d/auto.conf", "$nrconf{restart} = 'a';\n");
    EXPECT_NE(needrestartWarning(root).find("$nrconf{restart} = 'a')"), std::string::npos) << needrestartWarning(root);
    write("etc/needrestart/conf.d/list.conf", "$nrconf{restart} = 'l';\n");
    EXPECT_EQ(needrestartWarning(root), "") << "list only";
    fs::remove(root / "etc/needrestart/conf.d/list.conf");
    write("etc/needrestart/conf.d/armdock.conf", "$nrconf{override_rc}{qr(^containerd)} = 0;\n");
    EXPECT_EQ(needrestartWarning(root), "") << "containerd kept";
}

TEST_F(PackageOwnerTest, HeldPackagesAreReadFromDpkgsStatus)
{
    installPackage(root, "fake-docker", {{"/usr/bin/docker", "/bin/true"}});
    installPackage(root, "fake-runc", {{"/usr/sbin/runc", "/bin/true"}});
    EXPECT_TRUE(heldPackages(root).empty());
    runDpkgTool("echo 'fake-runc hold' | dpkg --root " + root.string() + " --set-selections");
    EXPECT_EQ(heldPackages(root), std::set<std::string>{"fake-runc"});
}

// The agent with its payload root as dpkg's root: a package owns the engine file installed there.
class PackagedEngineTest : public AgentFixture {
protected:
    void SetUp() override
    {
        AgentFixture::SetUp();
        const fs::path installed = dir / "installed-docker";
        fs::copy_file(enginePath(), installed);
        installPackage(dir / "root", "docker.io", {{"/usr/bin/docker", installed}});
        ASSERT_EQ(sha256OfFile(enginePath()), oldEngineSha);
        configure("refuse");
    }
    void configure(const std::string& mode)
    {
        dpkgMode = mode;
        config = makeConfig();
    }
    std::string extraAgent() const override
    {
        return "dpkg_root = \"" + (dir / "root").string() + "\"\ndpkg_owned = \"" + dpkgMode + "\"\n";
    }
    std::string dpkgMode = "refuse";
};

TEST_F(PackagedEngineTest, AnUpgradeOverAPackagedFileIsRefusedNamingThePackageAndTheFix)
{
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Rejected);
    const std::string error = agent->status().lastError;
    const std::string target = enginePath().string();
    EXPECT_NE(error.find("payload docker: " + target + " belongs to package docker.io (`dpkg --root " + (dir / "root").string() +
                         " -S /usr/bin/docker`)"),
              std::string::npos)
        << error;
    EXPECT_NE(error.find("--local --divert /usr/bin/docker.distrib --add /usr/bin/docker`"), std::string::npos) << error;
    EXPECT_NE(error.find("dpkg_owned = \"ignore\""), std::string::npos) << error;
    EXPECT_NE(error.find("nothing was changed and Docker was not interrupted"), std::string::npos) << error;
    EXPECT_TRUE(units.calls.empty());
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_TRUE(agent->listBackups().empty());
    expectNoLeftovers();
}

TEST_F(PackagedEngineTest, TheAdviceWorks)
{
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Rejected);
    // What the message says to run, in the test's root.
    const std::string error = agent->status().lastError;
    const auto divert = error.find("`dpkg-divert");
    ASSERT_NE(divert, std::string::npos) << error;
    const std::string command = error.substr(divert + 1, error.find('`', divert + 1) - divert - 1);
    runDpkgTool(command);
    const auto hold = error.find("hold it (`");
    ASSERT_NE(hold, std::string::npos) << error;
    const auto holdStart = hold + std::string("hold it (`").size();
    runDpkgTool(error.substr(holdStart, error.find('`', holdStart) - holdStart));
    upgradeTo(src, TransactionResult::Success);
    EXPECT_EQ(sha256OfFile(enginePath()), sha256OfFile(src));
    // The package is held, and installing it again puts its file beside the agent's engine, not over it.
    FILE* selections = ::popen(("dpkg --root " + (dir / "root").string() + " --get-selections docker.io").c_str(), "r");
    char line[256] = {};
    ASSERT_TRUE(selections && std::fgets(line, sizeof line, selections));
    ::pclose(selections);
    EXPECT_NE(std::string(line).find("hold"), std::string::npos) << line;
    runDpkgTool("dpkg --root " + (dir / "root").string() + " -i " + (dir / "docker.io.deb").string());
    EXPECT_EQ(sha256OfFile(enginePath()), sha256OfFile(src));
    EXPECT_EQ(sha256OfFile(enginePath().string() + ".distrib"), oldEngineSha);
}

TEST_F(PackagedEngineTest, IgnoreInstallsOverThePackagedFile)
{
    configure("ignore");
    startAgent();
    upgradeTo(newEngine("engine-v2", "2.0.0"), TransactionResult::Success);
}

TEST_F(PackagedEngineTest, AnUnpackagedPayloadIsNotRefused)
{
    startAgent();
    const fs::path init = dir / "src/dockerinit-v2";
    makeEngineFile(init, "init-v2");
    agent->upgrade(Files{{"dockerinit", init.string()}}, Options{});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
}

// dpkg_owned = "divert": the transaction diverts and holds, keeps them when it
// commits, undoes them when it does not; release puts the packaged file back.
class DivertingEngineTest : public PackagedEngineTest {
protected:
    void SetUp() override
    {
        PackagedEngineTest::SetUp();
        configure("divert");
    }
    std::string dpkgSays(const std::string& args) const
    {
        FILE* p = ::popen(("dpkg --root " + (dir / "root").string() + " " + args + " 2>&1").c_str(), "r");
        std::string out;
        char buffer[512];
        while (p && std::fgets(buffer, sizeof buffer, p))
            out += buffer;
        if (p)
            ::pclose(p);
        return out;
    }
    bool diverted() const { return dpkgSays("-S /usr/bin/docker").find("local diversion from: /usr/bin/docker") != std::string::npos; }
    bool held() const { return dpkgSays("--get-selections docker.io").find("hold") != std::string::npos; }
    fs::path distrib() const { return enginePath().string() + ".distrib"; }
    fs::path record() const { return dir / "state/dpkg-diversions.json"; }
};

TEST_F(DivertingEngineTest, AnUpgradeDivertsAndHoldsThePackagedFile)
{
    startAgent();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    upgradeTo(src, TransactionResult::Success);
    EXPECT_EQ(sha256OfFile(enginePath()), sha256OfFile(src));
    EXPECT_TRUE(diverted()) << dpkgSays("-S /usr/bin/docker");
    EXPECT_TRUE(held());
    EXPECT_EQ(sha256OfFile(distrib()), oldEngineSha) << "the packaged file is kept as TARGET.distrib";
    EXPECT_NE(readText(record()).find("\"committed\": true"), std::string::npos) << readText(record());
    // The package installed again goes beside the agent's engine.
    runDpkgTool("dpkg --root " + (dir / "root").string() + " -i " + (dir / "docker.io.deb").string());
    EXPECT_EQ(sha256OfFile(enginePath()), sha256OfFile(src));
}

TEST_F(DivertingEngineTest, AnUpgradeThatRollsBackUndoesItsDiversionAndHold)
{
    startAgent();
    agent->upgrade(Files{{"docker", newEngine("engine-broken", "2.0.0", true).string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::RolledBack) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_FALSE(diverted()) << dpkgSays("-S /usr/bin/docker");
    EXPECT_FALSE(held());
    EXPECT_FALSE(fs::exists(distrib()));
    EXPECT_FALSE(fs::exists(record()));
}

TEST_F(DivertingEngineTest, ADryRunDivertsNothing)
{
    startAgent();
    agent->upgrade(Files{{"docker", newEngine("engine-v2", "2.0.0").string()}}, Options{{"dry_run", true}});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_FALSE(diverted());
    EXPECT_FALSE(held());
    EXPECT_FALSE(fs::exists(record()));
}

TEST_F(DivertingEngineTest, ReleasePutsThePackagedFileBackAndRemovesTheDiversionAndHold)
{
    startAgent();
    upgradeTo(newEngine("engine-v2", "2.0.0"), TransactionResult::Success);
    ASSERT_TRUE(diverted());
    agent->release();
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_FALSE(diverted()) << dpkgSays("-S /usr/bin/docker");
    EXPECT_FALSE(held());
    EXPECT_FALSE(fs::exists(distrib()));
    EXPECT_FALSE(fs::exists(record()));
    // Nothing is left to release.
    try {
        agent->release();
        ADD_FAILURE() << "a second release was not refused";
    } catch (const AgentError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
        EXPECT_NE(std::string(e.what()).find("nothing to release"), std::string::npos) << e.what();
    }
}

TEST_F(DivertingEngineTest, AHoldTheOperatorSetStaysAfterTheRelease)
{
    runDpkgTool("echo 'docker.io hold' | dpkg --root " + (dir / "root").string() + " --set-selections");
    startAgent();
    upgradeTo(newEngine("engine-v2", "2.0.0"), TransactionResult::Success);
    agent->release();
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_FALSE(diverted());
    EXPECT_TRUE(held()) << "the agent removed a hold it did not set";
}

TEST_F(DivertingEngineTest, ADiversionThatFailsRefusesTheUpgradeWithNothingChanged)
{
    // The root's dpkg database cannot take a diversion: its diversions file is a folder.
    fs::create_directories(dir / "root/var/lib/dpkg/diversions");
    startAgent();
    agent->upgrade(Files{{"docker", newEngine("engine-v2", "2.0.0").string()}}, Options{});
    waitIdle();
    EXPECT_EQ(agent->status().lastResult, TransactionResult::Rejected);
    const std::string error = agent->status().lastError;
    EXPECT_NE(error.find("payload docker: cannot divert the packaged " + enginePath().string() + " (package docker.io)"), std::string::npos)
        << error;
    EXPECT_NE(error.find("nothing was changed and Docker was not interrupted"), std::string::npos) << error;
    EXPECT_TRUE(units.calls.empty());
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_FALSE(fs::exists(distrib())) << "the link made before the failing dpkg-divert is taken back";
    EXPECT_FALSE(fs::exists(record()));
}

TEST_F(DivertingEngineTest, ARollbackToThePackagedFileUndoesTheDiversion)
{
    startAgent();
    upgradeTo(newEngine("engine-v2", "2.0.0"), TransactionResult::Success);
    ASSERT_TRUE(diverted());
    agent->rollback();
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha);
    EXPECT_FALSE(diverted()) << "the packaged file is installed again: its package's updates must reach it";
    EXPECT_FALSE(held());
    EXPECT_FALSE(fs::exists(distrib()));
    EXPECT_FALSE(fs::exists(record()));
}

TEST_F(DivertingEngineTest, ARollbackToTheAgentsSetAfterAReleaseDivertsAgain)
{
    startAgent();
    upgradeTo(newEngine("engine-v2", "2.0.0"), TransactionResult::Success);
    const std::string ours = sha256OfFile(enginePath());
    agent->release();
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    ASSERT_FALSE(diverted());
    std::string agentsSet;
    for (const auto& b : agent->listBackups())
        if (b.version == "2.0.0")
            agentsSet = b.id;
    ASSERT_FALSE(agentsSet.empty());
    agent->rollbackTo(agentsSet);
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), ours);
    EXPECT_TRUE(diverted()) << "the agent's file went over the packaged one without a diversion";
    EXPECT_TRUE(held());
    EXPECT_EQ(sha256OfFile(distrib()), oldEngineSha);
}

TEST_F(DivertingEngineTest, ALaterUpgradeKeepsTheRecordOfAnEarlierDiversion)
{
    startAgent();
    upgradeTo(newEngine("engine-v2", "2.0.0"), TransactionResult::Success);
    ASSERT_TRUE(diverted());
    // dockerinit becomes packaged too; one upgrade of both diverts it and keeps docker's.
    const fs::path packagedInit = dir / "packaged-dockerinit";
    fs::copy_file(initPath(), packagedInit);
    installPackage(dir / "root", "docker-init", {{"/usr/lib/docker/dockerinit", packagedInit}});
    const fs::path init = dir / "src/dockerinit-v3";
    makeEngineFile(init, "init-v3");
    agent->upgrade(Files{{"docker", newEngine("engine-v3", "3.0.0").string()}, {"dockerinit", init.string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    const std::string text = readText(record());
    EXPECT_NE(text.find("\"payload\": \"docker\""), std::string::npos) << text;
    EXPECT_NE(text.find("\"payload\": \"dockerinit\""), std::string::npos) << text;
    agent->release();
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha) << "docker's diversion was forgotten";
    EXPECT_EQ(sha256OfFile(initPath()), oldInitSha);
    EXPECT_FALSE(diverted());
    EXPECT_FALSE(fs::exists(record()));
}

TEST_F(DivertingEngineTest, AReleaseCutOffAfterItsSwapIsFinishedAtTheNextStart)
{
    startAgent();
    upgradeTo(newEngine("engine-v2", "2.0.0"), TransactionResult::Success);
    ASSERT_TRUE(diverted());
    // What a release that died after its commit leaves: the packaged bytes installed, the diversion and hold still there.
    agent.reset();
    const fs::path tmp = enginePath().string() + ".tmp";
    fs::copy_file(distrib(), tmp);
    fs::rename(tmp, enginePath());
    startAgent();
    EXPECT_FALSE(diverted()) << dpkgSays("-S /usr/bin/docker");
    EXPECT_FALSE(held());
    EXPECT_FALSE(fs::exists(distrib()));
    EXPECT_FALSE(fs::exists(record()));
}

}  // namespace
}  // namespace armdock::test
