// A temporary payload root, state folder and config for the agent's unit
// tests, with fakes of systemd and of the Docker engine. The fake engine
// behaves according to the engine file installed at the target: a test marks
// a file "broken" and the fake stops answering once that file is installed.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/agent.hpp"
#include "core/config.hpp"
#include "core/errors.hpp"
#include "core/sha_digest.hpp"

namespace armdock::test {

namespace fs = std::filesystem;

// Agent::upgrade's arguments: payload name -> file, and the options.
using Files = std::map<std::string, std::string>;
using Options = std::map<std::string, OptionValue>;

class FakeUnits final : public UnitControl {
public:
    std::vector<std::string> calls;
    std::set<std::string> failStart;  // units whose start job fails
    std::function<void(const std::string&)> onCall;

    Task<void> stopUnit(const std::string& unit, std::chrono::milliseconds) override
    {
        record("stop " + unit);
        active_[unit] = false;
        co_return;
    }
    Task<void> startUnit(const std::string& unit, std::chrono::milliseconds) override
    {
        record("start " + unit);
        if (failStart.count(unit))
            throw UnitJobFailed(unit, "failed", "start job for " + unit + " failed");
        active_[unit] = true;
        ++pid_;
        co_return;
    }
    Task<void> restartUnit(const std::string& unit, std::chrono::milliseconds t) override
    {
        co_await stopUnit(unit, t);
        co_await startUnit(unit, t);
    }
    // One call per batch: "restart A B" (and " (ignore-dependencies)").
    Task<void> restartUnits(std::vector<std::string> units, std::chrono::milliseconds, JobMode mode) override
    {
        std::string call = "restart";
        for (const auto& unit : units)
            call += " " + unit;
        record(call + (mode == JobMode::Replace ? "" : " (" + std::string(str(mode)) + ")"));
        for (const auto& unit : units) {
            if (failStart.count(unit))
                throw UnitJobFailed(unit, "failed", "restart job for " + unit + " failed");
            active_[unit] = true;
        }
        ++pid_;
        co_return;
    }
    Task<std::vector<std::string>> partOf(const std::string& unit) override { co_return partOf_[unit]; }
    Task<std::string> activeState(const std::string& unit) override { co_return active_[unit] ? "active" : "inactive"; }
    void setActive(const std::string& unit, bool active = true) { active_[unit] = active; }
    void setPartOf(const std::string& unit, std::vector<std::string> units) { partOf_[unit] = std::move(units); }
    Task<std::uint32_t> mainPid(const std::string&) override { co_return pid_; }

private:
    void record(const std::string& call)
    {
        calls.push_back(call);
        if (onCall)
            onCall(call);
    }
    std::map<std::string, bool> active_;
    std::map<std::string, std::vector<std::string>> partOf_;
    std::uint32_t pid_ = 100;
};

class FakeEngine final : public EngineApi {
public:
    explicit FakeEngine(fs::path engineFile) : engineFile_(std::move(engineFile)) {}
    std::set<std::string> brokenSha256;              // installed engine content that never answers
    std::map<std::string, std::string> versionOf;    // engine content sha256 -> version /version reports

    Task<bool> ping(std::chrono::milliseconds) override
    {
        if (brokenSha256.count(installed()))
            throw EngineUnreachable("fake engine: no answer");
        co_return true;
    }
    Task<std::string> version(std::chrono::milliseconds) override
    {
        auto it = versionOf.find(installed());
        co_return it == versionOf.end() ? std::string("unknown") : it->second;
    }
    Task<std::optional<std::string>> initSha1(std::chrono::milliseconds) override { co_return std::nullopt; }
    Task<std::vector<ComponentVersion>> components(std::chrono::milliseconds) override
    {
        co_return componentsNow ? componentsNow() : std::vector<ComponentVersion>{};
    }
    Task<std::vector<ContainerSummary>> containers(std::chrono::milliseconds) override
    {
        ++containersCalls;
        co_return containersNow;
    }
    Task<LiveRestoreInfo> liveRestore(std::chrono::milliseconds) override
    {
        ++liveRestoreCalls;
        co_return liveRestoreNow;
    }
    std::vector<ContainerSummary> containersNow;  // what /containers/json lists
    std::function<std::vector<ComponentVersion>()> componentsNow;  // what /version's Components say; none when empty
    LiveRestoreInfo liveRestoreNow;               // what /info says of live-restore
    int containersCalls = 0;
    int liveRestoreCalls = 0;

private:
    std::string installed() const { return fs::exists(engineFile_) ? sha256OfFile(engineFile_) : ""; }
    fs::path engineFile_;
};

class Recorder final : public AgentObserver {
public:
    std::vector<AgentState> states;
    std::vector<std::string> messages;  // every Progress message, in order
    std::vector<std::tuple<std::string, TransactionResult, std::string>> finishedCalls;
    const Agent* agent = nullptr;
    void propertiesChanged(const std::vector<std::string>& names) override
    {
        for (const auto& n : names)
            if (n == "State" && agent)
                states.push_back(agent->status().state);
            else if (n == "Progress" && agent)
                messages.push_back(agent->status().message);
    }
    void finished(const std::string& tx, TransactionResult result, const std::string& message) override
    {
        finishedCalls.emplace_back(tx, result, message);
    }
};

// Cancels the agent's transaction once, the first time `when` holds after a
// PropertiesChanged (given the names that changed).
class CancelOnce final : public AgentObserver {
public:
    CancelOnce(Agent& agent, std::function<bool(const std::vector<std::string>&)> when) : agent_(agent), when_(std::move(when))
    {
        agent_.addObserver(this);
    }
    void propertiesChanged(const std::vector<std::string>& names) override
    {
        if (!cancelled && when_(names)) {
            cancelled = true;
            agent_.cancel();
        }
    }
    void finished(const std::string&, TransactionResult, const std::string&) override {}
    bool cancelled = false;

private:
    Agent& agent_;
    std::function<bool(const std::vector<std::string>&)> when_;
};

// Makes an ELF executable for this machine with distinct content: a copy of
// /bin/true with `marker` appended (the loader ignores trailing bytes).
inline void makeEngineFile(const fs::path& file, const std::string& marker, bool world = false)
{
    fs::create_directories(file.parent_path());
    fs::remove(file);
    fs::copy_file("/bin/true", file);
    std::ofstream(file, std::ios::app | std::ios::binary) << marker;
    fs::permissions(file, world ? fs::perms(0777) : fs::perms(0755));
}

class AgentFixture : public ::testing::Test {
protected:
    void SetUp() override
    {
        char pattern[] = "/tmp/armdock-agent-test-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir = pattern;
        fs::create_directories(dir / "root/usr/bin");
        fs::create_directories(dir / "root/usr/lib/docker");
        fs::create_directories(dir / "incoming");
        fs::create_directories(dir / "src");
        makeEngineFile(enginePath(), "old-engine");
        makeEngineFile(initPath(), "old-init");
        oldEngineSha = sha256OfFile(enginePath());
        oldInitSha = sha256OfFile(initPath());
        config = makeConfig();
        engine = std::make_unique<FakeEngine>(enginePath());
        engine->versionOf[oldEngineSha] = "1.0.0";
    }
    void TearDown() override
    {
        agent.reset();
        pool.join();
        fs::remove_all(dir);
    }

    // More [[payload]] tables for a fixture's config, after docker and dockerinit.
    virtual std::string extraPayloads() const { return ""; }
    // More [docker] keys for a fixture's config.
    virtual std::string extraDocker() const { return ""; }
    // More tables after the payloads ([hooks]...).
    virtual std::string extraTables() const { return ""; }
    // More [agent] keys.
    virtual std::string extraAgent() const { return ""; }

    fs::path enginePath() const { return dir / "root/usr/bin/docker"; }
    fs::path initPath() const { return dir / "root/usr/lib/docker/dockerinit"; }

    Config makeConfig()
    {
        std::string toml = "[agent]\nstate_dir = \"" + (dir / "state").string() + "\"\ndropin_dir = \"" + (dir / "incoming").string() +
                           "\"\nkeep_backups = 2\n" + extraAgent() + "[docker]\ngrace_sec = 0\nhealth_timeout_sec = 2\nexpect_containers_back = false\n"
                           "dockerinit_pairing = false\n"
                           // No process runs these fake engine files: the exe check has its own tests
                           // (test_health_check.cpp, and the sandbox's test_engine_identity.cpp).
                           "check_main_exe = false\n" + extraDocker() +
                           "[[payload]]\nname = \"docker\"\npath = \"" + enginePath().string() +
                           "\"\nversion_args = [\"-v\"]\nengine = true\n"
                           "[[payload]]\nname = \"dockerinit\"\npath = \"" + initPath().string() + "\"\n" + extraPayloads() + extraTables();
        fs::path file = dir / "agent.toml";
        std::ofstream(file) << toml;
        Config c = loadConfig(file);
        checkStateDirUsable(c);
        return c;
    }

    // A new engine source with a version the fake probe and fake engine agree on.
    fs::path newEngine(const std::string& marker, const std::string& version, bool broken = false)
    {
        fs::path file = dir / "src" / marker;
        makeEngineFile(file, marker);
        std::string sha = sha256OfFile(file);
        probeVersions[sha] = version;
        engine->versionOf[sha] = version;
        if (broken)
            engine->brokenSha256.insert(sha);
        return file;
    }

    void startAgent()
    {
        agent = std::make_unique<Agent>(io, pool, units, *engine, config);
        recorder.agent = agent.get();
        agent->addObserver(&recorder);
        probeVersions[oldEngineSha] = "1.0.0";
        agent->setVersionProbe([this](const fs::path& binary, const std::vector<std::string>&) {
            auto it = probeVersions.find(sha256OfFile(binary));
            if (it == probeVersions.end())
                throw AgentError(ErrorKind::PayloadRejected, "cannot learn a payload's version: " + binary.string() + " printed no version");
            return it->second;
        });
        bool done = false;
        boost::asio::co_spawn(io, startAndWarmUp(), [&](std::exception_ptr e) {
            done = true;
            if (e)
                std::rethrow_exception(e);
        });
        runUntil([&] { return done; });
    }

    Task<void> startAndWarmUp()
    {
        co_await agent->startUp();
        co_await agent->recoverInterrupted();  // main takes the bus name between these two
        co_await agent->warmUp();
    }

    template <typename Predicate>
    void runUntil(Predicate predicate, std::chrono::seconds limit = std::chrono::seconds(20))
    {
        // Releasing a work guard stops an io_context whose work count drops to zero: restart it.
        io.restart();
        auto guard = boost::asio::make_work_guard(io);
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (!predicate()) {
            ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "timed out waiting on the agent";
            io.run_for(std::chrono::milliseconds(5));
        }
    }
    void waitIdle() { runUntil([&] { return !agent->busy(); }); }
    // An upgrade of the engine alone to `src`, to its end.
    void upgradeTo(const std::filesystem::path& src, TransactionResult expected)
    {
        agent->upgrade(Files{{"docker", src.string()}}, Options{});
        waitIdle();
        ASSERT_EQ(agent->status().lastResult, expected) << agent->status().lastError;
    }

    // Agent::reload to its end on the loop (its file work runs on the pool); rethrows its error.
    std::string reload()
    {
        std::string transaction;
        std::exception_ptr error;
        bool done = false;
        agent->reload([&](const std::string& tx, std::exception_ptr e) {
            transaction = tx;
            error = e;
            done = true;
        });
        runUntil([&] { return done; });
        if (error)
            std::rethrow_exception(error);
        return transaction;
    }

    std::vector<std::string> leftoversIn(const fs::path& folder) const
    {
        std::vector<std::string> out;
        for (const auto& e : fs::directory_iterator(folder))
            if (e.path().filename().string().starts_with("."))
                out.push_back(e.path().string());
        return out;
    }
    void expectNoLeftovers() const
    {
        EXPECT_TRUE(leftoversIn(enginePath().parent_path()).empty());
        EXPECT_TRUE(leftoversIn(initPath().parent_path()).empty());
        EXPECT_FALSE(fs::exists(dir / "state/transaction.journal"));
    }

    fs::path dir;
    Config config;
    std::string oldEngineSha, oldInitSha;
    boost::asio::io_context io;
    boost::asio::thread_pool pool{2};
    FakeUnits units;
    std::unique_ptr<FakeEngine> engine;
    std::unique_ptr<Agent> agent;
    Recorder recorder;
    std::map<std::string, std::string> probeVersions;
};

}  // namespace armdock::test
