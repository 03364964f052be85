// armdock-agent: parse options, load the config, wire the loop, the bus, the
// agent and systemd together, then run. The logic lives in core/.
#include <utility>  // before Boost 1.74 Asio headers, which need std::exchange


#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <charconv>
#include <cstdio>
#include <cstring>
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

}  // namespace

int main(int argc, char** argv)
{
    using namespace armdock;
    tuneAllocator();
    Options options;
    if (int code = parseOptions(argc, argv, options); code >= 0)
        return code;
    if (options.guardEngine) {
        options.guard.configFile = options.configFile;
        return runEngineGuard(options.guard, std::cerr);
    }

    Config config;
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

    try {
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
        bool stopping = false;

        // A stop never abandons Docker mid-transaction: the running transaction
        // is cancelled at its next safe point (before the stop nothing changes;
        // after the swap it rolls back and starts Docker), and the loop ends
        // once it has finished. A second signal stops at once; the journal makes
        // that safe too (the next start recovers).
        boost::asio::signal_set stopSignals(io, SIGTERM, SIGINT);
        boost::asio::steady_timer drainTimer(io);
        std::function<void()> stopWhenIdle = [&] {
            if (!agent.busy()) {
                io.stop();
                return;
            }
            drainTimer.expires_after(std::chrono::milliseconds(20));
            drainTimer.async_wait([&](const boost::system::error_code& ec) {
                if (!ec)
                    stopWhenIdle();
            });
        };
        std::function<void()> waitForStop = [&] {
            stopSignals.async_wait([&](const boost::system::error_code& ec, int signal) {
                if (ec)
                    return;
                notifier.stopping();
                if (agent.busy() && !stopping) {
                    stopping = true;
                    spdlog::warn("signal {}: cancelling transaction {} before stopping; send it again to stop at once",
                                 signal, agent.status().transaction);
                    agent.cancel();
                    stopWhenIdle();
                    waitForStop();
                    return;
                }
                spdlog::info("signal {}: stopping", signal);
                io.stop();
            });
        };
        waitForStop();
        boost::asio::signal_set reloadSignal(io, SIGHUP);
        std::function<void()> waitForReload = [&] {
            reloadSignal.async_wait([&](const boost::system::error_code& ec, int) {
                if (ec)
                    return;
                notifier.reloading();
                agent.reload([&](const std::string& tx, std::exception_ptr error) {
                    if (object)
                        object->refreshAllowedGroups();
                    try {
                        if (error)
                            std::rethrow_exception(error);
                        spdlog::info("reload: {}", tx.empty() ? "nothing waits in the drop-in folder" : "upgrade " + tx + " started");
                    } catch (const std::exception& e) {
                        spdlog::error("reload: {}", e.what());
                    }
                    notifier.ready();
                });
                waitForReload();
            });
        };
        waitForReload();

        boost::asio::co_spawn(
            io,
            [&]() -> Task<void> {
                co_await agent.startUp();
                object = std::make_unique<AgentObject>(*connection, agent, busDriver);
                connection->requestName(compat::ServiceName{"io.armdock.Agent1"});
                busDriver.kick();
                notifier.ready();
                notifier.startWatchdog();
                // On the bus and ready first: the recovery is a transaction clients
                // watch, and the start timeout never cuts it short.
                co_await agent.recoverInterrupted();
                co_await agent.warmUp();
                malloc_trim(0);  // what start-up freed goes back before the agent idles
                spdlog::info("armdock-agent {} ready on the {} bus; engine {}", ARMDOCK_VERSION, config.agent.bus,
                             agent.status().currentVersion.empty() ? "not answering" : agent.status().currentVersion);
            },
            [&](std::exception_ptr e) {
                if (!e)
                    return;
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& x) {
                    spdlog::critical("start-up failed: {}", x.what());
                }
                io.stop();
                std::exit(1);
            });
        io.run();
        pool.stop();
        pool.join();
    } catch (const std::exception& e) {
        spdlog::critical("armdock-agent: {}", e.what());
        return 1;
    }
    return 0;
}
