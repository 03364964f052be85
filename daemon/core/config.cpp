#include "config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>

#include "fd_io.hpp"
#include "version_order.hpp"

namespace armdock {

namespace {

constexpr unsigned oneDaySec = 86400;
constexpr std::array<std::string_view, 5> logLevels = {"trace", "debug", "info", "warning", "error"};

std::string inQuotes(std::string_view text)
{
    return "\"" + std::string(text) + "\"";
}

template <typename Words>
std::string join(const Words& words)
{
    std::string out;
    for (auto word : words) {
        if (!out.empty())
            out += ", ";
        out += word;
    }
    return out;
}

std::string typeName(const toml::node& node)
{
    switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
    }
}

std::string octal(std::int64_t value)
{
    std::ostringstream out;
    out << "0o" << std::oct << value;
    return out.str();
}

// Reads one parsed document into a Config. Every error names the key by its
// dotted path and carries the position of the offending node, so that an
// administrator can fix the file without guessing.
class ConfigReader {
public:
    explicit ConfigReader(std::string sourceName) : sourceName_(std::move(sourceName)) {}

    Config read(const toml::table& root)
    {
        Config config = defaultConfig();
        config.sourceFile = sourceName_;
        checkKnownKeys(root, "", {"agent", "docker", "payload", "hooks", "trust"});
        if (const toml::table* agent = sectionTable(root, "agent"))
            readAgent(*agent, config.agent);
        if (const toml::table* docker = sectionTable(root, "docker"))
            readDocker(*docker, config.docker);
        if (const toml::node* payloads = root.get("payload"))
            config.payloads = readPayloads(*payloads);
        if (const toml::table* hooks = sectionTable(root, "hooks"))
            readHooks(*hooks, config.hooks);
        if (const toml::table* trust = sectionTable(root, "trust"))
            readTrust(*trust, config.trust);
        return config;
    }

private:
    std::string sourceName_;

    // "FILE:LINE:COLUMN". A node built without a position (never from parsed
    // text) is reported at the top.
    std::string position(const toml::source_region& where) const
    {
        auto line = where.begin.line == 0 ? 1 : where.begin.line;
        auto column = where.begin.column == 0 ? 1 : where.begin.column;
        return sourceName_ + ":" + std::to_string(line) + ":" + std::to_string(column);
    }

    [[noreturn]] void fail(const toml::source_region& where, const std::string& message) const
    {
        throw ConfigError(position(where) + ": " + message);
    }

    static std::string dotted(std::string_view table, std::string_view key)
    {
        return table.empty() ? std::string(key) : std::string(table) + "." + std::string(key);
    }

    void checkKnownKeys(const toml::table& table, std::string_view tableName,
                        std::initializer_list<std::string_view> known) const
    {
        for (auto&& [key, node] : table) {
            if (std::find(known.begin(), known.end(), key.str()) != known.end())
                continue;
            std::string where = tableName.empty() ? "at the top level" : "in [" + std::string(tableName) + "]";
            fail(key.source(), "unknown key " + dotted(tableName, key.str()) + " " + where + " (known keys: "
                                   + join(known) + ")");
        }
    }

    const toml::table* sectionTable(const toml::table& root, std::string_view name) const
    {
        const toml::node* node = root.get(name);
        if (!node)
            return nullptr;
        if (!node->is_table())
            fail(node->source(), std::string(name) + " must be a table ([" + std::string(name) + "]), got "
                                     + typeName(*node));
        return node->as_table();
    }

    void wrongType(const toml::node& node, const std::string& key, std::string_view expected) const
    {
        fail(node.source(), key + " must be " + std::string(expected) + ", got " + typeName(node));
    }

    // table.key into `out` when it is there; of another type: the error says `expected`.
    template <typename T>
    void readScalar(const toml::table& table, const std::string& key, std::string_view tableName, T& out, std::string_view expected) const
    {
        const toml::node* node = table.get(key);
        if (!node)
            return;
        const auto* value = node->as<T>();
        if (!value)
            wrongType(*node, dotted(tableName, key), expected);
        out = value->get();
    }

    void readString(const toml::table& table, const std::string& key, std::string_view tableName, std::string& out) const
    {
        readScalar(table, key, tableName, out, "a string");
    }

    void readBool(const toml::table& table, const std::string& key, std::string_view tableName, bool& out) const
    {
        readScalar(table, key, tableName, out, "true or false");
    }

    // One of the words of E's table (vocabulary.hpp); `allowed` lists them for the message.
    template <typename E>
    void readWord(const toml::table& table, const std::string& key, std::string_view tableName, const std::string& allowed, E& out) const
    {
        const toml::node* node = table.get(key);
        if (!node)
            return;
        std::string word;
        readString(table, key, tableName, word);
        const auto value = fromString<E>(word);
        if (!value)
            fail(node->source(), dotted(tableName, key) + " must be " + allowed + ", got " + inQuotes(word));
        out = *value;
    }

    void readUnsigned(const toml::table& table, const std::string& key, std::string_view tableName, unsigned min,
                      unsigned max, unsigned& out) const
    {
        const toml::node* node = table.get(key);
        if (!node)
            return;
        std::string name = dotted(tableName, key);
        std::string range = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
        if (!node->is_integer())
            wrongType(*node, name, range);
        std::int64_t value = node->as_integer()->get();
        if (value < min || value > max)
            fail(node->source(), name + " must be " + range + ", got " + std::to_string(value));
        out = static_cast<unsigned>(value);
    }

    void readAbsolutePath(const toml::table& table, const std::string& key, std::string_view tableName,
                          std::filesystem::path& out) const
    {
        std::string text;
        readString(table, key, tableName, text);
        const toml::node* node = table.get(key);
        if (!node)
            return;
        std::filesystem::path path(text);
        if (!path.is_absolute())
            fail(node->source(), dotted(tableName, key) + " must be an absolute path, got " + inQuotes(text));
        out = path;
    }

    std::vector<std::string> readStringArray(const toml::node& node, const std::string& key) const
    {
        if (!node.is_array())
            wrongType(node, key, "an array of strings");
        std::vector<std::string> out;
        std::size_t index = 0;
        for (const toml::node& element : *node.as_array()) {
            if (!element.is_string())
                wrongType(element, key + "[" + std::to_string(index) + "]", "a string");
            out.push_back(element.as_string()->get());
            ++index;
        }
        return out;
    }

    void readAgent(const toml::table& table, AgentSection& agent) const
    {
        checkKnownKeys(table, "agent",
                       {"bus", "state_dir", "dropin_dir", "keep_backups", "log_level", "allowed_groups", "metrics_file", "dpkg_owned", "dpkg_root"});
        readBus(table, agent.bus);
        readAbsolutePath(table, "state_dir", "agent", agent.stateDir);
        if (const toml::node* node = table.get("state_dir"))
            agent.stateDirPosition.text = position(node->source());
        readAbsolutePath(table, "dropin_dir", "agent", agent.dropinDir);
        readUnsigned(table, "keep_backups", "agent", 1, 1000, agent.keepBackups);
        readLogLevel(table, agent.logLevel);
        if (const toml::node* node = table.get("allowed_groups"))
            agent.allowedGroups = readGroups(*node);
        readMetricsFile(table, agent.metricsFile);
        readWord(table, "dpkg_owned", "agent", "\"refuse\", \"divert\" or \"ignore\"", agent.dpkgOwned);
        readAbsolutePath(table, "dpkg_root", "agent", agent.dpkgRoot);
    }

    void readMetricsFile(const toml::table& table, std::filesystem::path& file) const
    {
        const toml::node* node = table.get("metrics_file");
        if (!node)
            return;
        std::string text;
        readString(table, "metrics_file", "agent", text);
        if (text.empty()) {
            file.clear();
            return;
        }
        if (!std::filesystem::path(text).is_absolute())
            fail(node->source(), "agent.metrics_file must be an absolute path or \"\" (no metrics), got " + inQuotes(text));
        if (!text.ends_with(".prom") || text.ends_with("/.prom"))
            fail(node->source(), "agent.metrics_file must name a file ending in \".prom\" (node-exporter's textfile collector reads only "
                                 "those), got " + inQuotes(text));
        file = text;
    }

    void readBus(const toml::table& table, std::string& bus) const
    {
        readString(table, "bus", "agent", bus);
        const toml::node* node = table.get("bus");
        if (node && bus != "system" && bus != "user" && bus.find(':') == std::string::npos)
            fail(node->source(), "agent.bus must be \"system\", \"user\" or a D-Bus address such as "
                                 "\"unix:path=/run/dbus/system_bus_socket\", got " + inQuotes(bus));
    }

    void readLogLevel(const toml::table& table, std::string& level) const
    {
        readString(table, "log_level", "agent", level);
        const toml::node* node = table.get("log_level");
        if (node && std::find(logLevels.begin(), logLevels.end(), level) == logLevels.end())
            fail(node->source(), "agent.log_level must be one of " + join(logLevels) + ", got " + inQuotes(level));
    }

    // Numeric gids may be written as integers or strings; both end up as text.
    std::vector<std::string> readGroups(const toml::node& node) const
    {
        const std::string key = "agent.allowed_groups";
        if (!node.is_array())
            wrongType(node, key, "an array of group names or gids");
        std::vector<std::string> groups;
        std::size_t index = 0;
        for (const toml::node& element : *node.as_array()) {
            std::string name = key + "[" + std::to_string(index++) + "]";
            if (element.is_integer()) {
                std::int64_t gid = element.as_integer()->get();
                if (gid < 0 || gid >= std::numeric_limits<std::uint32_t>::max())
                    fail(element.source(), name + " must be a group name or a gid from 0 to 4294967294, got "
                                               + std::to_string(gid));
                groups.push_back(std::to_string(gid));
            } else if (element.is_string() && !element.as_string()->get().empty()) {
                groups.push_back(element.as_string()->get());
            } else {
                fail(element.source(), name + " must be a group name or a gid, got "
                                           + (element.is_string() ? std::string("an empty string") : typeName(element)));
            }
        }
        return groups;
    }

    void readDocker(const toml::table& table, DockerSection& docker) const
    {
        checkKnownKeys(table, "docker",
                       {"service", "socket_unit", "socket", "stop_timeout_sec", "start_timeout_sec",
                        "health_timeout_sec", "grace_sec", "smoke_command", "dockerinit_pairing",
                        "monitor_interval_sec", "monitor_failures", "max_restarts_per_hour", "expect_containers_back", "live_restore",
                        "hold_socket", "check_main_exe"});
        readUnits(table, docker);
        readAbsolutePath(table, "socket", "docker", docker.socket);
        readUnsigned(table, "stop_timeout_sec", "docker", 1, oneDaySec, docker.stopTimeoutSec);
        readUnsigned(table, "start_timeout_sec", "docker", 1, oneDaySec, docker.startTimeoutSec);
        readUnsigned(table, "health_timeout_sec", "docker", 1, oneDaySec, docker.healthTimeoutSec);
        readUnsigned(table, "grace_sec", "docker", 0, oneDaySec, docker.graceSec);
        readSmokeCommand(table, docker.smokeCommand);
        readBool(table, "dockerinit_pairing", "docker", docker.dockerinitPairing);
        readUnsigned(table, "monitor_interval_sec", "docker", 0, oneDaySec, docker.monitorIntervalSec);
        readUnsigned(table, "monitor_failures", "docker", 1, 1000, docker.monitorFailures);
        readUnsigned(table, "max_restarts_per_hour", "docker", 0, 1000, docker.maxRestartsPerHour);
        readBool(table, "expect_containers_back", "docker", docker.expectContainersBack);
        readBool(table, "check_main_exe", "docker", docker.checkMainExe);
        readWord(table, "live_restore", "docker", "\"auto\", \"require\" or \"off\"", docker.liveRestore);
        readBool(table, "hold_socket", "docker", docker.holdSocket);
        if (docker.holdSocket && docker.socketUnit.empty())
            fail(table.get("hold_socket")->source(), "docker.hold_socket = true needs docker.socket_unit: with socket_unit = \"\" "
                                                     "there is no socket to keep listening");
    }

    // systemd's D-Bus API wants full unit names, so the suffix is checked here
    // rather than as a failed StopUnit in the middle of a transaction.
    void readUnits(const toml::table& table, DockerSection& docker) const
    {
        readString(table, "service", "docker", docker.service);
        if (const toml::node* node = table.get("service")) {
            if (docker.service.empty())
                fail(node->source(), "docker.service must name the engine's unit, such as \"docker.service\", got \"\"");
            if (!docker.service.ends_with(".service"))
                fail(node->source(), "docker.service must be a unit name ending in \".service\", got "
                                         + inQuotes(docker.service));
        }
        readString(table, "socket_unit", "docker", docker.socketUnit);
        const toml::node* node = table.get("socket_unit");
        if (node && !docker.socketUnit.empty() && !docker.socketUnit.ends_with(".socket"))
            fail(node->source(), "docker.socket_unit must be a unit name ending in \".socket\" or \"\" when the "
                                 "engine is not socket-activated, got " + inQuotes(docker.socketUnit));
    }

    void readSmokeCommand(const toml::table& table, std::vector<std::string>& command) const
    {
        readCommand(table, "smoke_command", "docker", command);
    }

    // A program and its arguments. It runs with PATH=childPath as its whole
    // environment (core/child_process.hpp): an absolute program says which one runs.
    void readCommand(const toml::table& table, const std::string& key, std::string_view tableName, std::vector<std::string>& command) const
    {
        const toml::node* node = table.get(key);
        if (!node)
            return;
        command = readStringArray(*node, dotted(tableName, key));
        if (!command.empty() && !std::filesystem::path(command.front()).is_absolute())
            fail(node->source(), dotted(tableName, key) + "[0] must be an absolute path to the program, got " + inQuotes(command.front()));
    }

    void readHooks(const toml::table& table, HooksSection& hooks) const
    {
        checkKnownKeys(table, "hooks", {"before_stop", "after_success", "after_rollback", "timeout_sec"});
        readCommand(table, "before_stop", "hooks", hooks.beforeStop);
        readCommand(table, "after_success", "hooks", hooks.afterSuccess);
        readCommand(table, "after_rollback", "hooks", hooks.afterRollback);
        readUnsigned(table, "timeout_sec", "hooks", 1, oneDaySec, hooks.timeoutSec);
    }

    void readTrust(const toml::table& table, TrustSection& trust) const
    {
        checkKnownKeys(table, "trust", {"keys", "require_signature", "min_version"});
        readAbsolutePath(table, "keys", "trust", trust.keys);
        readBool(table, "require_signature", "trust", trust.requireSignature);
        readString(table, "min_version", "trust", trust.minVersion);
        if (const toml::node* node = table.get("min_version"); node && !trust.minVersion.empty() && !isVersionText(trust.minVersion))
            fail(node->source(), "trust.min_version must be a version such as \"24.0.5\" or \"20.10.24+dfsg1\" (a digit first, then letters, "
                                 "digits and . + ~ - :), or \"\" for none, got " + inQuotes(trust.minVersion));
    }

    std::vector<PayloadSpec> readPayloads(const toml::node& node) const
    {
        if (!node.is_array_of_tables() && !(node.is_array() && node.as_array()->empty()))
            wrongType(node, "payload", "a list of [[payload]] tables");
        const toml::array& array = *node.as_array();
        if (array.empty())
            fail(node.source(), "payload must list at least one [[payload]] (the engine, with engine = true)");
        std::vector<PayloadSpec> payloads;
        std::set<std::string> names;
        std::set<std::filesystem::path> paths;
        std::set<std::string> components;
        const toml::node* engineNode = nullptr;
        for (std::size_t index = 0; index < array.size(); ++index) {
            const toml::table& table = *array.get(index)->as_table();
            std::string key = "payload[" + std::to_string(index) + "]";
            PayloadSpec spec = readPayload(table, key);
            if (!names.insert(spec.name).second)
                fail(table.get("name")->source(), key + ".name " + inQuotes(spec.name) + " is used by an earlier payload; "
                                                      "each payload needs its own name");
            if (!paths.insert(spec.path.lexically_normal()).second)
                fail(table.get("path")->source(), key + ".path " + inQuotes(spec.path.string())
                                                      + " is the target of an earlier payload; each payload needs its own path");
            if (spec.engine && engineNode)
                fail(table.get("engine")->source(), key + ".engine: only one payload may have engine = true (the first is at line "
                                                        + std::to_string(engineNode->source().begin.line) + ")");
            if (spec.engine)
                engineNode = table.get("engine");
            if (!spec.component.empty() && !components.insert(spec.component).second)
                fail(table.get("component")->source(), key + ".component " + inQuotes(spec.component) +
                                                           " is compared for an earlier payload; /version reports each component once");
            payloads.push_back(std::move(spec));
        }
        if (!engineNode)
            fail(node.source(), "payload: exactly one payload must have engine = true (the binary whose version "
                                "the engine's /version reports), none has");
        return payloads;
    }

    PayloadSpec readPayload(const toml::table& table, const std::string& key) const
    {
        checkKnownKeys(table, key, {"name", "path", "mode", "version_args", "engine", "units", "component"});
        PayloadSpec spec;
        readPayloadName(table, key, spec.name);
        readPayloadPath(table, key, spec.path);
        readMode(table, key, spec.mode);
        readBool(table, "engine", key, spec.engine);
        readComponent(table, key, spec);
        if (const toml::node* node = table.get("version_args")) {
            spec.versionArgs = readStringArray(*node, key + ".version_args");
            if (spec.engine && spec.versionArgs.empty())
                fail(node->source(), key + ".version_args must not be empty for the engine payload (docker: [\"-v\"])");
            if (!spec.component.empty() && spec.versionArgs.empty())
                fail(node->source(), key + ".version_args must not be empty for a payload with a component: its version is compared "
                                           "with what /version reports (containerd, runc, docker-init: [\"--version\"])");
        } else if (spec.engine) {
            spec.versionArgs = {"-v"};  // what every Docker engine understands
        } else if (!spec.component.empty()) {
            spec.versionArgs = {"--version"};  // containerd, runc and docker-init (tini) all answer it
        }
        if (const toml::node* node = table.get("units"))
            spec.units = readPayloadUnits(*node, key + ".units");
        return spec;
    }

    // The engine's own version is /version's "Version"; a component is one of the others.
    void readComponent(const toml::table& table, const std::string& key, PayloadSpec& spec) const
    {
        readString(table, "component", key, spec.component);
        const toml::node* node = table.get("component");
        if (!node)
            return;
        if (spec.engine)
            fail(node->source(), key + ".component: the engine payload is checked against /version's \"Version\"; "
                                       "component names another program of the set (\"containerd\", \"runc\", \"docker-init\")");
        const bool named = !spec.component.empty() && std::all_of(spec.component.begin(), spec.component.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
        });
        if (!named)
            fail(node->source(), key + ".component must name an entry of /version's Components, such as \"containerd\", got " +
                                     inQuotes(spec.component));
    }

    // Full unit names (systemd's D-Bus API wants them), each once.
    std::vector<std::string> readPayloadUnits(const toml::node& node, const std::string& key) const
    {
        std::vector<std::string> units = readStringArray(node, key);
        for (std::size_t i = 0; i < units.size(); ++i) {
            const std::string& unit = units[i];
            const bool named = unit.size() > 8 && (unit.ends_with(".service") || unit.ends_with(".socket")) &&
                               std::all_of(unit.begin(), unit.end(), [](char c) {
                                   return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '@' ||
                                          c == ':' || c == '\\';
                               });
            if (!named)
                fail(node.source(), key + " must list unit names ending in \".service\" or \".socket\", such as \"containerd.service\", got " +
                                        inQuotes(unit));
            if (std::find(units.begin(), units.begin() + static_cast<std::ptrdiff_t>(i), unit) != units.begin() + static_cast<std::ptrdiff_t>(i))
                fail(node.source(), key + " names " + inQuotes(unit) + " twice");
        }
        return units;
    }

    const toml::node& required(const toml::table& table, const std::string& tableKey, std::string_view key,
                               std::string_view example) const
    {
        const toml::node* node = table.get(key);
        if (!node)
            fail(table.source(), tableKey + " has no " + std::string(key) + "; add " + std::string(key) + " = "
                                     + std::string(example));
        return *node;
    }

    void readPayloadName(const toml::table& table, const std::string& key, std::string& name) const
    {
        const toml::node& node = required(table, key, "name", "\"docker\"");
        if (!node.is_string())
            wrongType(node, key + ".name", "a string");
        name = node.as_string()->get();
        // Names appear in option keys (sha256.<name>) and in backup file names.
        bool valid = !name.empty() && name.front() != '.' && std::all_of(name.begin(), name.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
        });
        if (!valid)
            fail(node.source(), key + ".name must be letters, digits, '-', '_' or '.' (not first), got " + inQuotes(name));
    }

    void readPayloadPath(const toml::table& table, const std::string& key, std::filesystem::path& path) const
    {
        const toml::node& node = required(table, key, "path", "\"/usr/bin/docker\"");
        if (!node.is_string())
            wrongType(node, key + ".path", "a string");
        std::string text = node.as_string()->get();
        path = text;
        if (!path.is_absolute())
            fail(node.source(), key + ".path must be an absolute path, got " + inQuotes(text));
        auto file = path.filename();
        if (file.empty() || file == "." || file == "..")
            fail(node.source(), key + ".path must name a file, got " + inQuotes(text));
    }

    void readMode(const toml::table& table, const std::string& key, mode_t& mode) const
    {
        const toml::node* node = table.get("mode");
        if (!node)
            return;
        if (!node->is_integer())
            wrongType(*node, key + ".mode", "an integer such as 0o755");
        const auto& integer = *node->as_integer();
        std::int64_t value = integer.get();
        bool writtenOctal = (integer.flags() & toml::value_flags::format_as_octal) != toml::value_flags::none;
        std::string hint = writtenOctal ? "" : " (write modes in octal: 0o755, not 755)";
        if (value < 0 || value > 07777)
            fail(node->source(), key + ".mode must be a file mode from 0o0 to 0o7777, got " + std::to_string(value) + hint);
        // A root-run binary that others may write is a way to root.
        if (value & 022)
            fail(node->source(), key + ".mode " + octal(value) + " lets group or others write the file; use 0o755" + hint);
        mode = static_cast<mode_t>(value);
    }
};

[[noreturn]] void throwForFolder(const Config& config, const std::string& what, int error)
{
    const std::string& where = config.agent.stateDirPosition.text;
    std::string origin = !where.empty() ? where
                         : config.sourceFile.empty() ? "built-in default"
                                                     : config.sourceFile.string();
    throw ConfigError(origin + ": agent.state_dir " + config.agent.stateDir.string() + ": " + what + " ("
                      + std::strerror(error) + "); the agent keeps its journal and backups there, so it must be a "
                      "folder that root can write");
}

// mkdir -p with 0700 for every folder it creates (the state folder holds
// backups of root's binaries, the drop-in folder binaries to be installed):
// 0, or the errno of the first folder that could not be made, named in failed.
int makePrivateFolders(const std::filesystem::path& dir, std::filesystem::path& failed)
{
    std::filesystem::path current;
    for (const auto& part : dir) {
        current /= part;
        if (::mkdir(current.c_str(), 0700) != 0 && errno != EEXIST) {
            const int error = errno;
            failed = current;
            return error;
        }
    }
    return 0;
}

void createFolders(const Config& config)
{
    std::filesystem::path failed;
    if (const int error = makePrivateFolders(config.agent.stateDir, failed); error != 0)
        throwForFolder(config, "cannot create " + failed.string(), error);
}

}  // namespace

const PayloadSpec* Config::findPayload(std::string_view name) const
{
    auto found = std::find_if(payloads.begin(), payloads.end(), [&](const PayloadSpec& p) { return p.name == name; });
    return found == payloads.end() ? nullptr : &*found;
}

std::vector<std::string> Config::engineUnits() const
{
    std::vector<std::string> units;
    if (!docker.socketUnit.empty())
        units.push_back(docker.socketUnit);
    units.push_back(docker.service);
    return units;
}

std::vector<std::string> Config::unitsOf(const std::vector<std::string>& payloadNames) const
{
    std::vector<std::string> units;
    for (const auto& name : payloadNames) {
        const PayloadSpec* spec = findPayload(name);
        if (!spec)
            continue;
        for (const auto& unit : spec->units ? *spec->units : engineUnits())
            if (std::find(units.begin(), units.end(), unit) == units.end())
                units.push_back(unit);
    }
    return units;
}

const PayloadSpec& Config::enginePayload() const
{
    auto found = std::find_if(payloads.begin(), payloads.end(), [](const PayloadSpec& p) { return p.engine; });
    if (found == payloads.end())
        throw std::logic_error("config has no engine payload");
    return *found;
}

Config defaultConfig()
{
    Config config;
    config.payloads = {
        PayloadSpec{"docker", "/usr/bin/docker", 0755, {"-v"}, true, std::nullopt, ""},
        PayloadSpec{"dockerinit", "/usr/lib/docker/dockerinit", 0755, {}, false, std::nullopt, ""},
    };
    return config;
}

Config parseConfig(std::string_view text, const std::string& sourceName)
{
    toml::table root;
    try {
        root = toml::parse(text, sourceName);
    } catch (const toml::parse_error& error) {
        const auto& begin = error.source().begin;
        throw ConfigError(sourceName + ":" + std::to_string(begin.line) + ":" + std::to_string(begin.column) + ": "
                          + std::string(error.description()));
    }
    return ConfigReader(sourceName).read(root);
}

Config loadConfig(const std::filesystem::path& file)
{
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno == ENOENT) {
        Config config = defaultConfig();
        config.sourceFile = file;
        return config;
    }
    if (fd < 0)
        throw ConfigError(file.string() + ": cannot open it (" + std::strerror(errno) + ")");
    std::string text;
    char buffer[8192];
    for (;;) {
        const ssize_t got = readRetrying(fd, buffer, sizeof buffer);
        if (got < 0) {
            ::close(fd);
            throw ConfigError(file.string() + ": cannot read it (" + std::strerror(static_cast<int>(-got)) + ")");
        }
        if (got == 0)
            break;
        text.append(buffer, static_cast<std::size_t>(got));
    }
    ::close(fd);
    Config config = parseConfig(text, file.string());
    config.sourceFile = file;
    return config;
}

void checkStateDirUsable(const Config& config)
{
    const auto& dir = config.agent.stateDir;
    createFolders(config);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0)
        throwForFolder(config, "cannot use it", errno);
    if (!S_ISDIR(st.st_mode))
        throwForFolder(config, "it is not a folder", ENOTDIR);
    std::string probe = (dir / ".armdock-write-test-XXXXXX").string();
    int fd = ::mkostemp(probe.data(), O_CLOEXEC);
    if (fd < 0)
        throwForFolder(config, "cannot write to it", errno);
    ::close(fd);
    if (::unlink(probe.c_str()) != 0)
        throwForFolder(config, "cannot remove a file from it", errno);
}

std::string createDropinDir(const Config& config)
{
    const auto& dir = config.agent.dropinDir;
    std::filesystem::path failed;
    std::string problem;
    struct stat st {};
    if (const int error = makePrivateFolders(dir, failed); error != 0)
        problem = "cannot create " + failed.string() + " (" + std::strerror(error) + ")";
    else if (::stat(dir.c_str(), &st) != 0)
        problem = std::string("cannot use it (") + std::strerror(errno) + ")";
    else if (!S_ISDIR(st.st_mode))
        problem = "it is not a folder";
    if (problem.empty())
        return "";
    return "agent.dropin_dir " + dir.string() + ": " + problem
           + "; binaries dropped there cannot be taken: make it a folder root can write (mode 0700) or point "
             "dropin_dir elsewhere, then run `systemctl reload armdock-agent`";
}

}  // namespace armdock
