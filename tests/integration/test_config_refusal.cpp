// A broken config as the operator meets it through systemd: the agent's unit
// (with the shipped unit's Restart=on-failure and RestartPreventExitStatus=78)
// is started on a config with one fault of each class, and must fail at once
// with exit status 78 (EX_CONFIG), not be restarted, say FILE:LINE:COLUMN and
// the key on its stderr (the unit's log file: the sandbox has no journald),
// and leave the payloads and the running Docker alone. Then a broken config
// given to a running agent through `systemctl --user reload` is refused and
// the old one stays in force. One sandbox with a real dockerd serves every
// case.
#include <fstream>
#include <sstream>

#include "agent_sandbox_fixture.hpp"

namespace armdock::test {
namespace {

constexpr const char* agentService = "armdock-agent.service";
// The lines of units/armdock-agent.service that decide what a config error does.
constexpr const char* shippedRestartLines = "Restart=on-failure\nRestartSec=1\nRestartPreventExitStatus=78\n";

// Everything that must not change: payload hashes and Docker's main PID.
struct HostSnapshot {
    std::string dockerSha, dockerinitSha;
    pid_t dockerPid = 0;
    bool operator==(const HostSnapshot&) const = default;
};

std::ostream& operator<<(std::ostream& out, const HostSnapshot& s)
{
    return out << "{docker " << s.dockerSha << ", dockerinit " << s.dockerinitSha << ", dockerd pid " << s.dockerPid
               << "}";
}

struct BrokenConfig {
    const char* name;
    std::map<std::string, std::string> set;  // section.key -> raw TOML (@DIR@: the sandbox folder)
    std::string extraToml;                   // appended ([[payload]]s); @ENGINE@: the engine's path
    const char* line;    // the text of the line the error must point at (after the substitutions)
    const char* token;   // where on that line: its column is the one reported
    const char* words;   // what the message must say besides the position (the key)
};

void PrintTo(const BrokenConfig& c, std::ostream* out)
{
    *out << c.name;
}

class ConfigRefusalTest : public ::testing::Test {
protected:
    static void SetUpTestSuite()
    {
        if (sandbox || !setupError.empty())
            return;
        try {
            sandbox = std::make_unique<Sandbox>();
        } catch (const std::exception& e) {
            setupError = e.what();
        }
    }

public:
    static void stopAll() { sandbox.reset(); }

protected:
    void SetUp() override
    {
        ASSERT_TRUE(sandbox) << "sandbox start failed: " << setupError;
        ASSERT_TRUE(sandbox->ping()) << "dockerd of the sandbox does not answer";
        // A fresh unit log for each case, and no failed state left by the last one.
        fs::remove(sandbox->agentLog());
        sandbox->systemctl({"stop", agentService});
        sandbox->systemctl({"reset-failed", agentService});
    }

    void TearDown() override
    {
        if (HasFailure())
            std::cerr << "---- unit log ----\n" << unitLog() << "\n------------------\n";
    }

    static std::string substitute(std::string text)
    {
        for (auto [mark, value] : {std::pair<std::string, std::string>{"@ENGINE@", sandbox->payloadPath("docker").string()},
                                   {"@DIR@", sandbox->dir().string()}}) {
            for (auto at = text.find(mark); at != std::string::npos; at = text.find(mark, at + value.size()))
                text.replace(at, mark.size(), value);
        }
        return text;
    }

    static fs::path writeConfig(const std::map<std::string, std::string>& set, const std::string& extraToml)
    {
        std::map<std::string, std::string> settings{{"docker.health_timeout_sec", "10"}, {"docker.grace_sec", "1"}};
        for (const auto& [key, value] : set)
            settings[key] = substitute(value);
        return sandbox->writeAgentConfig(substitute(extraToml), settings);
    }

    // "FILE:LINE:COLUMN" of `token` on the last line of the file that is
    // `line` (the broken lines come after the sandbox's own).
    static std::string positionOf(const fs::path& file, const std::string& line, const std::string& token)
    {
        std::istringstream text(readFile(file));
        std::string current, found;
        for (int number = 1; std::getline(text, current); ++number) {
            auto column = current.find(token);
            if (current == line && column != std::string::npos)
                found = file.string() + ":" + std::to_string(number) + ":" + std::to_string(column + 1);
        }
        if (found.empty())
            ADD_FAILURE() << "the test's config has no line \"" << line << "\" with \"" << token << "\":\n"
                          << readFile(file);
        return found;
    }

    static HostSnapshot snapshot()
    {
        return HostSnapshot{sha256Of(sandbox->payloadPath("docker")), sha256Of(sandbox->payloadPath("dockerinit")),
                            sandbox->dockerMainPid()};
    }

    // `systemctl --user show -p NAME` of the agent's unit.
    static std::string unitProperty(const std::string& name)
    {
        auto shown = sandbox->systemctl({"show", "-p", name, "--value", agentService});
        std::string value = shown.output;
        while (!value.empty() && (value.back() == '\n' || value.back() == '\r'))
            value.pop_back();
        return value;
    }

    static std::string unitLog()
    {
        return sandbox && fs::exists(sandbox->agentLog()) ? readFile(sandbox->agentLog()) : "";
    }

    static inline std::unique_ptr<Sandbox> sandbox;
    static inline std::string setupError;
};

class StopSharedSandbox : public ::testing::Environment {
public:
    void TearDown() override { ConfigRefusalTest::stopAll(); }
};
[[maybe_unused]] ::testing::Environment* const stopSharedSandbox = ::testing::AddGlobalTestEnvironment(new StopSharedSandbox);

class ConfigRefusedAtStart : public ConfigRefusalTest, public ::testing::WithParamInterface<BrokenConfig> {};

TEST_P(ConfigRefusedAtStart, UnitFailsWithExConfigAndNamesThePlace)
{
    const auto& c = GetParam();
    if (std::string(c.name) == "StateFolderNotWritable")  // its parent is a file: not even root can create it
        writeFile(sandbox->dir() / "blocker", "a file where the state folder's parent should be\n");
    const fs::path config = writeConfig(c.set, c.extraToml);
    const std::string position = positionOf(config, substitute(c.line), c.token);
    sandbox->agentUnit(agentBinary(), config, {}, shippedRestartLines);
    const HostSnapshot before = snapshot();

    auto start = sandbox->systemctl({"start", agentService});
    EXPECT_NE(start.exitCode, 0) << start.output;

    // What `systemctl status` is made of: the unit failed because its main
    // process exited with 78, and RestartPreventExitStatus kept it down.
    EXPECT_EQ(unitProperty("ActiveState"), "failed");
    EXPECT_EQ(unitProperty("Result"), "exit-code");
    EXPECT_EQ(unitProperty("ExecMainStatus"), "78");
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // past RestartSec=1
    EXPECT_EQ(unitProperty("NRestarts"), "0");
    EXPECT_EQ(sandbox->activeState(agentService), "failed");
    auto status = sandbox->systemctl({"status", agentService});
    EXPECT_EQ(status.exitCode, 3) << status.output;  // LSB: "program is not running"
    EXPECT_NE(status.output.find("status=78"), std::string::npos) << status.output;

    // The unit's stderr names the file, the line and column, and the key.
    const std::string log = unitLog();
    EXPECT_NE(log.find("armdock-agent: " + position + ": "), std::string::npos)
        << "expected " << position << " in:\n" << log;
    const std::string words = substitute(c.words);
    EXPECT_NE(log.find(words), std::string::npos) << "expected \"" << words << "\" in:\n" << log;

    // Nothing was touched: same payloads, same dockerd, still answering.
    EXPECT_EQ(snapshot(), before);
    EXPECT_TRUE(sandbox->ping());
    if (std::string(c.name) == "StateFolderNotWritable") {
        EXPECT_TRUE(fs::is_regular_file(sandbox->dir() / "blocker"));
    }
}

const BrokenConfig brokenConfigs[] = {
    {"UnknownKey", {{"agent.keep_backup", "3"}}, "", "keep_backup = 3", "keep_backup",
     "unknown key agent.keep_backup in [agent]"},
    {"WrongType", {{"docker.stop_timeout_sec", "\"90\""}}, "", "stop_timeout_sec = \"90\"", "\"90\"",
     "docker.stop_timeout_sec must be an integer from 1 to 86400, got a string"},
    {"NegativeTimeout", {{"docker.health_timeout_sec", "-5"}}, "", "health_timeout_sec = -5", "-5",
     "docker.health_timeout_sec must be an integer from 1 to 86400, got -5"},
    {"KeepBackupsZero", {{"agent.keep_backups", "0"}}, "", "keep_backups = 0", "0",
     "agent.keep_backups must be an integer from 1 to 1000, got 0"},
    {"TwoPayloadsOnePath", {}, "[[payload]]\nname = \"docker-copy\"\npath = \"@ENGINE@\"\n", "path = \"@ENGINE@\"",
     "\"", "payload[2].path \"@ENGINE@\" is the target of an earlier payload"},
    {"RelativePayloadPath", {}, "[[payload]]\nname = \"docker-proxy\"\npath = \"usr/bin/docker-proxy\"\n",
     "path = \"usr/bin/docker-proxy\"", "\"", "payload[2].path must be an absolute path, got \"usr/bin/docker-proxy\""},
    {"StateFolderNotWritable", {{"agent.state_dir", "\"@DIR@/blocker/state\""}}, "",
     "state_dir = \"@DIR@/blocker/state\"", "\"", "agent.state_dir @DIR@/blocker/state: cannot create"},
};

INSTANTIATE_TEST_SUITE_P(EachClass, ConfigRefusedAtStart, ::testing::ValuesIn(brokenConfigs),
                         [](const auto& info) { return std::string(info.param.name); });

// The control: the same harness with a good config gets a running agent, so
// the refusals above are the config's doing.
TEST_F(ConfigRefusalTest, GoodConfigStartsTheUnit)
{
    const fs::path config = writeConfig({}, "");
    sandbox->agentUnit(agentBinary(), config, {}, shippedRestartLines);
    auto start = sandbox->systemctl({"start", agentService});
    ASSERT_EQ(start.exitCode, 0) << start.output;
    EXPECT_EQ(unitProperty("ActiveState"), "active");
    EXPECT_TRUE(AgentClient::waitForAgent(sandbox->busAddress()));
}

// A running agent given a broken config by `systemctl reload` keeps running
// on the old one: same main PID, the refusal with FILE:LINE:COLUMN in its
// log, and an upgrade afterwards goes to the old config's engine path (the
// broken file also moved the engine elsewhere).
TEST_F(ConfigRefusalTest, BrokenConfigOnReloadKeepsTheOldOne)
{
    const fs::path config = writeConfig({}, "");
    const std::string goodText = readFile(config);
    sandbox->agentUnit(agentBinary(), config, {}, shippedRestartLines);
    ASSERT_EQ(sandbox->systemctl({"start", agentService}).exitCode, 0);
    ASSERT_TRUE(AgentClient::waitForAgent(sandbox->busAddress())) << unitLog();
    AgentClient client(sandbox->busAddress());
    const pid_t agentPid = sandbox->mainPid(agentService);
    const HostSnapshot before = snapshot();

    const fs::path elsewhere = sandbox->dir() / "elsewhere-dockerd";
    std::string broken = goodText;
    const std::string enginePath = "path = \"" + sandbox->payloadPath("docker").string() + "\"";
    ASSERT_NE(broken.find(enginePath), std::string::npos);
    broken.replace(broken.find(enginePath), enginePath.size(), "path = \"" + elsewhere.string() + "\"");
    broken.replace(broken.find("[agent]\n"), 8, "[agent]\nkeep_backups = 0\n");
    writeFile(config, broken);
    const std::string position = positionOf(config, "keep_backups = 0", "0");

    auto reload = sandbox->systemctl({"reload", agentService});
    EXPECT_EQ(reload.exitCode, 0) << reload.output;
    ASSERT_TRUE(Sandbox::waitFor([&] { return unitLog().find("config refused") != std::string::npos; },
                                 std::chrono::seconds(10), std::chrono::milliseconds(20)));
    const std::string log = unitLog();
    EXPECT_NE(log.find("config refused, the old one is kept: " + position + ": agent.keep_backups"), std::string::npos)
        << log;
    EXPECT_EQ(sandbox->activeState(agentService), "active");
    EXPECT_EQ(sandbox->mainPid(agentService), agentPid);
    EXPECT_EQ(snapshot(), before);
    EXPECT_EQ(client.property("State"), "idle");

    // The old config is the one in force: the engine goes where it said.
    fs::path engine = sandbox->dir() / "src-after-refused-reload";
    fs::copy_file(sandbox->payloadPath("docker"), engine);
    std::ofstream(engine, std::ios::app | std::ios::binary) << "armdock-after-refused-reload";
    fs::permissions(engine, fs::perms(0755));
    const std::string newSha = sha256Of(engine);
    std::string tx = client.upgrade({{"docker", engine.string()}});
    ASSERT_EQ(client.waitFinished(tx), "success") << client.property("LastError");
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), newSha);
    EXPECT_FALSE(fs::exists(elsewhere));
    EXPECT_TRUE(sandbox->ping());
}

}  // namespace
}  // namespace armdock::test
