// Crash safety end to end: the agent is SIGKILLed at every named fault point
// of a transaction (ARMDOCK_FAULT, compiled in with -Dfault_injection=true),
// and at random instants of whole upgrades, then started again; each time the
// host must be wholly on the old engine set or wholly on the new one, with
// Docker answering and reporting the version of the set on disk, no journal
// and no temporary file left, and LastResult/LastError saying what happened.
//
// One sandbox serves many rounds: each round upgrades BOTH payloads (docker and
// dockerinit) from whatever is installed to a fresh set whose engine reports
// the other of two versions (the sandbox's dockerd, or a copy whose version
// string is patched to another of the same length), so "one of each" and
// "which set answers" are both detectable.
#include <signal.h>
#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <thread>

#include "agent_sandbox_fixture.hpp"
#include "armdock_build_config.h"
#include "core/fault_point.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* agentUnitName = "armdock-agent.service";

// What a restart after a crash at a given point must find.
enum class Expect { Old, New };

struct FaultCase {
    const char* point;
    bool failingEngine;      // the new engine fails its check, so the rollback path runs
    Expect installed;        // which set must be on disk afterwards
    const char* result;      // LastResult after the recovery
    bool dockerUntouched;    // Docker must not have been restarted (same MainPID)
    const char* recoveryWords;  // what LastError (or the status line) must say recovery did
};

// Every fault point of daemon/core/transaction.cpp and what recovery must do there.
const std::vector<FaultCase> faultCases = {
    {"after-begin", false, Expect::Old, "rolled-back", true, "before anything changed"},
    {"after-stage", false, Expect::Old, "rolled-back", true, "before anything changed"},
    {"after-backup", false, Expect::Old, "rolled-back", true, "before Docker was stopped"},
    {"before-stop", false, Expect::Old, "rolled-back", false, "was restored and Docker answers"},
    {"after-stop", false, Expect::Old, "rolled-back", false, "was restored and Docker answers"},
    {"after-first-rename", false, Expect::Old, "rolled-back", false, "was restored and Docker answers"},
    {"after-rename", false, Expect::Old, "rolled-back", false, "was restored and Docker answers"},
    {"after-swap", false, Expect::Old, "rolled-back", false, "was restored and Docker answers"},
    {"after-start", false, Expect::Old, "rolled-back", false, "was restored and Docker answers"},
    {"after-check", false, Expect::Old, "rolled-back", false, "was restored and Docker answers"},
    {"after-commit", false, Expect::New, "success", false, "after the commit"},
    {"rollback-begin", true, Expect::Old, "rolled-back", false, "was restored and Docker answers"},
    {"rollback-after-stop", true, Expect::Old, "rolled-back", false, "was restored and Docker answers"},
    {"restore-after-rename", true, Expect::Old, "rolled-back", false, "was restored and Docker answers"},
    {"rollback-after-restore", true, Expect::Old, "rolled-back", false, "was restored and Docker answers"},
    {"rollback-after-start", true, Expect::Old, "rolled-back", false, "was restored and Docker answers"},
};

// Points that only a recovery reaches (it copies afresh from the backup,
// where a rollback in the same process uses the copies staged before the
// stop): KillRecoveryAgainAndAgain covers them.
const std::set<std::string> recoveryOnlyPoints = {"restore-after-copy"};

// Points only an upgrade over a packaged file reaches (dpkg_owned =
// "divert"): test_packaged_engine kills the agent there.
const std::set<std::string> packagedOnlyPoints = {"after-divert"};

// Where a recovery is killed, again and again, after an upgrade died between its renames.
const std::vector<const char*> recoveryPoints = {"rollback-begin",       "rollback-after-stop",    "restore-after-copy",
                                                 "restore-after-rename", "rollback-after-restore", "rollback-after-start"};

// Every fault point the agent has (core/fault_point.hpp's list: a call with
// another name does not compile), so that a point added there and not here
// fails the test instead of going untested.
std::set<std::string> agentFaultPoints()
{
    return {faultPoints.begin(), faultPoints.end()};
}

struct SetHashes {
    std::string docker;
    std::string dockerinit;
    bool operator==(const SetHashes&) const = default;
};

std::ostream& operator<<(std::ostream& out, const SetHashes& s)
{
    return out << "{docker " << s.docker.substr(0, 12) << ", dockerinit " << s.dockerinit.substr(0, 12) << "}";
}

class CrashRecoveryTest : public AgentSandboxTest {
protected:
    // One round per case: killed at its point, started again, the host checked.
    // Returns how many cases passed.
    std::size_t killAtEach(const std::vector<FaultCase>& cases)
    {
        std::size_t covered = 0;
        for (const auto& c : cases) {
            const auto started = Clock::now();
            SCOPED_TRACE(std::string("fault point ") + c.point);
            Round r = makeRound(c.failingEngine);
            const pid_t dockerPid = sandbox->dockerMainPid();
            const std::string killedLine = std::string("fault point ") + c.point + ": killing myself";
            const std::size_t killsBefore = countInLog(killedLine);

            startAgent({{"ARMDOCK_FAULT", c.point}});
            if (HasFatalFailure())
                break;
            std::string tx;
            try {
                tx = startUpgrade(r);
            } catch (const sdbus::Error& e) {
                // Killed before the reply left (possible at after-begin): the log says whether it was the fault.
                std::cout << "  [" << c.point << "] Upgrade reply lost: " << e.getName() << "\n";
            }
            // Until it dies, or (a failure) its transaction ends without reaching the point.
            auto ended = [&] {
                try {
                    return !tx.empty() && client->property("Transaction") == tx && client->property("State") == "idle";
                } catch (const sdbus::Error&) {
                    return false;  // dying right now
                }
            };
            if (!Sandbox::waitFor([&] { return agentGone() || ended(); }, 90s, 10ms) || !agentGone()) {
                ADD_FAILURE() << "the agent did not reach fault point " << c.point << "; LastResult "
                              << client->property("LastResult") << ": " << client->property("LastError");
                break;
            }
            EXPECT_EQ(countInLog(killedLine), killsBefore + 1) << "the agent died, but not at " << c.point;

            // Restart without the fault: it takes its bus name, then recovers.
            startAgent();
            if (HasFatalFailure())
                break;
            checkHost(r, c.installed, c.point);
            const std::string result = client->property("LastResult");
            const std::string error = client->property("LastError");
            const std::string line = client->progress().second;
            EXPECT_EQ(result, c.result) << error;
            if (!tx.empty()) {
                EXPECT_EQ(client->property("Transaction"), tx);
            }
            // Said in LastError for a transaction that did not succeed, in the status line for one that did.
            const std::string said = std::string(c.result) == "success" ? line : error;
            EXPECT_NE(said.find("was interrupted at step"), std::string::npos) << said;
            EXPECT_NE(said.find(c.recoveryWords), std::string::npos) << said;
            if (!tx.empty()) {
                EXPECT_NE(said.find(tx), std::string::npos) << said;
            }
            for (const auto& stray : stateStrays())
                ADD_FAILURE() << "leftover in the state folder: " << stray;
            if (c.dockerUntouched)
                EXPECT_EQ(sandbox->dockerMainPid(), dockerPid) << "Docker was restarted although nothing had changed";
            else
                EXPECT_NE(sandbox->dockerMainPid(), dockerPid) << "Docker was not restarted";
            dropRound(r);
            const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
            if (!HasFailure()) {
                ++covered;
                std::cout << "  [" << c.point << "] ok in " << seconds << " s: " << result << ", "
                          << (c.installed == Expect::Old ? "old" : "new") << " set " << installedSet() << " answers as "
                          << dockerVersion() << "\n";
            } else {
                std::cout << "  [" << c.point << "] FAILED after " << seconds << " s\n";
            }
            if (HasFatalFailure())
                break;
        }
        return covered;
    }

    // The agent's config for every round.
    virtual std::map<std::string, std::string> settings() const { return {{"docker.grace_sec", "1"}, {"docker.health_timeout_sec", "15"}}; }

    void SetUp() override
    {
        startAll(settings());
        if (HasFatalFailure())
            return;
        baseVersion = dockerVersion();
        ASSERT_FALSE(baseVersion.empty());
        // Engine B: the sandbox's dockerd with its version string replaced by
        // one of the same length (Go keeps it as bytes plus a length), so both
        // `-v` and GET /version report it.
        otherVersion = baseVersion;
        otherVersion.back() = otherVersion.back() == '9' ? '8' : '9';
        engineA = sandbox->dir() / "engine-a";
        engineB = sandbox->dir() / "engine-b";
        fs::copy_file(sandbox->payloadPath("docker"), engineA);
        std::string bytes = readFile(engineA);
        std::size_t replaced = 0;
        for (std::size_t at = bytes.find(baseVersion); at != std::string::npos; at = bytes.find(baseVersion, at + 1), ++replaced)
            bytes.replace(at, baseVersion.size(), otherVersion);
        ASSERT_GT(replaced, 0u);
        writeFile(engineB, bytes, 0755);
        fs::permissions(engineA, fs::perms(0755));
        fs::permissions(engineB, fs::perms(0755));
    }

    SetHashes installedSet() const
    {
        return {sha256Of(sandbox->payloadPath("docker")), sha256Of(sandbox->payloadPath("dockerinit"))};
    }

    std::string dockerVersion() const
    {
        auto reply = sandbox->dockerGet("/version");
        if (!reply || reply->status != 200)
            return "";
        try {
            return nlohmann::json::parse(reply->body).value("Version", "");
        } catch (const std::exception&) {
            return "";
        }
    }

    // A fresh set of both payloads, different from everything before: the
    // engine of the version that is not running (or a failing test engine),
    // and the installed dockerinit, each with a unique marker appended.
    struct Round {
        fs::path docker, dockerinit;
        SetHashes oldSet, newSet;
        std::string oldVersion, newVersion;
    };
    Round makeRound(bool failingEngine)
    {
        ++roundNo;
        Round r;
        r.oldSet = installedSet();
        r.oldVersion = dockerVersion();
        const fs::path dir = sandbox->dir() / ("round-" + std::to_string(roundNo));
        fs::create_directories(dir);
        r.docker = dir / "docker";
        r.dockerinit = dir / "dockerinit";
        const std::string marker = "\narmdock-crash-round-" + std::to_string(roundNo) + "\n";
        if (failingEngine) {
            fs::copy_file(enginesDir() / "engine_exits", r.docker);
            r.newVersion = "(fails)";
        } else {
            const bool runningA = r.oldVersion == baseVersion;
            fs::copy_file(runningA ? engineB : engineA, r.docker);
            r.newVersion = runningA ? otherVersion : baseVersion;
        }
        fs::copy_file(sandbox->payloadPath("dockerinit"), r.dockerinit);
        for (const auto& f : {r.docker, r.dockerinit}) {
            std::ofstream(f, std::ios::app | std::ios::binary) << marker;
            fs::permissions(f, fs::perms(0755));
        }
        r.newSet = {sha256Of(r.docker), sha256Of(r.dockerinit)};
        return r;
    }

    void dropRound(const Round& r) const
    {
        std::error_code ec;
        fs::remove_all(r.docker.parent_path(), ec);
    }

    std::string startUpgrade(const Round& r)
    {
        return client->upgrade({{"docker", r.docker.string()}, {"dockerinit", r.dockerinit.string()}});
    }

    bool agentGone() const
    {
        const std::string state = sandbox->activeState(agentUnitName);
        return state == "failed" || state == "inactive";
    }

    // Rewrites the agent's unit (no Restart=, optional fault) and starts it;
    // returns once it holds its bus name and has recovered (it takes the name
    // first, then recovers as a transaction).
    void startAgent(const std::map<std::string, std::string>& env = {})
    {
        if (!agentGone())
            sandbox->stopUnits({agentUnitName});  // an idle agent: its environment changes only with a restart
        sandbox->agentUnit(agentBinary(), configFile, env);
        sandbox->systemctl({"reset-failed", agentUnitName});
        sandbox->startUnits({agentUnitName});
        ASSERT_TRUE(AgentClient::waitForIdleAgent(sandbox->busAddress())) << agentLog();
    }

    // Active, and no transaction runs: the recovery got past every point.
    bool recovered() const
    {
        if (sandbox->activeState(agentUnitName) != "active")
            return false;
        try {
            const std::string state = client->property("State");
            return state == "idle" || state == "failed";
        } catch (const sdbus::Error&) {
            return false;  // not on the bus yet
        }
    }

    std::size_t countInLog(const std::string& needle) const
    {
        const std::string log = agentLog();
        std::size_t n = 0;
        for (auto at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1))
            ++n;
        return n;
    }

    // The invariant after every restart. `expected` narrows "old or new" when known.
    void checkHost(const Round& r, std::optional<Expect> expected, const std::string& context)
    {
        SCOPED_TRACE(context);
        const SetHashes now = installedSet();
        const bool isOld = now == r.oldSet;
        const bool isNew = now == r.newSet;
        EXPECT_TRUE(isOld || isNew) << "mixed or missing set on disk: " << now << ", old " << r.oldSet << ", new " << r.newSet;
        if (expected == Expect::Old) {
            EXPECT_TRUE(isOld) << "expected the old set " << r.oldSet << ", found " << now;
        }
        if (expected == Expect::New) {
            EXPECT_TRUE(isNew) << "expected the new set " << r.newSet << ", found " << now;
        }
        // No temporary or hidden file beside the payloads: each folder holds its payload only.
        for (const char* name : {"docker", "dockerinit"}) {
            const fs::path target = sandbox->payloadPath(name);
            for (const auto& e : fs::directory_iterator(target.parent_path()))
                EXPECT_EQ(e.path(), target) << "stray file in a payload folder: " << e.path();
            EXPECT_EQ(fs::status(target).permissions() & fs::perms::all, fs::perms(0755)) << target;
        }
        EXPECT_FALSE(fs::exists(sandbox->stateDir() / "transaction.journal")) << "the journal was not cleared";
        EXPECT_EQ(sandbox->activeState("docker.service"), "active");
        EXPECT_EQ(sandbox->activeState("docker.socket"), "active");
        EXPECT_TRUE(sandbox->ping()) << "Docker does not answer /_ping";
        const std::string want = isNew ? r.newVersion : r.oldVersion;
        EXPECT_EQ(dockerVersion(), want) << "Docker does not report the version of the set on disk";
        // Set by the recovery's result, or by the version query right after start.
        EXPECT_TRUE(Sandbox::waitFor([&] { return client->property("CurrentVersion") == want; }, 10s, 10ms))
            << "CurrentVersion " << client->property("CurrentVersion") << ", expected " << want;
        EXPECT_EQ(client->property("State"), "idle");
    }

    // Hidden files anywhere under the state folder: temporaries of the journal,
    // of last-result.json, of a backup being made (.incoming-*) or removed.
    std::vector<std::string> stateStrays() const
    {
        std::vector<std::string> strays;
        for (const auto& e : fs::recursive_directory_iterator(sandbox->stateDir()))
            if (e.path().filename().string().starts_with("."))
                strays.push_back(fs::relative(e.path(), sandbox->stateDir()).string());
        return strays;
    }

    std::string baseVersion, otherVersion;
    fs::path engineA, engineB;
    int roundNo = 0;
};

TEST_F(CrashRecoveryTest, KillAtEveryFaultPoint)
{
#if !ARMDOCK_FAULT_INJECTION
    GTEST_SKIP() << "the agent was built without -Dfault_injection=true: no fault points to hit";
#endif
    // The table above must name every point the agent has.
    const auto inAgent = agentFaultPoints();
    std::set<std::string> inTable = recoveryOnlyPoints;
    inTable.insert(packagedOnlyPoints.begin(), packagedOnlyPoints.end());
    for (const auto& c : faultCases)
        inTable.insert(c.point);
    for (const auto& p : inAgent)
        EXPECT_TRUE(inTable.contains(p)) << "fault point " << p << " of core/fault_point.hpp has no case in this test";
    for (const auto& p : inTable)
        EXPECT_TRUE(inAgent.contains(p)) << "fault point " << p << " is not in core/fault_point.hpp any more";

    const std::size_t covered = killAtEach(faultCases);
    const std::size_t elsewhere = recoveryOnlyPoints.size() + packagedOnlyPoints.size();
    std::cout << "fault points covered: " << covered << " of " << inAgent.size() - elsewhere << " (and " << recoveryOnlyPoints.size()
              << " only a recovery reaches: KillRecoveryAgainAndAgain; " << packagedOnlyPoints.size()
              << " only an upgrade over a packaged file reaches: test_packaged_engine)" << std::endl;
    EXPECT_EQ(covered, inAgent.size() - elsewhere);
}

// A recovery is itself killed at each of its fault points, up to three times
// in a row (each restart resumes where the last one died), then runs clean:
// the old set must be on disk byte for byte, never a partial copy renamed
// over a target, with Docker answering.
TEST_F(CrashRecoveryTest, KillRecoveryAgainAndAgain)
{
#if !ARMDOCK_FAULT_INJECTION
    GTEST_SKIP() << "the agent was built without -Dfault_injection=true: no fault points to hit";
#endif
    constexpr int killsPerPoint = 3;
    int totalKills = 0;
    for (const char* point : recoveryPoints) {
        const auto started = Clock::now();
        SCOPED_TRACE(std::string("recovery killed at ") + point);
        Round r = makeRound(false);
        startAgent({{"ARMDOCK_FAULT", "after-first-rename"}});
        if (HasFatalFailure())
            break;
        const std::string tx = startUpgrade(r);
        ASSERT_TRUE(Sandbox::waitFor([&] { return agentGone(); }, 90s, 10ms)) << "the upgrade did not die between its renames";
        ASSERT_NE(installedSet(), r.oldSet);
        ASSERT_NE(installedSet(), r.newSet);  // mixed: what the recovery must repair

        const std::string killedLine = std::string("fault point ") + point + ": killing myself";
        int kills = 0;
        for (int i = 0; i < killsPerPoint; ++i) {
            const std::size_t before = countInLog(killedLine);
            if (!agentGone())
                sandbox->stopUnits({agentUnitName});
            sandbox->agentUnit(agentBinary(), configFile, {{"ARMDOCK_FAULT", point}});
            sandbox->systemctl({"reset-failed", agentUnitName});
            sandbox->systemctl({"start", "--no-block", agentUnitName});
            ASSERT_TRUE(Sandbox::waitFor(
                [&] { return countInLog(killedLine) > before || recovered(); }, 120s, 10ms))
                << agentLog();
            if (countInLog(killedLine) == before)
                break;  // this recovery got past the point: nothing was left to do there
            ++kills;
            ASSERT_TRUE(Sandbox::waitFor([&] { return agentGone(); }, 30s, 10ms));
        }
        EXPECT_GE(kills, 1) << "no recovery reached " << point;
        totalKills += kills;
        startAgent();
        if (HasFatalFailure())
            break;
        checkHost(r, Expect::Old, point);
        EXPECT_EQ(client->property("LastResult"), "rolled-back") << client->property("LastError");
        EXPECT_EQ(client->property("Transaction"), tx);
        for (const auto& stray : stateStrays())
            ADD_FAILURE() << "leftover in the state folder: " << stray;
        dropRound(r);
        std::cout << "  [" << point << "] killed " << kills << " time(s) in recovery, then whole: "
                  << std::chrono::duration<double>(Clock::now() - started).count() << " s" << std::endl;
        if (HasFatalFailure())
            break;
    }
    std::cout << "recovery kills: " << totalKills << " at " << recoveryPoints.size() << " points" << std::endl;
}

// SIGKILL at a random instant of a whole upgrade, again and again on one
// sandbox. ARMDOCK_CRASH_RUNS sets the number of runs (default 20;
// scripts/soak-crash.sh runs more).
TEST_F(CrashRecoveryTest, KillAtRandomInstants)
{
    int runs = 20;
    if (const char* n = std::getenv("ARMDOCK_CRASH_RUNS"))
        runs = std::max(1, std::atoi(n));
    std::uint64_t seed = std::random_device{}();
    if (const char* s = std::getenv("ARMDOCK_CRASH_SEED"))
        seed = std::strtoull(s, nullptr, 10);
    std::cout << "random kills: " << runs << " runs, seed " << seed << " (ARMDOCK_CRASH_SEED to repeat)" << std::endl;
    std::mt19937_64 random(seed);

    // How long a whole upgrade takes here, end to end.
    Round first = makeRound(false);
    auto t0 = Clock::now();
    std::string tx = startUpgrade(first);
    ASSERT_EQ(client->waitFinished(tx), "success") << client->property("LastError");
    const auto upgradeTime = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
    checkHost(first, Expect::New, "the measured upgrade");
    dropRound(first);
    std::cout << "a whole upgrade takes " << upgradeTime.count() / 1000 << " ms; kills fall in [0, that]" << std::endl;

    std::map<std::string, int> outcomes;  // what the journal said at the kill -> count
    int passed = 0;
    for (int run = 1; run <= runs; ++run) {
        const auto delay = std::chrono::microseconds(std::uniform_int_distribution<std::int64_t>(0, upgradeTime.count())(random));
        const std::string context = "run " + std::to_string(run) + ", kill after " + std::to_string(delay.count() / 1000) + " ms";
        SCOPED_TRACE(context);
        Round r = makeRound(false);
        const pid_t agentPid = sandbox->mainPid(agentUnitName);
        ASSERT_GT(agentPid, 0);
        tx = startUpgrade(r);
        std::this_thread::sleep_for(delay);  // the random instant itself, not a wait for a condition
        ASSERT_EQ(sandbox->mainPid(agentUnitName), agentPid);
        ASSERT_EQ(::kill(agentPid, SIGKILL), 0);
        ASSERT_TRUE(Sandbox::waitFor([&] { return agentGone(); }, 30s, 5ms)) << "the killed agent's unit did not stop";

        // Where it was: the journal's last step (or none: not begun, or finished).
        std::string lastStep = "no journal";
        const fs::path journal = sandbox->stateDir() / "transaction.journal";
        if (fs::exists(journal)) {
            std::ifstream in(journal);
            std::string line, last;
            while (std::getline(in, line))
                if (!line.empty())
                    last = line;
            try {
                auto j = nlohmann::json::parse(last);
                lastStep = j.contains("step") ? j["step"].get<std::string>() : "begin";
            } catch (const std::exception&) {
                lastStep = "torn line";
            }
        }
        const bool interrupted = lastStep != "no journal";

        startAgent();
        if (HasFatalFailure())
            break;
        checkHost(r, std::nullopt, context + " (journal: " + lastStep + ")");
        if (interrupted) {
            const std::string result = client->property("LastResult");
            const std::string said = result == "success" ? client->progress().second : client->property("LastError");
            EXPECT_TRUE(result == "rolled-back" || result == "success") << result << ": " << said;
            EXPECT_NE(said.find("was interrupted at step"), std::string::npos) << said;
            EXPECT_NE(said.find(tx), std::string::npos) << said;
        }
        for (const auto& stray : stateStrays())
            ADD_FAILURE() << "leftover in the state folder: " << stray;
        const bool isNew = installedSet() == r.newSet;
        ++outcomes[lastStep + (isNew ? " -> new" : " -> old")];
        dropRound(r);
        if (!HasFailure())
            ++passed;
        else
            std::cout << "  run " << run << " FAILED (" << context << ", journal: " << lastStep << ")" << std::endl;
        if (HasFatalFailure())
            break;
    }
    std::cout << "random kills: " << passed << " of " << runs << " runs left a whole set and a working engine" << std::endl;
    for (const auto& [what, n] : outcomes)
        std::cout << "  killed at " << what << ": " << n << "\n";
    EXPECT_EQ(passed, runs);
}

// The same kills with docker.hold_socket: the renames happen under the
// running engine and only the service restarts, while the journal and the
// recovery stay as they are. Nothing stops before the renames, so
// "after-stop" is never reached; every other point recovers as before.
class HeldSocketCrashTest : public CrashRecoveryTest {
protected:
    std::map<std::string, std::string> settings() const override
    {
        auto s = CrashRecoveryTest::settings();
        s["docker.hold_socket"] = "true";
        return s;
    }
};

TEST_F(HeldSocketCrashTest, KillAtEveryFaultPointHoldingTheSocket)
{
#if !ARMDOCK_FAULT_INJECTION
    GTEST_SKIP() << "the agent was built without -Dfault_injection=true: no fault points to hit";
#endif
    std::vector<FaultCase> cases;
    for (const auto& c : faultCases)
        if (std::string(c.point) != "after-stop")
            cases.push_back(c);
    const std::size_t covered = killAtEach(cases);
    EXPECT_GT(countInLog("holding docker.socket"), 0u) << "the upgrades did not take the held-socket path";
    std::cout << "fault points covered holding the socket: " << covered << " of " << cases.size() << std::endl;
    EXPECT_EQ(covered, cases.size());
}

}  // namespace
}  // namespace armdock::test
