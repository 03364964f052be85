// The agent's configuration (/etc/armdock/agent.toml), parsed with toml++.
// Every key has the default config/agent.toml shows (the Docker 1.10 layout); unknown
// keys, wrong types and impossible values are ConfigErrors whose message
// starts with FILE:LINE:COLUMN.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <stdexcept>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vocabulary.hpp"

namespace armdock {

struct PayloadSpec {
    std::string name;                    // "docker", "dockerinit", ...
    std::filesystem::path path;          // absolute target path
    mode_t mode = 0755;
    std::vector<std::string> versionArgs;  // non-empty for the engine ({"-v"}) and for a component ({"--version"})
    bool engine = false;                 // the payload whose version /version reports
    // The units that run this file and restart when it changes; nullopt:
    // the engine's (docker.socket_unit, docker.service); empty: none (a
    // program run per operation, such as runc).
    std::optional<std::vector<std::string>> units;
    // Its name among the Components of the engine's /version ("containerd",
    // "runc", "docker-init"): once it changed, the version reported there
    // must be the new file's. Empty: not compared.
    std::string component;

    bool operator==(const PayloadSpec&) const = default;
};

// Where a key was written ("/etc/armdock/agent.toml:13:13"), for messages
// only: two configs that differ only in where they were written are equal.
struct SourcePosition {
    std::string text;  // "" for a built-in default
    bool operator==(const SourcePosition&) const { return true; }
};

// [agent] dpkg_owned: what an upgrade does with a target a Debian package owns.
enum class DpkgOwnedMode {
    Refuse,  // refuse the upgrade, naming the package and the fix
    Divert,  // divert the packaged file and hold its package, as part of the transaction (core/dpkg_diversions.hpp)
    Ignore,  // install it anyway (the package's next upgrade puts its own file back)
};

template <>
struct Words<DpkgOwnedMode> {
    using enum DpkgOwnedMode;
    static constexpr std::array<Word<DpkgOwnedMode>, 3> table{{{Refuse, "refuse"}, {Divert, "divert"}, {Ignore, "ignore"}}};
};
static_assert(tableIsWhole<DpkgOwnedMode>(3));

struct AgentSection {
    std::string bus = "system";  // "system", "user", or a D-Bus address
    std::filesystem::path stateDir = "/var/lib/armdock";
    SourcePosition stateDirPosition;  // named by checkStateDirUsable's errors
    std::filesystem::path dropinDir = "/var/lib/armdock/incoming";
    unsigned keepBackups = 3;
    std::string logLevel = "info";  // trace, debug, info, warning, error
    std::vector<std::string> allowedGroups;  // group names or numeric gids
    // Prometheus text file for node-exporter's textfile collector; empty: none.
    std::filesystem::path metricsFile = "/var/lib/prometheus/node-exporter/armdock.prom";
    DpkgOwnedMode dpkgOwned = DpkgOwnedMode::Refuse;
    std::filesystem::path dpkgRoot = "/";  // dpkg's --root: its database is ROOT/var/lib/dpkg

    bool operator==(const AgentSection&) const = default;
};

// [docker] live_restore: how an engine restart must treat running containers.
enum class LiveRestoreMode {
    Auto,     // with live-restore on and no Swarm: each must keep running; else they must come back
    Require,  // refuse an upgrade that cannot keep them running
    Off,      // never checked
};

template <>
struct Words<LiveRestoreMode> {
    using enum LiveRestoreMode;
    static constexpr std::array<Word<LiveRestoreMode>, 3> table{{{Auto, "auto"}, {Require, "require"}, {Off, "off"}}};
};
static_assert(tableIsWhole<LiveRestoreMode>(3));

struct DockerSection {
    std::string service = "docker.service";
    std::string socketUnit = "docker.socket";  // empty: not socket-activated
    std::filesystem::path socket = "/var/run/docker.sock";
    unsigned stopTimeoutSec = 90;
    unsigned startTimeoutSec = 90;
    unsigned healthTimeoutSec = 60;
    unsigned graceSec = 5;
    std::vector<std::string> smokeCommand;
    bool dockerinitPairing = true;
    unsigned monitorIntervalSec = 30;
    unsigned monitorFailures = 3;
    unsigned maxRestartsPerHour = 3;
    bool expectContainersBack = true;
    // The check proves the service's main process runs the installed engine
    // file (/proc/PID/exe). false only for a target that is a launcher
    // executing another program.
    bool checkMainExe = true;
    LiveRestoreMode liveRestore = LiveRestoreMode::Auto;
    // The socket keeps listening through the engine's restart: the files are
    // renamed under the running engine, then the service alone restarts.
    bool holdSocket = false;

    bool operator==(const DockerSection&) const = default;
};

// [hooks]: programs the agent runs around an upgrade that stops the engine
// (drain and undrain a node, tell a load balancer), each an absolute program
// and its arguments; empty: none. core/hooks.hpp says when and with what.
struct HooksSection {
    std::vector<std::string> beforeStop;     // fails: the upgrade is refused, nothing changed
    std::vector<std::string> afterSuccess;   // after an upgrade committed
    std::vector<std::string> afterRollback;  // after one that stopped the engine and did not commit
    unsigned timeoutSec = 60;                // each hook's, then its process group is killed

    bool operator==(const HooksSection&) const = default;
};

// [trust]: signed payloads (core/payload_signature.hpp).
struct TrustSection {
    std::filesystem::path keys = "/etc/armdock/trusted.d";  // minisign public keys, *.pub
    bool requireSignature = false;  // every payload of an upgrade must be signed by one of them
    std::string minVersion;         // "": none; else a signed engine older than it needs allow_downgrade

    bool operator==(const TrustSection&) const = default;
};

struct Config {
    std::filesystem::path sourceFile;  // where it was read from ("" = built-in defaults)
    AgentSection agent;
    DockerSection docker;
    std::vector<PayloadSpec> payloads;  // never empty; exactly one has engine = true
    HooksSection hooks;
    TrustSection trust;

    const PayloadSpec* findPayload(std::string_view name) const;
    const PayloadSpec& enginePayload() const;
    // docker.socket_unit (if any), then docker.service.
    std::vector<std::string> engineUnits() const;
    // The units a change of these payloads restarts, each once, in the order
    // the payloads name them (unknown names count for nothing).
    std::vector<std::string> unitsOf(const std::vector<std::string>& payloadNames) const;

    bool operator==(const Config&) const = default;
};

class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The built-in defaults (docker + dockerinit payloads).
Config defaultConfig();

// Parses TOML text; sourceName is used in error messages ("FILE:LINE:COL: ...").
Config parseConfig(std::string_view text, const std::string& sourceName);

// Reads and parses a file. A file that does not exist yields defaultConfig()
// (with sourceFile set); one that cannot be read or parsed throws ConfigError.
Config loadConfig(const std::filesystem::path& file);

// Creates agent.state_dir (mode 0700, and any missing parents) if it does not
// exist, and proves it writable by creating and removing a temporary file.
// Throws ConfigError naming the folder and why (FILE:LINE:COLUMN of state_dir
// first when the file set it), so the agent refuses to start
// (or to take a reloaded config) rather than failing in the middle of a swap.
void checkStateDirUsable(const Config& config);

// Creates agent.dropin_dir (mode 0700, and any missing parents) if it does
// not exist, so that the folder README names is there to drop binaries into.
// Returns "" or a warning naming the folder, why and what to do: upgrades
// over D-Bus need no drop-in folder, so its absence does not stop the agent.
std::string createDropinDir(const Config& config);

}  // namespace armdock
