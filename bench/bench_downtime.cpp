// Benchmarks 1 and 2: upgrade downtime as a client sees it, and readiness latency.
//
// One sandbox (real systemd user manager, dbus-daemon, socket-activated
// dockerd of ~75 MB), the agent as a unit. Each round runs, in this order,
//   A  the agent: Upgrade(docker, dockerinit) over D-Bus, until Finished;
//   B  the manual procedure: systemctl stop docker.socket docker.service;
//      cp docker; cp dockerinit; systemctl start docker.socket docker.service;
//   C  the limit: the same without the copies (stop, then start);
// while a client thread sends GET /_ping every millisecond. Downtime = the
// longest span from a failed ping's start to the next good ping's answer.
//
// Readiness (2): in each agent run, the time from the pinger's first good
// ping after the outage (dockerd answering /_ping again) to the moment the
// agent's Progress changes to "checking version" (emitted right after its
// own /_ping succeeded), received as PropertiesChanged on the benchmark's
// bus connection, both on CLOCK_MONOTONIC. This includes the signal's trip
// through dbus-daemon, so it is an upper bound of the agent's latency.
//
// ARMDOCK_BENCH_ROUNDS (default 5) sets the number of A B C rounds.
#include "bench_agent.hpp"
#include "core/vocabulary.hpp"

using namespace armdock::bench;

namespace {

struct Run {
    double downtimeMs = NAN;
    double readinessMs = NAN;
    int outages = 0;
    std::size_t pings = 0;
    Clock::time_point firstFailed{}, nextGood{};
};

template <class Op>
Run measure(const Sandbox& sandbox, Op op)
{
    Pinger pinger(sandbox.dockerSocket().string());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // good pings before
    Run run;
    op(run, pinger);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // good pings after
    pinger.stop();
    auto o = pinger.outage();
    run.downtimeMs = o.downtimeMs;
    run.outages = o.outages;
    run.pings = o.pings;
    run.firstFailed = o.firstFailed;
    run.nextGood = o.nextGood;
    return run;
}

// Where the downtime went, from docker.service's timestamps in the manager
// (CLOCK_MONOTONIC, like the pinger's): relative to the first failed ping,
// when the start of the new engine began, it was spawned, sent READY=1,
// and the pinger's next good answer.
std::string phases(const Sandbox& sandbox, const Run& run)
{
    auto show = sandbox.systemctl({"show", "-p", "InactiveExitTimestampMonotonic", "-p", "ExecMainStartTimestampMonotonic", "-p",
                                   "ActiveEnterTimestampMonotonic", "docker.service"});
    std::map<std::string, double> v;
    std::istringstream in(show.output);
    std::string line;
    while (std::getline(in, line))
        if (auto eq = line.find('='); eq != std::string::npos)
            v[line.substr(0, eq)] = std::atof(line.c_str() + eq + 1) / 1000.0;  // ms
    const double t0 = std::chrono::duration<double, std::milli>(run.firstFailed.time_since_epoch()).count();
    return "start began +" + formatted(v["InactiveExitTimestampMonotonic"] - t0) + ", spawned +" + formatted(v["ExecMainStartTimestampMonotonic"] - t0) +
           ", READY=1 +" + formatted(v["ActiveEnterTimestampMonotonic"] - t0) + ", answers +" + formatted(run.downtimeMs) + " ms";
}

void waitHealthy(const Sandbox& sandbox)
{
    if (!Sandbox::waitFor([&] { return pingOnce(sandbox.dockerSocket().string(), std::chrono::milliseconds(2000)); },
                          std::chrono::seconds(30))) {
        std::cerr << "dockerd does not answer between runs\n";
        std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
}

}  // namespace

int main()
{
    const int rounds = envInt("ARMDOCK_BENCH_ROUNDS", 5);
    Sandbox sandbox;
    startAgent(sandbox);
    AgentClient client(sandbox.busAddress());
    SignalWatcher watcher(sandbox.busAddress());

    const fs::path work = sandbox.dir() / "bench";
    fs::create_directories(work);
    const fs::path docker = sandbox.payloadPath("docker");
    const fs::path dockerinit = sandbox.payloadPath("dockerinit");
    std::cout << "engine: " << docker << " (" << fs::file_size(docker) / (1024 * 1024) << " MiB)\n";
    // The agent alternates between two sets (an Upgrade to the installed set is refused);
    // the manual procedure copies a third.
    const fs::path agentEngines[2] = {variantOf(docker, work / "docker-a", "bench-a"), variantOf(docker, work / "docker-b", "bench-b")};
    const fs::path agentInits[2] = {variantOf(dockerinit, work / "init-a", "bench-a"), variantOf(dockerinit, work / "init-b", "bench-b")};
    const fs::path manualEngine = variantOf(docker, work / "docker-m", "bench-m");
    const fs::path manualInit = variantOf(dockerinit, work / "init-m", "bench-m");

    const std::string sys = "systemctl --user --no-pager --no-ask-password";
    const std::string manualScript = sys + " stop docker.socket docker.service && cp " + manualEngine.string() + " " + docker.string() +
                                     " && cp " + manualInit.string() + " " + dockerinit.string() + " && " + sys +
                                     " start docker.socket docker.service";
    const std::string limitScript = sys + " stop docker.socket docker.service && " + sys + " start docker.socket docker.service";
    std::cout << "manual: " << manualScript << "\nlimit:  " << limitScript << "\n";

    std::vector<std::string> breakdown;
    std::vector<double> agentDown, manualDown, limitDown, readiness;
    for (int i = 0; i < rounds; ++i) {
        waitHealthy(sandbox);
        Run a = measure(sandbox, [&](Run&, Pinger&) {
            std::string tx = client.upgrade({{"docker", agentEngines[i % 2].string()}, {"dockerinit", agentInits[i % 2].string()}});
            auto [result, message] = watcher.waitFinished(tx, std::chrono::seconds(180));
            if (result != armdock::toString(armdock::TransactionResult::Success)) {
                std::cerr << "agent upgrade " << tx << ": " << result << ": " << message << "\n";
                std::exit(1);
            }
        });
        // Readiness: the pinger's first good ping after the outage -> "checking version".
        if (a.outages > 0)
            if (auto at = watcher.progressAt("checking version", a.firstFailed))
                a.readinessMs = msBetween(a.nextGood, *at);
        const std::string aPhases = phases(sandbox, a);
        waitHealthy(sandbox);
        Run b = measure(sandbox, [&](Run&, Pinger&) {
            auto r = sandbox.run({"/bin/sh", "-c", manualScript}, std::chrono::seconds(120));
            if (r.exitCode != 0) {
                std::cerr << "manual procedure failed: " << r.output << "\n";
                std::exit(1);
            }
        });
        const std::string bPhases = phases(sandbox, b);
        waitHealthy(sandbox);
        Run c = measure(sandbox, [&](Run&, Pinger&) {
            auto r = sandbox.run({"/bin/sh", "-c", limitScript}, std::chrono::seconds(120));
            if (r.exitCode != 0) {
                std::cerr << "stop/start failed: " << r.output << "\n";
                std::exit(1);
            }
        });
        breakdown.push_back("   round " + std::to_string(i + 1) + " agent:  " + aPhases + "\n   round " + std::to_string(i + 1) +
                            " manual: " + bPhases + "\n   round " + std::to_string(i + 1) + " limit:  " + phases(sandbox, c) + "\n");
        agentDown.push_back(a.downtimeMs);
        manualDown.push_back(b.downtimeMs);
        limitDown.push_back(c.downtimeMs);
        if (!std::isnan(a.readinessMs))
            readiness.push_back(a.readinessMs);
        std::cout << "round " << i + 1 << ": agent " << formatted(a.downtimeMs) << " ms (" << a.outages << " outage(s), " << a.pings
                  << " pings; readiness " << formatted(a.readinessMs, 2) << " ms)   manual " << formatted(b.downtimeMs) << " ms   limit "
                  << formatted(c.downtimeMs) << " ms" << std::endl;
    }

    const double mA = median(agentDown), mM = median(manualDown), mL = median(limitDown), mR = median(readiness);
    std::cout << "\n1. Upgrade downtime (longest failed-ping start -> next good ping answer; 1 ms pinger), " << rounds
              << " rounds, A B C alternating\n";
    std::cout << "   agent   runs: " << join(agentDown) << "  median " << formatted(mA) << " ms\n";
    std::cout << "   manual  runs: " << join(manualDown) << "  median " << formatted(mM) << " ms\n";
    std::cout << "   limit   runs: " << join(limitDown) << "  median " << formatted(mL) << " ms\n";
    std::cout << "   agent/limit " << ratio(mA, mL) << "   agent/manual " << ratio(mA, mM) << "\n";
    std::cout << "   where it went (docker.service in the manager, from the first failed ping):\n";
    for (const auto& b : breakdown)
        std::cout << b;
    std::cout << "\n2. Readiness latency (pinger's first good ping -> agent's 'checking version' PropertiesChanged)\n";
    std::cout << "   agent   runs: " << join(readiness, 2) << "  median " << formatted(mR, 2) << " ms\n";

    addSummary({"1 downtime", "agent vs limit (stop+start), median ms", formatted(mA), "limit " + formatted(mL), ratio(mA, mL), "<= 1.05", mA <= 1.05 * mL});
    // The issue derives "about 0.6 x manual" from "1.05 x the limit" and the
    // references it saw (limit 100, manual 165 ms). No upgrade can beat the
    // limit, so the goal in this run is 1.05 x limit/manual, printed beside.
    addSummary({"1 downtime", "agent vs manual (stop+cp+cp+start), median ms", formatted(mA), "manual " + formatted(mM), ratio(mA, mM),
                "~0.6 (here 1.05 x limit/manual = " + ratio(1.05 * mL, mM) + ")", mA <= 1.05 * mL});
    addSummary({"2 readiness", "first good /_ping -> agent 'checking', median ms", formatted(mR, 2), "goal 5", ratio(mR, 5), "< 5 ms", mR < 5});
    return 0;
}
