#include "command_line.hpp"

#include <charconv>
#include <iostream>

#include <spdlog/spdlog.h>

#include "armdock_build_config.h"
#include "core/errors.hpp"
#include "core/logging.hpp"

namespace armdock {

namespace {

constexpr int exitConfigError = 78;  // EX_CONFIG: systemd shows it, Restart=on-failure does not loop on it

void printHelp()
{
    std::cout << "Usage: armdock-agent [--config FILE] [--check-config | --guard-engine [--guard-timeout SEC]]\n"
                 "Upgrades and supervises the Docker engine through systemd (D-Bus io.armdock.Agent1).\n\n"
                 "  --config FILE    configuration (default /etc/armdock/agent.toml; a missing file means defaults)\n"
                 "  --check-config   parse the configuration, print the outcome and exit\n"
                 "  --guard-engine   Docker's ExecStartPre: exit 0 when the engine files form a whole set; while an\n"
                 "                   interrupted swap left them mixed, wait for the agent to restore them (exit 1\n"
                 "                   after the timeout)\n"
                 "  --guard-timeout SEC  how long --guard-engine waits (default 75)\n"
                 "  --version        print the version and exit\n"
                 "  --help           this text\n";
}

}  // namespace

int parseCommandLine(int argc, char** argv, CommandLine& options)
{
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            printHelp();
            return 0;
        }
        if (arg == "--version") {
            std::cout << "armdock-agent " << ARMDOCK_VERSION << "\n";
            return 0;
        }
        if (arg == "--check-config") {
            options.checkOnly = true;
        } else if (arg == "--guard-engine") {
            options.guardEngine = true;
        } else if (arg == "--guard-timeout" || arg.starts_with("--guard-timeout=")) {
            std::string value = arg == "--guard-timeout" ? (i + 1 < argc ? argv[++i] : "") : arg.substr(16);
            unsigned seconds = 0;
            const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), seconds);
            if (value.empty() || error != std::errc() || end != value.data() + value.size()) {
                std::cerr << "armdock-agent: --guard-timeout wants a number of seconds, not '" << value << "'\n";
                return 2;
            }
            options.guard.timeout = std::chrono::seconds(seconds);
        } else if (arg == "--config" && i + 1 < argc) {
            options.configFile = argv[++i];
        } else if (arg.starts_with("--config=")) {
            options.configFile = arg.substr(9);
        } else {
            std::cerr << "armdock-agent: unknown argument '" << arg << "'; see --help\n";
            return 2;
        }
    }
    return -1;
}

int prepareToRun(CommandLine& options, Config& config)
{
    if (options.guardEngine) {
        options.guard.configFile = options.configFile;
        return runEngineGuard(options.guard, std::cerr);
    }
    try {
        config = loadConfig(options.configFile);
        if (options.checkOnly) {
            std::cout << options.configFile << ": OK (" << config.payloads.size() << " payloads, engine "
                      << config.enginePayload().path.string() << ")\n";
            return 0;
        }
        checkStateDirUsable(config);
        setUpLogging(config.agent.logLevel);
        if (const std::string warning = createDropinDir(config); !warning.empty())
            spdlog::warn("{}", warning);
    } catch (const ConfigError& e) {
        std::cerr << "armdock-agent: " << e.what() << "\n";
        return exitConfigError;
    }
    return -1;
}

}  // namespace armdock
