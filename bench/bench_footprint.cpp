// Benchmark 3: idle footprint.
//
// The agent runs as a unit with WatchdogSec=10s (it feeds the watchdog every
// WATCHDOG_USEC/4 = 2.5 s). Measured from /proc: RssAnon (its own memory),
// VmRSS, PSS (smaps_rollup), threads, after start, after 10,000 status calls
// (GetAll on io.armdock.Agent1, what `armdockctl status` reads) and after
// 10,000 more; then CPU time and wake-ups (context switches of all its
// threads) over ARMDOCK_BENCH_IDLE_SEC (default 60) idle seconds. The same
// numbers for the sandbox's dbus-daemon, a small C daemon on the same bus,
// are printed beside them as the reference.
//
// When ARMDOCK_BENCH_STATIC_AGENT names the x86-64 static agent of
// packaging/build-static.sh (bench/run.sh sets it when that build exists),
// the same unit is then restarted on it and measured the same way, beside
// the dynamic one: most of the dynamic agent's VmRSS is shared libraries.
#include <optional>

#include "bench_agent.hpp"
#include "dbus/agent_names.hpp"

using namespace armdock::bench;

namespace {

struct Memory {
    long rssAnon, vmRss, pss;
    int threads;
};

Memory memoryOf(pid_t pid) { return {procStatusKb(pid, "RssAnon"), procStatusKb(pid, "VmRSS"), procPssKb(pid), procThreads(pid)}; }

std::string kb(long v) { return std::to_string(v) + " kB"; }

void statusCalls(const std::string& bus, int n)
{
    auto connection = sdbus::createSessionBusConnectionWithAddress(bus);
    auto proxy = sdbus::createProxy(*connection, armdock::agentBusName, armdock::agentObjectPath);
    for (int i = 0; i < n; ++i) {
        std::map<std::string, sdbus::Variant> all;
        proxy->callMethod("GetAll").onInterface("org.freedesktop.DBus.Properties").withArguments(std::string(armdock::agentInterfaceName)).storeResultsTo(all);
    }
}

}  // namespace

int main()
{
    const int idleSec = envInt("ARMDOCK_BENCH_IDLE_SEC", 60);
    const int calls = envInt("ARMDOCK_BENCH_STATUS_CALLS", 10000);
    Sandbox sandbox;
    startAgent(sandbox, "WatchdogSec=10s\n");
    const pid_t agent = sandbox.mainPid("armdock-agent.service");
    const pid_t bus = sandbox.mainPid("dbus.service");
    std::this_thread::sleep_for(std::chrono::seconds(1));

    const Memory aStart = memoryOf(agent), bStart = memoryOf(bus);
    statusCalls(sandbox.busAddress(), calls);
    const Memory a1 = memoryOf(agent), b1 = memoryOf(bus);
    statusCalls(sandbox.busAddress(), calls);
    const Memory a2 = memoryOf(agent), b2 = memoryOf(bus);

    std::cout << "3. Idle footprint (agent PID " << agent << ", reference: the sandbox's dbus-daemon PID " << bus << ")\n";
    std::cout << "                          agent                       dbus-daemon\n";
    auto row = [](const char* what, const Memory& a, const Memory& b) {
        std::cout << "   " << what << "  RssAnon " << kb(a.rssAnon) << " VmRSS " << kb(a.vmRss) << " PSS " << kb(a.pss) << " threads "
                  << a.threads << "   |  RssAnon " << kb(b.rssAnon) << " VmRSS " << kb(b.vmRss) << " PSS " << kb(b.pss) << "\n";
    };
    row("after start     ", aStart, bStart);
    row(("after " + std::to_string(calls) + " calls").c_str(), a1, b1);
    row(("after " + std::to_string(2 * calls) + " calls").c_str(), a2, b2);

    const double cpu0 = procCpuMs(agent), bcpu0 = procCpuMs(bus);
    const long cs0 = procContextSwitches(agent), bcs0 = procContextSwitches(bus);
    std::this_thread::sleep_for(std::chrono::seconds(idleSec));
    const double cpu = procCpuMs(agent) - cpu0, bcpu = procCpuMs(bus) - bcpu0;
    const long wakeups = procContextSwitches(agent) - cs0, bwakeups = procContextSwitches(bus) - bcs0;
    const long watchdogTicks = idleSec * 4 / 10;  // WatchdogSec=10s, fed every 2.5 s
    std::cout << "   idle " << idleSec << " s: agent CPU " << formatted(cpu, 0) << " ms, " << wakeups << " wake-ups (watchdog feeds: "
              << watchdogTicks << ")   |  dbus-daemon CPU " << formatted(bcpu, 0) << " ms, " << bwakeups << " wake-ups\n";

    // The static build, if there is one: the same unit, restarted on it.
    std::optional<Memory> staticAfterCalls;
    if (const char* v = std::getenv("ARMDOCK_BENCH_STATIC_AGENT"); v && *v && fs::exists(v)) {
        sandbox.systemctl({"stop", "armdock-agent.service"});
        sandbox.agentUnit(v, writeBenchConfig(sandbox), {}, "WatchdogSec=10s\n");
        sandbox.startUnits({"armdock-agent.service"});
        if (!AgentClient::waitForAgent(sandbox.busAddress())) {
            std::cerr << "the static agent " << v << " did not take its bus name\n";
            return 1;
        }
        const pid_t staticAgent = sandbox.mainPid("armdock-agent.service");
        std::this_thread::sleep_for(std::chrono::seconds(1));
        const Memory sStart = memoryOf(staticAgent);
        statusCalls(sandbox.busAddress(), 2 * calls);
        staticAfterCalls = memoryOf(staticAgent);
        std::cout << "   static build (" << v << ", PID " << staticAgent << ")\n";
        auto one = [](const char* what, const Memory& m) {
            std::cout << "   " << what << "  RssAnon " << kb(m.rssAnon) << " VmRSS " << kb(m.vmRss) << " PSS " << kb(m.pss)
                      << " threads " << m.threads << "\n";
        };
        one("after start     ", sStart);
        one(("after " + std::to_string(2 * calls) + " calls").c_str(), *staticAfterCalls);
    }

    const long growth = a2.rssAnon - a1.rssAnon;
    addSummary({"3 footprint", "RssAnon after start / after " + std::to_string(2 * calls) + " calls (kB)",
                std::to_string(aStart.rssAnon) + " / " + std::to_string(a2.rssAnon), "dbus-daemon " + std::to_string(b2.rssAnon),
                ratio(a2.rssAnon, b2.rssAnon), "< 1024 kB", a2.rssAnon < 1024});
    addSummary({"3 footprint", "RssAnon growth, calls " + std::to_string(calls) + " -> " + std::to_string(2 * calls) + " (kB)",
                std::to_string(growth), "dbus-daemon " + std::to_string(b2.rssAnon - b1.rssAnon), "n/a", "0 (no growth)", growth <= 0});
    addSummary({"3 footprint", "VmRSS / PSS after calls (kB)", std::to_string(a2.vmRss) + " / " + std::to_string(a2.pss),
                "dbus-daemon " + std::to_string(b2.vmRss) + " / " + std::to_string(b2.pss), ratio(a2.vmRss, b2.vmRss), "VmRSS < 6144 kB",
                a2.vmRss < 6144});
    if (staticAfterCalls) {
        const Memory& m = *staticAfterCalls;
        addSummary({"3 footprint", "static build: VmRSS / PSS / RssAnon after calls (kB)",
                    std::to_string(m.vmRss) + " / " + std::to_string(m.pss) + " / " + std::to_string(m.rssAnon),
                    "dynamic " + std::to_string(a2.vmRss) + " / " + std::to_string(a2.pss) + " / " + std::to_string(a2.rssAnon),
                    ratio(m.vmRss, a2.vmRss), "VmRSS < 6144 kB", m.vmRss < 6144});
    }
    addSummary({"3 footprint", "idle " + std::to_string(idleSec) + " s: CPU ms, wake-ups", formatted(cpu, 0) + " ms, " + std::to_string(wakeups),
                "watchdog feeds " + std::to_string(watchdogTicks), ratio(wakeups, watchdogTicks), "wake-ups <= watchdog's",
                wakeups <= watchdogTicks + 1});
    return 0;
}
