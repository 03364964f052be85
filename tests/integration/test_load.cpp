// The agent under load, with the real parts (systemd user manager, dbus-daemon,
// socket-activated dockerd): 50 clients read properties during a whole
// upgrade while 20 clients call Upgrade at the same instant, and the agent's
// anonymous memory over 10,000 calls. Each client is a connection of its own
// (sd-bus through sdbus-c++) in a thread of its own. The numbers are printed.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <latch>
#include <set>
#include <thread>

#include "agent_sandbox_fixture.hpp"
#include "dbus/agent_names.hpp"
#include "dbus/sdbus_compat.hpp"

namespace armdock::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* agentName = agentBusName;
constexpr const char* agentPath = agentObjectPath;
constexpr const char* agentInterface = agentInterfaceName;
constexpr const char* propertiesInterface = "org.freedesktop.DBus.Properties";

constexpr int readerCount = 50;
constexpr int upgraderCount = 20;
constexpr auto p99Limit = 10ms;
// Each reader polls like a status monitor: one read every readInterval
// (start to start), the readers spread over the interval: 50 readers at
// 50 ms are 1,000 reads/s. In a tight loop 50 closed-loop clients measure
// only how fast the 2 CPUs turn calls around (Little's law: latency =
// clients / throughput), not whether the agent answers promptly.
constexpr auto readInterval = 50ms;
// Every other round a reader also reads systemd's Version on the same bus
// and connection: the same path through dbus-daemon to another
// single-threaded service, at the same moments. On a machine so loaded
// that this reference itself misses 10 ms, the agent's p99 may be at most
// referenceFactor times the reference's: during staging the agent's own two
// pool threads hash and copy 75 MB at full speed beside its loop, which the
// reference does not have to share its CPUs with (ratios of 1.0 to 2.2 seen
// on 2 vCPUs at load 9-15). A loop blocked by file work (a 75 MB SHA-256 is
// about 250 ms here) stays far above that.
constexpr double referenceFactor = 3.0;

struct Connection {
    explicit Connection(const std::string& bus)
        : connection(compat::busAt(bus)),
          proxy(compat::makeProxy(*connection, agentName, agentPath)),
          systemd(compat::makeProxy(*connection, "org.freedesktop.systemd1", "/org/freedesktop/systemd1"))
    {
    }
    std::unique_ptr<sdbus::IConnection> connection;
    std::unique_ptr<sdbus::IProxy> proxy;
    std::unique_ptr<sdbus::IProxy> systemd;  // the reference: the manager on the same bus
};

// What one reader saw: the latency of every call, the calls that did not
// answer, the values of State it read.
struct ReaderLog {
    std::vector<std::uint32_t> micros;
    std::vector<std::uint32_t> referenceMicros;  // Get Version of org.freedesktop.systemd1
    std::string lastState = "idle";  // the State this reader read last
    std::map<std::string, std::vector<std::uint32_t>> byState, referenceByState;
    std::vector<std::string> errors;
    std::set<std::string> states;
};

// One read, rotating over Get(State), Get(Progress), GetAll and Get(Transaction).
void readOnce(sdbus::IProxy& proxy, unsigned i, ReaderLog& log)
{
    switch (i % 4) {
    case 0:
        log.lastState = proxy.getProperty("State").onInterface(agentInterface).get<std::string>();
        log.states.insert(log.lastState);
        break;
    case 1:
        (void)proxy.getProperty("Progress").onInterface(agentInterface).get<sdbus::Struct<std::uint32_t, std::string>>();
        break;
    case 2: {
        std::map<std::string, sdbus::Variant> all;
        proxy.callMethod("GetAll").onInterface(propertiesInterface).withArguments(std::string(agentInterface)).storeResultsTo(all);
        if (!all.count("State"))
            log.errors.push_back("GetAll answered without State");
        break;
    }
    default:
        (void)proxy.getProperty("Transaction").onInterface(agentInterface).get<std::string>();
        break;
    }
}

struct Percentiles {
    std::size_t count = 0;
    double p50 = 0, p99 = 0, max = 0;  // milliseconds
};

Percentiles percentiles(std::vector<std::uint32_t> micros)
{
    Percentiles p;
    p.count = micros.size();
    if (micros.empty())
        return p;
    std::sort(micros.begin(), micros.end());
    auto at = [&](double q) { return micros[std::min(micros.size() - 1, static_cast<std::size_t>(q * static_cast<double>(micros.size())))] / 1000.0; };
    p.p50 = at(0.50);
    p.p99 = at(0.99);
    p.max = micros.back() / 1000.0;
    return p;
}

std::string fmtMs(double ms)
{
    char text[32];
    std::snprintf(text, sizeof text, "%.1f", ms);
    return text;
}

// RssAnon of a process in KiB (from /proc/PID/status), -1 when unreadable.
long rssAnonKiB(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("RssAnon:"))
            return std::atol(line.c_str() + 8);
    }
    return -1;
}

class LoadTest : public AgentSandboxTest {};

TEST_F(LoadTest, FiftyReadersAnswerDuringAnUpgradeAndOnlyOneOfTwentyUpgradesIsAccepted)
{
    startAll();
    const fs::path engine = newGoodEngine("load");
    const std::string newSha = sha256Of(engine);
    const std::string bus = sandbox->busAddress();

    // Readers: connected first, then reading in a loop until the upgrade has ended.
    std::atomic<bool> stopReading{false};
    std::vector<ReaderLog> logs(readerCount);
    std::latch readersConnected(readerCount);
    std::vector<std::thread> readers;
    for (int r = 0; r < readerCount; ++r) {
        readers.emplace_back([&, r] {
            std::unique_ptr<Connection> c;
            try {
                c = std::make_unique<Connection>(bus);
            } catch (const std::exception& e) {
                logs[r].errors.push_back(std::string("connect: ") + e.what());
            }
            readersConnected.count_down();
            if (!c)
                return;
            auto next = Clock::now() + readInterval * r / readerCount;
            for (unsigned i = r; !stopReading.load(std::memory_order_relaxed); ++i) {
                std::this_thread::sleep_until(next);
                next += readInterval;
                const auto start = Clock::now();
                try {
                    readOnce(*c->proxy, i, logs[r]);
                } catch (const std::exception& e) {
                    logs[r].errors.push_back(e.what());
                }
                const auto end = Clock::now();
                const auto micros = static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(end - start).count());
                logs[r].micros.push_back(micros);
                logs[r].byState[logs[r].lastState].push_back(micros);
                if (i % 2 == 0) {
                    try {
                        (void)c->systemd->getProperty("Version").onInterface("org.freedesktop.systemd1.Manager").get<std::string>();
                    } catch (const std::exception& e) {
                        logs[r].errors.push_back(std::string("reference: ") + e.what());
                    }
                    const auto refMicros = static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - end).count());
                    logs[r].referenceMicros.push_back(refMicros);
                    logs[r].referenceByState[logs[r].lastState].push_back(refMicros);
                }
            }
        });
    }
    readersConnected.wait();
    std::this_thread::sleep_for(200ms);  // the readers are in their loops before the upgrade starts

    // 20 Upgrade calls released together, each on its own connection.
    struct UpgradeReply {
        std::string transaction;
        std::string errorName;
        std::string errorMessage;
    };
    std::vector<UpgradeReply> replies(upgraderCount);
    std::latch upgradersReady(upgraderCount + 1);
    std::vector<std::thread> upgraders;
    const auto upgradeCallsStart = Clock::now();
    for (int u = 0; u < upgraderCount; ++u) {
        upgraders.emplace_back([&, u] {
            std::unique_ptr<Connection> c;
            try {
                c = std::make_unique<Connection>(bus);
            } catch (const std::exception& e) {
                replies[u].errorName = "connect";
                replies[u].errorMessage = e.what();
            }
            upgradersReady.arrive_and_wait();
            if (!c)
                return;
            try {
                std::map<std::string, std::string> files{{"docker", engine.string()}};
                std::map<std::string, sdbus::Variant> options{{"sha256.docker", sdbus::Variant(newSha)}};
                c->proxy->callMethod("Upgrade").onInterface(agentInterface).withArguments(files, options).storeResultsTo(replies[u].transaction);
            } catch (const sdbus::Error& e) {
                replies[u].errorName = e.getName();
                replies[u].errorMessage = e.getMessage();
            }
        });
    }
    upgradersReady.arrive_and_wait();
    for (auto& t : upgraders)
        t.join();
    const double upgradeCallsSeconds = std::chrono::duration<double>(Clock::now() - upgradeCallsStart).count();

    std::string accepted;
    int acceptedCount = 0, busyCount = 0;
    std::vector<std::string> otherErrors;
    for (const auto& reply : replies) {
        if (reply.errorName.empty()) {
            ++acceptedCount;
            accepted = reply.transaction;
        } else if (reply.errorName == "io.armdock.Agent1.Error.Busy") {
            ++busyCount;
        } else {
            otherErrors.push_back(reply.errorName + ": " + reply.errorMessage);
        }
    }
    const auto upgradeStart = Clock::now();
    std::string result = accepted.empty() ? std::string("no transaction") : client->waitFinished(accepted, 120s);
    const double upgradeSeconds = std::chrono::duration<double>(Clock::now() - upgradeStart).count();
    std::this_thread::sleep_for(200ms);  // and read a little past its end
    stopReading = true;
    for (auto& t : readers)
        t.join();

    std::vector<std::uint32_t> all, reference;
    std::map<std::string, std::vector<std::uint32_t>> byState, referenceByState;
    std::vector<std::string> readErrors;
    std::set<std::string> states;
    for (const auto& log : logs) {
        all.insert(all.end(), log.micros.begin(), log.micros.end());
        reference.insert(reference.end(), log.referenceMicros.begin(), log.referenceMicros.end());
        for (const auto& [state, micros] : log.byState)
            byState[state].insert(byState[state].end(), micros.begin(), micros.end());
        for (const auto& [state, micros] : log.referenceByState)
            referenceByState[state].insert(referenceByState[state].end(), micros.begin(), micros.end());
        readErrors.insert(readErrors.end(), log.errors.begin(), log.errors.end());
        states.insert(log.states.begin(), log.states.end());
    }
    const Percentiles p = percentiles(all);
    const Percentiles ref = percentiles(reference);
    std::string seen;
    for (const auto& s : states)
        seen += (seen.empty() ? "" : ",") + s;
    std::printf("[load] %d readers (one read each every %lld ms), %zu property reads during the upgrade (%.1f s, result %s): p50 %.2f ms, p99 %.2f ms, max %.2f ms, "
                "%zu failed; states seen: %s\n",
                readerCount, static_cast<long long>(readInterval.count()), p.count, upgradeSeconds, result.c_str(), p.p50, p.p99, p.max, readErrors.size(), seen.c_str());
    std::printf("[load] reference, systemd's Version read by the same readers at the same time: %zu reads, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                ref.count, ref.p50, ref.p99, ref.max);
    // Where the time went: by the State each reader had read last.
    std::string perState;
    for (const auto& [state, micros] : byState)
        perState += " " + state + " " + std::to_string(micros.size()) + " reads p99 " +
                    fmtMs(percentiles(micros).p99) + "/" + fmtMs(percentiles(referenceByState[state]).p99);
    std::printf("[load] p99 by state, agent/reference ms:%s\n", perState.c_str());
    std::printf("[load] %d concurrent Upgrade calls (answered in %.2f s): %d accepted, %d Busy, %zu other\n", upgraderCount,
                upgradeCallsSeconds, acceptedCount, busyCount, otherErrors.size());

    EXPECT_EQ(acceptedCount, 1);
    EXPECT_EQ(busyCount, upgraderCount - 1);
    for (const auto& e : otherErrors)
        ADD_FAILURE() << "Upgrade answered neither a transaction nor Busy: " << e;
    EXPECT_EQ(result, "success") << client->property("LastError");
    EXPECT_EQ(sha256Of(sandbox->payloadPath("docker")), newSha);
    EXPECT_TRUE(readErrors.empty()) << readErrors.size() << " reads failed, the first: " << readErrors.front();
    const double limitMs = std::max(std::chrono::duration<double, std::milli>(p99Limit).count(), referenceFactor * ref.p99);
    std::printf("[load] p99 limit applied: %.2f ms (%s)\n", limitMs,
                limitMs > std::chrono::duration<double, std::milli>(p99Limit).count() ? "the reference missed 10 ms: the machine is loaded"
                                                                                       : "10 ms");
    EXPECT_LT(p.p99, limitMs) << "p99 of property reads during the upgrade (reference p99 " << ref.p99 << " ms)";
    // The reads really overlapped the upgrade: its long steps were seen.
    EXPECT_TRUE(states.count("staging")) << seen;
    EXPECT_TRUE(states.count("checking")) << seen;
}

// One call of the mix the memory test makes: reads, a list, and refused
// methods (the error path builds and logs a message each time). Returns false
// when the answer was not the expected one.
bool mixedCall(sdbus::IProxy& proxy, unsigned i, std::string& error)
{
    try {
        switch (i % 5) {
        case 0:
            return !proxy.getProperty("State").onInterface(agentInterface).get<std::string>().empty();
        case 1: {
            std::map<std::string, sdbus::Variant> all;
            proxy.callMethod("GetAll").onInterface(propertiesInterface).withArguments(std::string(agentInterface)).storeResultsTo(all);
            return all.count("LastResult") == 1;
        }
        case 2: {
            std::vector<sdbus::Struct<std::string, std::uint64_t, std::string>> backups;
            proxy.callMethod("ListBackups").onInterface(agentInterface).storeResultsTo(backups);
            return true;
        }
        case 3:
            proxy.callMethod("Cancel").onInterface(agentInterface);  // nothing runs: Failed
            error = "Cancel with nothing running answered success";
            return false;
        default: {
            std::map<std::string, std::string> files{{"docker", "/nonexistent/armdock-load/docker-" + std::to_string(i)}};
            std::map<std::string, sdbus::Variant> options;
            std::string tx;
            proxy.callMethod("Upgrade").onInterface(agentInterface).withArguments(files, options).storeResultsTo(tx);
            error = "Upgrade of a missing file answered " + tx;
            return false;
        }
        }
    } catch (const sdbus::Error& e) {
        const bool expected = (i % 5 == 3 && e.getName() == "io.armdock.Agent1.Error.Failed") ||
                              (i % 5 == 4 && e.getName() == "io.armdock.Agent1.Error.PayloadRejected");
        if (!expected)
            error = e.getName() + ": " + e.getMessage();
        return expected;
    }
}

// Runs `total` calls from `threads` clients; each client opens a new
// connection every `perConnection` calls. Returns the failures.
std::vector<std::string> runCalls(const std::string& bus, int threads, int total, int perConnection)
{
    std::vector<std::vector<std::string>> failures(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            std::unique_ptr<Connection> c;
            for (int i = 0; i < total / threads; ++i) {
                try {
                    if (i % perConnection == 0)
                        c = std::make_unique<Connection>(bus);
                    std::string error;
                    if (!mixedCall(*c->proxy, static_cast<unsigned>(t + i), error))
                        failures[t].push_back(error);
                } catch (const std::exception& e) {
                    failures[t].push_back(e.what());
                }
            }
        });
    }
    for (auto& w : workers)
        w.join();
    std::vector<std::string> out;
    for (auto& f : failures)
        out.insert(out.end(), f.begin(), f.end());
    return out;
}

TEST_F(LoadTest, MemoryDoesNotGrowOverTenThousandCalls)
{
    startAll();
    const pid_t agent = sandbox->mainPid("armdock-agent.service");
    ASSERT_GT(agent, 0);
    const std::string bus = sandbox->busAddress();
    constexpr int threads = 10, perConnection = 100, calls = 10000;

    // Warm-up: the allocator's arenas (one per thread that allocates: the
    // loop and the two pool threads), sd-bus's buffers and the log's reach
    // their working size.
    auto warmFailures = runCalls(bus, threads, 1000, perConnection);
    ASSERT_TRUE(warmFailures.empty()) << warmFailures.front();
    const long before = rssAnonKiB(agent);
    const auto start = Clock::now();
    auto failures = runCalls(bus, threads, calls, perConnection);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const long after = rssAnonKiB(agent);
    // Allowed: 256 KiB. A leak of one small allocation per call (a 16-byte
    // string or a list node is at least 32 bytes with malloc's header) over
    // 10,000 calls is 320 KiB, so any per-call leak fails; what stays below it
    // is the allocator's page-granular noise (RssAnon counts 4 KiB pages that
    // free() does not return).
    constexpr long allowedKiB = 256;
    std::printf("[load] memory: RssAnon %ld KiB before, %ld KiB after %d calls (%d clients, a new connection every %d calls, "
                "%.1f s, %.0f calls/s): growth %ld KiB, allowed %ld KiB\n",
                before, after, calls, threads, perConnection, seconds, calls / seconds, after - before, allowedKiB);
    ASSERT_GT(before, 0);
    EXPECT_TRUE(failures.empty()) << failures.size() << " calls failed, the first: " << failures.front();
    EXPECT_LE(after - before, allowedKiB);
    EXPECT_EQ(sandbox->mainPid("armdock-agent.service"), agent);  // the same process all along
}

}  // namespace
}  // namespace armdock::test
