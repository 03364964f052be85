// Benchmark 4: D-Bus latency and throughput of the agent against systemd.
//
// On the sandbox's bus: the round trip of a property read (Get State) and of
// ListBackups (one backup present) on io.armdock.Agent1, against a property
// read (Get Version) on the systemd user manager's org.freedesktop.systemd1
// on the same bus, p50 and p99; then calls per second (property reads) from
// one client and from 16 clients (threads with a connection each) for
// ARMDOCK_BENCH_DBUS_SEC (default 1) seconds each. Latencies alternate call
// by call (agent Get, systemd Get, agent ListBackups, ...), throughput phase
// by phase; ARMDOCK_BENCH_ROUNDS (default 5) rounds, ARMDOCK_BENCH_DBUS_CALLS
// (default 2000) calls of each kind per round.
#include "bench_agent.hpp"
#include "core/vocabulary.hpp"
#include "dbus/agent_names.hpp"

using namespace armdock::bench;

namespace {

enum class Call { AgentProperty, AgentListBackups, SystemdProperty };

struct Client {
    explicit Client(const std::string& bus)
        : connection(sdbus::createSessionBusConnectionWithAddress(bus)),
          agent(sdbus::createProxy(*connection, armdock::agentBusName, armdock::agentObjectPath)),
          systemd(sdbus::createProxy(*connection, "org.freedesktop.systemd1", "/org/freedesktop/systemd1"))
    {
    }
    void call(Call c)
    {
        switch (c) {
        case Call::AgentProperty:
            (void)agent->getProperty("State").onInterface(armdock::agentInterfaceName).get<std::string>();
            break;
        case Call::AgentListBackups: {
            std::vector<sdbus::Struct<std::string, std::uint64_t, std::string>> reply;
            agent->callMethod("ListBackups").onInterface(armdock::agentInterfaceName).storeResultsTo(reply);
            if (reply.empty())
                throw std::runtime_error("ListBackups returned no backup");
            break;
        }
        case Call::SystemdProperty:
            (void)systemd->getProperty("Version").onInterface("org.freedesktop.systemd1.Manager").get<std::string>();
            break;
        }
    }
    std::unique_ptr<sdbus::IConnection> connection;
    std::unique_ptr<sdbus::IProxy> agent, systemd;
};

double timedCall(Client& client, Call c)
{
    auto t0 = Clock::now();
    client.call(c);
    return Ms(Clock::now() - t0).count() * 1000.0;  // µs
}

void latencies(Client& client, Call c, int n, std::vector<double>& out)
{
    for (int i = 0; i < n; ++i)
        out.push_back(timedCall(client, c));
}

// The three kinds of call interleaved call by call (A B C A B C ...), so that
// each sees the same machine: in batches, the batch that followed the
// 16-client phase of the round before took the tail of its disturbance.
void interleavedLatencies(Client& client, int n, std::vector<double>& agentProperty, std::vector<double>& systemdProperty,
                          std::vector<double>& agentList)
{
    for (int i = 0; i < n; ++i) {
        agentProperty.push_back(timedCall(client, Call::AgentProperty));
        systemdProperty.push_back(timedCall(client, Call::SystemdProperty));
        agentList.push_back(timedCall(client, Call::AgentListBackups));
    }
}

double callsPerSecond(std::vector<std::unique_ptr<Client>>& clients, Call c, double seconds)
{
    std::atomic<long> total{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    const auto end = [&] { return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)); };
    Clock::time_point deadline;
    std::mutex m;
    for (auto& cl : clients)
        threads.emplace_back([&, client = cl.get()] {
            while (!go)
                std::this_thread::yield();
            long n = 0;
            Clock::time_point until;
            {
                std::lock_guard lock(m);
                until = deadline;
            }
            while (Clock::now() < until) {
                client->call(c);
                ++n;
            }
            total += n;
        });
    auto t0 = Clock::now();
    {
        std::lock_guard lock(m);
        deadline = end();
    }
    go = true;
    for (auto& t : threads)
        t.join();
    return static_cast<double>(total) / Ms(Clock::now() - t0).count() * 1000.0;
}

// CPU time of a process's main thread in µs (/proc/PID/schedstat: ns on the
// CPU; both servers answer D-Bus on their main thread).
double mainThreadCpuUs(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/schedstat");
    double ns = NAN;
    in >> ns;
    return ns / 1000.0;
}

// The server's own CPU time per call, over n calls of one kind.
double serverCpuPerCallUs(Client& client, Call c, pid_t server, int n)
{
    const double before = mainThreadCpuUs(server);
    for (int i = 0; i < n; ++i)
        client.call(c);
    return (mainThreadCpuUs(server) - before) / n;
}

}  // namespace

int main()
{
    const int rounds = envInt("ARMDOCK_BENCH_ROUNDS", 5);
    const int n = envInt("ARMDOCK_BENCH_DBUS_CALLS", 2000);
    const double seconds = envInt("ARMDOCK_BENCH_DBUS_SEC", 1);
    Sandbox sandbox;
    startAgent(sandbox);
    {
        // One backup, so that ListBackups has something to list.
        AgentClient client(sandbox.busAddress());
        SignalWatcher watcher(sandbox.busAddress());
        fs::path engine = variantOf(sandbox.payloadPath("docker"), sandbox.dir() / "docker-new", "bench-dbus");
        std::string tx = client.upgrade({{"docker", engine.string()}});
        auto [result, message] = watcher.waitFinished(tx, std::chrono::seconds(180));
        if (result != armdock::toString(armdock::TransactionResult::Success)) {
            std::cerr << "upgrade for a backup: " << result << ": " << message << "\n";
            return 1;
        }
    }
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < 16; ++i)
        clients.push_back(std::make_unique<Client>(sandbox.busAddress()));
    std::vector<std::unique_ptr<Client>> one;
    one.push_back(std::make_unique<Client>(sandbox.busAddress()));
    // Warm up both peers.
    std::vector<double> warm;
    latencies(*one[0], Call::AgentProperty, 200, warm);
    latencies(*one[0], Call::SystemdProperty, 200, warm);

    std::vector<double> aProp, aList, sProp, aRate1, sRate1, aRate16, sRate16, aCpu, sCpu;
    const pid_t agentPid = sandbox.mainPid("armdock-agent.service"), managerPid = sandbox.managerPid();
    for (int r = 0; r < rounds; ++r) {
        interleavedLatencies(*one[0], n, aProp, sProp, aList);
        aRate1.push_back(callsPerSecond(one, Call::AgentProperty, seconds));
        sRate1.push_back(callsPerSecond(one, Call::SystemdProperty, seconds));
        aCpu.push_back(serverCpuPerCallUs(*one[0], Call::AgentProperty, agentPid, n));
        sCpu.push_back(serverCpuPerCallUs(*one[0], Call::SystemdProperty, managerPid, n));
        aRate16.push_back(callsPerSecond(clients, Call::AgentProperty, seconds));
        sRate16.push_back(callsPerSecond(clients, Call::SystemdProperty, seconds));
        std::cout << "round " << r + 1 << ": calls/s 1 client agent " << formatted(aRate1.back(), 0) << " systemd " << formatted(sRate1.back(), 0)
                  << "; 16 clients agent " << formatted(aRate16.back(), 0) << " systemd " << formatted(sRate16.back(), 0) << std::endl;
    }
    const double ap50 = percentile(aProp, 50), ap99 = percentile(aProp, 99), sp50 = percentile(sProp, 50), sp99 = percentile(sProp, 99);
    const double al50 = percentile(aList, 50), al99 = percentile(aList, 99);
    const double a1 = median(aRate1), s1 = median(sRate1), a16 = median(aRate16), s16 = median(sRate16);
    std::cout << "\n4. D-Bus (" << rounds << " rounds alternating, " << n << " calls per latency batch; µs)\n";
    std::cout << "   Get State (agent)            p50 " << formatted(ap50) << "  p99 " << formatted(ap99) << "\n";
    std::cout << "   ListBackups (agent, 1 entry) p50 " << formatted(al50) << "  p99 " << formatted(al99) << "\n";
    std::cout << "   Get Version (systemd)        p50 " << formatted(sp50) << "  p99 " << formatted(sp99) << "\n";
    std::cout << "   calls/s, 1 client:   agent " << formatted(a1, 0) << "  systemd " << formatted(s1, 0) << "  (medians of " << join(aRate1, 0) << " | "
              << join(sRate1, 0) << ")\n";
    std::cout << "   calls/s, 16 clients: agent " << formatted(a16, 0) << "  systemd " << formatted(s16, 0) << "  (medians of " << join(aRate16, 0)
              << " | " << join(sRate16, 0) << ")\n";
    const double ac = median(aCpu), sc = median(sCpu);
    std::cout << "   server CPU per property read (main thread, /proc/PID/schedstat): agent " << formatted(ac, 1) << " µs  systemd "
              << formatted(sc, 1) << " µs  (medians of " << join(aCpu, 1) << " | " << join(sCpu, 1) << ")\n";
    // "Not slower": within 5 % (run-to-run noise on a shared machine).
    addSummary({"4 D-Bus", "property read p50 / p99 (µs)", formatted(ap50) + " / " + formatted(ap99), "systemd " + formatted(sp50) + " / " + formatted(sp99),
                ratio(ap50, sp50), "<= systemd", ap50 <= 1.05 * sp50 && ap99 <= 1.05 * sp99});
    addSummary({"4 D-Bus", "ListBackups p50 / p99 (µs)", formatted(al50) + " / " + formatted(al99), "systemd prop " + formatted(sp50) + " / " + formatted(sp99),
                ratio(al50, sp50), "<= systemd", al50 <= 1.05 * sp50 && al99 <= 1.05 * sp99});
    addSummary({"4 D-Bus", "server CPU per property read (µs)", formatted(ac, 1), "systemd " + formatted(sc, 1), ratio(ac, sc), "<= systemd",
                ac <= 1.05 * sc});
    addSummary({"4 D-Bus", "calls/s, 1 client", formatted(a1, 0), "systemd " + formatted(s1, 0), ratio(a1, s1), ">= systemd", a1 >= 0.95 * s1});
    addSummary({"4 D-Bus", "calls/s, 16 clients", formatted(a16, 0), "systemd " + formatted(s16, 0), ratio(a16, s16), ">= systemd", a16 >= 0.95 * s16});
    return 0;
}
