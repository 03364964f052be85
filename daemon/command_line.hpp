// The agent's command line: --help, --version, --config, --check-config and
// --guard-engine (Docker's ExecStartPre), each handled before the service runs.
#pragma once

#include <string>

#include "core/config.hpp"
#include "core/engine_guard.hpp"

namespace armdock {

struct CommandLine {
    std::string configFile = "/etc/armdock/agent.toml";
    bool checkOnly = false;
    bool guardEngine = false;
    EngineGuardOptions guard;
};

// Returns an exit code to leave with, or -1 to go on.
int parseCommandLine(int argc, char** argv, CommandLine& options);

// --guard-engine, --check-config, or a config the agent can run with.
// Returns an exit code to leave with, or -1 to run with `config`.
int prepareToRun(CommandLine& options, Config& config);

}  // namespace armdock
