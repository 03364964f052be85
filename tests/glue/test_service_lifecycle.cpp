// ServiceLifecycle with a real Agent on faked systemd and Docker (the unit
// tests' fixture): the start-up order, SIGTERM while idle and during a
// transaction, a second SIGTERM, SIGHUP. Signals are raised in this process;
// Asio's signal_set turns them into handlers on the loop.
#include "../unit/agent_test_fixture.hpp"

#include <csignal>

#include "core/errors.hpp"
#include "core/journal.hpp"
#include "systemd/service_lifecycle.hpp"
#include "systemd/service_notifier.hpp"

namespace armdock::test {
namespace {

class ServiceLifecycleTest : public AgentFixture {
protected:
    void startLifecycle()
    {
        agent = std::make_unique<Agent>(io, pool, units, *engine, config);
        recorder.agent = agent.get();
        agent->addObserver(&recorder);
        agent->setVersionProbe([this](const fs::path& binary, const std::vector<std::string>&) {
            auto it = probeVersions.find(sha256OfFile(binary));
            if (it == probeVersions.end())
                throw std::runtime_error("no version for " + binary.string());
            return it->second;
        });
        probeVersions[oldEngineSha] = "1.0.0";
        lifecycle = std::make_unique<ServiceLifecycle>(io, *agent, notifier, [this] {
            onBus = true;
            busyWhenOnBus = agent->busy();
            stateWhenOnBus = agent->status().state;
            finishedWhenOnBus = recorder.finishedCalls.size();
        });
        lifecycle->start();
    }
    // As main ends: the pool's work done before the agent goes (a second
    // SIGTERM leaves a transaction's file work on the pool).
    void TearDown() override
    {
        lifecycle.reset();
        pool.join();
        AgentFixture::TearDown();
    }

    ServiceNotifier notifier{io};  // NOTIFY_SOCKET is unset here: it sends nothing
    std::unique_ptr<ServiceLifecycle> lifecycle;
    bool onBus = false;
    bool busyWhenOnBus = false;
    AgentState stateWhenOnBus = AgentState::Idle;
    std::size_t finishedWhenOnBus = 0;
};

TEST_F(ServiceLifecycleTest, TheBusNameComesAfterTheStateFolderAndBeforeTheRecovery)
{
    {
        TransactionJournal journal(dir / "state");
        journal.begin({"20261202T000000-beef", TransactionKind::Upgrade, {{"docker", enginePath(), {}, oldEngineSha}}, {}});
    }
    startLifecycle();
    runUntil([&] { return onBus && !agent->busy(); });
    EXPECT_TRUE(busyWhenOnBus) << "the interrupted transaction was not known when the name was taken";
    EXPECT_EQ(stateWhenOnBus, AgentState::RollingBack);
    EXPECT_EQ(finishedWhenOnBus, 0u) << "the recovery ran before the bus name was taken";
    ASSERT_EQ(recorder.finishedCalls.size(), 1u);
    EXPECT_EQ(std::get<0>(recorder.finishedCalls[0]), "20261202T000000-beef");
    EXPECT_EQ(lifecycle->exitCode(), 0);
}

TEST_F(ServiceLifecycleTest, SigtermWhileIdleStopsTheLoop)
{
    startLifecycle();
    runUntil([&] { return onBus; });
    ASSERT_FALSE(agent->busy());
    ::raise(SIGTERM);
    runUntil([&] { return io.stopped(); });
    EXPECT_EQ(lifecycle->exitCode(), 0);
}

TEST_F(ServiceLifecycleTest, SigtermDuringATransactionCancelsItAndStopsOnceItEnded)
{
    startLifecycle();
    runUntil([&] { return onBus; });
    // One signal, while Docker is being stopped for the swap (the rollback stops it again).
    units.onCall = [raised = false](const std::string& call) mutable {
        if (call == "stop docker.service" && !raised) {
            raised = true;
            ::raise(SIGTERM);
        }
    };
    const std::string tx = agent->upgrade({{"docker", newEngine("engine-v2", "2.0.0").string()}}, {});
    runUntil([&] { return io.stopped(); });
    EXPECT_FALSE(agent->busy()) << "the loop stopped while transaction " << tx << " still ran";
    ASSERT_EQ(recorder.finishedCalls.size(), 1u);
    const TransactionResult result = std::get<1>(recorder.finishedCalls[0]);
    EXPECT_TRUE(result == TransactionResult::Cancelled || result == TransactionResult::RolledBack) << result;
    EXPECT_EQ(sha256OfFile(enginePath()), oldEngineSha) << "a cancelled upgrade left the new engine";
}

// Between the end of the drained transaction and the loop's stop, nothing new
// may start (its upgrade would hold the stop, or be killed mid-swap).
TEST_F(ServiceLifecycleTest, AfterSigtermNoNewTransactionStarts)
{
    struct UpgradeOnFinished final : AgentObserver {
        Agent* agent = nullptr;
        fs::path source;
        std::string answer;
        void propertiesChanged(const std::vector<std::string>&) override {}
        void finished(const std::string&, TransactionResult, const std::string&) override
        {
            try {
                answer = "accepted " + agent->upgrade({{"docker", source.string()}}, {});
            } catch (const AgentError& e) {
                answer = (e.kind() == ErrorKind::Busy ? "Busy: " : "other: ") + std::string(e.what());
            }
        }
    } late;
    startLifecycle();
    runUntil([&] { return onBus; });
    late.agent = agent.get();
    late.source = newEngine("engine-v3", "3.0.0");
    agent->addObserver(&late);
    units.onCall = [raised = false](const std::string& call) mutable {
        if (call == "stop docker.service" && !raised) {
            raised = true;
            ::raise(SIGTERM);
        }
    };
    agent->upgrade({{"docker", newEngine("engine-v2", "2.0.0").string()}}, {});
    runUntil([&] { return io.stopped(); });
    EXPECT_EQ(late.answer.rfind("Busy: armdock-agent is stopping", 0), 0u) << late.answer;
    EXPECT_FALSE(agent->busy());
}

TEST_F(ServiceLifecycleTest, ASecondSigtermStopsAtOnce)
{
    startLifecycle();
    runUntil([&] { return onBus; });
    units.onCall = [](const std::string& call) {
        if (call == "stop docker.service") {
            ::raise(SIGTERM);
            ::raise(SIGTERM);
        }
    };
    agent->upgrade({{"docker", newEngine("engine-v2", "2.0.0").string()}}, {});
    runUntil([&] { return io.stopped(); });
    EXPECT_TRUE(agent->busy()) << "the second signal waited for the transaction";
    EXPECT_TRUE(fs::exists(dir / "state/transaction.journal")) << "the journal is what makes stopping at once safe";
}

TEST_F(ServiceLifecycleTest, SighupReloadsAndTakesTheDropIns)
{
    startLifecycle();
    runUntil([&] { return onBus; });
    const fs::path src = newEngine("engine-v2", "2.0.0");
    fs::copy_file(src, dir / "incoming/docker");
    std::ofstream(dir / "incoming/docker.sha256") << sha256OfFile(src) << "  docker\n";
    ::raise(SIGHUP);
    runUntil([&] { return recorder.finishedCalls.size() == 1 && !agent->busy(); });
    EXPECT_EQ(std::get<1>(recorder.finishedCalls[0]), TransactionResult::Success) << std::get<2>(recorder.finishedCalls[0]);
    EXPECT_EQ(sha256OfFile(enginePath()), sha256OfFile(src));
    EXPECT_TRUE(fs::is_empty(dir / "incoming"));
}

}  // namespace
}  // namespace armdock::test
