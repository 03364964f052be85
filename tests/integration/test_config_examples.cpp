// The example configs that ship (config/examples): the agent's own
// --check-config accepts each, and the Debian one names the files and units
// of the docker.io set installed on this machine, each owned by its package.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include "core/config.hpp"
#include "sandbox.hpp"

namespace armdock::test {
namespace {

namespace fs = std::filesystem;

fs::path examplesDir()
{
    const char* dir = std::getenv("ARMDOCK_CONFIG_EXAMPLES");
    return dir ? fs::path(dir) : fs::path("config/examples");
}

struct Ran {
    int exitCode = -1;
    std::string output;
};

// Runs argv to its end (its PID is our own child), stdout and stderr together.
Ran runToEnd(const std::vector<std::string>& argv)
{
    char pattern[] = "/tmp/armdock-examples-XXXXXX";
    const fs::path dir = ::mkdtemp(pattern);
    const pid_t pid = spawnLogged(dir / "out.log", argv, {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"});
    int status = 0;
    Ran ran;
    if (::waitpid(pid, &status, 0) == pid && WIFEXITED(status))
        ran.exitCode = WEXITSTATUS(status);
    ran.output = readFile(dir / "out.log");
    fs::remove_all(dir);
    return ran;
}

TEST(ConfigExamples, EachPassesCheckConfig)
{
    for (const auto& [file, engine] : {std::pair{"debian-docker.io.toml", "/usr/sbin/dockerd"}, std::pair{"docker-ce.toml", "/usr/bin/dockerd"}}) {
        const fs::path example = examplesDir() / file;
        const Ran ran = runToEnd({agentBinary().string(), "--check-config", "--config", example.string()});
        EXPECT_EQ(ran.exitCode, 0) << example << ": " << ran.output;
        EXPECT_NE(ran.output.find(": OK (6 payloads, engine " + std::string(engine) + ")"), std::string::npos) << ran.output;
    }
}

TEST(ConfigExamples, TheDebianOneNamesTheInstalledFilesAndUnits)
{
    if (!fs::exists("/var/lib/dpkg/info/docker.io.list"))
        GTEST_SKIP() << "Debian's docker.io is not installed here";
    const Config config = loadConfig(examplesDir() / "debian-docker.io.toml");
    const std::set<std::string> packages{"docker.io", "containerd", "runc", "tini"};
    for (const auto& payload : config.payloads) {
        EXPECT_TRUE(fs::exists(payload.path)) << payload.name << ": " << payload.path << " is not installed";
        const Ran owner = runToEnd({"/usr/bin/dpkg-query", "--search", payload.path.string()});
        ASSERT_EQ(owner.exitCode, 0) << payload.path << " belongs to no package: " << owner.output;
        const std::string package = owner.output.substr(0, owner.output.find(':'));
        EXPECT_TRUE(packages.count(package)) << payload.path << " belongs to " << package;
        for (const auto& unit : config.unitsOf({payload.name}))
            EXPECT_TRUE(fs::exists(fs::path("/lib/systemd/system") / unit)) << payload.name << "'s unit " << unit << " is not installed";
    }
    EXPECT_TRUE(fs::is_symlink(config.findPayload("docker-init")->path)) << "docker-init is Debian's link to tini-static";
    EXPECT_EQ(config.enginePayload().path, "/usr/sbin/dockerd");
}

}  // namespace
}  // namespace armdock::test
