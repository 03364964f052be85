// Benchmarks 1 and 2: an engine upgrade as clients and containers see it,
// and readiness latency.
//
// One sandbox (real systemd user manager, dbus-daemon, containerd,
// socket-activated dockerd of ~75 MB started with --live-restore, a busybox
// container writing a heartbeat every 2 ms), the agent as a unit. Each round
// runs, in this order,
//   H  the agent holding the socket: Upgrade(docker, dockerinit) with
//      docker.hold_socket = true, until Finished;
//   A  the agent stopping the socket: the same with hold_socket = false;
//   M  the manual procedure: systemctl stop docker.socket docker.service;
//      cp docker; cp dockerinit; systemctl start docker.socket docker.service;
//   L  the limit: StopUnit docker.socket, docker.service, then StartUnit both,
//      over D-Bus from this process (systemd's jobs and nothing else: no
//      systemctl process, no file);
//   R  the limit holding the socket: RestartUnit docker.service over D-Bus;
//   N  the same after a new engine file was renamed over the target (what
//      holding the socket costs at least with a new file: its first exec);
// while a client thread sends GET /_ping every millisecond. For each: failed
// pings, the longest stall (the longest span between two good answers: a
// client waits it, refused or queued), and the container: restarted (its Pid
// changed) and the longest gap in its heartbeat.
//
// Readiness (2): in each agent run, the time from the pinger's answer that
// ended the stall (dockerd answering /_ping again) to the moment the
// agent's Progress changes to its first step after its own /_ping ("checking
// that N container(s) kept running" with live-restore, else "checking version"), received as PropertiesChanged on the benchmark's
// bus connection, both on CLOCK_MONOTONIC.
//
// ARMDOCK_BENCH_ROUNDS (default 5) sets the number of rounds.
#include <sdbus-c++/sdbus-c++.h>

#include <condition_variable>

#include "bench_agent.hpp"
#include "core/vocabulary.hpp"

using namespace armdock::bench;

namespace {

// A run that cannot go on: thrown, not exit(), so that the sandbox is torn
// down (its container would outlive it: live-restore keeps it running).
struct BenchFailed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// systemd's Manager on the sandbox's bus: jobs enqueued together, each
// awaited by its JobRemoved, as the agent does it.
class SystemdJobs {
public:
    explicit SystemdJobs(const std::string& busAddress)
        : connection_(sdbus::createSessionBusConnectionWithAddress(busAddress)),
          proxy_(sdbus::createProxy(*connection_, "org.freedesktop.systemd1", "/org/freedesktop/systemd1"))
    {
        proxy_->uponSignal("JobRemoved")
            .onInterface(manager)
            .call([this](std::uint32_t, const sdbus::ObjectPath& job, const std::string&, const std::string& result) {
                std::lock_guard lock(mutex_);
                removed_[job] = result;
                cv_.notify_all();
            });
        proxy_->finishRegistration();
        connection_->enterEventLoopAsync();
        proxy_->callMethod("Subscribe").onInterface(manager);
    }
    ~SystemdJobs() { connection_->leaveEventLoop(); }

    // Every job first, then all awaited; false (and why) unless each is "done".
    bool run(const std::string& method, const std::vector<std::string>& units, std::string& why)
    {
        std::vector<sdbus::ObjectPath> jobs;
        for (const auto& unit : units) {
            sdbus::ObjectPath job;
            proxy_->callMethod(method).onInterface(manager).withArguments(unit, std::string("replace")).storeResultsTo(job);
            jobs.push_back(job);
        }
        std::unique_lock lock(mutex_);
        for (std::size_t i = 0; i < jobs.size(); ++i) {
            if (!cv_.wait_for(lock, std::chrono::seconds(120), [&] { return removed_.count(jobs[i]) > 0; })) {
                why = method + " " + units[i] + ": no JobRemoved";
                return false;
            }
            if (removed_[jobs[i]] != "done") {
                why = method + " " + units[i] + ": " + removed_[jobs[i]];
                return false;
            }
        }
        return true;
    }

private:
    static constexpr const char* manager = "org.freedesktop.systemd1.Manager";
    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> proxy_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::map<std::string, std::string> removed_;
};

// Watches the container's heartbeat file (a counter it rewrites every 2 ms)
// and keeps the longest time between two changes.
class HeartbeatWatcher {
public:
    explicit HeartbeatWatcher(fs::path file) : file_(std::move(file))
    {
        thread_ = std::thread([this] {
            std::string last;
            auto lastChange = Clock::now();
            while (!stop_) {
                std::ifstream in(file_);
                std::string beat;
                std::getline(in, beat);
                const auto now = Clock::now();
                if (!beat.empty() && beat != last) {
                    if (!last.empty())
                        longestMs_ = std::max(longestMs_, msBetween(lastChange, now));
                    last = beat;
                    lastChange = now;
                }
                std::this_thread::sleep_for(std::chrono::microseconds(500));
            }
            longestMs_ = std::max(longestMs_, msBetween(lastChange, Clock::now()));
        });
    }
    ~HeartbeatWatcher() { stop(); }
    double stop()
    {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
        return longestMs_;
    }

private:
    fs::path file_;
    std::atomic<bool> stop_{false};
    double longestMs_ = 0;
    std::thread thread_;
};

struct Run {
    Clock::time_point began{};  // when the operation began
    Pinger::Stall stall;
    double readinessMs = NAN;
    double containerGapMs = NAN;
    bool containerRestarted = false;
    std::size_t pings = 0;
};

struct Mode {
    explicit Mode(std::string n) : name(std::move(n)) {}
    std::string name;
    std::vector<double> stallMs, readinessMs, gapMs;
    long failed = 0, restarts = 0, failedRuns = 0;
    std::vector<std::string> phases;
};

class Bench {
public:
    explicit Bench(Sandbox& s) : sandbox(s), jobs(s.busAddress()) {}

    std::string containerPid()
    {
        auto r = sandbox.docker({"inspect", "-f", "{{.State.Pid}}", "beat"});
        return r.exitCode == 0 ? r.output : "?";
    }

    template <class Op>
    Run measure(Op op)
    {
        const std::string pidBefore = containerPid();
        HeartbeatWatcher heart(heartbeat);
        Pinger pinger(sandbox.dockerSocket().string());
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // good pings before
        const auto began = Clock::now();
        op();
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // good pings after
        pinger.stop();
        Run run;
        run.began = began;
        run.containerGapMs = heart.stop();
        run.stall = pinger.stall();
        run.pings = pinger.samples().size();
        run.containerRestarted = containerPid() != pidBefore;
        return run;
    }

    // Where the stall went: relative to the client's last answer before it,
    // the agent's steps (its Progress signals) and docker.service's
    // timestamps in the manager (CLOCK_MONOTONIC, like the pinger's).
    std::string phases(const Run& run, bool agent)
    {
        const double t0 = std::chrono::duration<double, std::milli>(run.stall.from.time_since_epoch()).count();
        auto rel = [&](Clock::time_point at) { return "+" + formatted(msBetween(run.stall.from, at)); };
        std::string out;
        if (agent)
            for (const char* step : {"stopping", "holding", "renaming", "starting", "restarting", "checking version"})
                if (auto at = watcher.progressAt(step, run.began); at && *at < run.stall.to + std::chrono::seconds(2))
                    out += std::string(step) + " " + rel(*at) + ", ";
        auto show = sandbox.systemctl({"show", "-p", "InactiveEnterTimestampMonotonic", "-p", "InactiveExitTimestampMonotonic", "-p",
                                       "ExecMainStartTimestampMonotonic", "-p", "ActiveEnterTimestampMonotonic", "docker.service"});
        std::map<std::string, double> v;
        std::istringstream in(show.output);
        std::string line;
        while (std::getline(in, line))
            if (auto eq = line.find('='); eq != std::string::npos)
                v[line.substr(0, eq)] = std::atof(line.c_str() + eq + 1) / 1000.0;  // ms
        return out + "dockerd gone +" + formatted(v["InactiveEnterTimestampMonotonic"] - t0) + ", start began +" +
               formatted(v["InactiveExitTimestampMonotonic"] - t0) + ", spawned +" + formatted(v["ExecMainStartTimestampMonotonic"] - t0) +
               ", READY=1 +" + formatted(v["ActiveEnterTimestampMonotonic"] - t0) + ", answers +" + formatted(run.stall.longestMs) + " ms";
    }

    void waitHealthy()
    {
        if (!Sandbox::waitFor([&] { return pingOnce(sandbox.dockerSocket().string(), std::chrono::milliseconds(2000)); },
                              std::chrono::seconds(30))) {
            throw BenchFailed("dockerd does not answer between runs");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }

    void setHoldSocket(bool hold)
    {
        writeBenchConfig(sandbox, {{"docker.hold_socket", hold ? "true" : "false"}});
        client.reload();
    }

    Run agentUpgrade(bool hold, const fs::path& engine, const fs::path& init)
    {
        setHoldSocket(hold);
        waitHealthy();
        std::string message;
        Run run = measure([&] {
            const std::string tx = client.upgrade({{"docker", engine.string()}, {"dockerinit", init.string()}});
            auto [result, said] = watcher.waitFinished(tx, std::chrono::seconds(180));
            if (result != armdock::toString(armdock::TransactionResult::Success)) {
                throw BenchFailed("agent upgrade " + tx + ": " + result + ": " + said);
            }
            message = said;
        });
        const bool held = watcher.progressAt("holding", run.began).has_value();
        if (held != hold) {
            throw BenchFailed(std::string("the agent ") + (held ? "held" : "did not hold") + " the socket with hold_socket = " + (hold ? "true" : "false"));
        }
        // The first step after the agent's own /_ping: with live-restore the
        // kept-running check comes before the version.
        auto at = watcher.progressAt("checking that", run.stall.from);
        if (auto version = watcher.progressAt("checking version", run.stall.from); version && (!at || *version < *at))
            at = version;
        if (at)
            run.readinessMs = msBetween(run.stall.to, *at);
        return run;
    }

    Run script(const std::string& command)
    {
        waitHealthy();
        return measure([&] {
            auto r = sandbox.run({"/bin/sh", "-c", command}, std::chrono::seconds(120));
            if (r.exitCode != 0) {
                throw BenchFailed(command + " failed: " + r.output);
            }
        });
    }

    Run systemdJobs(const std::vector<std::pair<std::string, std::vector<std::string>>>& batches)
    {
        waitHealthy();
        return measure([&] {
            for (const auto& [method, units] : batches) {
                std::string why;
                if (!jobs.run(method, units, why)) {
                    throw BenchFailed(why);
                }
            }
        });
    }

    Sandbox& sandbox;
    AgentClient client{sandbox.busAddress()};
    SignalWatcher watcher{sandbox.busAddress()};
    SystemdJobs jobs;
    fs::path heartbeat;
};

void note(Mode& m, const Run& r, const std::string& phases)
{
    m.stallMs.push_back(r.stall.longestMs);
    m.failed += r.stall.failed;
    m.failedRuns += r.stall.failed > 0 ? 1 : 0;
    m.restarts += r.containerRestarted ? 1 : 0;
    m.gapMs.push_back(r.containerGapMs);
    if (!std::isnan(r.readinessMs))
        m.readinessMs.push_back(r.readinessMs);
    m.phases.push_back(phases);
}

}  // namespace

int measureAll()
{
    const int rounds = envInt("ARMDOCK_BENCH_ROUNDS", 5);
    armdock::test::SandboxOptions options;
    options.containerdPayload = true;  // Debian's units: docker.service Wants= containerd.service
    options.dockerdArgs = {"--live-restore"};
    Sandbox sandbox(options);
    startAgent(sandbox);
    Bench bench(sandbox);

    // The container: a heartbeat counter in a folder shared with this process.
    const fs::path work = sandbox.dir() / "bench";
    fs::create_directories(work / "heartbeat");
    bench.heartbeat = work / "heartbeat/beat";
    sandbox.importBusyboxImage("armdock-busybox");
    auto run = sandbox.docker({"run", "-d", "--network=none", "--name", "beat", "-v", (work / "heartbeat").string() + ":/hb", "armdock-busybox",
                               "/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /hb/beat; /bin/busybox usleep 2000; done"});
    if (run.exitCode != 0 || !Sandbox::waitFor([&] { return fs::exists(bench.heartbeat); }, std::chrono::seconds(10))) {
        std::cerr << "the heartbeat container does not run: " << run.output << "\n";
        return 1;
    }

    const fs::path docker = sandbox.payloadPath("docker");
    const fs::path dockerinit = sandbox.payloadPath("dockerinit");
    std::cout << "engine: " << docker << " (" << fs::file_size(docker) / (1024 * 1024) << " MiB), dockerd --live-restore, 1 container\n";
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
    std::cout << "manual: " << manualScript << "\nlimit:  StopUnit docker.socket docker.service, then StartUnit both (D-Bus)\n"
              << "limit, socket held: RestartUnit docker.service (D-Bus)\n";

    Mode held{"agent, socket held"}, stopped{"agent, socket stopped"}, manual{"manual"}, limit{"limit"}, limitHeld{"limit, socket held"},
        newHeld{"new file, socket held"};
    const fs::path newFiles[2] = {variantOf(docker, work / "docker-n1", "bench-n1"), variantOf(docker, work / "docker-n2", "bench-n2")};
    int upgrades = 0;
    for (int i = 0; i < rounds; ++i) {
        Run h = bench.agentUpgrade(true, agentEngines[upgrades % 2], agentInits[upgrades % 2]);
        ++upgrades;
        note(held, h, bench.phases(h, true));
        Run a = bench.agentUpgrade(false, agentEngines[upgrades % 2], agentInits[upgrades % 2]);
        ++upgrades;
        note(stopped, a, bench.phases(a, true));
        Run m = bench.script(manualScript);
        note(manual, m, bench.phases(m, false));
        Run l = bench.systemdJobs({{"StopUnit", {"docker.socket", "docker.service"}}, {"StartUnit", {"docker.socket", "docker.service"}}});
        note(limit, l, bench.phases(l, false));
        Run r = bench.systemdJobs({{"RestartUnit", {"docker.service"}}});
        note(limitHeld, r, bench.phases(r, false));
        // A fresh copy renamed over the engine (as the agent's staging leaves it: written, fsync'ed), then the restart.
        const fs::path staged = docker.parent_path() / ".bench-new";
        fs::copy_file(newFiles[i % 2], staged, fs::copy_options::overwrite_existing);
        bench.sandbox.run({"/bin/sync"}, std::chrono::seconds(60));
        fs::rename(staged, docker);
        Run n = bench.systemdJobs({{"RestartUnit", {"docker.service"}}});
        note(newHeld, n, bench.phases(n, false));
        std::cout << "round " << i + 1 << " stall (failed pings): held " << formatted(h.stall.longestMs) << " ms (" << h.stall.failed << ")   stopped "
                  << formatted(a.stall.longestMs) << " (" << a.stall.failed << ")   manual " << formatted(m.stall.longestMs) << " (" << m.stall.failed
                  << ")   limit " << formatted(l.stall.longestMs) << " (" << l.stall.failed << ")   limit held " << formatted(r.stall.longestMs) << " ("
                  << r.stall.failed << ")   new file held " << formatted(n.stall.longestMs) << std::endl;
    }
    // With the engine stopped the 1 ms client is refused for the whole outage, so
    // "stopped" and "limit" are compared by the same stall measure as "held".
    const Mode* modes[] = {&held, &stopped, &manual, &limit, &limitHeld, &newHeld};
    std::cout << "\n1. Upgrade as a 1 ms /_ping client and a container see it, " << rounds << " rounds, alternating\n";
    std::printf("   %-22s %18s %14s %20s %18s\n", "", "longest stall (ms)", "failed pings", "container restarts", "heartbeat gap (ms)");
    for (const Mode* m : modes)
        std::printf("   %-22s %18s %14ld %20ld %18s\n", m->name.c_str(), formatted(median(m->stallMs)).c_str(), m->failed, m->restarts,
                    formatted(median(m->gapMs)).c_str());
    std::cout << "   (stall: median over the runs; failed pings and restarts: all runs together; heartbeat every 2 ms)\n";
    for (const Mode* m : modes)
        std::cout << "   " << m->name << " stalls: " << join(m->stallMs) << "\n";
    const double sH = median(held.stallMs), sA = median(stopped.stallMs), sM = median(manual.stallMs), sL = median(limit.stallMs),
                 sR = median(limitHeld.stallMs);
    std::cout << "   held/new file held " << ratio(sH, median(newHeld.stallMs)) << "   held/limit " << ratio(sH, sL) << "   stopped/limit " << ratio(sA, sL) << "   stopped/manual " << ratio(sA, sM)
              << "   held/limit held " << ratio(sH, sR) << "\n";
    std::cout << "   where it went (from the client's last answer before the stall):\n";
    for (const Mode* m : modes)
        for (std::size_t i = 0; i < m->phases.size(); ++i)
            std::cout << "   round " << i + 1 << " " << m->name << ": " << m->phases[i] << "\n";
    std::vector<double> readiness = held.readinessMs;
    readiness.insert(readiness.end(), stopped.readinessMs.begin(), stopped.readinessMs.end());
    const double mR = median(readiness);
    std::cout << "\n2. Readiness latency (the pinger's answer ending the stall -> agent's first 'checking' step after its ping, as PropertiesChanged)\n";
    std::cout << "   agent   runs: " << join(readiness, 2) << "  median " << formatted(mR, 2) << " ms\n";

    addSummary({"1 downtime", "agent, socket held: longest client stall vs limit (stop+start), median ms", formatted(sH), "limit " + formatted(sL),
                ratio(sH, sL), "<= 1.05", sH <= 1.05 * sL});
    addSummary({"1 downtime", "agent, socket held: failed pings / container restarts", std::to_string(held.failed) + " / " + std::to_string(held.restarts),
                "limit " + std::to_string(limit.failed) + " / " + std::to_string(limit.restarts), "n/a", "0 / 0", held.failed == 0 && held.restarts == 0});
    addSummary({"1 downtime", "agent, socket stopped: longest client stall vs limit, median ms", formatted(sA), "limit " + formatted(sL), ratio(sA, sL),
                "<= 1.05", sA <= 1.05 * sL});
    addSummary({"1 downtime", "agent, socket stopped vs manual (stop+cp+cp+start), median ms", formatted(sA), "manual " + formatted(sM), ratio(sA, sM),
                "< 1", sA < sM});
    addSummary({"2 readiness", "stall's end -> agent 'checking', median ms", formatted(mR, 2), "goal 5", ratio(mR, 5), "< 5 ms", mR < 5});
    return 0;
}

int main()
{
    try {
        return measureAll();
    } catch (const std::exception& e) {
        std::cerr << "bench_downtime: " << e.what() << "\n";
        return 1;
    }
}
