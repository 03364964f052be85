// armdock-agent: parse options, load the config, build the loop, the bus, the
// agent and its systemd glue, then run. The logic lives in core/; start-up
// and signals in systemd/service_lifecycle.
#include <utility>  // before Boost 1.74 Asio headers, which need std::exchange


#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <charconv>
#include <iostream>
#include <string>

#include "armdock_build_config.h"
#include "core/agent.hpp"
#include "core/config.hpp"
#include "core/engine_guard.hpp"
#include "core/errors.hpp"
#include "core/logging.hpp"
#include "dbus/agent_object.hpp"
#include "dbus/asio_bus.hpp"
#include "dbus/sdbus_compat.hpp"
#include "docker/docker_client.hpp"
#include "systemd/service_lifecycle.hpp"
#include "systemd/service_notifier.hpp"
#include "systemd/systemd_units.hpp"

namespace {

constexpr int exitConfigError = 78;  // EX_CONFIG: systemd shows it, Restart=on-failure does not loop on it

struct Options {
    std::string configFile = "/etc/armdock/agent.toml";
    bool checkOnly = false;
    bool guardEngine = false;
    armdock::EngineGuardOptions guard;
};

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

// Returns an exit code to leave with, or -1 to run.
int parseOptions(int argc, char** argv, Options& options)
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

// glibc's allocator, tuned for a daemon that idles for weeks between bursts
// of file work (measured in bench/bench_footprint.cpp, README "Performance"):
// - one arena: each pool thread that allocated got an arena of its own
//   (64 MiB reserved, its touched pages kept), for no gain at this load;
// - fixed thresholds: the 1 MiB read buffers of hashing and copying are always
//   mmapped and given back when freed. With the default dynamic threshold the
//   first freed buffer raised it to 1 MiB (and the trim threshold to 2 MiB),
//   so later buffers stayed in the heap: 1 MiB of RssAnon, kept while idle.
void tuneAllocator()
{
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
}

// --guard-engine, --check-config, or a config the agent can run with.
// Returns an exit code to leave with, or -1 to run with `config`.
int prepare(Options& options, armdock::Config& config)
{
    using namespace armdock;
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
    } catch (const ConfigError& e) {
        std::cerr << "armdock-agent: " << e.what() << "\n";
        return exitConfigError;
    }
    return -1;
}

// The objects, the bus name requested last (by the start-up, after the
// state folder is read), and the loop.
int run(const armdock::Config& config)
{
    using namespace armdock;
    // The connection is declared before the io_context so that it outlives
    // every handler the loop still holds when it is destroyed.
    auto connection = openBusConnection(config.agent.bus);
    boost::asio::io_context io;
    boost::asio::thread_pool pool(2);
    AsioBusDriver busDriver(io, *connection);
    SystemdUnits units(io, *connection, busDriver);
    DockerClient docker(io, config.docker.socket);
    Agent agent(io, pool, units, docker, config);
    ServiceNotifier notifier(io);
    notifier.followStatus(agent.status());
    agent.addObserver(&notifier);
    std::unique_ptr<AgentObject> object;
    ServiceLifecycle lifecycle(io, agent, notifier, [&] {
        object = std::make_unique<AgentObject>(*connection, agent, busDriver);
        connection->requestName(compat::ServiceName{agentBusName});
        busDriver.kick();
    });
    lifecycle.start();
    io.run();
    pool.stop();
    pool.join();
    return lifecycle.exitCode();
}

}  // namespace

int main(int argc, char** argv)
{
    tuneAllocator();
    Options options;
    armdock::Config config;
    if (int code = parseOptions(argc, argv, options); code >= 0)
        return code;
    if (int code = prepare(options, config); code >= 0)
        return code;
    try {
        return run(config);
    } catch (const std::exception& e) {
        spdlog::critical("armdock-agent: {}", e.what());
        return 1;
    }
}
