#include "agent_service.hpp"

#include <utility>  // before Boost 1.74 Asio headers, which need std::exchange

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <memory>

#include "core/agent.hpp"
#include "core/metrics_writer.hpp"
#include "dbus/agent_names.hpp"
#include "dbus/agent_object.hpp"
#include "dbus/asio_bus.hpp"
#include "dbus/sdbus_compat.hpp"
#include "docker/docker_client.hpp"
#include "systemd/service_lifecycle.hpp"
#include "systemd/service_notifier.hpp"
#include "systemd/systemd_units.hpp"

namespace armdock {

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

namespace {

// The objects, the bus name requested last (by the start-up, after the
// state folder is read), and the loop.
int buildAndRun(const Config& config)
{
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
    MetricsWriter metrics(agent, pool);
    agent.addObserver(&metrics);
    std::unique_ptr<AgentObject> object;
    ServiceLifecycle lifecycle(io, agent, notifier, [&] {
        metrics.update();  // the engine's version is known now: the series exist before any transaction
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

int runAgentService(const Config& config)
{
    try {
        return buildAndRun(config);
    } catch (const std::exception& e) {
        spdlog::critical("armdock-agent: {}", e.what());
        return 1;
    }
}

}  // namespace armdock
