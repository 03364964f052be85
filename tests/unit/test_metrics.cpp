// The metrics text (core/metrics.hpp) and its writer on a real file, with
// systemd and Docker faked: what a transaction leaves in agent.metrics_file.
#include <sys/stat.h>

#include <thread>

#include "agent_test_fixture.hpp"
#include "core/metrics.hpp"
#include "core/metrics_writer.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;

bool hasLine(const std::string& text, const std::string& line) { return ("\n" + text).find("\n" + line + "\n") != std::string::npos; }

TEST(MetricsText, EverySeriesWithItsHelpAndType)
{
    MetricsSnapshot s;
    s.engineVersion = "20.10.24+dfsg1";
    s.lastResult = TransactionResult::RolledBack;
    s.lastResultUnixSeconds = 1764800000.5;
    s.transactions = {{TransactionResult::Success, 3}, {TransactionResult::RolledBack, 1}};
    s.lastDurationSeconds = {{TransactionResult::Success, 2.25}, {TransactionResult::RolledBack, 7.5}};
    s.engineRestarts = 2;
    s.healthy = false;
    s.backupSets = 3;
    const std::string text = formatMetrics(s);
    for (const char* line : {"# TYPE armdock_engine_info gauge", "armdock_engine_info{version=\"20.10.24+dfsg1\"} 1",
                             "armdock_last_result{result=\"rolled-back\"} 1", "armdock_last_result{result=\"success\"} 0",
                             "armdock_last_result{result=\"none\"} 0", "armdock_last_result_timestamp_seconds 1764800000.5",
                             "# TYPE armdock_transactions_total counter", "armdock_transactions_total{result=\"success\"} 3",
                             "armdock_transactions_total{result=\"rolled-back\"} 1", "armdock_transactions_total{result=\"failed\"} 0",
                             "armdock_transaction_duration_seconds{result=\"success\"} 2.25",
                             "armdock_transaction_duration_seconds{result=\"rolled-back\"} 7.5", "armdock_engine_restarts_total 2",
                             "armdock_healthy 0", "armdock_backup_sets 3", "armdock_busy 0"})
        EXPECT_TRUE(hasLine(text, line)) << line << "\n" << text;
    // One HELP and one TYPE per family, before its samples.
    EXPECT_EQ(text.find("# HELP armdock_transactions_total"), text.rfind("# HELP armdock_transactions_total"));
    EXPECT_LT(text.find("# TYPE armdock_transaction_duration_seconds"), text.find("armdock_transaction_duration_seconds{"));
    EXPECT_EQ(text.back(), '\n');
}

TEST(MetricsText, LabelValuesAreEscaped)
{
    MetricsSnapshot s;
    s.engineVersion = "1.0 \"dev\"\\x\nnext";
    EXPECT_TRUE(hasLine(formatMetrics(s), "armdock_engine_info{version=\"1.0 \\\"dev\\\"\\\\x\\nnext\"} 1")) << formatMetrics(s);
}

class MetricsWriterTest : public AgentFixture {
protected:
    void TearDown() override
    {
        agent.reset();  // before the writer it tells
        pool.join();
        writer.reset();
        AgentFixture::TearDown();
    }

    void attachWriter()
    {
        writer = std::make_unique<MetricsWriter>(*agent, pool);
        agent->addObserver(writer.get());
        writer->update();
    }

    std::unique_ptr<MetricsWriter> writer;

    fs::path metricsFile() const { return dir / "metrics/armdock.prom"; }

    // The file once `line` is in it (the writer writes on the pool).
    std::string waitForLine(const std::string& line)
    {
        std::string text;
        for (int i = 0; i < 200; ++i) {
            std::ifstream in(metricsFile());
            text.assign(std::istreambuf_iterator<char>(in), {});
            if (hasLine(text, line))
                return text;
            std::this_thread::sleep_for(10ms);
        }
        ADD_FAILURE() << "no line " << line << " in " << metricsFile() << ":\n" << text;
        return text;
    }
};

TEST_F(MetricsWriterTest, ATransactionLeavesItsResultVersionAndDurationInTheFile)
{
    fs::create_directories(dir / "metrics");
    config.agent.metricsFile = metricsFile();
    startAgent();
    attachWriter();
    waitForLine("armdock_engine_info{version=\"1.0.0\"} 1");
    const fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    ASSERT_EQ(agent->status().lastResult, TransactionResult::Success) << agent->status().lastError;
    const std::string text = waitForLine("armdock_transactions_total{result=\"success\"} 1");
    EXPECT_TRUE(hasLine(text, "armdock_engine_info{version=\"2.0.0\"} 1")) << text;
    EXPECT_TRUE(hasLine(text, "armdock_last_result{result=\"success\"} 1")) << text;
    EXPECT_TRUE(hasLine(text, "armdock_backup_sets 1")) << text;
    EXPECT_TRUE(hasLine(text, "armdock_busy 0")) << text;
    EXPECT_NE(text.find("armdock_transaction_duration_seconds{result=\"success\"} "), std::string::npos) << text;
    struct stat st {};
    ASSERT_EQ(::stat(metricsFile().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644u);
    // Only the file: no temporary left beside it.
    int entries = 0;
    for (const auto& e : fs::directory_iterator(dir / "metrics"))
        entries += e.path().filename() == "armdock.prom" ? 0 : 1;
    EXPECT_EQ(entries, 0);
}

TEST_F(MetricsWriterTest, AMissingFolderIsNotCreated)
{
    config.agent.metricsFile = metricsFile();
    startAgent();
    attachWriter();
    const fs::path src = newEngine("engine-v2", "2.0.0");
    agent->upgrade(Files{{"docker", src.string()}}, Options{});
    waitIdle();
    pool.join();
    EXPECT_FALSE(fs::exists(dir / "metrics"));
}

}  // namespace
}  // namespace armdock::test
