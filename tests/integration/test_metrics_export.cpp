// agent.metrics_file after a real upgrade: parsed by Prometheus' own text
// parser (python3-prometheus-client), and served by a real
// prometheus-node-exporter (its textfile collector) on 127.0.0.1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_sandbox_fixture.hpp"

namespace armdock::test {
namespace {

using namespace std::chrono_literals;

fs::path nodeExporter()
{
    const char* v = std::getenv("ARMDOCK_NODE_EXPORTER");
    return v ? fs::path(v) : fs::path();
}

int freePort()
{
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size) != 0)
        throw std::runtime_error("cannot find a free port");
    ::close(fd);
    return ntohs(addr.sin_port);
}

bool hasLine(const std::string& text, const std::string& line) { return ("\n" + text).find("\n" + line + "\n") != std::string::npos; }

class MetricsExportTest : public AgentSandboxTest {
protected:
    void TearDown() override
    {
        // Our own child, not yet reaped: the PID cannot have been reused.
        if (exporterPid > 0) {
            ::kill(exporterPid, SIGTERM);
            ::waitpid(exporterPid, nullptr, 0);
        }
        AgentSandboxTest::TearDown();
    }

    std::string metricsWith(const std::string& line)
    {
        std::string text;
        Sandbox::waitFor([&] {
            text = fs::exists(sandbox->metricsFile()) ? readFile(sandbox->metricsFile()) : "";
            return hasLine(text, line);
        }, 10s, 20ms);
        return text;
    }

    pid_t exporterPid = -1;
};

TEST_F(MetricsExportTest, PrometheusParsesTheFileAndNodeExporterServesIt)
{
    ASSERT_FALSE(nodeExporter().empty()) << "ARMDOCK_NODE_EXPORTER is not set (run through meson test)";
    ASSERT_TRUE(fs::exists(nodeExporter())) << nodeExporter() << " is missing: scripts/install-deps.sh unpacks it";
    startAll();
    // At start: the engine's version, no transaction yet.
    std::string text = metricsWith("armdock_engine_info{version=\"20.10.24+dfsg1\"} 1");
    EXPECT_TRUE(hasLine(text, "armdock_last_result{result=\"none\"} 1")) << text;

    const fs::path engine = newGoodEngine();
    const std::string tx = client->upgrade({{"docker", engine.string()}});
    ASSERT_EQ(client->waitFinished(tx), "success") << client->property("LastError");
    text = metricsWith("armdock_transactions_total{result=\"success\"} 1");
    EXPECT_TRUE(hasLine(text, "armdock_last_result{result=\"success\"} 1")) << text;
    EXPECT_TRUE(hasLine(text, "armdock_backup_sets 1")) << text;
    EXPECT_TRUE(hasLine(text, "armdock_healthy 1")) << text;

    // Prometheus' parser: every family typed, every sample read back.
    const std::string parse =
        "import sys\n"
        "from prometheus_client.parser import text_string_to_metric_families\n"
        "for f in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
        "    for s in f.samples:\n"
        "        print(f.type, s.name, ','.join('%s=%s' % kv for kv in sorted(s.labels.items())), s.value)\n";
    writeFile(sandbox->dir() / "parse.py", parse);
    const auto parsed = sandbox->run({"/usr/bin/python3", (sandbox->dir() / "parse.py").string(), sandbox->metricsFile().string()});
    ASSERT_EQ(parsed.exitCode, 0) << parsed.output;
    for (const char* line : {"gauge armdock_engine_info version=20.10.24+dfsg1 1.0", "gauge armdock_last_result result=success 1.0",
                             "counter armdock_transactions_total result=success 1.0", "gauge armdock_healthy  1.0",
                             "gauge armdock_backup_sets  1.0", "counter armdock_engine_restarts_total  0.0"})
        EXPECT_TRUE(hasLine(parsed.output, line)) << line << "\n" << parsed.output;
    EXPECT_NE(parsed.output.find("gauge armdock_transaction_duration_seconds result=success "), std::string::npos) << parsed.output;

    // node-exporter's textfile collector, as a Prometheus server would scrape it.
    const int port = freePort();
    exporterPid = spawnLogged(sandbox->dir() / "logs/node-exporter.log",
                              {nodeExporter().string(), "--web.listen-address=127.0.0.1:" + std::to_string(port), "--collector.disable-defaults",
                               "--collector.textfile", "--collector.textfile.directory=" + sandbox->metricsFile().parent_path().string()},
                              {"PATH=/usr/bin:/bin"});
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
    CommandResult scraped;
    Sandbox::waitFor([&] {
        scraped = sandbox->run({"curl", "-s", "-m", "2", url}, 5s);
        return scraped.exitCode == 0 && scraped.output.find("armdock_") != std::string::npos;
    }, 20s, 100ms);
    ASSERT_EQ(scraped.exitCode, 0) << scraped.output << readFile(sandbox->dir() / "logs/node-exporter.log");
    EXPECT_TRUE(hasLine(scraped.output, "armdock_engine_info{version=\"20.10.24+dfsg1\"} 1")) << scraped.output;
    EXPECT_TRUE(hasLine(scraped.output, "armdock_transactions_total{result=\"success\"} 1")) << scraped.output;
    EXPECT_TRUE(hasLine(scraped.output, "node_textfile_scrape_error 0")) << scraped.output;
}

}  // namespace
}  // namespace armdock::test
