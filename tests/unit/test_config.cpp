#include <gtest/gtest.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/config.hpp"

namespace armdock {
namespace {

namespace fs = std::filesystem;

class TempDir {
public:
    TempDir()
    {
        std::string pattern = (fs::temp_directory_path() / "armdock-config-XXXXXX").string();
        if (!::mkdtemp(pattern.data()))
            throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() { fs::remove_all(path_); }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

void writeText(const fs::path& file, const std::string& text)
{
    std::ofstream(file) << text;
}

// Parses `text` and returns the ConfigError's message ("" if it parsed).
std::string errorOf(const std::string& text)
{
    try {
        parseConfig(text, "agent.toml");
    } catch (const ConfigError& error) {
        return error.what();
    }
    return "";
}

#define EXPECT_CONFIG_ERROR(text, position, fragment)                        \
    do {                                                                     \
        std::string message = errorOf(text);                                 \
        EXPECT_TRUE(message.starts_with(std::string("agent.toml:") + (position) + ": ")) << message; \
        EXPECT_NE(message.find(fragment), std::string::npos) << message;    \
    } while (0)

// The shipped config/agent.toml, found from this file's path: meson compiles
// it as a path relative to the build root, which is an ancestor of the test
// binary, so every ancestor of /proc/self/exe is tried.
fs::path shippedConfigPath()
{
    fs::path thisFile = __FILE__;
    auto fromSource = [](const fs::path& source) { return source.parent_path().parent_path().parent_path() / "config" / "agent.toml"; };
    if (thisFile.is_absolute())
        return fromSource(thisFile);
    for (fs::path dir = fs::read_symlink("/proc/self/exe").parent_path(); dir != dir.root_path(); dir = dir.parent_path())
        if (fs::exists(dir / thisFile))
            return fromSource(fs::weakly_canonical(dir / thisFile));
    return fromSource(fs::current_path() / thisFile);
}

TEST(ConfigDefaults, MatchTheDesign)
{
    Config config = defaultConfig();
    EXPECT_EQ(config.sourceFile, fs::path());
    EXPECT_EQ(config.agent.bus, "system");
    EXPECT_EQ(config.agent.stateDir, "/var/lib/armdock");
    EXPECT_EQ(config.agent.dropinDir, "/var/lib/armdock/incoming");
    EXPECT_EQ(config.agent.keepBackups, 3u);
    EXPECT_EQ(config.agent.logLevel, "info");
    EXPECT_TRUE(config.agent.allowedGroups.empty());
    EXPECT_EQ(config.docker.service, "docker.service");
    EXPECT_EQ(config.docker.socketUnit, "docker.socket");
    EXPECT_EQ(config.docker.socket, "/var/run/docker.sock");
    EXPECT_EQ(config.docker.stopTimeoutSec, 90u);
    EXPECT_EQ(config.docker.startTimeoutSec, 90u);
    EXPECT_EQ(config.docker.healthTimeoutSec, 60u);
    EXPECT_EQ(config.docker.graceSec, 5u);
    EXPECT_TRUE(config.docker.smokeCommand.empty());
    EXPECT_TRUE(config.docker.dockerinitPairing);
    EXPECT_EQ(config.docker.monitorIntervalSec, 30u);
    EXPECT_EQ(config.docker.monitorFailures, 3u);
    EXPECT_EQ(config.docker.maxRestartsPerHour, 3u);
    EXPECT_TRUE(config.docker.expectContainersBack);
    ASSERT_EQ(config.payloads.size(), 2u);
    EXPECT_EQ(config.payloads[0], (PayloadSpec{"docker", "/usr/bin/docker", 0755, {"-v"}, true, std::nullopt, ""}));
    EXPECT_EQ(config.payloads[1], (PayloadSpec{"dockerinit", "/usr/lib/docker/dockerinit", 0755, {}, false, std::nullopt, ""}));
    EXPECT_EQ(config.enginePayload().name, "docker");
    EXPECT_EQ(config.findPayload("dockerinit"), &config.payloads[1]);
    EXPECT_EQ(config.findPayload("dockerd"), nullptr);
}

TEST(ConfigDefaults, EmptyTextGivesDefaults)
{
    Config config = parseConfig("", "agent.toml");
    EXPECT_EQ(config.sourceFile, "agent.toml");
    config.sourceFile.clear();
    EXPECT_EQ(config, defaultConfig());
}

TEST(ConfigDefaults, MissingFileGivesDefaultsWithSourceSet)
{
    TempDir dir;
    Config config = loadConfig(dir.path() / "absent.toml");
    EXPECT_EQ(config.sourceFile, dir.path() / "absent.toml");
    config.sourceFile.clear();
    EXPECT_EQ(config, defaultConfig());
}

TEST(ConfigDefaults, ShippedAgentTomlEqualsDefaults)
{
    fs::path shipped = shippedConfigPath();
    ASSERT_TRUE(fs::exists(shipped)) << shipped;
    Config config = loadConfig(shipped);
    EXPECT_EQ(config.sourceFile, shipped);
    config.sourceFile.clear();
    EXPECT_EQ(config, defaultConfig());
    // Every key is spelled out, not left to the built-in defaults.
    std::ifstream in(shipped);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const char* key : {"bus", "state_dir", "dropin_dir", "keep_backups", "log_level", "allowed_groups", "service",
                            "socket_unit", "socket", "stop_timeout_sec", "start_timeout_sec", "health_timeout_sec",
                            "grace_sec", "smoke_command", "dockerinit_pairing", "monitor_interval_sec",
                            "monitor_failures", "max_restarts_per_hour", "expect_containers_back", "version_args",
                            "engine", "mode"})
        EXPECT_NE(text.find(std::string("\n") + key + " "), std::string::npos) << key;
}

TEST(ConfigParse, ReadsEveryKey)
{
    Config config = parseConfig(R"(
[agent]
bus = "unix:path=/tmp/bus"
state_dir = "/srv/armdock"
dropin_dir = "/srv/armdock/in"
keep_backups = 7
log_level = "debug"
allowed_groups = ["adm", 1001]

[docker]
service = "dockerd.service"
socket_unit = ""
socket = "/run/docker.sock"
stop_timeout_sec = 10
start_timeout_sec = 11
health_timeout_sec = 12
grace_sec = 0
smoke_command = ["/usr/bin/docker", "info"]
dockerinit_pairing = false
monitor_interval_sec = 0
monitor_failures = 1
max_restarts_per_hour = 0
expect_containers_back = false
)", "agent.toml");
    EXPECT_EQ(config.agent.bus, "unix:path=/tmp/bus");
    EXPECT_EQ(config.agent.stateDir, "/srv/armdock");
    EXPECT_EQ(config.agent.dropinDir, "/srv/armdock/in");
    EXPECT_EQ(config.agent.keepBackups, 7u);
    EXPECT_EQ(config.agent.logLevel, "debug");
    EXPECT_EQ(config.agent.allowedGroups, (std::vector<std::string>{"adm", "1001"}));
    EXPECT_EQ(config.docker.service, "dockerd.service");
    EXPECT_EQ(config.docker.socketUnit, "");
    EXPECT_EQ(config.docker.socket, "/run/docker.sock");
    EXPECT_EQ(config.docker.stopTimeoutSec, 10u);
    EXPECT_EQ(config.docker.startTimeoutSec, 11u);
    EXPECT_EQ(config.docker.healthTimeoutSec, 12u);
    EXPECT_EQ(config.docker.graceSec, 0u);
    EXPECT_EQ(config.docker.smokeCommand, (std::vector<std::string>{"/usr/bin/docker", "info"}));
    EXPECT_FALSE(config.docker.dockerinitPairing);
    EXPECT_EQ(config.docker.monitorIntervalSec, 0u);
    EXPECT_EQ(config.docker.monitorFailures, 1u);
    EXPECT_EQ(config.docker.maxRestartsPerHour, 0u);
    EXPECT_FALSE(config.docker.expectContainersBack);
    EXPECT_EQ(config.payloads, defaultConfig().payloads);
}

TEST(ConfigParse, PayloadsReplaceTheDefaultList)
{
    Config config = parseConfig(R"(
[[payload]]
name = "dockerd"
path = "/usr/sbin/dockerd"
engine = true

[[payload]]
name = "docker-proxy"
path = "/usr/sbin/docker-proxy"
mode = 0o750
version_args = ["--version"]
)", "agent.toml");
    ASSERT_EQ(config.payloads.size(), 2u);
    EXPECT_EQ(config.payloads[0], (PayloadSpec{"dockerd", "/usr/sbin/dockerd", 0755, {"-v"}, true, std::nullopt, ""}));
    EXPECT_EQ(config.payloads[1], (PayloadSpec{"docker-proxy", "/usr/sbin/docker-proxy", 0750, {"--version"}, false, std::nullopt, ""}));
    EXPECT_EQ(config.findPayload("docker"), nullptr);
    EXPECT_EQ(config.enginePayload().name, "dockerd");
}

TEST(ConfigParse, BusNames)
{
    EXPECT_EQ(parseConfig("[agent]\nbus = \"user\"\n", "agent.toml").agent.bus, "user");
    EXPECT_EQ(parseConfig("[agent]\nbus = \"system\"\n", "agent.toml").agent.bus, "system");
    EXPECT_CONFIG_ERROR("[agent]\nbus = \"session\"\n", "2:7", "agent.bus must be \"system\", \"user\" or a D-Bus address");
}

// A payload's units: the engine's by default, a list of its own, or none.
TEST(PayloadUnits, DefaultToTheEnginesAndUnionInTheOrderNamed)
{
    const Config config = parseConfig("[[payload]]\nname = \"dockerd\"\npath = \"/usr/sbin/dockerd\"\nengine = true\n"
                                      "[[payload]]\nname = \"containerd\"\npath = \"/usr/bin/containerd\"\nunits = [\"containerd.service\"]\n"
                                      "[[payload]]\nname = \"runc\"\npath = \"/usr/sbin/runc\"\nunits = []\n",
                                      "agent.toml");
    EXPECT_FALSE(config.findPayload("dockerd")->units.has_value());
    EXPECT_EQ(config.findPayload("containerd")->units, std::vector<std::string>{"containerd.service"});
    EXPECT_EQ(config.findPayload("runc")->units, std::vector<std::string>{});
    using Units = std::vector<std::string>;
    EXPECT_EQ(config.unitsOf({"dockerd"}), (Units{"docker.socket", "docker.service"}));
    EXPECT_EQ(config.unitsOf({"containerd"}), (Units{"containerd.service"}));
    EXPECT_EQ(config.unitsOf({"runc"}), Units{});
    EXPECT_EQ(config.unitsOf({"containerd", "runc", "dockerd"}), (Units{"containerd.service", "docker.socket", "docker.service"}));
}

TEST(LiveRestore, AutoByDefaultAndEachWordRead)
{
    EXPECT_EQ(parseConfig("", "agent.toml").docker.liveRestore, LiveRestoreMode::Auto);
    EXPECT_EQ(parseConfig("[docker]\nlive_restore = \"require\"\n", "agent.toml").docker.liveRestore, LiveRestoreMode::Require);
    EXPECT_EQ(parseConfig("[docker]\nlive_restore = \"off\"\n", "agent.toml").docker.liveRestore, LiveRestoreMode::Off);
    EXPECT_CONFIG_ERROR("[docker]\nlive_restore = \"always\"\n", "2:16", "docker.live_restore must be \"auto\", \"require\" or \"off\", got \"always\"");
    EXPECT_CONFIG_ERROR("[docker]\nlive_restore = true\n", "2:16", "docker.live_restore must be a string");
}

TEST(HoldSocket, OffByDefaultAndNeedsASocketUnit)
{
    EXPECT_FALSE(parseConfig("", "agent.toml").docker.holdSocket);
    EXPECT_TRUE(parseConfig("[docker]\nhold_socket = true\n", "agent.toml").docker.holdSocket);
    EXPECT_CONFIG_ERROR("[docker]\nsocket_unit = \"\"\nhold_socket = true\n", "3:15", "docker.hold_socket = true needs docker.socket_unit");
    EXPECT_CONFIG_ERROR("[docker]\nhold_socket = \"yes\"\n", "2:15", "docker.hold_socket must be");
}

TEST(PayloadUnits, BadNamesAndRepeatsAreRefused)
{
    const std::string engine = "[[payload]]\nname = \"docker\"\npath = \"/usr/bin/docker\"\nengine = true\n";
    EXPECT_CONFIG_ERROR(engine + "units = [\"containerd\"]\n", "5:9", "payload[0].units must list unit names ending in \".service\" or \".socket\"");
    EXPECT_CONFIG_ERROR(engine + "units = [\"a b.service\"]\n", "5:9", "got \"a b.service\"");
    EXPECT_CONFIG_ERROR(engine + "units = [\"docker.service\", \"docker.service\"]\n", "5:9", "names \"docker.service\" twice");
    EXPECT_CONFIG_ERROR(engine + "units = \"docker.service\"\n", "5:9", "payload[0].units");
}

// A payload's component: its name among /version's Components, probed with --version unless told.
TEST(PayloadComponent, ReadWithVersionArgsByDefault)
{
    const Config config = parseConfig("[[payload]]\nname = \"dockerd\"\npath = \"/usr/sbin/dockerd\"\nengine = true\n"
                                      "[[payload]]\nname = \"containerd\"\npath = \"/usr/bin/containerd\"\ncomponent = \"containerd\"\n"
                                      "[[payload]]\nname = \"init\"\npath = \"/usr/bin/docker-init\"\ncomponent = \"docker-init\"\n"
                                      "version_args = [\"-v\"]\n"
                                      "[[payload]]\nname = \"docker-proxy\"\npath = \"/usr/sbin/docker-proxy\"\n",
                                      "agent.toml");
    EXPECT_EQ(config.findPayload("dockerd")->component, "");
    EXPECT_EQ(config.findPayload("containerd")->component, "containerd");
    EXPECT_EQ(config.findPayload("containerd")->versionArgs, std::vector<std::string>{"--version"});
    EXPECT_EQ(config.findPayload("init")->versionArgs, std::vector<std::string>{"-v"});
    EXPECT_EQ(config.findPayload("docker-proxy")->component, "");
    EXPECT_TRUE(config.findPayload("docker-proxy")->versionArgs.empty());
}

TEST(PayloadComponent, BadValuesAreRefused)
{
    const std::string engine = "[[payload]]\nname = \"docker\"\npath = \"/usr/bin/docker\"\nengine = true\n";
    const std::string runc = "[[payload]]\nname = \"runc\"\npath = \"/usr/sbin/runc\"\n";
    EXPECT_CONFIG_ERROR(engine + "component = \"Engine\"\n", "5:13",
                        "payload[0].component: the engine payload is checked against /version's \"Version\"");
    EXPECT_CONFIG_ERROR(engine + runc + "component = \"\"\n", "8:13", "payload[1].component must name an entry of /version's Components");
    EXPECT_CONFIG_ERROR(engine + runc + "component = \"run c\"\n", "8:13", "got \"run c\"");
    EXPECT_CONFIG_ERROR(engine + runc + "component = 1\n", "8:13", "payload[1].component must be a string");
    EXPECT_CONFIG_ERROR(engine + runc + "component = \"runc\"\nversion_args = []\n", "9:16",
                        "payload[1].version_args must not be empty for a payload with a component");
    EXPECT_CONFIG_ERROR(engine + runc + "component = \"runc\"\n[[payload]]\nname = \"runc2\"\npath = \"/usr/bin/runc\"\ncomponent = \"runc\"\n",
                        "12:13", "payload[2].component \"runc\" is compared for an earlier payload");
}

TEST(ConfigErrors, TomlSyntax)
{
    EXPECT_CONFIG_ERROR("[agent]\nkeep_backups = = 3\n", "2:16", "could not determine value type");
}

TEST(ConfigErrors, UnknownKeysAtEveryLevel)
{
    EXPECT_CONFIG_ERROR("colour = 1\n", "1:1", "unknown key colour at the top level");
    EXPECT_CONFIG_ERROR("[agent]\nbus = \"user\"\nkeep_backup = 3\n", "3:1",
                        "unknown key agent.keep_backup in [agent] (known keys: bus, state_dir");
    EXPECT_CONFIG_ERROR("[docker]\n  stop_timeout = 3\n", "2:3", "unknown key docker.stop_timeout in [docker]");
    EXPECT_CONFIG_ERROR("[[payload]]\nname = \"docker\"\npath = \"/usr/bin/docker\"\nengine = true\nowner = \"root\"\n",
                        "5:1", "unknown key payload[0].owner");
    EXPECT_CONFIG_ERROR("[dockr]\nservice = \"x\"\n", "1:2", "unknown key dockr at the top level");
}

TEST(ConfigErrors, WrongTypes)
{
    EXPECT_CONFIG_ERROR("[agent]\nkeep_backups = \"3\"\n", "2:16", "agent.keep_backups must be an integer from 1 to 1000, got a string");
    EXPECT_CONFIG_ERROR("[agent]\nbus = 1\n", "2:7", "agent.bus must be a string, got an integer");
    EXPECT_CONFIG_ERROR("[docker]\ndockerinit_pairing = \"yes\"\n", "2:22", "docker.dockerinit_pairing must be true or false, got a string");
    EXPECT_CONFIG_ERROR("[docker]\ngrace_sec = 1.5\n", "2:13", "docker.grace_sec must be an integer from 0 to 86400, got a float");
    EXPECT_CONFIG_ERROR("[docker]\nsmoke_command = \"/usr/bin/docker info\"\n", "2:17", "docker.smoke_command must be an array of strings, got a string");
    EXPECT_CONFIG_ERROR("[docker]\nsmoke_command = [\"/bin/true\", 1]\n", "2:31", "docker.smoke_command[1] must be a string, got an integer");
    EXPECT_CONFIG_ERROR("agent = 3\n", "1:9", "agent must be a table ([agent]), got an integer");
    EXPECT_CONFIG_ERROR("[agent]\nallowed_groups = \"adm\"\n", "2:18", "agent.allowed_groups must be an array of group names or gids, got a string");
    EXPECT_CONFIG_ERROR("[agent]\nallowed_groups = [\"adm\", \"\"]\n", "2:26", "agent.allowed_groups[1] must be a group name or a gid, got an empty string");
    EXPECT_CONFIG_ERROR("[agent]\nallowed_groups = [-1]\n", "2:19", "agent.allowed_groups[0] must be a group name or a gid from 0 to 4294967294, got -1");
    EXPECT_CONFIG_ERROR("payload = \"docker\"\n", "1:11", "payload must be a list of [[payload]] tables, got a string");
    EXPECT_CONFIG_ERROR("[[payload]]\nname = \"docker\"\npath = \"/usr/bin/docker\"\nengine = true\nmode = \"0755\"\n",
                        "5:8", "payload[0].mode must be an integer such as 0o755, got a string");
}

TEST(ConfigErrors, ImpossibleNumbers)
{
    EXPECT_CONFIG_ERROR("[agent]\nkeep_backups = 0\n", "2:16", "agent.keep_backups must be an integer from 1 to 1000, got 0");
    EXPECT_CONFIG_ERROR("[docker]\nstop_timeout_sec = 0\n", "2:20", "docker.stop_timeout_sec must be an integer from 1 to 86400, got 0");
    EXPECT_CONFIG_ERROR("[docker]\nstart_timeout_sec = -5\n", "2:21", "docker.start_timeout_sec must be an integer from 1 to 86400, got -5");
    EXPECT_CONFIG_ERROR("[docker]\nhealth_timeout_sec = 0\n", "2:22", "docker.health_timeout_sec must be an integer from 1 to 86400, got 0");
    EXPECT_CONFIG_ERROR("[docker]\ngrace_sec = -1\n", "2:13", "docker.grace_sec must be an integer from 0 to 86400, got -1");
    EXPECT_CONFIG_ERROR("[docker]\nmonitor_failures = 0\n", "2:20", "docker.monitor_failures must be an integer from 1 to 1000, got 0");
    EXPECT_CONFIG_ERROR("[docker]\nmonitor_interval_sec = 99999999999\n", "2:24", "docker.monitor_interval_sec must be an integer from 0 to 86400, got 99999999999");
    EXPECT_CONFIG_ERROR("[docker]\nmax_restarts_per_hour = -1\n", "2:25", "docker.max_restarts_per_hour must be an integer from 0 to 1000, got -1");
    // Zero is meaningful here.
    Config config = parseConfig("[docker]\ngrace_sec = 0\nmonitor_interval_sec = 0\n", "agent.toml");
    EXPECT_EQ(config.docker.graceSec, 0u);
    EXPECT_EQ(config.docker.monitorIntervalSec, 0u);
}

TEST(ConfigHooks, EachHookIsAProgramAndItsArgumentsWithOneTimeout)
{
    const Config config = parseConfig("[hooks]\nbefore_stop = [\"/usr/local/sbin/drain\", \"--wait\"]\n"
                                      "after_success = [\"/usr/local/sbin/undrain\"]\nafter_rollback = [\"/usr/local/sbin/undrain\", \"--alert\"]\n"
                                      "timeout_sec = 30\n",
                                      "agent.toml");
    EXPECT_EQ(config.hooks.beforeStop, (std::vector<std::string>{"/usr/local/sbin/drain", "--wait"}));
    EXPECT_EQ(config.hooks.afterSuccess, (std::vector<std::string>{"/usr/local/sbin/undrain"}));
    EXPECT_EQ(config.hooks.afterRollback, (std::vector<std::string>{"/usr/local/sbin/undrain", "--alert"}));
    EXPECT_EQ(config.hooks.timeoutSec, 30u);
    const Config none = defaultConfig();
    EXPECT_TRUE(none.hooks.beforeStop.empty() && none.hooks.afterSuccess.empty() && none.hooks.afterRollback.empty());
    EXPECT_EQ(none.hooks.timeoutSec, 60u);
}

TEST(ConfigErrors, BadHooks)
{
    EXPECT_CONFIG_ERROR("[hooks]\nbefore_stop = [\"drain\"]\n", "2:15", "hooks.before_stop[0] must be an absolute path to the program, got \"drain\"");
    EXPECT_CONFIG_ERROR("[hooks]\nafter_success = \"/usr/local/sbin/undrain\"\n", "2:17", "hooks.after_success must be an array of strings");
    EXPECT_CONFIG_ERROR("[hooks]\nafter_rollback = [\"/bin/true\", 3]\n", "2:32", "hooks.after_rollback[1] must be a string");
    EXPECT_CONFIG_ERROR("[hooks]\ntimeout_sec = 0\n", "2:15", "hooks.timeout_sec must be an integer from 1 to 86400, got 0");
    EXPECT_CONFIG_ERROR("[hooks]\nbefore_start = []\n", "2:1", "unknown key hooks.before_start in [hooks]");
    EXPECT_CONFIG_ERROR("hooks = 1\n", "1:9", "hooks must be a table ([hooks])");
}

TEST(ConfigMetrics, AFileEndingInPromOrNone)
{
    EXPECT_EQ(defaultConfig().agent.metricsFile, "/var/lib/prometheus/node-exporter/armdock.prom");
    EXPECT_EQ(parseConfig("[agent]\nmetrics_file = \"/srv/textfile/armdock.prom\"\n", "agent.toml").agent.metricsFile, "/srv/textfile/armdock.prom");
    EXPECT_TRUE(parseConfig("[agent]\nmetrics_file = \"\"\n", "agent.toml").agent.metricsFile.empty());
}

TEST(ConfigErrors, BadMetricsFile)
{
    EXPECT_CONFIG_ERROR("[agent]\nmetrics_file = \"armdock.prom\"\n", "2:16", "agent.metrics_file must be an absolute path or \"\" (no metrics)");
    EXPECT_CONFIG_ERROR("[agent]\nmetrics_file = \"/var/lib/prometheus/node-exporter/armdock.txt\"\n", "2:16",
                        "agent.metrics_file must name a file ending in \".prom\"");
    EXPECT_CONFIG_ERROR("[agent]\nmetrics_file = \"/var/lib/prometheus/node-exporter/.prom\"\n", "2:16", "ending in \".prom\"");
    EXPECT_CONFIG_ERROR("[agent]\nmetrics_file = 1\n", "2:16", "agent.metrics_file must be a string");
}

TEST(ConfigDpkg, OwnedModeAndRoot)
{
    EXPECT_EQ(defaultConfig().agent.dpkgOwned, DpkgOwnedMode::Refuse);
    EXPECT_EQ(defaultConfig().agent.dpkgRoot, "/");
    EXPECT_EQ(parseConfig("[agent]\ndpkg_owned = \"divert\"\n", "agent.toml").agent.dpkgOwned, DpkgOwnedMode::Divert);
    EXPECT_EQ(parseConfig("[agent]\ndpkg_owned = \"ignore\"\ndpkg_root = \"/srv/root\"\n", "agent.toml").agent.dpkgRoot, "/srv/root");
}

TEST(ConfigErrors, BadDpkg)
{
    EXPECT_CONFIG_ERROR("[agent]\ndpkg_owned = \"keep\"\n", "2:14", "agent.dpkg_owned must be \"refuse\", \"divert\" or \"ignore\", got \"keep\"");
    EXPECT_CONFIG_ERROR("[agent]\ndpkg_owned = true\n", "2:14", "agent.dpkg_owned must be a string");
    EXPECT_CONFIG_ERROR("[agent]\ndpkg_root = \"srv\"\n", "2:13", "agent.dpkg_root must be an absolute path, got \"srv\"");
}

TEST(ConfigTrust, KeysRequireSignatureAndMinVersion)
{
    const Config defaults = defaultConfig();
    EXPECT_EQ(defaults.trust.keys, "/etc/armdock/trusted.d");
    EXPECT_FALSE(defaults.trust.requireSignature);
    EXPECT_EQ(defaults.trust.minVersion, "");
    const Config c = parseConfig("[trust]\nkeys = \"/srv/keys\"\nrequire_signature = true\nmin_version = \"20.10.24+dfsg1\"\n", "agent.toml");
    EXPECT_EQ(c.trust.keys, "/srv/keys");
    EXPECT_TRUE(c.trust.requireSignature);
    EXPECT_EQ(c.trust.minVersion, "20.10.24+dfsg1");
}

TEST(ConfigErrors, BadTrust)
{
    EXPECT_CONFIG_ERROR("[trust]\nkeys = \"trusted.d\"\n", "2:8", "trust.keys must be an absolute path, got \"trusted.d\"");
    EXPECT_CONFIG_ERROR("[trust]\nrequire_signature = \"yes\"\n", "2:21", "trust.require_signature must be true or false");
    EXPECT_CONFIG_ERROR("[trust]\nmin_version = \"v24\"\n", "2:15", "trust.min_version must be a version such as \"24.0.5\"");
    EXPECT_CONFIG_ERROR("[trust]\nmin_version = 24\n", "2:15", "trust.min_version must be a string");
    EXPECT_CONFIG_ERROR("[trust]\nkey = \"/etc/armdock/trusted.d\"\n", "2:1", "unknown key trust.key in [trust]");
}

TEST(ConfigErrors, RelativePaths)
{
    EXPECT_CONFIG_ERROR("[agent]\nstate_dir = \"var/lib/armdock\"\n", "2:13", "agent.state_dir must be an absolute path, got \"var/lib/armdock\"");
    EXPECT_CONFIG_ERROR("[agent]\ndropin_dir = \"incoming\"\n", "2:14", "agent.dropin_dir must be an absolute path, got \"incoming\"");
    EXPECT_CONFIG_ERROR("[docker]\nsocket = \"docker.sock\"\n", "2:10", "docker.socket must be an absolute path, got \"docker.sock\"");
    EXPECT_CONFIG_ERROR("[docker]\nsmoke_command = [\"docker\", \"info\"]\n", "2:17", "docker.smoke_command[0] must be an absolute path");
    EXPECT_CONFIG_ERROR("[[payload]]\nname = \"docker\"\npath = \"usr/bin/docker\"\nengine = true\n", "3:8",
                        "payload[0].path must be an absolute path, got \"usr/bin/docker\"");
    EXPECT_CONFIG_ERROR("[[payload]]\nname = \"docker\"\npath = \"/usr/bin/\"\nengine = true\n", "3:8",
                        "payload[0].path must name a file, got \"/usr/bin/\"");
}

TEST(ConfigErrors, NamesAndLevels)
{
    EXPECT_CONFIG_ERROR("[agent]\nlog_level = \"verbose\"\n", "2:13", "agent.log_level must be one of trace, debug, info, warning, error, got \"verbose\"");
    EXPECT_CONFIG_ERROR("[docker]\nservice = \"\"\n", "2:11", "docker.service must name the engine's unit");
    EXPECT_CONFIG_ERROR("[docker]\nservice = \"docker\"\n", "2:11", "docker.service must be a unit name ending in \".service\", got \"docker\"");
    EXPECT_CONFIG_ERROR("[docker]\nsocket_unit = \"docker.service\"\n", "2:15", "docker.socket_unit must be a unit name ending in \".socket\"");
}

TEST(ConfigErrors, PayloadList)
{
    EXPECT_CONFIG_ERROR("payload = []\n", "1:11", "payload must list at least one [[payload]]");
    EXPECT_CONFIG_ERROR("[[payload]]\nname = \"docker\"\npath = \"/usr/bin/docker\"\n", "1:1",
                        "payload: exactly one payload must have engine = true");
    EXPECT_CONFIG_ERROR(
        "[[payload]]\nname = \"docker\"\npath = \"/usr/bin/docker\"\nengine = true\n"
        "[[payload]]\nname = \"dockerd\"\npath = \"/usr/bin/dockerd\"\nengine = true\n",
        "8:10", "payload[1].engine: only one payload may have engine = true (the first is at line 4)");
    EXPECT_CONFIG_ERROR(
        "[[payload]]\nname = \"docker\"\npath = \"/usr/bin/docker\"\nengine = true\n"
        "[[payload]]\nname = \"docker\"\npath = \"/usr/bin/docker2\"\n",
        "6:8", "payload[1].name \"docker\" is used by an earlier payload");
    EXPECT_CONFIG_ERROR(
        "[[payload]]\nname = \"docker\"\npath = \"/usr/bin/docker\"\nengine = true\n"
        "[[payload]]\nname = \"docker2\"\npath = \"/usr/bin/./docker\"\n",
        "7:8", "payload[1].path \"/usr/bin/./docker\" is the target of an earlier payload");
    EXPECT_CONFIG_ERROR("[[payload]]\npath = \"/usr/bin/docker\"\nengine = true\n", "1:1",
                        "payload[0] has no name; add name = \"docker\"");
    EXPECT_CONFIG_ERROR("[[payload]]\nname = \"docker\"\nengine = true\n", "1:1",
                        "payload[0] has no path; add path = \"/usr/bin/docker\"");
    EXPECT_CONFIG_ERROR("[[payload]]\nname = \"../docker\"\npath = \"/usr/bin/docker\"\nengine = true\n", "2:8",
                        "payload[0].name must be letters, digits");
    EXPECT_CONFIG_ERROR("[[payload]]\nname = \"docker\"\npath = \"/usr/bin/docker\"\nengine = true\nversion_args = []\n",
                        "5:16", "payload[0].version_args must not be empty for the engine payload");
}

TEST(ConfigErrors, Modes)
{
    const std::string head = "[[payload]]\nname = \"docker\"\npath = \"/usr/bin/docker\"\nengine = true\n";
    EXPECT_CONFIG_ERROR(head + "mode = 0o775\n", "5:8", "payload[0].mode 0o775 lets group or others write the file; use 0o755");
    EXPECT_CONFIG_ERROR(head + "mode = 755\n", "5:8", "(write modes in octal: 0o755, not 755)");
    EXPECT_CONFIG_ERROR(head + "mode = 0o17777\n", "5:8", "payload[0].mode must be a file mode from 0o0 to 0o7777");
    EXPECT_EQ(parseConfig(head + "mode = 0o700\n", "agent.toml").payloads[0].mode, 0700u);
    EXPECT_EQ(parseConfig(head + "mode = 493\n", "agent.toml").payloads[0].mode, 0755u);
}

TEST(ConfigLoad, FileErrorsNameTheFile)
{
    TempDir dir;
    fs::path file = dir.path() / "agent.toml";
    writeText(file, "[agent]\nkeep_backups = 0\n");
    try {
        loadConfig(file);
        FAIL() << "no error";
    } catch (const ConfigError& error) {
        EXPECT_EQ(std::string(error.what()).rfind(file.string() + ":2:16: agent.keep_backups", 0), 0u) << error.what();
    }
    try {
        loadConfig(dir.path());
        FAIL() << "no error";
    } catch (const ConfigError& error) {
        EXPECT_EQ(std::string(error.what()), dir.path().string() + ": cannot read it (Is a directory)");
    }
}

TEST(ConfigLoad, ReadsAFile)
{
    TempDir dir;
    fs::path file = dir.path() / "agent.toml";
    writeText(file, "[agent]\nkeep_backups = 5\n");
    Config config = loadConfig(file);
    EXPECT_EQ(config.sourceFile, file);
    EXPECT_EQ(config.agent.keepBackups, 5u);
}

TEST(StateDir, CreatedWithMode0700)
{
    TempDir dir;
    Config config = defaultConfig();
    config.agent.stateDir = dir.path() / "a" / "state";
    checkStateDirUsable(config);
    struct stat st {};
    ASSERT_EQ(::stat(config.agent.stateDir.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    EXPECT_TRUE(fs::is_empty(config.agent.stateDir)) << "the write probe must be removed";
    checkStateDirUsable(config);  // an existing folder is fine
}

TEST(StateDir, RefusedWhenItCannotBeCreatedOrIsAFile)
{
    TempDir dir;
    writeText(dir.path() / "file", "x");
    Config config = defaultConfig();
    config.sourceFile = "/etc/armdock/agent.toml";
    config.agent.stateDir = dir.path() / "file" / "state";
    try {
        checkStateDirUsable(config);
        FAIL() << "no error";
    } catch (const ConfigError& error) {
        std::string message = error.what();
        EXPECT_EQ(message.rfind("/etc/armdock/agent.toml: agent.state_dir " + config.agent.stateDir.string()
                                    + ": cannot create " + config.agent.stateDir.string() + " (Not a directory)", 0),
                  0u) << message;
    }
    config.agent.stateDir = dir.path() / "file";
    try {
        checkStateDirUsable(config);
        FAIL() << "no error";
    } catch (const ConfigError& error) {
        EXPECT_NE(std::string(error.what()).find((dir.path() / "file").string() + ": it is not a folder"),
                  std::string::npos) << error.what();
    }
}

TEST(StateDir, RefusalNamesWhereTheFileSetIt)
{
    TempDir dir;
    writeText(dir.path() / "file", "x");
    const fs::path stateDir = dir.path() / "file" / "state";
    Config config = parseConfig("[agent]\nstate_dir = \"" + stateDir.string() + "\"\n", "/etc/armdock/agent.toml");
    EXPECT_EQ(config.agent.stateDirPosition.text, "/etc/armdock/agent.toml:2:13");
    try {
        checkStateDirUsable(config);
        FAIL() << "no error";
    } catch (const ConfigError& error) {
        EXPECT_EQ(std::string(error.what()).rfind("/etc/armdock/agent.toml:2:13: agent.state_dir " + stateDir.string()
                                                      + ": cannot create ", 0),
                  0u) << error.what();
    }
}

TEST(DropinDir, MadeWithMode0700WhenMissing)
{
    TempDir dir;
    Config config = defaultConfig();
    config.agent.dropinDir = dir.path() / "state" / "incoming";
    EXPECT_EQ(createDropinDir(config), "");
    for (const auto& folder : {dir.path() / "state", config.agent.dropinDir}) {
        struct stat st {};
        ASSERT_EQ(::stat(folder.c_str(), &st), 0) << folder;
        EXPECT_TRUE(S_ISDIR(st.st_mode)) << folder;
        EXPECT_EQ(st.st_mode & 07777, 0700u) << folder;
    }
}

TEST(DropinDir, AnExistingFolderIsLeftAsItIs)
{
    TempDir dir;
    Config config = defaultConfig();
    config.agent.dropinDir = dir.path() / "incoming";
    fs::create_directory(config.agent.dropinDir);
    ::chmod(config.agent.dropinDir.c_str(), 0750);
    writeText(config.agent.dropinDir / "docker", "waiting");
    EXPECT_EQ(createDropinDir(config), "");
    struct stat st {};
    ASSERT_EQ(::stat(config.agent.dropinDir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0750u);
    EXPECT_TRUE(fs::exists(config.agent.dropinDir / "docker"));
}

TEST(DropinDir, AWarningNamesTheFolderWhyAndWhatToDo)
{
    TempDir dir;
    writeText(dir.path() / "file", "x");
    Config config = defaultConfig();
    config.agent.dropinDir = dir.path() / "file" / "incoming";
    const std::string blocked = createDropinDir(config);
    EXPECT_EQ(blocked.rfind("agent.dropin_dir " + config.agent.dropinDir.string() + ": cannot create "
                                + config.agent.dropinDir.string() + " (Not a directory)", 0),
              0u) << blocked;
    EXPECT_NE(blocked.find("systemctl reload armdock-agent"), std::string::npos) << blocked;
    config.agent.dropinDir = dir.path() / "file";
    const std::string notAFolder = createDropinDir(config);
    EXPECT_NE(notAFolder.find((dir.path() / "file").string() + ": it is not a folder"), std::string::npos) << notAFolder;
}

}  // namespace
}  // namespace armdock
