// Keeps agent.metrics_file up to date: after each transaction, each change
// of health, engine version or restarts, and once at start. The file is
// rewritten whole (temporary file, fsync, rename, mode 0644) on the thread
// pool, one write at a time and the newest last; the loop only takes the
// snapshot. A folder that does not exist (node-exporter not installed) is
// not created: the writer says so once and waits for the next change.
#pragma once

#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "agent.hpp"
#include "metrics.hpp"

namespace armdock {

class MetricsWriter final : public AgentObserver {
public:
    MetricsWriter(Agent& agent, boost::asio::thread_pool& pool);

    void propertiesChanged(const std::vector<std::string>& names) override;
    void finished(const std::string& transaction, TransactionResult result, const std::string& message) override;
    void healthChanged(bool healthy, const std::string& reason) override;
    void reloaded() override;

    // Takes a snapshot and queues its write (also the first one, at start).
    void update();

private:
    MetricsSnapshot snapshot() const;

    Agent& agent_;
    boost::asio::strand<boost::asio::thread_pool::executor_type> strand_;
    // Loop side: what the agent does not keep itself.
    std::map<TransactionResult, std::uint64_t> transactions_;
    std::map<TransactionResult, double> durations_;
    double lastResultUnixSeconds_ = 0;
    std::optional<std::chrono::steady_clock::time_point> transactionStart_;
    // Pool side: the last error written to the log, so a failing folder is logged once per cause.
    std::shared_ptr<std::string> lastError_ = std::make_shared<std::string>();
};

}  // namespace armdock
