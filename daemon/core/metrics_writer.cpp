#include "core/metrics_writer.hpp"

#include <utility>  // before Boost 1.74 Asio headers, which need std::exchange

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "core/durable_fs.hpp"

namespace armdock {

namespace fs = std::filesystem;

MetricsWriter::MetricsWriter(Agent& agent, boost::asio::thread_pool& pool) : agent_(agent), strand_(boost::asio::make_strand(pool.get_executor())) {}

void MetricsWriter::propertiesChanged(const std::vector<std::string>& names)
{
    auto named = [&](const char* name) { return std::find(names.begin(), names.end(), name) != names.end(); };
    if (named("State") && agent_.busy() && !transactionStart_) {
        transactionStart_ = std::chrono::steady_clock::now();
        update();
    } else if (named("CurrentVersion") || named("EngineRestarts") || named("Healthy")) {
        update();
    }
}

void MetricsWriter::finished(const std::string&, TransactionResult result, const std::string&)
{
    ++transactions_[result];
    if (transactionStart_)
        durations_[result] = std::chrono::duration<double>(std::chrono::steady_clock::now() - *transactionStart_).count();
    transactionStart_.reset();
    lastResultUnixSeconds_ = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    update();
}

void MetricsWriter::healthChanged(bool, const std::string&) { update(); }

void MetricsWriter::reloaded() { update(); }  // metrics_file may have moved

MetricsSnapshot MetricsWriter::snapshot() const
{
    const AgentStatus& status = agent_.status();
    MetricsSnapshot s;
    s.engineVersion = status.currentVersion;
    s.lastResult = status.lastResult;
    s.lastResultUnixSeconds = lastResultUnixSeconds_;
    s.transactions = transactions_;
    s.lastDurationSeconds = durations_;
    s.engineRestarts = status.engineRestarts;
    s.healthy = status.healthy;
    s.backupSets = agent_.listBackups().size();
    s.busy = agent_.busy();
    return s;
}

void MetricsWriter::update()
{
    const fs::path file = agent_.config().agent.metricsFile;
    if (file.empty())
        return;
    boost::asio::post(strand_, [file, text = formatMetrics(snapshot()), lastError = lastError_] {
        std::string error;
        std::error_code ec;
        if (!fs::is_directory(file.parent_path(), ec)) {
            error = "metrics: " + file.parent_path().string() + " does not exist, so " + file.string() +
                    " is not written; install prometheus-node-exporter (its textfile folder), or set agent.metrics_file (\"\" for none)";
        } else {
            try {
                writeFileDurably(file, text, 0644);
            } catch (const std::exception& e) {
                error = std::string("metrics: ") + e.what() + "; check the folder's owner and free space, or set agent.metrics_file";
            }
        }
        if (error != *lastError && !error.empty())
            spdlog::warn("{}", error);
        *lastError = error;
    });
}

}  // namespace armdock
