// Benchmark 5: start to READY=1.
//
// The agent runs as a Type=notify unit of the sandbox's systemd user manager
// (dockerd running). Each round restarts it and reads, from the manager,
// ExecMainStartTimestampMonotonic (the main process was spawned) and
// ActiveEnterTimestampMonotonic (the manager got READY=1 and the unit became
// active); the difference is the start time. The reference, alternating with
// it, is bench_notify_ready: a Type=notify unit that only sends READY=1 (the
// floor of this manager and machine).
//
// ARMDOCK_BENCH_STARTS (default 10) sets the number of rounds. When
// ARMDOCK_BENCH_STATIC_AGENT names the x86-64 static agent of
// packaging/build-static.sh (bench/run.sh sets it when that build exists),
// each round also starts the same unit on it: the dynamic agent's start
// holds the loading of its 16 shared libraries.
#include "bench_agent.hpp"

using namespace armdock::bench;

namespace {

double startMs(const Sandbox& sandbox, const std::string& unit)
{
    auto stop = sandbox.systemctl({"stop", unit});
    auto start = sandbox.systemctl({"start", unit});
    if (start.exitCode != 0) {
        std::cerr << "systemctl start " << unit << ": " << start.output << "\n";
        std::exit(1);
    }
    auto show = sandbox.systemctl({"show", "-p", "ExecMainStartTimestampMonotonic", "-p", "ActiveEnterTimestampMonotonic", unit});
    std::map<std::string, double> v;
    std::istringstream in(show.output);
    std::string line;
    while (std::getline(in, line))
        if (auto eq = line.find('='); eq != std::string::npos)
            v[line.substr(0, eq)] = std::atof(line.c_str() + eq + 1);
    return (v["ActiveEnterTimestampMonotonic"] - v["ExecMainStartTimestampMonotonic"]) / 1000.0;
}

}  // namespace

int main(int, char** argv)
{
    const int rounds = envInt("ARMDOCK_BENCH_STARTS", 10);
    Sandbox sandbox;
    startAgent(sandbox);
    const fs::path notifier = fs::canonical("/proc/self/exe").parent_path() / "bench_notify_ready";
    (void)argv;
    sandbox.writeUnit("bench-notify.service", "[Unit]\nDescription=READY=1 and nothing else\n\n[Service]\nType=notify\nExecStart=" +
                                                  notifier.string() + "\n");
    sandbox.daemonReload();

    const char* staticAgentEnv = std::getenv("ARMDOCK_BENCH_STATIC_AGENT");
    const fs::path staticAgent = staticAgentEnv && *staticAgentEnv && fs::exists(staticAgentEnv) ? fs::path(staticAgentEnv) : fs::path();
    const fs::path config = writeBenchConfig(sandbox);
    // One bus name: the unit runs one binary or the other, rewritten between starts.
    auto useBinary = [&](const fs::path& binary) {
        sandbox.stopUnits({"armdock-agent.service"});
        sandbox.agentUnit(binary, config);
    };

    std::vector<double> agent, reference, statics;
    for (int i = 0; i < rounds; ++i) {
        agent.push_back(startMs(sandbox, "armdock-agent.service"));
        reference.push_back(startMs(sandbox, "bench-notify.service"));
        std::cout << "round " << i + 1 << ": agent " << formatted(agent.back(), 2) << " ms   sd_notify-only " << formatted(reference.back(), 2)
                  << " ms";
        if (!staticAgent.empty()) {
            useBinary(staticAgent);
            statics.push_back(startMs(sandbox, "armdock-agent.service"));
            useBinary(requireAgentBinary());
            std::cout << "   static build " << formatted(statics.back(), 2) << " ms";
        }
        std::cout << std::endl;
    }
    sandbox.stopUnits({"bench-notify.service"});
    const double a = median(agent), r = median(reference);
    std::cout << "\n5. Start to READY=1 (ExecMainStartTimestampMonotonic -> ActiveEnterTimestampMonotonic), " << rounds
              << " rounds alternating\n";
    std::cout << "   agent          runs: " << join(agent, 2) << "  median " << formatted(a, 2) << " ms\n";
    std::cout << "   sd_notify-only runs: " << join(reference, 2) << "  median " << formatted(r, 2) << " ms\n";
    addSummary({"5 start", "exec -> READY=1, median ms", formatted(a, 2), "sd_notify-only " + formatted(r, 2), ratio(a, r), "< 20 ms", a < 20});
    if (!statics.empty()) {
        const double st = median(statics);
        std::cout << "   static build   runs: " << join(statics, 2) << "  median " << formatted(st, 2) << " ms (" << staticAgent.string()
                  << ")\n";
        addSummary({"5 start", "static build: exec -> READY=1, median ms", formatted(st, 2), "sd_notify-only " + formatted(r, 2), ratio(st, r),
                    "< 20 ms", st < 20});
    }
    return 0;
}
