// armdockctl's commands. Each returns the exit code (exit_codes.hpp) or
// throws CliError; main prints the error and leaves with its code.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace armdock::cli {

struct GlobalOptions {
    std::string bus = "system";                       // "system", "user" or a D-Bus address
    std::string dockerSocket = "/var/run/docker.sock";  // pinged by `status`
};

struct WaitOptions {
    bool noWait = false;
    unsigned timeoutSec = 0;  // 0: wait as long as it runs
};

struct UpgradeOptions {
    std::string docker;
    std::string dockerinit;
    std::vector<std::string> payloads;  // NAME=PATH, for payload lists other than docker/dockerinit
    std::vector<std::string> sha256;    // NAME=HEX
    std::vector<std::string> signatures;  // NAME=FILE (a .minisig); else FILE.minisig beside a source is sent
    bool allowDowngrade = false;
    bool dryRun = false;
    std::optional<unsigned> healthTimeoutSec;
    WaitOptions wait;
};

int runStatus(const GlobalOptions& global, bool json);
int runUpgrade(const GlobalOptions& global, const UpgradeOptions& options);
int runRollback(const GlobalOptions& global, const WaitOptions& wait, const std::string& to);
// The agent's Release: the packaged files installed again, the agent's diversions and holds removed.
int runRelease(const GlobalOptions& global, const WaitOptions& wait);
int runCancel(const GlobalOptions& global);
int runBackups(const GlobalOptions& global, bool json);
// The agent's ListPayloads: what a fleet rollout compares with the SHA-256s it would install.
int runPayloads(const GlobalOptions& global, bool json);
int runReload(const GlobalOptions& global);
int runWatch(const GlobalOptions& global);

}  // namespace armdock::cli
